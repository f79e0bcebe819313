//! The learning loop: analysts' verdicts in, retrained models out through the registry.
//!
//! - [`verdict`]: the feedback record (`schemas/feedback.avsc`) and what a verdict means;
//! - [`join`]: the input record a verdict is about, read at its coordinates (never through the
//!   live group);
//! - [`context`]: the records before an input, for stateful operators' contexts;
//! - [`buffer`]: the durable per-operator training buffer (sled);
//! - [`gate`]: the quality gate (a challenger no worse than the champion, by a margin, on a
//!   held-out slice of feedback and on the model's own validation data);
//! - [`precision`]: live precision of the alerting decision per operator and model version;
//! - [`export`]: `threatflow feedback export` for models trained outside the engine;
//! - [`drift_trigger`]: retrain on drift (optional);
//! - [`trainer`]: the trainer role — intake, schedule, retraining, gate, challenger,
//!   promotion — and its health.
//!
//! An operator takes part by giving its [`ModelSpec`](crate::operators::table::ModelSpec) a
//! [`LearningSpec`]: how to load a version for scoring events outside the pipeline, how to
//! retrain from bootstrap data plus feedback rows, and which validation rows and gate metric
//! judge it.
//!
//! A stateful operator (one whose features read its partition state, like the alert
//! operator's entity history) also gives a [`ContextBuilder`]: at join time the intake reads
//! the input's partition up to the input (at most `feedback.context_lookback_records`
//! records), and the builder folds them into the state the live operator had when it scored
//! the input. That context is buffered with the row, so retraining and gates see the features
//! the model saw.

pub mod buffer;
pub mod config;
pub mod context;
pub mod drift_trigger;
pub mod export;
pub mod gate;
pub mod intake;
pub mod join;
pub mod precision;
pub mod retrain;
#[cfg(test)]
pub mod testing;
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
    /// For stateful operators: the partition state the live operator had for the event
    /// (see [`ContextBuilder`]).
    pub context: Option<serde_json::Value>,
}

impl LabelledEvent {
    /// The event and its context, for [`VersionScorer::decide`].
    pub fn scorable(&self) -> Scorable<'_> {
        Scorable {
            event: &self.event,
            context: self.context.as_ref(),
        }
    }
}

/// What a model version decided about one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// The main score (higher: more threatening).
    pub score: f64,
    /// Whether it crossed the alerting threshold.
    pub alerted: bool,
    /// The predicted class, for operators that classify (alerts: the disposition).
    pub class: Option<String>,
}

/// One event to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Scorable<'a> {
    /// The input.
    pub event: &'a InputEvent,
    /// For stateful operators: the state the live operator had for it. `None`: a stateful
    /// scorer folds such events into its own state, in order (a stream: validation data
    /// rebuilt without contexts, the latest inputs of a topic).
    pub context: Option<&'a serde_json::Value>,
}

impl<'a> Scorable<'a> {
    /// An event without context.
    pub fn bare(event: &'a InputEvent) -> Self {
        Self {
            event,
            context: None,
        }
    }
}

/// A model version loaded for scoring events outside the pipeline (joins, gates, agreement).
pub trait VersionScorer: Send {
    /// The version's decisions on `events`, in order.
    fn decide(&mut self, events: &[Scorable<'_>]) -> Vec<Decision>;

    /// Forgets the state folded from events without context (a new stream starts).
    fn reset(&mut self) {}
}

/// The class a verdict gives its event, from the verdict and the analyst's label.
pub type ClassOf = fn(verdict::Verdict, Option<&str>) -> Option<String>;

/// Rebuilds a stateful operator's context for `target` from the records of its partition
/// before it (`prior`, oldest first): what the live operator's partition state said.
pub type ContextBuilder =
    fn(prior: &[&InputEvent], target: &InputEvent) -> Option<serde_json::Value>;

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
    /// Macro-F1 of the predicted class over the classes the rows name (alerts: the
    /// disposition); rows without a class are not judged.
    ClassMacroF1,
    /// Mean absolute error of the score against the rows' corrected risk (alerts, 0–100);
    /// lower is better, and the margin is in hundredths of the scale (0.02: 2 risk points).
    RiskMae,
    /// Share of the threats among the top 5 % of rows by score (emails: insider recall).
    RecallAtTop5Pct,
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
    /// For stateful operators: how the intake rebuilds an input's context at join time.
    pub context: Option<ContextBuilder>,
    /// The class a verdict gives its event, as the operator names classes, from the verdict
    /// and the analyst's label (`None`: the label as given).
    pub class_of: Option<ClassOf>,
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
    // A file (flows, alerts, addresses) or a mail folder (emails).
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{operator}: bootstrap data {} not found; set trainer.data.{operator}",
            path.display()
        ))
    }
}
