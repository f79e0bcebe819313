//! How the layers' evidence becomes one verdict (pure logic, no model, unit-tested).
//!
//! - **Attack** when a rule with confidence ≥ `rule_verdict_confidence` fires (L1 decides),
//!   or the L2 probability of either view reaches the model's threshold (L2 decides); both →
//!   `l1+l2`.
//! - **Suspicious** when only weaker rules fire, or the prompt smuggles text in Unicode tag
//!   characters, and L2 stays below its threshold.
//! - **Benign** otherwise, decided by L2 (or by L1 alone when L2 is disabled).
//!
//! The reported attack probability is the larger of the L2 probability and the strongest
//! rule's confidence. Families are those of the rules that fired, plus `obfuscation` when
//! normalization revealed evidence the raw text hid (a decisive rule firing only on the
//! normalized view, or an L2 verdict only that view reached).
//! Severity is the worst fired rule's; an attack found by L2 alone is `high` from probability
//! 0.9, `medium` below.

use std::collections::BTreeSet;

use super::normalize::Transform;
use super::rules::{Rule, Severity};

/// L2 probability from which an attack L2 found alone is `high` severity (`medium` below).
pub const L2_HIGH_SEVERITY_PROBABILITY: f64 = 0.9;

/// Which view of the prompt a piece of evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum View {
    /// The prompt as sent.
    Raw,
    /// The normalized prompt.
    Normalized,
}

impl View {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Normalized => "normalized",
        }
    }
}

/// A rule that fired on a view.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit<'r> {
    /// The rule.
    pub rule: &'r Rule,
    /// The first view it fired on (raw before normalized).
    pub view: View,
}

/// The evidence about one prompt.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'r> {
    /// Rules that fired, each once.
    pub hits: Vec<RuleHit<'r>>,
    /// L2 probability of the raw view (`None` when L2 is disabled).
    pub l2_raw: Option<f64>,
    /// L2 probability of the normalized view, when it differs from the raw one.
    pub l2_normalized: Option<f64>,
    /// What normalization changed.
    pub transforms: Vec<Transform>,
}

/// The verdict on a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An attack.
    Attack,
    /// Worth a look, not blocked.
    Suspicious,
    /// Nothing found.
    Benign,
}

impl Verdict {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attack => "attack",
            Self::Suspicious => "suspicious",
            Self::Benign => "benign",
        }
    }
}

/// Thresholds of the decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionThresholds {
    /// L2 probability from which a prompt is an attack.
    pub l2_threshold: f64,
    /// Rule confidence from which a rule alone makes an attack.
    pub rule_verdict_confidence: f64,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Attack, suspicious or benign.
    pub verdict: Verdict,
    /// `l1`, `l2` or `l1+l2`.
    pub decided_by: &'static str,
    /// max(L2 probability, strongest rule confidence).
    pub attack_probability: f64,
    /// Highest L2 probability over the views (`None` without L2).
    pub l2_probability: Option<f64>,
    /// Strongest confidence among fired rules (0 when none fired).
    pub l1_confidence: f64,
    /// Families, sorted.
    pub families: Vec<String>,
    /// Fired rule ids, in rule-file order.
    pub rules: Vec<String>,
    /// Worst severity (`None` for a benign prompt).
    pub severity: Option<Severity>,
}

/// Combines the evidence (see the module doc).
pub fn decide(evidence: &Evidence<'_>, thresholds: DecisionThresholds) -> Decision {
    let l2_probability = match (evidence.l2_raw, evidence.l2_normalized) {
        (Some(raw), Some(normalized)) => Some(raw.max(normalized)),
        (raw, normalized) => raw.or(normalized),
    };
    let l1_confidence = evidence
        .hits
        .iter()
        .map(|hit| hit.rule.confidence)
        .fold(0.0, f64::max);
    let l1_attack = evidence
        .hits
        .iter()
        .any(|hit| hit.rule.confidence >= thresholds.rule_verdict_confidence);
    let l2_attack = l2_probability.is_some_and(|p| p >= thresholds.l2_threshold);
    let smuggling = evidence.transforms.contains(&Transform::TagSmuggling);
    let verdict = if l1_attack || l2_attack {
        Verdict::Attack
    } else if !evidence.hits.is_empty() || smuggling {
        Verdict::Suspicious
    } else {
        Verdict::Benign
    };
    let decided_by = match (l1_attack, l2_attack) {
        (true, true) => "l1+l2",
        (true, false) => "l1",
        (false, true) => "l2",
        (false, false) if l2_probability.is_some() => "l2",
        (false, false) => "l1",
    };
    let mut families: BTreeSet<String> = evidence
        .hits
        .iter()
        .map(|hit| hit.rule.family.clone())
        .collect();
    if verdict == Verdict::Attack && found_only_after_normalization(evidence, thresholds) {
        families.insert("obfuscation".to_owned());
    }
    if smuggling {
        families.insert("obfuscation".to_owned());
    }
    let rule_severity = evidence.hits.iter().map(|hit| hit.rule.severity).max();
    let severity = match verdict {
        Verdict::Benign => None,
        Verdict::Suspicious => rule_severity.or(Some(Severity::Medium)),
        Verdict::Attack => {
            let model_severity = l2_probability.filter(|_| l2_attack).map(|p| {
                if p >= L2_HIGH_SEVERITY_PROBABILITY {
                    Severity::High
                } else {
                    Severity::Medium
                }
            });
            rule_severity.max(model_severity)
        }
    };
    Decision {
        verdict,
        decided_by,
        attack_probability: l2_probability.unwrap_or(0.0).max(l1_confidence),
        l2_probability,
        l1_confidence,
        families: families.into_iter().collect(),
        rules: evidence
            .hits
            .iter()
            .map(|hit| hit.rule.id.clone())
            .collect(),
        severity,
    }
}

