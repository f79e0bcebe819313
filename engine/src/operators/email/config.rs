//! `[operators.email]`: ensemble weights and vote, per-user window, per-user outputs, fusion
//! with a behaviour score topic, checkpoints, and (optionally) the deployment's feature
//! settings. Every field has a default; `config check` validates them.

use serde::{Deserialize, Serialize};

use crate::operators::email::features::FeatureSettings;
use crate::operators::email::model::{EmailModel, EnsembleSettings};
use crate::operators::email::window::WindowSettings;

const DAY_MS: u64 = 86_400_000;

/// `[operators.email]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailOperatorConfig {
    /// Version directory under `<storage.model_dir>/email/`; empty picks the newest.
    #[serde(default)]
    pub version: String,
    /// Weights of autoencoder, one-class SVM and isolation forest in the anomaly score.
    #[serde(default = "default_weights")]
    pub weights: [f64; 3],
    /// Percentile of held-out normal scores from which a detector votes (50–99.9).
    #[serde(default = "default_vote_percentile")]
    pub vote_percentile: f64,
    /// Votes that make a voted anomaly (1–3).
    #[serde(default = "default_votes_needed")]
    pub votes_needed: usize,
    /// Length of the per-user sliding window (event time).
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// Out-of-order events up to this far behind stream time are still folded in.
    #[serde(default = "default_allowed_lateness_ms")]
    pub allowed_lateness_ms: u64,
    /// The recent part of the window the trend compares with the baseline.
    #[serde(default = "default_trend_recent_ms")]
    pub trend_recent_ms: u64,
    /// Time constant of each user's score baseline.
    #[serde(default = "default_baseline_tau_ms")]
    pub baseline_tau_ms: u64,
    /// Topic of per-user risk records (key: the user key); empty emits none.
    #[serde(default = "default_user_topic")]
    pub user_topic: String,
    /// A user record is emitted when the user's risk moved by at least this since the last.
    #[serde(default = "default_user_min_change")]
    pub user_min_change: f64,
    /// How often the timer looks at every active user (wall clock).
    #[serde(default = "default_user_timer_ms")]
    pub user_timer_ms: u64,
    /// On the timer, a user whose last record is older than this gets a fresh one even
    /// without a change (a heartbeat for dashboards); 0 turns heartbeats off.
    #[serde(default = "default_user_refresh_ms")]
    pub user_refresh_ms: u64,
    /// Weight of the message-anomaly aggregate in the user risk.
    #[serde(default = "default_message_weight")]
    pub message_weight: f64,
    /// Weight of the behaviour score.
    #[serde(default = "default_behaviour_weight")]
    pub behaviour_weight: f64,
    /// Topic of per-user behaviour scores (for example the alert operator's
    /// `entity_topic`); empty: none, and user risk is the message aggregate alone.
    #[serde(default)]
    pub behaviour_topic: String,
    /// Field of `scores` in behaviour records that holds the 0–1 score.
    #[serde(default = "default_behaviour_field")]
    pub behaviour_field: String,
    /// A behaviour score older than this (event time, against the user's newest mail) is
    /// ignored.
    #[serde(default = "default_window_ms")]
    pub behaviour_max_age_ms: u64,
    /// Deprecated and ignored: keyed state is checkpointed to its changelog every
    /// `pipeline.state_checkpoint_ms`. Accepted (with a warning at start) so configs written
    /// for earlier releases still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_ms: Option<u64>,
    /// Features per message in `explanation`.
    #[serde(default = "default_top_contributors")]
    pub top_contributors: usize,
    /// The deployment's feature settings (organisation domains, work hours, time zone,
    /// keywords); absent: the ones the model was trained with. TF-IDF buckets must match
    /// the model.
    #[serde(default)]
    pub features: Option<FeatureSettings>,
}

fn default_weights() -> [f64; 3] {
    EnsembleSettings::default().weights
}
fn default_vote_percentile() -> f64 {
    95.0
}
fn default_votes_needed() -> usize {
    2
}
fn default_window_ms() -> u64 {
    7 * DAY_MS
}
fn default_allowed_lateness_ms() -> u64 {
    3_600_000
}
fn default_trend_recent_ms() -> u64 {
    DAY_MS
}
fn default_baseline_tau_ms() -> u64 {
    30 * DAY_MS
}
fn default_user_topic() -> String {
    "scored.email-users".to_owned()
}
fn default_user_min_change() -> f64 {
    0.05
}
fn default_user_timer_ms() -> u64 {
    60_000
}
fn default_user_refresh_ms() -> u64 {
    3_600_000
}
fn default_message_weight() -> f64 {
    0.7
}
fn default_behaviour_weight() -> f64 {
    0.3
}
fn default_behaviour_field() -> String {
    "behaviour_score".to_owned()
}
fn default_top_contributors() -> usize {
    5
}

