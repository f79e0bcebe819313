//! `[lifecycle]`, `[feedback]` and `[trainer]`: where analyst verdicts come from, how long the
//! training buffer keeps them, and when and how the trainer retrains, gates and promotes.
//!
//! Defaults follow the design's anchors: verdicts on `feedback.<operator>`, a retraining check
//! every hour, ≥ 50 new rows to retrain at the check and ≥ 100 to retrain at once, the live
//! precision alarm below 85 %.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[lifecycle]`: which roles this process plays besides scoring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Also run the trainer role inside this engine (one replica only; in Kubernetes prefer
    /// the separate `threatflow trainer` Deployment).
    #[serde(default)]
    pub trainer: bool,
}

/// `[feedback]`: verdict intake and the training buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Verdicts on operator `op` are read from `<topic_prefix><op>`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Consumer group of the trainer's intake (default `<kafka.group_id>.trainer`).
    #[serde(default)]
    pub group_id: String,
    /// Most rows kept per operator; the oldest go first.
    #[serde(default = "default_max_rows")]
    pub buffer_max_rows: usize,
    /// Rows whose verdict is older than this many days are dropped.
    #[serde(default = "default_max_age_days")]
    pub buffer_max_age_days: f64,
    /// Share of events (by a hash of the event id) held out for the quality gate and never
    /// trained on.
    #[serde(default = "default_holdout")]
    pub holdout_fraction: f64,
    /// Training weight of a feedback row relative to a bootstrap row.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Verdicts per operator and model version in the live-precision window.
    #[serde(default = "default_precision_window")]
    pub precision_window: usize,
    /// Fewest alerting verdicts in the window before precision is judged.
    #[serde(default = "default_precision_min")]
    pub precision_min_verdicts: usize,
    /// Live precision below this raises a `precision_drop` drift record.
    #[serde(default = "default_precision_alarm")]
    pub precision_alarm: f64,
    /// For stateful operators (alerts): records of the input's partition read before it to
    /// rebuild the state its features read (the alert entity history's 24 h).
    #[serde(default = "default_context_lookback")]
    pub context_lookback_records: usize,
}

/// How a challenger the trainer made becomes champion.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Promotion {
    /// After `shadow_period_secs`, when shadow agreement and the gate still hold.
    #[default]
    Auto,
    /// Only by `threatflow models promote`.
    Manual,
}

/// `[trainer]`: the retraining schedule, the gate and promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// Seconds between retraining checks.
    #[serde(default = "default_interval")]
    pub interval_secs: f64,
    /// At a check, retrain an operator with at least this many new rows since its last
    /// training.
    #[serde(default = "default_min_new_rows")]
    pub min_new_rows: usize,
    /// Retrain at once (without waiting for the check) at this many new rows.
    #[serde(default = "default_immediate_rows")]
    pub immediate_rows: usize,
    /// The challenger's gate metric may be worse than the champion's by at most this much.
    #[serde(default = "default_margin")]
    pub gate_margin: f64,
    /// How a passing challenger becomes champion.
    #[serde(default)]
    pub promotion: Promotion,
    /// Seconds a challenger is shadowed before automatic promotion.
    #[serde(default = "default_shadow_period")]
    pub shadow_period_secs: f64,
    /// Automatic promotion needs at least this share of agreeing verdicts between champion
    /// and challenger on the recent input.
    #[serde(default = "default_agreement")]
    pub min_shadow_agreement: f64,
    /// Recent input records per binding read to measure that agreement.
    #[serde(default = "default_shadow_rows")]
    pub shadow_rows: usize,
    /// Seed of training (a retraining is deterministic for a seed and its rows).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Bootstrap data per operator (default: the file the champion's manifest names, under
    /// `<model_dir>/<operator>/data/`).
    #[serde(default)]
    pub data: BTreeMap<String, PathBuf>,
    /// Where the training buffer lives (default `<state_dir>/training-buffer`).
    #[serde(default)]
    pub buffer_dir: Option<PathBuf>,
    /// Retrain on drift: a drifted record on `drift.topic` about an operator lowers its bar
    /// for the next retraining to `drift_min_new_rows` new rows, at once.
    #[serde(default)]
    pub retrain_on_drift: bool,
    /// New rows a drifted operator needs to retrain (with `retrain_on_drift`).
    #[serde(default = "default_drift_min_new_rows")]
    pub drift_min_new_rows: usize,
}

fn default_prefix() -> String {
    "feedback.".to_owned()
}
fn default_max_rows() -> usize {
    100_000
}
fn default_max_age_days() -> f64 {
    90.0
}
fn default_holdout() -> f64 {
    0.2
}
fn default_weight() -> f64 {
    5.0
}
fn default_precision_window() -> usize {
    500
}
fn default_precision_min() -> usize {
    30
}
fn default_precision_alarm() -> f64 {
    0.85
}
fn default_context_lookback() -> usize {
    20_000
}
fn default_interval() -> f64 {
    3600.0
}
fn default_min_new_rows() -> usize {
    50
}
fn default_immediate_rows() -> usize {
    100
}
fn default_margin() -> f64 {
    0.02
}
fn default_shadow_period() -> f64 {
    3600.0
}
fn default_agreement() -> f64 {
    0.9
}
fn default_shadow_rows() -> usize {
    2000
}
fn default_drift_min_new_rows() -> usize {
    10
}
fn default_seed() -> u64 {
    20_261_129
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            topic_prefix: default_prefix(),
            group_id: String::new(),
            buffer_max_rows: default_max_rows(),
            buffer_max_age_days: default_max_age_days(),
            holdout_fraction: default_holdout(),
            weight: default_weight(),
            precision_window: default_precision_window(),
            precision_min_verdicts: default_precision_min(),
            precision_alarm: default_precision_alarm(),
            context_lookback_records: default_context_lookback(),
        }
    }
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_interval(),
            min_new_rows: default_min_new_rows(),
            immediate_rows: default_immediate_rows(),
            gate_margin: default_margin(),
            promotion: Promotion::default(),
            shadow_period_secs: default_shadow_period(),
            min_shadow_agreement: default_agreement(),
            shadow_rows: default_shadow_rows(),
            seed: default_seed(),
            data: BTreeMap::new(),
            buffer_dir: None,
            retrain_on_drift: false,
            drift_min_new_rows: default_drift_min_new_rows(),
        }
    }
}

