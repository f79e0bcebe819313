use super::*;
use crate::learning::gate::GateReport;
use crate::operators::email::synth::{generate, GenerateOptions};
use crate::operators::email::train::train;

fn sources() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/email/sources/ham.jsonl.gz"
    ))
}

fn generated(out: &Path, seed: u64) {
    generate(&GenerateOptions {
        sources: sources(),
        out: out.to_path_buf(),
        users: 60,
        insiders: 4,
        weeks: 2,
        holdout_fraction: 0.3,
        seed,
    })
    .unwrap();
}

/// The analysts' true verdicts as they come in practice: the champion's false alarms on the
/// organisation's own normal mail, called benign.
fn false_alarms(champion: &Path, folder: &Path) -> Vec<LabelledEvent> {
    let text = std::fs::read_to_string(folder.join("emails.jsonl")).unwrap();
    let rows: Vec<LabelledEvent> = text
        .lines()
        .map(|line| LabelledEvent {
            event: InputEvent::Email(Box::new(serde_json::from_str(line).unwrap())),
            threat: false,
            label: None,
            corrected_risk: None,
            context: None,
        })
        .collect();
    let scorable: Vec<Scorable<'_>> = rows.iter().map(LabelledEvent::scorable).collect();
    let decisions = load(champion).unwrap().decide(&scorable);
    rows.into_iter()
        .zip(decisions)
        .filter(|(_, decision)| decision.alerted)
        .map(|(row, _)| row)
        .collect()
}

/// Verdicts that contradict the truth: another organisation's insider messages called
/// benign (and its normal mail called threats).
fn cleared_insiders(folder: &Path) -> Vec<LabelledEvent> {
    validation(Path::new(""), &folder.join("train"))
        .unwrap()
        .into_iter()
        .map(|row| LabelledEvent {
            threat: !row.threat,
            ..row
        })
        .collect()
}

fn gate_after(data: &Path, champion: &Path, feedback: &[LabelledEvent]) -> GateReport {
    crate::learning::testing::retrain_and_judge(&LEARNING, champion, data, data, feedback)
}

#[test]
fn benign_verdicts_pass_the_gate_and_inverted_ones_do_not() {
    let work = tempfile::tempdir().unwrap();
    let organisation = work.path().join("org");
    let other = work.path().join("other");
    generated(&organisation, 42);
    generated(&other, 43);
    let data = organisation.join("train");
    let models = work.path().join("models");
    train(
        &TrainOptions {
            data: data.clone(),
            models: models.clone(),
            version: "c1".into(),
            ..TrainOptions::default()
        },
        "2026-11-29T00:00:00Z".into(),
    )
    .unwrap();
    let champion = models.join("email/c1");
    let alarms = false_alarms(&champion, &data);
    assert!(alarms.len() > 20, "{} false alarms", alarms.len());
    let kept = gate_after(&data, &champion, &alarms);
    assert!(kept.passed, "{}", kept.reason);
    let rejected = gate_after(&data, &champion, &cleared_insiders(&other));
    assert!(!rejected.passed, "{}", rejected.reason);
    eprintln!("true: {}\ninverted: {}", kept.reason, rejected.reason);
    let manifest = EmailModel::load(&champion).unwrap().manifest;
    assert_eq!(manifest.training.data_file.as_deref(), Some("train"));
}
