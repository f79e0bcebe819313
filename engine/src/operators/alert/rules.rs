//! The alert operator's rule layer: documented detection rules over named facts, loaded
//! from a TOML file (`models/alert/rules.toml` is the default, compiled in; `[operators.alert]
//! rules_file` replaces it).
//!
//! A rule fires when all its conditions hold; a condition compares one fact (a feature
//! column, or an intel fact of [`INTEL_FACTS`]) with a number. Fired rules combine as a noisy-OR of their
//! scores, so two independent 50-point rules give 75, never more than 100. The file is
//! checked at load: an unknown fact, a malformed condition or a score outside 0–100 refuses
//! the file with the rule's id, never a silent no-op rule.

use std::path::Path;

use serde::Deserialize;

use crate::operators::alert::intel::{Indicator, IndicatorKind, IntelMatches};

/// The default rule file.
pub const DEFAULT_RULES: &str = include_str!("../../../../models/alert/rules.toml");

/// The facts the threat-intelligence stage adds to the feature columns:
/// `known_bad_ip_count` (older rule files; the same as `intel_ip_hits`), `intel_ip_hits`
/// (alert IPs inside an indicator network), `intel_host_hits` (alert hosts equal to an
/// indicator domain), `intel_max_confidence` (0–1, 0 without a hit).
pub const INTEL_FACTS: [&str; 4] = [
    "known_bad_ip_count",
    "intel_ip_hits",
    "intel_host_hits",
    "intel_max_confidence",
];

/// Errors of a rule file.
#[derive(Debug, thiserror::Error)]
#[error("alert rules: {0}")]
pub struct RuleError(String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    version: String,
    #[serde(default)]
    known_bad_networks: Vec<String>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    description: String,
    score: f64,
    when: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    AtLeast,
    Above,
    AtMost,
    Below,
    Equal,
    NotEqual,
}

impl Comparison {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            ">=" => Self::AtLeast,
            ">" => Self::Above,
            "<=" => Self::AtMost,
            "<" => Self::Below,
            "==" => Self::Equal,
            "!=" => Self::NotEqual,
            _ => return None,
        })
    }

    /// Missing values (NaN) satisfy no comparison.
    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Self::AtLeast => value >= bound,
            Self::Above => value > bound,
            Self::AtMost => value <= bound,
            Self::Below => value < bound,
            Self::Equal => value == bound,
            Self::NotEqual => !value.is_nan() && value != bound,
        }
    }
}

#[derive(Debug, Clone)]
struct Condition {
    fact: usize,
    comparison: Comparison,
    bound: f64,
}

/// One loaded rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id, as reported in rule hits.
    pub id: String,
    /// What it detects.
    pub description: String,
    /// Its risk on its own, 0–100.
    pub score: f64,
    conditions: Vec<Condition>,
}

/// A fired rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    /// Rule id.
    pub id: String,
    /// Its score.
    pub score: f64,
}

/// The loaded rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// `version` of the file.
    pub version: String,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The file's `known_bad_networks`, as indicators (source "rules file") the intel stage
    /// adds to its set.
    pub known_bad: Vec<Indicator>,
    /// Feature columns (the facts before the [`INTEL_FACTS`]).
    features: usize,
}

