//! The alert operator's rule layer: documented detection rules over named facts, loaded
//! from TOML — the shipped core (`models/alert/rules.toml`) and the ATT&CK rule pack
//! (`models/alert/rules/*.toml`, one module per tactic), compiled in; `[operators.alert]
//! rules_file` replaces them with a file or a directory of files.
//!
//! A rule fires when all its conditions hold; a condition compares one fact with a number:
//! a feature column, an intel fact of [`INTEL_FACTS`], a correlation fact of
//! [`GROUP_FACTS`], or `technique_<id>` (1 when the alert maps to that ATT&CK technique or
//! one of its sub-techniques, else 0). Fired rules combine as
//! a noisy-OR of their scores, so two independent 50-point rules give 75, never more than
//! 100. Pack rules also carry their ATT&CK `tactic` and `techniques`, a `severity` and a
//! `confidence`, and tested examples: `should_fire` / `should_not_fire` fact sets (facts not
//! named are 0) that [`RuleSet::check_examples`] runs — in the test suite for the shipped
//! rules. Every file is checked at load: an unknown fact, technique or tactic, a malformed
//! condition, a duplicate id or a score outside 0–100 refuses it with the rule's id, never a
//! silent no-op rule.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::operators::alert::attack::catalogue;
use crate::operators::alert::incidents::GroupFacts;
use crate::operators::alert::intel::{Indicator, IndicatorKind, IntelMatches};

/// The shipped core rule file.
pub const DEFAULT_RULES: &str = include_str!("../../../../models/alert/rules.toml");

/// The shipped ATT&CK rule pack, one module per tactic.
pub const RULE_PACK: &[(&str, &str)] = &[
    (
        "reconnaissance",
        include_str!("../../../../models/alert/rules/01-reconnaissance.toml"),
    ),
    (
        "resource-development",
        include_str!("../../../../models/alert/rules/02-resource-development.toml"),
    ),
    (
        "initial-access",
        include_str!("../../../../models/alert/rules/03-initial-access.toml"),
    ),
    (
        "execution",
        include_str!("../../../../models/alert/rules/04-execution.toml"),
    ),
    (
        "persistence",
        include_str!("../../../../models/alert/rules/05-persistence.toml"),
    ),
    (
        "privilege-escalation",
        include_str!("../../../../models/alert/rules/06-privilege-escalation.toml"),
    ),
    (
        "defense-evasion",
        include_str!("../../../../models/alert/rules/07-defense-evasion.toml"),
    ),
    (
        "credential-access",
        include_str!("../../../../models/alert/rules/08-credential-access.toml"),
    ),
    (
        "discovery",
        include_str!("../../../../models/alert/rules/09-discovery.toml"),
    ),
    (
        "lateral-movement",
        include_str!("../../../../models/alert/rules/10-lateral-movement.toml"),
    ),
    (
        "collection",
        include_str!("../../../../models/alert/rules/11-collection.toml"),
    ),
    (
        "command-and-control",
        include_str!("../../../../models/alert/rules/12-command-and-control.toml"),
    ),
    (
        "exfiltration",
        include_str!("../../../../models/alert/rules/13-exfiltration.toml"),
    ),
    (
        "impact",
        include_str!("../../../../models/alert/rules/14-impact.toml"),
    ),
];

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

/// The facts correlation adds, about the open group of the alert's entities before it
/// (0 without one; see [`crate::operators::alert::incidents::GroupFacts`]): `group_alerts`,
/// `group_tactics` (its distinct ATT&CK tactics), `group_is_incident` (1 when it already is
/// an incident). Always 0 where correlation is off (no `incident_topic`).
pub const GROUP_FACTS: [&str; 3] = ["group_alerts", "group_tactics", "group_is_incident"];

/// Prefix of technique facts (`technique_T1059`).
const TECHNIQUE_FACT: &str = "technique_";

