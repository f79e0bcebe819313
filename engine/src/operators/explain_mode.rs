//! Which scored events get model explanations (TreeSHAP contributions): every one, only
//! those that cross an alerting threshold, or none. Analysts read explanations of alerts, not
//! of the ~99 % of events that pass, and TreeSHAP is most of a tree model's scoring cost, so
//! `crossed` is the default. Each scored event says whether it was explained (label
//! `explained`); rule and intel entries, which cost nothing, are listed either way.

use serde::{Deserialize, Serialize};

/// An operator's `explain` setting.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ExplainMode {
    /// Every event.
    All,
    /// Events that cross an alerting threshold (the operator says which).
    #[default]
    Crossed,
    /// None.
    None,
}

/// Label saying whether an event carries model contributions (`true` / `false`).
pub const EXPLAINED_LABEL: &str = "explained";

impl ExplainMode {
    /// Whether an event that `crossed` (or not) an alerting threshold is explained.
    pub fn explains(self, crossed: bool) -> bool {
        match self {
            Self::All => true,
            Self::Crossed => crossed,
            Self::None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_explains_what_it_says() {
        let decide = |mode: ExplainMode| [mode.explains(true), mode.explains(false)];
        assert_eq!(decide(ExplainMode::All), [true, true]);
        assert_eq!(decide(ExplainMode::Crossed), [true, false]);
        assert_eq!(decide(ExplainMode::None), [false, false]);
        assert_eq!(ExplainMode::default(), ExplainMode::Crossed);
        #[derive(Deserialize)]
        struct Section {
            explain: ExplainMode,
        }
        let parsed: Section = toml::from_str("explain = \"none\"").unwrap();
        assert_eq!(parsed.explain, ExplainMode::None);
        assert!(toml::from_str::<Section>("explain = \"sometimes\"").is_err());
    }
}
