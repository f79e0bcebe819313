use super::*;
use crate::learning::gate::GateReport;
use crate::operators::alert::synth::{generate, split, write_jsonl, GeneratorConfig, LabeledAlert};
use crate::operators::alert::train::train;

fn alerts(seed: u64, count: usize) -> Vec<LabeledAlert> {
    generate(&GeneratorConfig {
        seed,
        count,
        days: 8,
        ..GeneratorConfig::default()
    })
}

/// Verdicts on the held-out alerts, each with the facts its partition's history gave it
/// (rebuilt by [`context`] from the alerts before it); `invert` turns every disposition
/// into a wrong one and every risk into its mirror.
fn verdicts(held_out: &[LabeledAlert], invert: bool) -> Vec<LabelledEvent> {
    let events: Vec<InputEvent> = held_out
        .iter()
        .map(|labeled| InputEvent::Alert(Box::new(labeled.alert.clone())))
        .collect();
    let refs: Vec<&InputEvent> = events.iter().collect();
    held_out
        .iter()
        .enumerate()
        .filter(|(_, labeled)| !labeled.warmup)
        .map(|(index, labeled)| {
            let disposition = if invert {
                match labeled.disposition.as_str() {
                    "true_positive" => "benign",
                    "benign" => "true_positive",
                    "false_positive" => "suspicious",
                    _ => "false_positive",
                }
            } else {
                labeled.disposition.as_str()
            };
            LabelledEvent {
                event: events[index].clone(),
                threat: matches!(disposition, "true_positive" | "suspicious"),
                label: Some(disposition.to_owned()),
                corrected_risk: Some(if invert {
                    100.0 - labeled.risk
                } else {
                    labeled.risk
                }),
                context: context(&refs[index.saturating_sub(3000)..index], &events[index]),
            }
        })
        .collect()
}

fn gate_after(data: &Path, champion: &Path, feedback: &[LabelledEvent]) -> GateReport {
    crate::learning::testing::retrain_and_judge(&LEARNING, champion, data, data, feedback)
}

#[test]
fn true_verdicts_pass_the_gate_and_inverted_ones_do_not() {
    let work = tempfile::tempdir().unwrap();
    let (bootstrap, held_out) = split(alerts(5, 10000), 0.3);
    let data = work.path().join("train.jsonl");
    write_jsonl(&data, &bootstrap).unwrap();
    let champion = work.path().join("c1");
    train(
        &TrainOptions {
            data: data.clone(),
            out: champion.clone(),
            version: "c1".into(),
            seed: 3,
            validation_fraction: 0.2,
            contamination: 0.05,
        },
        "2026-11-29T00:00:00Z".into(),
    )
    .unwrap();
    let kept = gate_after(&data, &champion, &verdicts(&held_out, false));
    assert!(kept.passed, "{}", kept.reason);
    let rejected = gate_after(&data, &champion, &verdicts(&held_out, true));
    assert!(!rejected.passed, "{}", rejected.reason);
    eprintln!("true: {}\ninverted: {}", kept.reason, rejected.reason);
}

#[test]
fn the_rebuilt_context_is_what_the_live_history_said() {
    let stream = alerts(11, 1500);
    let events: Vec<InputEvent> = stream
        .iter()
        .map(|labeled| InputEvent::Alert(Box::new(labeled.alert.clone())))
        .collect();
    let refs: Vec<&InputEvent> = events.iter().collect();
    // The live operator folds every alert of the partition into its history as it scores.
    let mut live = EntityHistory::default();
    let mut repeated = 0;
    for (index, labeled) in stream.iter().enumerate() {
        let said = live.facts(&labeled.alert);
        live.record(&labeled.alert, labeled.risk);
        let rebuilt: HistoryFacts =
            serde_json::from_value(context(&refs[..index], &events[index]).unwrap()).unwrap();
        assert_eq!(rebuilt, said, "alert {index}");
        repeated += usize::from(said.alerts_24h > 0);
    }
    assert!(repeated > 100, "the stream must exercise the history");
    // Other inputs have no alert context.
    let address = InputEvent::Address(crate::events::AddressEvent {
        event_id: None,
        address: "a@b.c".into(),
        context: "signup".into(),
        account: None,
        observed_ms: None,
    });
    assert_eq!(context(&refs, &address), None);
}

#[test]
fn a_verdict_names_its_disposition() {
    assert_eq!(
        disposition_of(Verdict::FalsePositive, Some(" Suspicious ")).as_deref(),
        Some("suspicious")
    );
    for (verdict, class) in [
        (Verdict::TruePositive, "true_positive"),
        (Verdict::FalseNegative, "true_positive"),
        (Verdict::FalsePositive, "false_positive"),
        (Verdict::Suspicious, "suspicious"),
        (Verdict::TrueNegative, "benign"),
        (Verdict::Benign, "benign"),
    ] {
        assert_eq!(
            disposition_of(verdict, Some("T1059")).as_deref(),
            Some(class)
        );
    }
}
