//! How the alert models learn from analysts' verdicts (see [`crate::learning`]).
//!
//! - **Context.** The features read the entity history (alerts of the last 24 h per user and
//!   host), so the intake rebuilds, for each verdict, the [`HistoryFacts`] the live operator
//!   had: the alerts of the input's partition before it are folded into a fresh
//!   [`EntityHistory`] ([`context`]), and the facts travel with the buffered row.
//! - **Class.** A verdict's class is the disposition: the analyst's label when it names one
//!   (`true_positive`, `false_positive`, `suspicious`, `benign`), else the verdict's own
//!   meaning — `true_positive`/`false_negative` → `true_positive`, `false_positive` →
//!   `false_positive`, `suspicious` → `suspicious`, `true_negative`/`benign` → `benign`.
//! - **Retraining** is `train alert`'s recipe on the bootstrap file with the champion's seed
//!   and validation share, the feedback rows added to the classifier's fitting rows at the
//!   feedback weight (times the class weight), and those with a `corrected_risk` to the risk
//!   regressor's ([`train_with_feedback`]).
//! - **Gate**: macro-F1 of the disposition and the risk's mean absolute error, on the
//!   held-out feedback and on the bootstrap file's validation part (its latest rows, which no
//!   version trained on), each with its entity facts from streaming the whole file.
//! - **Decision** (live precision, shadow agreement): an alert is "alerted" at risk ≥ 60
//!   (`high` or `critical`).

use std::path::Path;

use serde::Deserialize;

use super::history::{EntityHistory, HistoryFacts};
use super::model::AlertModel;
use super::rules::RuleSet;
use super::scorer::{AlertScorer, BlendWeights};
use super::synth::DISPOSITIONS;
use super::train::{read_training_alerts, train_with_feedback, FeedbackAlert, TrainOptions};
use crate::events::InputEvent;
use crate::learning::verdict::Verdict;
use crate::learning::{
    Decision, GateMetric, LabelledEvent, LearningSpec, RetrainJob, Scorable, VersionScorer,
};

/// Risk at or above which an alert counts as alerted (the `high` band).
pub const ALERTING_RISK: f64 = 60.0;

/// The alert operator's learning.
pub const LEARNING: LearningSpec = LearningSpec {
    load,
    retrain,
    validation,
    gate_metrics: &[GateMetric::ClassMacroF1, GateMetric::RiskMae],
    context: Some(context),
    class_of: Some(disposition_of),
};

/// The entity facts of `target` after the partition's earlier alerts `prior`.
pub fn context(prior: &[&InputEvent], target: &InputEvent) -> Option<serde_json::Value> {
    let InputEvent::Alert(alert) = target else {
        return None;
    };
    let mut history = EntityHistory::default();
    for event in prior {
        if let InputEvent::Alert(earlier) = event {
            // The facts read times, rules and tactics only; the risk feeds the per-entity
            // summaries, which are not features.
            history.record(earlier, 0.0);
        }
    }
    serde_json::to_value(history.facts(alert)).ok()
}

/// The disposition a verdict gives its alert; see the module doc.
pub fn disposition_of(verdict: Verdict, label: Option<&str>) -> Option<String> {
    if let Some(label) = label.map(|label| label.trim().to_ascii_lowercase()) {
        if DISPOSITIONS.contains(&label.as_str()) {
            return Some(label);
        }
    }
    Some(
        match verdict {
            Verdict::TruePositive | Verdict::FalseNegative => "true_positive",
            Verdict::FalsePositive => "false_positive",
            Verdict::Suspicious => "suspicious",
            Verdict::TrueNegative | Verdict::Benign => "benign",
        }
        .to_owned(),
    )
}

/// A loaded version with the stream state for events that come without context.
struct Scorer {
    scorer: AlertScorer,
    stream: EntityHistory,
}

