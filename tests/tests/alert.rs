//! The alert operator as users run it: `generate` → `train` → `eval` on the command line
//! (figures beside the rules-only baseline, reproducible training), and the engine scoring
//! alerts from a real broker with per-entity behaviour records and `/models`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use threatflow::events::InputEvent;
use threatflow::generate::encode_json;
use threatflow::operators::alert::synth::{generate, GeneratorConfig};
use threatflow_e2e::{consume_scored, succeed, unique_name, Broker, OperatorEngine, TestTopics};

fn threatflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

fn train(data: &Path, models: &Path) -> String {
    succeed(
        threatflow()
            .args(["train", "alert", "--version", "t1", "--seed", "3"])
            .arg("--data")
            .arg(data)
            .arg("--model-dir")
            .arg(models)
            .output()
            .unwrap(),
    )
}

#[test]
fn generate_train_and_eval_beat_the_rules_only_baseline_reproducibly() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    succeed(
        threatflow()
            .args(["generate", "alerts", "--count", "6000", "--seed", "11"])
            .arg("--out")
            .arg(&data)
            .output()
            .unwrap(),
    );
    let first = work.path().join("first");
    let second = work.path().join("second");
    let stdout = train(&data.join("train.jsonl"), &first);
    assert!(stdout.contains("top features"), "{stdout}");
    train(&data.join("train.jsonl"), &second);
    for file in ["forest.json", "isolation.json", "risk.json"] {
        let a = std::fs::read(first.join("alert/t1").join(file)).unwrap();
        let b = std::fs::read(second.join("alert/t1").join(file)).unwrap();
        assert!(a == b, "{file} differs between two trainings with one seed");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("alert/t1/manifest.json")).unwrap())
            .unwrap();
    let importances = manifest["feature_importances"].as_array().unwrap();
    let total: f64 = importances
        .iter()
        .map(|entry| entry["importance"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-6);

    let stdout = succeed(
        threatflow()
            .args(["eval", "alert", "--json", "--data"])
            .arg(data.join("holdout.jsonl"))
            .arg("--model")
            .arg(first.join("alert/t1"))
            .output()
            .unwrap(),
    );
    let figures: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let value = |key: &str| figures[key].as_f64().unwrap_or_else(|| panic!("{key}"));
    for key in [
        "macro_f1",
        "risk_r2",
        "risk_mae",
        "anomaly_precision_at_contamination",
    ] {
        assert!(value(key).is_finite(), "{key}");
    }
    let baseline = figures["rules_only"]["macro_f1"].as_f64().unwrap();
    // Chance macro-F1 over four unbalanced classes is about 0.25.
    assert!(value("macro_f1") > 0.6, "{stdout}");
    assert!(value("macro_f1") > baseline + 0.2, "{stdout}");
    assert!(value("risk_r2") > 0.5, "{stdout}");
    assert_eq!(figures["classes"].as_array().unwrap().len(), 4);
    assert!(stdout.contains("rules only"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_scores_alerts_and_publishes_entity_behaviour() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 2)?;
    let entities = unique_name("entities");
    broker.create_topic(&entities, 2)?;
    let engine = OperatorEngine::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        &topics,
        ("alert", "alert"),
        &format!("\n[operators.alert]\nentity_topic = \"{entities}\"\n"),
    )?;
    let logs = || engine.logs();

    let alerts = generate(&GeneratorConfig {
        seed: 4242,
        count: 1500,
        ..GeneratorConfig::default()
    });
    let payloads: Vec<Vec<u8>> = alerts
        .iter()
        .map(|labeled| encode_json(&InputEvent::Alert(Box::new(labeled.alert.clone()))))
        .collect();
    threatflow_e2e::produce(&broker.bootstrap, &topics.input, &payloads).await?;
    let expected = alerts.len();
    let records = consume_scored(
        &broker.bootstrap,
        &[&topics.output, &entities],
        2,
        Duration::from_secs(90),
        |records| records.get(&topics.output).map_or(0, Vec::len) >= expected,
    );
    let scored = records.get(&topics.output).cloned().unwrap_or_default();
    assert_eq!(scored.len(), expected, "{}", logs());
    let dispositions: BTreeMap<&str, usize> =
        scored.iter().fold(BTreeMap::new(), |mut counts, record| {
            *counts
                .entry(record.labels["disposition"].as_str())
                .or_default() += 1;
            counts
        });
    assert_eq!(dispositions.len(), 4, "{dispositions:?}");
    assert!(
        scored
            .iter()
            .all(|record| record.operator == "alert"
                && (0.0..=100.0).contains(&record.scores["risk"]))
    );

    // Behaviour records: the last one per user; intrusion victims end above users seen
    // only in benign alerts. (Partitions interleave, so "last" is per record order within
    // the entity's partition, which the key fixes.)
    let mut behaviour: HashMap<String, f64> = HashMap::new();
    for record in records.get(&entities).into_iter().flatten() {
        let key = format!(
            "{}:{}",
            record.labels["entity_type"], record.labels["entity"]
        );
        let score = record.scores["behaviour_score"];
        let entry = behaviour.entry(key).or_insert(score);
        *entry = entry.max(score);
    }
    assert!(!behaviour.is_empty(), "no entity records\n{}", logs());
    let users_in = |scenario: &str| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a.scenario == scenario)
            .flat_map(|a| a.alert.users.iter().map(|u| format!("user:{u}")))
            .collect()
    };
    let victims = users_in("intrusion");
    let not_benign: Vec<String> = [
        users_in("intrusion"),
        users_in("suspicious"),
        users_in("noisy_rule"),
    ]
    .concat();
    let benign_only: Vec<String> = users_in("benign")
        .into_iter()
        .filter(|user| !not_benign.contains(user))
        .collect();
    let mean = |users: &[String]| {
        let values: Vec<f64> = users
            .iter()
            .filter_map(|u| behaviour.get(u).copied())
            .collect();
        assert!(!values.is_empty());
        values.iter().sum::<f64>() / values.len() as f64
    };
    assert!(
        mean(&victims) > mean(&benign_only) + 0.1,
        "victims {} vs benign {}",
        mean(&victims),
        mean(&benign_only)
    );

    let (status, body) = threatflow_e2e::http_get(&engine.http, "/models")?;
    assert_eq!(status, 200, "{body}");
    let models: serde_json::Value = serde_json::from_str(&body)?;
    let loaded = &models[&topics.input];
    assert_eq!(loaded["operator"], "alert", "{body}");
    assert!(
        loaded["model"]["feature_importances"]
            .as_array()
            .map_or(0, Vec::len)
            > 20
    );
    drop(engine);
    Ok(())
}