/// Whether normalization revealed attack evidence the raw text hid: a decisive rule that
/// fired only on the normalized view, or an L2 verdict only the normalized view reached.
fn found_only_after_normalization(evidence: &Evidence<'_>, thresholds: DecisionThresholds) -> bool {
    let obfuscated = evidence.transforms.iter().any(|t| t.is_obfuscation());
    let rule_revealed = evidence.hits.iter().any(|hit| {
        hit.view == View::Normalized && hit.rule.confidence >= thresholds.rule_verdict_confidence
    });
    let at_threshold =
        |probability: Option<f64>| probability.is_some_and(|p| p >= thresholds.l2_threshold);
    let model_revealed = at_threshold(evidence.l2_normalized) && !at_threshold(evidence.l2_raw);
    obfuscated && (rule_revealed || model_revealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, family: &str, severity: Severity, confidence: f64) -> Rule {
        Rule {
            id: id.to_owned(),
            family: family.to_owned(),
            severity,
            confidence,
            description: String::new(),
            patterns: vec!["x".to_owned()],
            should_match: Vec::new(),
            should_not_match: Vec::new(),
        }
    }

    const THRESHOLDS: DecisionThresholds = DecisionThresholds {
        l2_threshold: 0.6,
        rule_verdict_confidence: 0.8,
    };

    #[test]
    fn a_confident_rule_decides_alone() {
        let strong = rule("PI-001", "prompt_injection", Severity::High, 0.95);
        let evidence = Evidence {
            hits: vec![RuleHit {
                rule: &strong,
                view: View::Raw,
            }],
            l2_raw: Some(0.1),
            ..Evidence::default()
        };
        let decision = decide(&evidence, THRESHOLDS);
        assert_eq!(decision.verdict, Verdict::Attack);
        assert_eq!(decision.decided_by, "l1");
        assert_eq!(decision.attack_probability, 0.95);
        assert_eq!(decision.families, vec!["prompt_injection"]);
        assert_eq!(decision.severity, Some(Severity::High));
    }

    #[test]
    fn the_model_decides_when_no_rule_fires() {
        let evidence = Evidence {
            l2_raw: Some(0.93),
            ..Evidence::default()
        };
        let decision = decide(&evidence, THRESHOLDS);
        assert_eq!(decision.verdict, Verdict::Attack);
        assert_eq!(decision.decided_by, "l2");
        assert_eq!(decision.severity, Some(Severity::High));
        assert!(decision.families.is_empty() && decision.rules.is_empty());
        let medium = decide(
            &Evidence {
                l2_raw: Some(0.7),
                ..Evidence::default()
            },
            THRESHOLDS,
        );
        assert_eq!(medium.severity, Some(Severity::Medium));
    }

    #[test]
    fn weak_rules_make_a_prompt_suspicious_and_both_layers_can_agree() {
        let weak = rule("JB-003", "jailbreak", Severity::Medium, 0.6);
        let strong = rule("TX-001", "toxicity", Severity::Critical, 0.9);
        let suspicious = Evidence {
            hits: vec![RuleHit {
                rule: &weak,
                view: View::Raw,
            }],
            l2_raw: Some(0.2),
            ..Evidence::default()
        };
        let decision = decide(&suspicious, THRESHOLDS);
        assert_eq!(decision.verdict, Verdict::Suspicious);
        assert_eq!(decision.attack_probability, 0.6);
        let both = Evidence {
            hits: vec![
                RuleHit {
                    rule: &weak,
                    view: View::Raw,
                },
                RuleHit {
                    rule: &strong,
                    view: View::Raw,
                },
            ],
            l2_raw: Some(0.99),
            ..Evidence::default()
        };
        let decision = decide(&both, THRESHOLDS);
        assert_eq!(decision.decided_by, "l1+l2");
        assert_eq!(decision.severity, Some(Severity::Critical));
        assert_eq!(decision.families, vec!["jailbreak", "toxicity"]);
        assert_eq!(decision.rules, vec!["JB-003", "TX-001"]);
    }

    #[test]
    fn an_attack_seen_only_after_normalization_is_obfuscation() {
        let strong = rule("PI-001", "prompt_injection", Severity::High, 0.95);
        let evidence = Evidence {
            hits: vec![RuleHit {
                rule: &strong,
                view: View::Normalized,
            }],
            l2_raw: Some(0.1),
            l2_normalized: Some(0.97),
            transforms: vec![Transform::Base64],
        };
        let decision = decide(&evidence, THRESHOLDS);
        assert_eq!(decision.verdict, Verdict::Attack);
        assert_eq!(decision.families, vec!["obfuscation", "prompt_injection"]);
        assert_eq!(decision.l2_probability, Some(0.97));
    }

    #[test]
    fn benign_prompts_are_cleared_by_the_model_and_tag_smuggling_is_suspicious() {
        let benign = decide(
            &Evidence {
                l2_raw: Some(0.02),
                ..Evidence::default()
            },
            THRESHOLDS,
        );
        assert_eq!(
            (benign.verdict, benign.decided_by, benign.severity),
            (Verdict::Benign, "l2", None)
        );
        let without_model = decide(&Evidence::default(), THRESHOLDS);
        assert_eq!(without_model.decided_by, "l1");
        let smuggled = decide(
            &Evidence {
                l2_raw: Some(0.02),
                transforms: vec![Transform::TagSmuggling],
                ..Evidence::default()
            },
            THRESHOLDS,
        );
        assert_eq!(smuggled.verdict, Verdict::Suspicious);
        assert_eq!(smuggled.families, vec!["obfuscation"]);
    }
}
