//! How the flow models learn from analysts' verdicts (see [`crate::learning`]).
//!
//! Retraining is `train flow`'s recipe on the champion's bootstrap file with the same seed
//! and validation split, the feedback rows added to the training part at the feedback
//! weight: a verdict's label becomes the row's attack name when it names one (`neptune`), its
//! category when it names one (`dos`), and otherwise a threat of unknown category (which
//! teaches the binary model only). The gate's validation rows are that split's held-out
//! part, which neither the champion nor the retrained model trained on.

use std::path::Path;

use super::dataset::{class_table, read_nsl_kdd, LabelledFlow, CLASSES};
use super::model::FlowModel;
use super::train::{stratified_split, train_with_feedback, TrainOptions};
use crate::events::InputEvent;
use crate::learning::{
    Decision, GateMetric, LabelledEvent, LearningSpec, RetrainJob, Scorable, VersionScorer,
};

/// The flow operator's learning.
pub const LEARNING: LearningSpec = LearningSpec {
    load,
    retrain,
    validation,
    gate_metrics: &[
        GateMetric::RecallAtChampionFpr,
        GateMetric::DecisionBalancedAccuracy,
    ],
    context: None,
    class_of: None,
};

struct FlowScorer(FlowModel);

impl VersionScorer for FlowScorer {
    fn decide(&mut self, events: &[Scorable<'_>]) -> Vec<Decision> {
        let mut rows = Vec::new();
        let mut scored = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if let InputEvent::Flow(flow) = event.event {
                self.0.encoder().encode_into(flow, &mut rows);
                scored.push(index);
            }
        }
        let assessed = self.0.assess_batch(&rows);
        let mut decisions = vec![Decision::default(); events.len()];
        for (index, assessment) in scored.into_iter().zip(assessed) {
            decisions[index] = Decision {
                score: assessment.attack_probability,
                alerted: assessment.attack_probability >= self.0.manifest.decision_threshold,
                class: None,
            };
        }
        decisions
    }
}

fn load(directory: &Path) -> Result<Box<dyn VersionScorer>, String> {
    FlowModel::load(directory)
        .map(|model| Box::new(FlowScorer(model)) as Box<dyn VersionScorer>)
        .map_err(|error| error.to_string())
}

/// The champion's split: seed and validation fraction.
fn split_of(directory: &Path) -> Result<(u64, f64), String> {
    let model = FlowModel::load(directory).map_err(|error| error.to_string())?;
    let training = model
        .manifest
        .training
        .ok_or("the version's manifest has no training record")?;
    let fraction = training.validation_fraction.unwrap_or_else(|| {
        let total = (training.train_rows + training.validation_rows).max(1) as f64;
        (training.validation_rows as f64 / total * 100.0).round() / 100.0
    });
    Ok((training.seed, fraction))
}

/// A verdict as an NSL-KDD-style labelled row.
fn labelled_flow(
    row: &LabelledEvent,
    classes: &std::collections::BTreeMap<String, usize>,
) -> Option<LabelledFlow> {
    let InputEvent::Flow(flow) = &row.event else {
        return None;
    };
    let label = row.label.as_deref().map(str::to_ascii_lowercase);
    let (label, class) = if !row.threat {
        ("normal".to_owned(), Some(0))
    } else if let Some(class) = label.as_ref().and_then(|name| classes.get(name)) {
        (label.clone().unwrap_or_default(), Some(*class))
    } else if let Some(class) = label
        .as_ref()
        .and_then(|name| CLASSES.iter().position(|known| known == name))
        .filter(|&class| class > 0)
    {
        (format!("feedback-{}", CLASSES[class]), Some(class))
    } else {
        ("feedback-threat".to_owned(), None)
    };
    Some(LabelledFlow {
        event: (**flow).clone(),
        label,
        class,
    })
}

fn retrain(job: &RetrainJob<'_>) -> Result<(), String> {
    let (seed, validation_fraction) = split_of(job.champion)?;
    let classes = class_table();
    let feedback: Vec<LabelledFlow> = job
        .feedback
        .iter()
        .filter_map(|row| labelled_flow(row, &classes))
        .collect();
    let champion = FlowModel::load(job.champion).map_err(|error| error.to_string())?;
    let training = champion.manifest.training.as_ref();
    let options = TrainOptions {
        data: job.data.to_path_buf(),
        out: job.out.to_path_buf(),
        version: job.version.to_owned(),
        // The champion's split seed (not `job.seed`), so its validation rows stay unseen;
        // the trees themselves are deterministic.
        seed,
        validation_fraction,
        false_positive_cost: training.map_or(1.0, |t| t.false_positive_cost),
        false_negative_cost: training.map_or(5.0, |t| t.false_negative_cost),
    };
    train_with_feedback(
        &options,
        crate::model_cli::rfc3339_utc(std::time::SystemTime::now()),
        &feedback,
        job.weight,
    )
    .map(|_| ())
    .map_err(|error| error.to_string())
}

fn validation(version: &Path, data: &Path) -> Result<Vec<LabelledEvent>, String> {
    let (seed, fraction) = split_of(version)?;
    let rows = read_nsl_kdd(data).map_err(|error| error.to_string())?;
    let (_, held_out) = stratified_split(&rows, fraction, seed);
    Ok(held_out
        .into_iter()
        .map(|index| {
            let row = &rows[index];
            LabelledEvent {
                event: InputEvent::Flow(Box::new(row.event.clone())),
                threat: row.is_attack(),
                label: Some(row.label.clone()),
                corrected_risk: None,
                context: None,
            }
        })
        .collect())
}