impl Default for EmailOperatorConfig {
    fn default() -> Self {
        // One source of truth: the serde defaults.
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl EmailOperatorConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |message: String| Err(format!("operators.email: {message}"));
        if self.weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || self.weights.iter().sum::<f64>() <= 0.0
        {
            return fail("weights must be non-negative with a positive sum".into());
        }
        if !(50.0..=99.9).contains(&self.vote_percentile) {
            return fail(format!(
                "vote_percentile {} outside 50–99.9",
                self.vote_percentile
            ));
        }
        if !(1..=3).contains(&self.votes_needed) {
            return fail("votes_needed must be 1–3".into());
        }
        if self.window_ms == 0 || self.trend_recent_ms > self.window_ms || self.baseline_tau_ms == 0
        {
            return fail(
                "need window_ms > 0, trend_recent_ms ≤ window_ms, baseline_tau_ms > 0".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.user_min_change) {
            return fail("user_min_change outside 0–1".into());
        }
        if self.message_weight < 0.0
            || self.behaviour_weight < 0.0
            || self.message_weight + self.behaviour_weight <= 0.0
        {
            return fail(
                "message_weight and behaviour_weight must be non-negative, not both 0".into(),
            );
        }
        if self.user_timer_ms == 0 {
            return fail("user_timer_ms must be positive".into());
        }
        if let Some(features) = &self.features {
            features
                .validate()
                .map_err(|e| format!("operators.email.features: {e}"))?;
        }
        Ok(())
    }

    /// The ensemble settings.
    pub fn ensemble_settings(&self) -> EnsembleSettings {
        EnsembleSettings {
            weights: self.weights,
            vote_percentile: self.vote_percentile,
            votes_needed: self.votes_needed,
        }
    }

    /// The window settings, with the model's voted share of normal mail as `p₀` (that
    /// share at this config's percentile and votes is estimated from the model's scales).
    pub fn window_settings(&self, model: &EmailModel) -> WindowSettings {
        let to_i64 = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
        WindowSettings {
            window_ms: to_i64(self.window_ms),
            allowed_lateness_ms: to_i64(self.allowed_lateness_ms),
            trend_recent_ms: to_i64(self.trend_recent_ms),
            baseline_tau_ms: to_i64(self.baseline_tau_ms),
            normal_vote_rate: model.normal_vote_rate(&self.ensemble_settings()),
        }
    }

    /// User risk from the message aggregate and an optional behaviour score: the weighted
    /// mean of both, or the message aggregate alone when no behaviour score is known (the
    /// documented fallback: absence neither raises nor lowers a user's risk).
    pub fn fuse(&self, message_risk: f64, behaviour: Option<f64>) -> f64 {
        match behaviour {
            Some(behaviour) => {
                (self.message_weight * message_risk + self.behaviour_weight * behaviour)
                    / (self.message_weight + self.behaviour_weight)
            }
            None => message_risk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_validate() {
        let config = EmailOperatorConfig::default();
        assert_eq!(config.weights, [0.4, 0.3, 0.3]);
        assert_eq!(config.vote_percentile, 95.0);
        assert_eq!(config.votes_needed, 2);
        assert_eq!(config.window_ms, 7 * DAY_MS);
        assert_eq!((config.message_weight, config.behaviour_weight), (0.7, 0.3));
        config.validate().unwrap();
    }

    #[test]
    fn fusion_and_its_fallback() {
        let config = EmailOperatorConfig::default();
        assert!((config.fuse(0.5, Some(1.0)) - 0.65).abs() < 1e-12);
        assert_eq!(config.fuse(0.5, None), 0.5);
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        let bad = |text: &str| {
            toml::from_str::<EmailOperatorConfig>(text)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate())
                .unwrap_err()
        };
        assert!(bad("vote_percentile = 30.0").contains("vote_percentile"));
        assert!(bad("votes_needed = 4").contains("votes_needed"));
        assert!(bad("weights = [0.0, 0.0, 0.0]").contains("weights"));
        assert!(bad("trend_recent_ms = 999999999999").contains("trend_recent_ms"));
        assert!(bad("[features]\ntimezone = \"Nowhere/City\"").contains("timezone"));
        assert!(bad("unknown = 1").contains("unknown"));
    }
}
