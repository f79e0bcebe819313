//! Scores one alert end to end — entity history → features → models → intel → rules →
//! blended risk (→ correlation, with [`AlertScorer::score_correlated`]) —
//! and records it in the history. The operator and `threatflow eval alert` both use this, so
//! eval figures measure the code that runs in the pipeline.
//!
//! Final risk = `ml_weight · ML risk + rule_weight · rule score` with the weights normalised
//! to sum 1, so it stays on the 0–100 scale.

use std::sync::Arc;

use crate::events::AlertEvent;
use crate::operators::alert::history::{EntityHistory, HistoryFacts};
use crate::operators::alert::incidents::{
    correlation_keys, CorrelationSettings, GroupFacts, Joined,
};
use crate::operators::alert::intel::topic::IntelHandle;
use crate::operators::alert::intel::{snapshot, IntelMatches, IntelSet};
use crate::operators::alert::model::{AlertAssessment, AlertModel};
use crate::operators::alert::rules::{combined_score, Facts, RuleHit, RuleSet};

/// Blend weights of the final risk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlendWeights {
    /// Weight of the model's risk.
    pub ml: f64,
    /// Weight of the rule score.
    pub rules: f64,
}

impl Default for BlendWeights {
    fn default() -> Self {
        Self {
            ml: 0.7,
            rules: 0.3,
        }
    }
}

impl BlendWeights {
    /// `ml·ml_risk + rules·rule_score`, weights normalised to sum 1.
    pub fn blend(&self, ml_risk: f64, rule_score: f64) -> f64 {
        let total = self.ml + self.rules;
        if total <= 0.0 {
            return ml_risk;
        }
        ((self.ml * ml_risk + self.rules * rule_score) / total).clamp(0.0, 100.0)
    }
}

/// Everything known about one scored alert.
#[derive(Debug, Clone)]
pub struct AlertScore {
    /// The feature row.
    pub row: Vec<f64>,
    /// Model outputs.
    pub assessment: AlertAssessment,
    /// Rules that fired.
    pub rule_hits: Vec<RuleHit>,
    /// Their noisy-OR score, 0–100.
    pub rule_score: f64,
    /// Blended risk, 0–100.
    pub risk: f64,
    /// The same without the rules that read correlation facts: what correlation judges the
    /// alert by (its floor, member risk), so an open incident cannot pull alerts into itself
    /// by raising their risk.
    pub uncorrelated_risk: f64,
    /// What the entity history said about the alert's entities before it.
    pub facts: crate::operators::alert::history::HistoryFacts,
    /// What the threat-intelligence stage matched.
    pub intel: IntelMatches,
}

/// Risk band of a 0–100 risk.
pub fn risk_level(risk: f64) -> &'static str {
    match risk {
        r if r >= 80.0 => "critical",
        r if r >= 60.0 => "high",
        r if r >= 40.0 => "medium",
        r if r >= 20.0 => "low",
        _ => "info",
    }
}

/// Model, rules and blend (the entity history they read is kept apart: it is the
/// partition's state, not the model's).
#[derive(Debug)]
pub struct AlertScorer {
    /// The model set.
    pub model: AlertModel,
    /// The rule layer.
    pub rules: RuleSet,
    /// The blend.
    pub weights: BlendWeights,
    /// The indicators alerts are matched against (swapped by the intel topic follower).
    pub intel: IntelHandle,
}

/// The intel set of eval and training: the built-in snapshot plus the rule file's
/// `known_bad_networks`.
pub fn default_intel(rules: &RuleSet) -> IntelHandle {
    let mut indicators = shipped_indicators();
    indicators.extend(rules.known_bad.iter().cloned());
    Arc::new(arc_swap::ArcSwap::from_pointee(IntelSet::new(indicators)))
}

/// The built-in snapshot's set: what training computes the intel features with.
pub fn shipped_intel() -> IntelSet {
    IntelSet::new(shipped_indicators())
}

