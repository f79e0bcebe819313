//! How the email insider models learn from analysts' verdicts (see [`crate::learning`]).
//!
//! The ensemble is a model of *normal* mail (autoencoder, one-class SVM, isolation forest,
//! fitted on normal messages only), so verdicts teach it in the one way such a model can
//! learn: a message an analyst calls benign is normal mail it should not flag, and is added
//! to the fitting rows `round(weight)` times ([`train_with_extra`]); a message called a
//! threat is never fitted on. Threat verdicts still count: they judge versions in the gate's
//! held-out slice and feed live precision. Retraining is `train email`'s recipe on the
//! champion's bootstrap folder with its seed and feature settings; the score scales stay
//! fitted on the folder's held-out normal mail.
//!
//! - **Gate**: the insider recall in the top 5 % — the share of threat messages among the
//!   5 % of messages with the highest anomaly score — and the balanced accuracy of the 2-of-3
//!   vote, on the held-out feedback and on the generator's held-out folder beside the
//!   bootstrap data (`holdout/`, `emails.jsonl` with `labels.csv`, as `generate emails`
//!   writes and `eval email` reads). Both are message-level figures: a verdict is about one
//!   message, while the user ranking `eval email` reports also needs each user's window.
//! - **Decision**: the message's 2-of-3 vote (the operator's `voted_anomaly`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::message::MailMessage;
use super::model::{EmailModel, EnsembleSettings};
use super::synth::read_labels;
use super::train::{train_with_extra, TrainOptions};
use crate::events::{EmailEvent, InputEvent};
use crate::learning::{
    Decision, GateMetric, LabelledEvent, LearningSpec, RetrainJob, Scorable, VersionScorer,
};

/// The email operator's learning.
pub const LEARNING: LearningSpec = LearningSpec {
    load,
    retrain,
    validation,
    gate_metrics: &[
        GateMetric::RecallAtTop5Pct,
        GateMetric::DecisionBalancedAccuracy,
    ],
    context: None,
    class_of: None,
};

struct Scorer(EmailModel);

impl VersionScorer for Scorer {
    fn decide(&mut self, events: &[Scorable<'_>]) -> Vec<Decision> {
        let ensemble = EnsembleSettings::default();
        events
            .iter()
            .map(|item| {
                let InputEvent::Email(email) = item.event else {
                    return Decision::default();
                };
                // Unparseable mail: the operator rejects it; count it as not alerted.
                let Ok(message) = MailMessage::from_event(email) else {
                    return Decision::default();
                };
                let sent_ms = message.date_ms.unwrap_or(0);
                let score = self
                    .0
                    .score(&self.0.extractor, &message, sent_ms, &ensemble);
                Decision {
                    score: score.anomaly,
                    alerted: score.voted,
                    class: None,
                }
            })
            .collect()
    }
}

fn load(directory: &Path) -> Result<Box<dyn VersionScorer>, String> {
    let model = EmailModel::load(directory).map_err(|error| error.to_string())?;
    Ok(Box::new(Scorer(model)))
}

fn retrain(job: &RetrainJob<'_>) -> Result<(), String> {
    let champion = EmailModel::load(job.champion).map_err(|error| error.to_string())?;
    let repeats = job.weight.round().max(1.0) as usize;
    let mut extra = Vec::new();
    for row in job.feedback.iter().filter(|row| !row.threat) {
        let InputEvent::Email(email) = &row.event else {
            continue;
        };
        if let Ok(message) = MailMessage::from_event(email) {
            extra.extend(std::iter::repeat_n(message, repeats));
        }
    }
    // `train email` writes `<models>/email/<version>`: train into a scratch root beside the
    // version directory, then move the version into place.
    let scratch = job.out.with_extension("models");
    let _ = std::fs::remove_dir_all(&scratch);
    let options = TrainOptions {
        data: job.data.to_path_buf(),
        models: scratch.clone(),
        version: job.version.to_owned(),
        seed: champion.manifest.training.seed,
        settings: champion.manifest.feature_settings.clone(),
        ..TrainOptions::default()
    };
    let trained = train_with_extra(
        &options,
        extra,
        crate::model_cli::rfc3339_utc(std::time::SystemTime::now()),
    );
    let moved = trained.and_then(|summary| {
        let _ = std::fs::remove_dir_all(job.out);
        std::fs::rename(&summary.directory, job.out)
            .map_err(|error| format!("{}: {error}", job.out.display()))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    moved
}

/// The generator's held-out folder beside the bootstrap folder.
fn holdout_folder(data: &Path) -> PathBuf {
    data.with_file_name("holdout")
}

fn validation(_version: &Path, data: &Path) -> Result<Vec<LabelledEvent>, String> {
    let folder = holdout_folder(data);
    let mails = folder.join("emails.jsonl");
    let labels = folder.join("labels.csv");
    if !mails.is_file() || !labels.is_file() {
        return Err(format!(
            "no held-out mail {} with labels.csv beside the bootstrap data (threatflow generate emails writes them)",
            mails.display()
        ));
    }
    let injected: HashMap<String, bool> = read_labels(&labels)?
        .into_iter()
        .map(|row| (row.event_id, row.label == 1))
        .collect();
    let text = std::fs::read_to_string(&mails).map_err(|e| format!("{}: {e}", mails.display()))?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let email: EmailEvent = serde_json::from_str(line)
            .map_err(|error| format!("{}:{}: {error}", mails.display(), index + 1))?;
        let threat = email
            .event_id
            .as_ref()
            .and_then(|id| injected.get(id))
            .copied()
            .unwrap_or(false);
        rows.push(LabelledEvent {
            event: InputEvent::Email(Box::new(email)),
            threat,
            label: None,
            corrected_risk: None,
            context: None,
        });
    }
    Ok(rows)
}

#[cfg(test)]
#[path = "learning_tests.rs"]
mod tests;