/// Errors of a rule file.
#[derive(Debug, thiserror::Error)]
#[error("alert rules: {0}")]
pub struct RuleError(String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    version: String,
    /// What the module covers (pack files).
    #[serde(default)]
    module: String,
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
    #[serde(default)]
    tactic: Option<String>,
    #[serde(default)]
    techniques: Vec<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    should_fire: Vec<BTreeMap<String, f64>>,
    #[serde(default)]
    should_not_fire: Vec<BTreeMap<String, f64>>,
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

/// What a condition reads.
#[derive(Debug, Clone, PartialEq)]
enum Fact {
    /// A feature column.
    Column(usize),
    /// `intel_ip_hits` (and `known_bad_ip_count`).
    IntelIpHits,
    /// `intel_host_hits`.
    IntelHostHits,
    /// `intel_max_confidence`.
    IntelMaxConfidence,
    /// `group_alerts`.
    GroupAlerts,
    /// `group_tactics`.
    GroupTactics,
    /// `group_is_incident`.
    GroupIsIncident,
    /// `technique_<id>`: the alert maps to it or a sub-technique of it.
    Technique(String),
}

impl Fact {
    fn named(name: &str, features: &[String]) -> Option<Self> {
        if let Some(index) = features.iter().position(|feature| feature == name) {
            return Some(Self::Column(index));
        }
        match name {
            "known_bad_ip_count" | "intel_ip_hits" => Some(Self::IntelIpHits),
            "intel_host_hits" => Some(Self::IntelHostHits),
            "intel_max_confidence" => Some(Self::IntelMaxConfidence),
            "group_alerts" => Some(Self::GroupAlerts),
            "group_tactics" => Some(Self::GroupTactics),
            "group_is_incident" => Some(Self::GroupIsIncident),
            _ => {
                let id = name.strip_prefix(TECHNIQUE_FACT)?;
                catalogue()
                    .technique(id)
                    .map(|_| Self::Technique(id.to_owned()))
            }
        }
    }
}

/// What the facts of one alert are read from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The feature row.
    pub row: &'a [f64],
    /// The intel stage's matches.
    pub intel: &'a IntelMatches,
    /// The alert's ATT&CK technique ids.
    pub techniques: &'a [String],
    /// Its correlation group before it.
    pub group: &'a GroupFacts,
}

impl Facts<'_> {
    fn value(&self, fact: &Fact) -> f64 {
        match fact {
            Fact::Column(index) => self.row.get(*index).copied().unwrap_or(f64::NAN),
            Fact::IntelIpHits => self.intel.ip_hits as f64,
            Fact::IntelHostHits => self.intel.host_hits as f64,
            Fact::IntelMaxConfidence => self.intel.max_confidence,
            Fact::GroupAlerts => self.group.alerts as f64,
            Fact::GroupTactics => self.group.tactics as f64,
            Fact::GroupIsIncident => f64::from(u8::from(self.group.incident)),
            Fact::Technique(id) => {
                let maps = self.techniques.iter().any(|technique| {
                    technique == id
                        || technique
                            .strip_prefix(id.as_str())
                            .is_some_and(|rest| rest.starts_with('.'))
                });
                f64::from(u8::from(maps))
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Condition {
    fact: Fact,
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
    /// Its ATT&CK tactic (pack rules).
    pub tactic: Option<String>,
    /// The ATT&CK techniques it detects.
    pub techniques: Vec<String>,
    /// Its severity (`informational` … `critical`).
    pub severity: Option<String>,
    /// How often a firing is a true positive, 0–1, as its author judges.
    pub confidence: Option<f64>,
    /// The module (file) it came from.
    pub module: String,
    conditions: Vec<Condition>,
    examples: Vec<(bool, BTreeMap<String, f64>)>,
}

impl Rule {
    /// Whether a condition reads a correlation fact.
    fn reads_group(&self) -> bool {
        self.conditions.iter().any(|condition| {
            matches!(
                condition.fact,
                Fact::GroupAlerts | Fact::GroupTactics | Fact::GroupIsIncident
            )
        })
    }

    fn fires(&self, facts: &Facts<'_>) -> bool {
        self.conditions.iter().all(|condition| {
            condition
                .comparison
                .holds(facts.value(&condition.fact), condition.bound)
        })
    }

    /// Whether it has at least one `should_fire` and one `should_not_fire` example.
    pub fn has_examples(&self) -> bool {
        self.examples.iter().any(|(fires, _)| *fires)
            && self.examples.iter().any(|(fires, _)| !*fires)
    }
}

/// A fired rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    /// Rule id.
    pub id: String,
    /// Its score.
    pub score: f64,
    /// Whether it reads a correlation fact (`group_*`): correlation judges an alert by the
    /// risk without such rules, so a group cannot raise its own members over the floor.
    pub reads_group: bool,
}

/// The loaded rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// `version` of the (first) file.
    pub version: String,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The files' `known_bad_networks`, as indicators (source "rules file") the intel stage
    /// adds to its set.
    pub known_bad: Vec<Indicator>,
    /// The feature columns the rules were checked against.
    features: Vec<String>,
}

const SEVERITIES: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

fn parse_condition(text: &str, id: &str, features: &[String]) -> Result<Condition, RuleError> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [name, op, bound] = parts[..] else {
        return Err(RuleError(format!(
            "{id}: {text:?} is not \"fact op number\""
        )));
    };
    let fact = Fact::named(name, features)
        .ok_or_else(|| RuleError(format!("{id}: unknown fact {name:?}")))?;
    let comparison =
        Comparison::parse(op).ok_or_else(|| RuleError(format!("{id}: unknown operator {op:?}")))?;
    let bound: f64 = bound
        .parse()
        .ok()
        .filter(|bound: &f64| bound.is_finite())
        .ok_or_else(|| RuleError(format!("{id}: {bound:?} is not a number")))?;
    Ok(Condition {
        fact,
        comparison,
        bound,
    })
}