impl FeedbackConfig {
    /// The feedback topic of `operator`.
    pub fn topic(&self, operator: &str) -> String {
        format!("{}{operator}", self.topic_prefix)
    }

    /// Problems with the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.topic_prefix.trim().is_empty() {
            problems.push("feedback.topic_prefix must not be empty".to_owned());
        }
        if self.buffer_max_rows == 0 {
            problems.push("feedback.buffer_max_rows must be at least 1".to_owned());
        }
        if self.buffer_max_age_days.is_nan() || self.buffer_max_age_days <= 0.0 {
            problems.push("feedback.buffer_max_age_days must be positive".to_owned());
        }
        if !(self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0) {
            problems.push("feedback.holdout_fraction must be within (0, 1)".to_owned());
        }
        if !(self.weight > 0.0 && self.weight.is_finite()) {
            problems.push("feedback.weight must be positive".to_owned());
        }
        if self.precision_window == 0 || self.precision_min_verdicts > self.precision_window {
            problems.push(
                "feedback.precision_window must be at least 1 and at least precision_min_verdicts"
                    .to_owned(),
            );
        }
        if !(0.0..=1.0).contains(&self.precision_alarm) {
            problems.push("feedback.precision_alarm must be within [0, 1]".to_owned());
        }
        problems
    }
}

impl TrainerConfig {
    /// Problems with the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.interval_secs.is_nan() || self.interval_secs <= 0.0 {
            problems.push("trainer.interval_secs must be positive".to_owned());
        }
        if self.min_new_rows == 0 || self.immediate_rows < self.min_new_rows {
            problems.push(
                "trainer.min_new_rows must be at least 1 and at most trainer.immediate_rows"
                    .to_owned(),
            );
        }
        if !(0.0..=1.0).contains(&self.gate_margin) {
            problems.push("trainer.gate_margin must be within [0, 1]".to_owned());
        }
        if self.shadow_period_secs.is_nan() || self.shadow_period_secs < 0.0 {
            problems.push("trainer.shadow_period_secs must not be negative".to_owned());
        }
        if !(0.0..=1.0).contains(&self.min_shadow_agreement) {
            problems.push("trainer.min_shadow_agreement must be within [0, 1]".to_owned());
        }
        if self.drift_min_new_rows == 0 || self.drift_min_new_rows > self.min_new_rows {
            problems.push(
                "trainer.drift_min_new_rows must be at least 1 and at most trainer.min_new_rows"
                    .to_owned(),
            );
        }
        for operator in self.data.keys() {
            if crate::operators::table::find(operator)
                .and_then(|spec| spec.model)
                .and_then(|model| model.learning)
                .is_none()
            {
                problems.push(format!(
                    "trainer.data.{operator}: no operator of that name retrains in the engine"
                ));
            }
        }
        problems
    }

    /// Problems between these settings and `[drift]`.
    pub fn drift_problems(&self, drift: &crate::drift::tap::DriftConfig) -> Vec<String> {
        if self.retrain_on_drift && !drift.enabled {
            vec![
                "trainer.retrain_on_drift needs the drift watch: [drift] enabled = true".to_owned(),
            ]
        } else {
            Vec::new()
        }
    }

    /// The training buffer's directory.
    pub fn buffer_dir(&self, state_dir: &std::path::Path) -> PathBuf {
        self.buffer_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("training-buffer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert!(FeedbackConfig::default().problems().is_empty());
        assert!(TrainerConfig::default().problems().is_empty());
        let on_drift = TrainerConfig {
            retrain_on_drift: true,
            ..TrainerConfig::default()
        };
        let watch_off = crate::drift::tap::DriftConfig {
            enabled: false,
            ..crate::drift::tap::DriftConfig::default()
        };
        assert!(on_drift.drift_problems(&watch_off)[0].contains("retrain_on_drift"));
        assert!(on_drift
            .drift_problems(&crate::drift::tap::DriftConfig::default())
            .is_empty());
        let bar = TrainerConfig {
            drift_min_new_rows: 60,
            ..TrainerConfig::default()
        };
        assert!(bar.problems().join("\n").contains("drift_min_new_rows"));
        let feedback = FeedbackConfig {
            holdout_fraction: 1.0,
            weight: 0.0,
            precision_alarm: 2.0,
            ..FeedbackConfig::default()
        };
        let problems = feedback.problems().join("\n");
        for key in ["holdout_fraction", "weight", "precision_alarm"] {
            assert!(problems.contains(key), "{problems}");
        }
        let trainer = TrainerConfig {
            min_new_rows: 200,
            data: [("prompt".to_owned(), PathBuf::from("x"))].into(),
            ..TrainerConfig::default()
        };
        let problems = trainer.problems().join("\n");
        assert!(problems.contains("trainer.min_new_rows"), "{problems}");
        assert!(problems.contains("trainer.data.prompt"), "{problems}");
    }
}
