//! The learning loop: analysts' verdicts in, retrained models out through the registry.
//!
//! - [`verdict`]: the feedback record (`schemas/feedback.avsc`) and what a verdict means;
//! - [`join`]: the input record a verdict is about, read at its coordinates (never through the
//!   live group);
//! - [`buffer`]: the durable per-operator training buffer (sled);
//! - [`gate`]: the quality gate (a challenger no worse than the champion, by a margin, on a
//!   held-out slice of feedback and on the model's own validation data);
//! - [`precision`]: live precision of the alerting decision per operator and model version;
//! - [`export`]: `threatflow feedback export` for models trained outside the engine;
//! - [`trainer`]: the trainer role — intake, schedule, retraining, gate, challenger,
//!   promotion — and its health.
//!
//! An operator takes part by giving its [`ModelSpec`](crate::operators::table::ModelSpec) a
//! [`LearningSpec`]: how to load a version for scoring events outside the pipeline, how to
//! retrain from bootstrap data plus feedback rows, and which validation rows and gate metric
//! judge it.

pub mod buffer;
pub mod config;
pub mod export;
pub mod gate;
pub mod intake;
pub mod join;
pub mod precision;
pub mod retrain;
pub mod trainer;
pub mod verdict;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::events::InputEvent;

pub use config::{FeedbackConfig, LifecycleConfig, Promotion, TrainerConfig};

/// One event with the analyst's (or the dataset's) label.
#[derive(Debug, Clone)]
pub struct LabelledEvent {
    /// The input.
    pub event: InputEvent,
    /// A threat.
    pub threat: bool,
    /// A class (attack name or category), if known.
    pub label: Option<String>,
    /// For alerts: the deserved risk, if known.
    pub corrected_risk: Option<f64>,
}

/// What a model version decided about one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The main score (higher: more threatening).
    pub score: f64,
    /// Whether it crossed the alerting threshold.
    pub alerted: bool,
}

/// A model version loaded for scoring events outside the pipeline (joins, gates, agreement).
pub trait VersionScorer: Send {
    /// The version's decisions on `events`, in order.
    fn decide(&mut self, events: &[&InputEvent]) -> Vec<Decision>;
}

/// What a retraining is given.
#[derive(Debug)]
pub struct RetrainJob<'a> {
    /// The champion's version directory (its recipe: seed, split, parameters).
    pub champion: &'a Path,
    /// The model's bootstrap data.
    pub data: &'a Path,
    /// The operator's directory under the model root (`<model_dir>/<operator>`: its
    /// `sources/`, `data/`).
    pub operator_dir: &'a Path,
    /// Feedback rows to train on (never the held-out ones).
    pub feedback: &'a [LabelledEvent],
    /// Training weight of a feedback row.
    pub weight: f64,
    /// Seed.
    pub seed: u64,
    /// The new version's name.
    pub version: &'a str,
    /// Directory to write the new version to.
    pub out: &'a Path,
}

/// Which figure the gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMetric {
    /// Recall at the champion's false-positive rate: the ranking, each version judged at the
    /// same false-alarm budget (flows).
    RecallAtChampionFpr,
    /// Precision at the champion's recall: each version's threshold set to find as many
    /// threats as the champion's decisions do (addresses).
    PrecisionAtChampionRecall,
    /// Balanced accuracy (mean of recall and specificity) of the alerting decision, each
    /// version at its own threshold: what scoring live would do. Catches a version whose
    /// ranking is intact but whose threshold moved (measured: inverted verdicts leave recall
    /// at the champion's rate at 0.998 while validation accuracy falls 0.987 → 0.90).
    DecisionBalancedAccuracy,
}

/// How an operator's models learn from feedback.
#[derive(Debug, Clone, Copy)]
pub struct LearningSpec {
    /// Loads a version directory for scoring.
    pub load: fn(&Path) -> Result<Box<dyn VersionScorer>, String>,
    /// Trains a new version into `job.out`.
    pub retrain: fn(&RetrainJob<'_>) -> Result<(), String>,
    /// The labelled validation rows of the version in the directory (from its bootstrap data
    /// at the given path): rows its training never saw.
    pub validation: fn(&Path, &Path) -> Result<Vec<LabelledEvent>, String>,
    /// The gate's figures: the challenger must hold every one on every slice that can judge.
    pub gate_metrics: &'static [GateMetric],
}

/// The bootstrap data of `operator`'s version at `version_dir`: `trainer.data.<operator>`,
/// else the file its manifest's `training.data_file` names under `<model_dir>/<dir>/data/`.
pub fn bootstrap_data(
    config: &crate::config::EngineConfig,
    operator: &str,
    model_dir: &str,
    version_dir: &Path,
) -> Result<PathBuf, String> {
    if let Some(path) = config.trainer.data.get(operator) {
        return Ok(path.clone());
    }
    let manifest = crate::registry::manifest::ManifestView::read(version_dir)?;
    let Some(file) = manifest.json["training"]["data_file"].as_str() else {
        return Err(format!(
            "{operator}: the champion's manifest names no training data file; set trainer.data.{operator}"
        ));
    };
    let path = config
        .storage
        .model_dir
        .join(model_dir)
        .join("data")
        .join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{operator}: bootstrap data {} not found; set trainer.data.{operator}",
            path.display()
        ))
    }
}