impl VersionScorer for Scorer {
    fn decide(&mut self, events: &[Scorable<'_>]) -> Vec<Decision> {
        events
            .iter()
            .map(|item| {
                let InputEvent::Alert(alert) = item.event else {
                    return Decision::default();
                };
                let score = match facts_of(item.context) {
                    Some(facts) => self.scorer.score_with(alert, facts),
                    None => self.scorer.score(&mut self.stream, alert, -1),
                };
                Decision {
                    score: score.risk,
                    alerted: score.risk >= ALERTING_RISK,
                    class: DISPOSITIONS
                        .get(score.assessment.disposition)
                        .map(|class| (*class).to_owned()),
                }
            })
            .collect()
    }

    fn reset(&mut self) {
        self.stream = EntityHistory::default();
    }
}

fn load(directory: &Path) -> Result<Box<dyn VersionScorer>, String> {
    let model = AlertModel::load(directory).map_err(|error| error.to_string())?;
    let rules = RuleSet::load(None, &model.manifest.features).map_err(|error| error.to_string())?;
    Ok(Box::new(Scorer {
        scorer: AlertScorer::new(model, rules, BlendWeights::default()),
        stream: EntityHistory::default(),
    }))
}

/// The entity facts a row or an event carries as its context.
fn facts_of(context: Option<&serde_json::Value>) -> Option<HistoryFacts> {
    context.and_then(|value| HistoryFacts::deserialize(value).ok())
}

/// The champion's validation share (its held-out rows over all its rows).
fn validation_share(model: &AlertModel) -> f64 {
    let training = &model.manifest.training;
    let total = (training.train_rows + training.validation_rows).max(1) as f64;
    training.validation_rows as f64 / total
}

fn retrain(job: &RetrainJob<'_>) -> Result<(), String> {
    let champion = AlertModel::load(job.champion).map_err(|error| error.to_string())?;
    let mut feedback = Vec::new();
    let mut without_context = 0usize;
    for row in job.feedback {
        let InputEvent::Alert(alert) = &row.event else {
            continue;
        };
        let Some(facts) = facts_of(row.context.as_ref()) else {
            without_context += 1;
            continue;
        };
        let class = row
            .label
            .as_deref()
            .and_then(|label| DISPOSITIONS.iter().position(|known| *known == label))
            .unwrap_or(if row.threat { 0 } else { 1 });
        feedback.push(FeedbackAlert {
            alert: (**alert).clone(),
            facts,
            disposition: class,
            risk: row.corrected_risk,
        });
    }
    if without_context > 0 {
        tracing::warn!(
            rows = without_context,
            "alert feedback rows without entity facts were left out"
        );
    }
    let options = TrainOptions {
        data: job.data.to_path_buf(),
        out: job.out.to_path_buf(),
        version: job.version.to_owned(),
        seed: champion.manifest.training.forest_params.seed,
        validation_fraction: validation_share(&champion),
        contamination: champion.manifest.anomaly_contamination,
    };
    train_with_feedback(
        &options,
        &feedback,
        job.weight,
        crate::model_cli::rfc3339_utc(std::time::SystemTime::now()),
    )
    .map(|_| ())
    .map_err(|error| error.to_string())
}

fn validation(version: &Path, data: &Path) -> Result<Vec<LabelledEvent>, String> {
    let model = AlertModel::load(version).map_err(|error| error.to_string())?;
    let (_, alerts) = read_training_alerts(data)?;
    let held_out = ((alerts.len() as f64) * validation_share(&model)).round() as usize;
    let first = alerts.len() - held_out.min(alerts.len());
    let mut history = EntityHistory::default();
    let mut rows = Vec::with_capacity(held_out);
    for (index, labeled) in alerts.into_iter().enumerate() {
        let facts = history.facts(&labeled.alert);
        history.record(&labeled.alert, labeled.risk);
        if index < first {
            continue;
        }
        let threat = matches!(labeled.disposition.as_str(), "true_positive" | "suspicious");
        rows.push(LabelledEvent {
            event: InputEvent::Alert(Box::new(labeled.alert)),
            threat,
            label: Some(labeled.disposition),
            corrected_risk: Some(labeled.risk),
            context: serde_json::to_value(facts).ok(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
#[path = "learning_tests.rs"]
mod tests;