fn parse_rule(spec: RuleSpec, module: &str, features: &[String]) -> Result<Rule, RuleError> {
    let id = spec.id.as_str();
    if !(0.0..=100.0).contains(&spec.score) {
        return Err(RuleError(format!(
            "{id}: score {} outside 0–100",
            spec.score
        )));
    }
    if spec.when.is_empty() {
        return Err(RuleError(format!("{id}: no conditions")));
    }
    if let Some(tactic) = &spec.tactic {
        if catalogue().tactic_stage(tactic).is_none() {
            return Err(RuleError(format!("{id}: unknown tactic {tactic:?}")));
        }
    }
    if let Some(unknown) = spec
        .techniques
        .iter()
        .find(|t| catalogue().technique(t).is_none())
    {
        return Err(RuleError(format!("{id}: unknown technique {unknown:?}")));
    }
    if let Some(severity) = spec.severity.as_deref().filter(|s| !SEVERITIES.contains(s)) {
        return Err(RuleError(format!("{id}: unknown severity {severity:?}")));
    }
    if spec.confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
        return Err(RuleError(format!("{id}: confidence outside 0–1")));
    }
    let conditions = spec
        .when
        .iter()
        .map(|text| parse_condition(text, id, features))
        .collect::<Result<Vec<_>, _>>()?;
    let examples: Vec<(bool, BTreeMap<String, f64>)> = spec
        .should_fire
        .into_iter()
        .map(|facts| (true, facts))
        .chain(spec.should_not_fire.into_iter().map(|facts| (false, facts)))
        .collect();
    for (_, facts) in &examples {
        if let Some(name) = facts
            .keys()
            .find(|name| Fact::named(name, features).is_none())
        {
            return Err(RuleError(format!(
                "{id}: example names unknown fact {name:?}"
            )));
        }
    }
    Ok(Rule {
        id: spec.id,
        description: spec.description,
        score: spec.score,
        tactic: spec.tactic,
        techniques: spec.techniques,
        severity: spec.severity,
        confidence: spec.confidence,
        module: module.to_owned(),
        conditions,
        examples,
    })
}

impl RuleSet {
    /// Parses and checks one rule file against the feature columns `features`.
    pub fn parse(text: &str, features: &[String]) -> Result<Self, RuleError> {
        Self::parse_files(&[("rules", text)], features)
    }

