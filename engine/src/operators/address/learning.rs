//! How the address model learns from analysts' verdicts (see [`crate::learning`]).
//!
//! Retraining is `train address`'s recipe (5-fold out-of-fold Markov features, calibration)
//! on the bootstrap file plus each feedback address repeated `round(weight)` times — the
//! n-gram counts and the logistic fit weigh a repeated row as a weighted one — with the
//! champion's folds, smoothing and L2, and the domain lists of `<model_dir>/address/sources`.
//! The gate's validation rows are the generator's held-out file beside the bootstrap data
//! (`holdout.jsonl`, as `eval address` reads), which no version trains on. Decisions are the
//! operator's default thresholds: review or block is an alert.

use std::path::Path;

use super::model::AddressModel;
use super::scorer::{AddressScorer, Decision as AddressDecision};
use super::synth::{read_labeled, write_jsonl, LabeledAddress};
use super::train::{train, TrainOptions};
use super::AddressOperatorConfig;
use crate::events::InputEvent;
use crate::learning::{
    Decision, GateMetric, LabelledEvent, LearningSpec, RetrainJob, Scorable, VersionScorer,
};

/// The address operator's learning.
pub const LEARNING: LearningSpec = LearningSpec {
    load,
    retrain,
    validation,
    gate_metrics: &[
        GateMetric::PrecisionAtChampionRecall,
        GateMetric::DecisionBalancedAccuracy,
    ],
    context: None,
    class_of: None,
};

struct Scorer(AddressScorer);

/// The address an event carries (an address record, or an email's sender).
fn address_of(event: &InputEvent) -> Option<&str> {
    match event {
        InputEvent::Address(address) => Some(&address.address),
        InputEvent::Email(email) => Some(&email.from),
        _ => None,
    }
}

impl VersionScorer for Scorer {
    fn decide(&mut self, events: &[Scorable<'_>]) -> Vec<Decision> {
        events
            .iter()
            .map(|event| {
                match address_of(event.event).map(|address| self.0.score(address)) {
                    Some(Ok(assessment)) => Decision {
                        score: assessment.risk,
                        alerted: assessment.decision != AddressDecision::Allow,
                        class: None,
                    },
                    // Unparseable: the operator rejects it; count it as not alerted.
                    _ => Decision::default(),
                }
            })
            .collect()
    }
}

fn load(directory: &Path) -> Result<Box<dyn VersionScorer>, String> {
    let model = AddressModel::load(directory).map_err(|error| error.to_string())?;
    let scorer = AddressOperatorConfig::default().scorer(model)?;
    Ok(Box::new(Scorer(scorer)))
}

fn read_rows(path: &Path) -> Result<Vec<LabeledAddress>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    read_labeled(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn retrain(job: &RetrainJob<'_>) -> Result<(), String> {
    let champion = AddressModel::load(job.champion).map_err(|error| error.to_string())?;
    let training = &champion.manifest.training;
    let mut rows = read_rows(job.data)?;
    let repeats = job.weight.round().max(1.0) as usize;
    for row in job.feedback {
        let Some(address) = address_of(&row.event) else {
            continue;
        };
        for _ in 0..repeats {
            rows.push(LabeledAddress {
                address: address.to_owned(),
                label: u8::from(row.threat),
                scenario: "feedback".to_owned(),
            });
        }
    }
    std::fs::create_dir_all(job.out).map_err(|e| format!("{}: {e}", job.out.display()))?;
    // The combined rows live beside the version while it trains, then go.
    let combined = job.out.with_extension("training.jsonl");
    write_jsonl(&combined, &rows).map_err(|e| format!("{}: {e}", combined.display()))?;
    let result = train(
        &TrainOptions {
            data: combined.clone(),
            sources: job.operator_dir.join("sources"),
            out: job.out.to_path_buf(),
            version: job.version.to_owned(),
            seed: job.seed,
            folds: training.folds,
            concentration: training.concentration,
            l2_penalty: training.l2_penalty,
        },
        crate::model_cli::rfc3339_utc(std::time::SystemTime::now()),
    );
    let _ = std::fs::remove_file(&combined);
    result.map(|_| ()).map_err(|error| error.to_string())
}

fn validation(_version: &Path, data: &Path) -> Result<Vec<LabelledEvent>, String> {
    let holdout = data.with_file_name("holdout.jsonl");
    if !holdout.is_file() {
        return Err(format!(
            "no held-out file {} beside the bootstrap data (threatflow generate addresses writes it)",
            holdout.display()
        ));
    }
    Ok(read_rows(&holdout)?
        .into_iter()
        .map(|row| LabelledEvent {
            event: InputEvent::Address(crate::events::AddressEvent {
                event_id: None,
                address: row.address,
                context: "signup".to_owned(),
                account: None,
                observed_ms: None,
            }),
            threat: row.label == 1,
            label: None,
            corrected_risk: None,
            context: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trains a champion on generated data, retrains it with `feedback`, and returns the
    /// gate's verdict on the held-out file.
    fn gate_after(feedback: &[LabelledEvent]) -> crate::learning::gate::GateReport {
        let root =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/address"));
        let sources = super::super::synth::AddressSources::load(&root.join("sources")).unwrap();
        let work = tempfile::tempdir().unwrap();
        let rows = super::super::synth::generate(&sources, 1500, 0.4, 9);
        let (train_rows, holdout_rows) = super::super::synth::split(&rows, 0.3);
        let data = work.path().join("train.jsonl");
        write_jsonl(&data, &train_rows).unwrap();
        write_jsonl(&work.path().join("holdout.jsonl"), &holdout_rows).unwrap();
        let champion = work.path().join("c1");
        train(
            &TrainOptions {
                data: data.clone(),
                sources: root.join("sources"),
                out: champion.clone(),
                version: "c1".into(),
                seed: 1,
                folds: 5,
                concentration: 1.0,
                l2_penalty: 1.0,
            },
            "2026-11-29T00:00:00Z".into(),
        )
        .unwrap();
        crate::learning::testing::retrain_and_judge(&LEARNING, &champion, &data, &root, feedback)
    }

    fn verdicts(invert: bool) -> Vec<LabelledEvent> {
        let root =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/address"));
        let sources = super::super::synth::AddressSources::load(&root.join("sources")).unwrap();
        super::super::synth::generate(&sources, 300, 0.4, 77)
            .into_iter()
            .map(|row| LabelledEvent {
                event: InputEvent::Address(crate::events::AddressEvent {
                    event_id: None,
                    address: row.address,
                    context: "signup".into(),
                    account: None,
                    observed_ms: None,
                }),
                threat: (row.label == 1) != invert,
                label: None,
                corrected_risk: None,
                context: None,
            })
            .collect()
    }

    #[test]
    fn true_verdicts_pass_the_gate_and_inverted_ones_do_not() {
        let kept = gate_after(&verdicts(false));
        assert!(kept.passed, "{}", kept.reason);
        let rejected = gate_after(&verdicts(true));
        assert!(!rejected.passed, "{}", rejected.reason);
        eprintln!("true: {}\ninverted: {}", kept.reason, rejected.reason);
    }
}