fn shipped_indicators() -> Vec<crate::operators::alert::intel::Indicator> {
    snapshot::shipped()
        .map(|s| s.indicators)
        .unwrap_or_default()
}

impl AlertScorer {
    /// A scorer with [`default_intel`].
    pub fn new(model: AlertModel, rules: RuleSet, weights: BlendWeights) -> Self {
        let intel = default_intel(&rules);
        Self::reading(model, rules, weights, intel)
    }

    /// A scorer reading the intel set `intel` (the binding's, swapped by its follower).
    pub fn reading(
        model: AlertModel,
        rules: RuleSet,
        weights: BlendWeights,
        intel: IntelHandle,
    ) -> Self {
        Self {
            model,
            rules,
            weights,
            intel,
        }
    }

    /// The same scorer reading `intel` instead.
    pub fn with_intel(mut self, intel: IntelHandle) -> Self {
        self.intel = intel;
        self
    }

    /// Scores `alert` (read at input `offset`) against `history` so far, then records it
    /// there — unless an entity already reflects that offset (a re-delivered input).
    pub fn score(
        &self,
        history: &mut EntityHistory,
        alert: &AlertEvent,
        offset: i64,
    ) -> AlertScore {
        let score = self.score_with(alert, history.facts(alert));
        history.record_at(alert, score.risk, offset);
        score
    }

    /// Scores `alert` (input `offset`, event id `event_id`, entity keys `entity_keys`) against
    /// `history` and its correlation groups under `settings`: the group its entities are in
    /// gives the rules their `group_*` facts; then the alert is recorded in the history and
    /// observed by correlation. Returns the score and the group it joined.
    pub fn score_correlated(
        &self,
        history: &mut EntityHistory,
        alert: &AlertEvent,
        offset: i64,
        event_id: &str,
        entity_keys: &[String],
        settings: &CorrelationSettings,
    ) -> (AlertScore, Option<Joined>) {
        let keys = correlation_keys(alert, entity_keys, settings.entities);
        let group = history
            .incidents
            .group_facts(&keys, alert.last_seen_ms, settings);
        let score = self.score_in_group(alert, history.facts(alert), &group);
        history.record_at(alert, score.risk, offset);
        let joined =
            history
                .incidents
                .observe(alert, &keys, event_id, score.uncorrelated_risk, settings);
        (score, joined)
    }

    /// Scores `alert` given what its entity history said (`facts`), outside correlation
    /// (the `group_*` facts are 0).
    pub fn score_with(&self, alert: &AlertEvent, facts: HistoryFacts) -> AlertScore {
        self.score_in_group(alert, facts, &GroupFacts::default())
    }

    fn score_in_group(
        &self,
        alert: &AlertEvent,
        facts: HistoryFacts,
        group: &GroupFacts,
    ) -> AlertScore {
        // Validity is judged at the alert's own time, so replays and eval agree with live.
        let intel = self
            .intel
            .load()
            .match_alert(&alert.ips, &alert.hosts, alert.last_seen_ms);
        let mut row = Vec::with_capacity(self.model.manifest.features.len());
        self.model
            .encoder()
            .encode_into(alert, &facts, &intel, &mut row);
        let assessment = self.model.assess(&row);
        let rule_hits = self.rules.evaluate(&Facts {
            row: &row,
            intel: &intel,
            techniques: &alert.techniques,
            group,
        });
        let rule_score = combined_score(&rule_hits);
        let risk = self.weights.blend(assessment.ml_risk, rule_score);
        let uncorrelated_risk = if rule_hits.iter().any(|hit| hit.reads_group) {
            let own: Vec<RuleHit> = rule_hits
                .iter()
                .filter(|hit| !hit.reads_group)
                .cloned()
                .collect();
            self.weights.blend(assessment.ml_risk, combined_score(&own))
        } else {
            risk
        };
        AlertScore {
            row,
            assessment,
            rule_hits,
            rule_score,
            risk,
            uncorrelated_risk,
            facts,
            intel,
        }
    }
}