    /// Parses and checks rule files (name, text), in order, as one set.
    pub fn parse_files(files: &[(&str, &str)], features: &[String]) -> Result<Self, RuleError> {
        let mut set = Self {
            version: String::new(),
            rules: Vec::new(),
            known_bad: Vec::new(),
            features: features.to_vec(),
        };
        let mut ids = HashSet::new();
        for (name, text) in files {
            let file: RuleFile =
                toml::from_str(text).map_err(|error| RuleError(format!("{name}: {error}")))?;
            if set.version.is_empty() {
                set.version = file.version.clone();
            }
            for network in &file.known_bad_networks {
                let indicator = Indicator::new(IndicatorKind::Network, network, 0.8, "rules file")
                    .ok_or_else(|| {
                        RuleError(format!(
                            "{name}: known_bad_networks: {network:?} is not a CIDR"
                        ))
                    })?;
                set.known_bad.push(indicator);
            }
            let module = if file.module.is_empty() {
                *name
            } else {
                file.module.as_str()
            };
            for spec in file.rule {
                if !ids.insert(spec.id.clone()) {
                    return Err(RuleError(format!("{}: duplicate rule id", spec.id)));
                }
                set.rules.push(parse_rule(spec, module, features)?);
            }
        }
        Ok(set)
    }

    /// The shipped core rules and rule pack.
    pub fn shipped(features: &[String]) -> Result<Self, RuleError> {
        let mut files = vec![("core", DEFAULT_RULES)];
        files.extend(RULE_PACK.iter().copied());
        Self::parse_files(&files, features)
    }

    /// Reads and checks the rules at `path` (a file, or a directory whose `*.toml` files are
    /// read in name order), or the shipped rules when `None`.
    pub fn load(path: Option<&Path>, features: &[String]) -> Result<Self, RuleError> {
        let Some(path) = path else {
            return Self::shipped(features);
        };
        let read = |file: &Path| {
            std::fs::read_to_string(file)
                .map_err(|error| RuleError(format!("{}: {error}", file.display())))
        };
        let mut files: Vec<(String, String)> = Vec::new();
        if path.is_dir() {
            let mut paths: Vec<_> = std::fs::read_dir(path)
                .map_err(|error| RuleError(format!("{}: {error}", path.display())))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| {
                    file.extension()
                        .is_some_and(|extension| extension == "toml")
                })
                .collect();
            paths.sort();
            for file in paths {
                files.push((file.display().to_string(), read(&file)?));
            }
        } else {
            files.push((path.display().to_string(), read(path)?));
        }
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        Self::parse_files(&borrowed, features)
    }

    /// Rules that fire on `facts`, in file order.
    pub fn evaluate(&self, facts: &Facts<'_>) -> Vec<RuleHit> {
        self.rules
            .iter()
            .filter(|rule| rule.fires(facts))
            .map(|rule| RuleHit {
                id: rule.id.clone(),
                score: rule.score,
                reads_group: rule.reads_group(),
            })
            .collect()
    }

    /// Runs every rule's examples; each problem names the rule and the example.
    pub fn check_examples(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for rule in &self.rules {
            for (index, (should_fire, example)) in rule.examples.iter().enumerate() {
                let mut row = vec![0.0; self.features.len()];
                let mut intel = IntelMatches::default();
                let mut group = GroupFacts::default();
                let mut techniques = Vec::new();
                for (name, value) in example {
                    match Fact::named(name, &self.features) {
                        Some(Fact::Column(column)) => row[column] = *value,
                        Some(Fact::IntelIpHits) => intel.ip_hits = *value as usize,
                        Some(Fact::IntelHostHits) => intel.host_hits = *value as usize,
                        Some(Fact::IntelMaxConfidence) => intel.max_confidence = *value,
                        Some(Fact::GroupAlerts) => group.alerts = *value as usize,
                        Some(Fact::GroupTactics) => group.tactics = *value as usize,
                        Some(Fact::GroupIsIncident) => group.incident = *value != 0.0,
                        Some(Fact::Technique(id)) if *value != 0.0 => techniques.push(id),
                        _ => {}
                    }
                }
                let facts = Facts {
                    row: &row,
                    intel: &intel,
                    techniques: &techniques,
                    group: &group,
                };
                if rule.fires(&facts) != *should_fire {
                    problems.push(format!(
                        "{}: example {} ({}) {}",
                        rule.id,
                        index + 1,
                        if *should_fire {
                            "should_fire"
                        } else {
                            "should_not_fire"
                        },
                        if *should_fire {
                            "did not fire"
                        } else {
                            "fired"
                        }
                    ));
                }
            }
        }
        problems
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
#[path = "rules_tests.rs"]
mod tests;