impl RuleSet {
    /// Parses and checks a rule file against the feature columns `features`.
    pub fn parse(text: &str, features: &[String]) -> Result<Self, RuleError> {
        let file: RuleFile = toml::from_str(text).map_err(|error| RuleError(error.to_string()))?;
        let mut facts = features.to_vec();
        facts.extend(INTEL_FACTS.iter().map(|fact| (*fact).to_owned()));
        let known_bad = file
            .known_bad_networks
            .iter()
            .map(|network| {
                Indicator::new(IndicatorKind::Network, network, 0.8, "rules file").ok_or_else(
                    || RuleError(format!("known_bad_networks: {network:?} is not a CIDR")),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut rules = Vec::new();
        for spec in file.rule {
            if !(0.0..=100.0).contains(&spec.score) {
                return Err(RuleError(format!(
                    "{}: score {} outside 0–100",
                    spec.id, spec.score
                )));
            }
            if spec.when.is_empty() {
                return Err(RuleError(format!("{}: no conditions", spec.id)));
            }
            let conditions =
                spec.when
                    .iter()
                    .map(|text| {
                        let parts: Vec<&str> = text.split_whitespace().collect();
                        let [name, op, bound] = parts[..] else {
                            return Err(RuleError(format!(
                                "{}: {text:?} is not \"fact op number\"",
                                spec.id
                            )));
                        };
                        let fact = facts.iter().position(|fact| fact == name).ok_or_else(|| {
                            RuleError(format!("{}: unknown fact {name:?}", spec.id))
                        })?;
                        let comparison = Comparison::parse(op).ok_or_else(|| {
                            RuleError(format!("{}: unknown operator {op:?}", spec.id))
                        })?;
                        let bound: f64 = bound
                            .parse()
                            .ok()
                            .filter(|bound: &f64| bound.is_finite())
                            .ok_or_else(|| {
                                RuleError(format!("{}: {bound:?} is not a number", spec.id))
                            })?;
                        Ok(Condition {
                            fact,
                            comparison,
                            bound,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule {
                id: spec.id,
                description: spec.description,
                score: spec.score,
                conditions,
            });
        }
        Ok(Self {
            version: file.version,
            rules,
            known_bad,
            features: features.len(),
        })
    }

    /// Reads and checks the rule file at `path`, or the shipped rules when `None`.
    pub fn load(path: Option<&Path>, features: &[String]) -> Result<Self, RuleError> {
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| RuleError(format!("{}: {error}", path.display())))?;
                Self::parse(&text, features)
            }
            None => Self::parse(DEFAULT_RULES, features),
        }
    }

    /// Rules that fire on the feature `row` and the alert's `intel` matches, in file order.
    pub fn evaluate(&self, row: &[f64], intel: &IntelMatches) -> Vec<RuleHit> {
        let fact = |index: usize| match index.checked_sub(self.features) {
            None => row.get(index).copied().unwrap_or(f64::NAN),
            Some(0 | 1) => intel.ip_hits as f64,
            Some(2) => intel.host_hits as f64,
            Some(_) => intel.max_confidence,
        };
        self.rules
            .iter()
            .filter(|rule| {
                rule.conditions
                    .iter()
                    .all(|c| c.comparison.holds(fact(c.fact), c.bound))
            })
            .map(|rule| RuleHit {
                id: rule.id.clone(),
                score: rule.score,
            })
            .collect()
    }
}

/// Noisy-OR of the hits' scores, 0–100.
pub fn combined_score(hits: &[RuleHit]) -> f64 {
    let miss: f64 = hits
        .iter()
        .map(|hit| 1.0 - (hit.score / 100.0).clamp(0.0, 1.0))
        .product();
    100.0 * (1.0 - miss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Vec<String> {
        ["asset_criticality", "tactic_TA0006", "ioc_count"]
            .iter()
            .map(|name| (*name).to_owned())
            .collect()
    }

    const FILE: &str = r#"
version = "t1"
known_bad_networks = ["203.0.113.0/24", "8.8.8.8"]
[[rule]]
id = "crown"
description = "d"
score = 60
when = ["asset_criticality >= 0.8", "tactic_TA0006 == 1"]
[[rule]]
id = "bad-ip"
description = "d"
score = 50
when = ["known_bad_ip_count >= 1"]
"#;

    fn intel_of(rules: &RuleSet, ips: &[String]) -> IntelMatches {
        crate::operators::alert::intel::IntelSet::new(rules.known_bad.clone()).match_alert(
            ips,
            &[],
            0,
        )
    }

    #[test]
    fn rules_fire_on_all_conditions_and_combine_as_noisy_or() {
        let rules = RuleSet::parse(FILE, &features()).expect("parses");
        let ips = vec![
            "203.0.113.9".to_owned(),
            "8.8.8.8".to_owned(),
            "x".to_owned(),
        ];
        let intel = intel_of(&rules, &ips);
        assert_eq!(intel.ip_hits, 2);
        let hits = rules.evaluate(&[0.9, 1.0, 0.0], &intel);
        assert_eq!(hits.len(), 2);
        assert!((combined_score(&hits) - 80.0).abs() < 1e-9);
        let none = IntelMatches::default();
        assert_eq!(rules.evaluate(&[0.7, 1.0, 0.0], &none), Vec::new());
        assert_eq!(rules.evaluate(&[f64::NAN, 1.0, 0.0], &none), Vec::new());
        assert_eq!(combined_score(&[]), 0.0);
    }

    #[test]
    fn intel_facts_are_rule_facts() {
        let file = FILE.replace(
            "when = [\"known_bad_ip_count >= 1\"]",
            "when = [\"intel_host_hits >= 1\", \"intel_max_confidence >= 0.9\"]",
        );
        let rules = RuleSet::parse(&file, &features()).expect("parses");
        let mut intel = IntelMatches {
            host_hits: 1,
            max_confidence: 0.95,
            ..IntelMatches::default()
        };
        assert_eq!(rules.evaluate(&[0.0, 0.0, 0.0], &intel).len(), 1);
        intel.max_confidence = 0.5;
        assert!(rules.evaluate(&[0.0, 0.0, 0.0], &intel).is_empty());
    }

    #[test]
    fn bad_files_are_refused_with_the_rule_id() {
        for (broken, expected) in [
            ("asset_criticality >= 0.8", "nothing"),
            ("criticality >= 0.8", "unknown fact"),
            ("asset_criticality => 0.8", "unknown operator"),
            ("asset_criticality >= high", "not a number"),
            ("asset_criticality>=0.8", "is not"),
        ] {
            let text = FILE.replace("asset_criticality >= 0.8", broken);
            let result = RuleSet::parse(&text, &features());
            if expected == "nothing" {
                assert!(result.is_ok());
            } else {
                let message = result.map(|_| ()).unwrap_err().to_string();
                assert!(
                    message.contains("crown") && message.contains(expected),
                    "{message}"
                );
            }
        }
        assert!(RuleSet::parse(&FILE.replace("60", "160"), &features()).is_err());
        assert!(RuleSet::parse(&FILE.replace("8.8.8.8", "8.8.8.8/40"), &features()).is_err());
    }

    #[test]
    fn the_shipped_rule_file_loads_against_the_feature_list() {
        let features = crate::operators::alert::features::feature_names();
        let rules = RuleSet::parse(DEFAULT_RULES, &features).expect("shipped rules load");
        assert!(rules.rules.len() >= 5);
    }
}
