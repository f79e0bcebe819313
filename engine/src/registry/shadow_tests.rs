use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::events::SchemaKind;
use crate::operators::OperatorContext;

fn shipped_models() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
}

/// The flow binding's runtime, a tap over it (every event sampled), and a scored batch.
fn flow_tap() -> (Arc<ShadowTap>, Vec<SourcedEvent>, Vec<Outcome>) {
    let operators = crate::config::OperatorSections::default();
    let models = shipped_models();
    let context = OperatorContext {
        model_dir: &models,
        operators: &operators,
        input_topic: "flows",
        kafka: None,
        pinned_version_dir: None,
    };
    let mut started = crate::operators::testing::start("flow", &context).unwrap();
    let spec = crate::operators::table::find("flow").unwrap();
    let tap = ShadowTap::start(
        "flow",
        spec.model.unwrap().shadow,
        1.0,
        started.runtime.shadow.clone().unwrap(),
        None,
        None,
    )
    .unwrap();
    let mut generator = crate::generate::EventGenerator::new(3);
    let events: Vec<SourcedEvent> = (0..200)
        .map(|offset| SourcedEvent::at_offset("flows", offset, generator.event(SchemaKind::Flow)))
        .collect();
    let outcomes = started.score_batch(&events).unwrap();
    (tap, events, outcomes)
}

fn wait_for_compared(tap: &ShadowTap, count: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let description = tap.describe();
        if description["compared"].as_u64() == Some(count) || Instant::now() > deadline {
            return description;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A copy of flow v1 named `version` whose decision threshold is `threshold`.
fn flow_variant(parent: &Path, version: &str, threshold: f64) -> PathBuf {
    let directory = parent.join(version);
    std::fs::create_dir_all(&directory).unwrap();
    for entry in std::fs::read_dir(shipped_models().join("flow/v1")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), directory.join(entry.file_name())).unwrap();
    }
    let path = directory.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["version"] = version.into();
    manifest["decision_threshold"] = threshold.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    directory
}

#[test]
fn an_identical_challenger_agrees_and_a_different_one_is_measured() {
    let (tap, events, outcomes) = flow_tap();
    let work = tempfile::tempdir().unwrap();
    // No challenger: nothing is scored twice.
    tap.offer(&events, &outcomes);
    assert_eq!(tap.describe()["compared"], 0);

    tap.set_challenger(&flow_variant(work.path(), "v1-copy", 0.00755125948176626))
        .unwrap();
    tap.offer(&events, &outcomes);
    let same = wait_for_compared(&tap, 200);
    assert_eq!(same["challenger"], "v1-copy");
    assert_eq!(same["verdict_agreement"], 1.0, "{same}");
    assert_eq!(same["score_abs_diff"]["max"], 0.0, "{same}");

    // Same trees, a threshold that calls everything an attack: the verdicts of the normal
    // events disagree, the scores do not, and the confusion shows where.
    tap.set_challenger(&flow_variant(work.path(), "v2-paranoid", 0.0))
        .unwrap();
    tap.offer(&events, &outcomes);
    let paranoid = wait_for_compared(&tap, 200);
    let normal = outcomes
        .iter()
        .filter(|outcome| match outcome {
            Outcome::Scored { scored, .. } => scored.labels["verdict"] == "normal",
            Outcome::Rejected { .. } => false,
        })
        .count();
    assert!(normal > 0);
    let agreement = paranoid["verdict_agreement"].as_f64().unwrap();
    assert!(
        (agreement - (200 - normal) as f64 / 200.0).abs() < 1e-9,
        "{paranoid}"
    );
    assert_eq!(paranoid["score_abs_diff"]["mean"], 0.0);

    tap.clear();
    tap.offer(&events, &outcomes);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(tap.describe()["compared"], 0);
    assert_eq!(tap.challenger_version(), None);
}

#[test]
fn a_challenger_that_does_not_load_is_refused() {
    let (tap, _, _) = flow_tap();
    let missing = tempfile::tempdir().unwrap();
    assert!(tap.set_challenger(&missing.path().join("nothing")).is_err());
    assert_eq!(tap.challenger_version(), None);
}
