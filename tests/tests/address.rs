//! The address operator as users run it: `generate` → `train` → `eval` on the command line
//! (reproducible training, figures on the held-out split, CSV and JSON lines input), and the
//! engine scoring an `addresses` topic from a real broker: decisions, boost-only risk,
//! dead letters for addresses that do not parse, and `/models`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use threatflow::events::{AddressEvent, InputEvent};
use threatflow::generate::encode_json;
use threatflow::operators::address::synth::{generate, AddressSources};
use threatflow_e2e::{
    consume_scored, repository, succeed, Broker, OperatorEngine, OutputCollector, TestTopics,
};

fn threatflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

fn train(data: &Path, models: &Path) -> String {
    succeed(
        threatflow()
            .args(["train", "address", "--version", "t1", "--seed", "5"])
            .arg("--data")
            .arg(data)
            .arg("--sources")
            .arg(repository().join("models/address/sources"))
            .arg("--model-dir")
            .arg(models)
            .output()
            .unwrap(),
    )
}

fn eval_json(data: &Path, model: &Path) -> (String, serde_json::Value) {
    let stdout = succeed(
        threatflow()
            .args(["eval", "address", "--json", "--data"])
            .arg(data)
            .arg("--model")
            .arg(model)
            .output()
            .unwrap(),
    );
    let figures = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (stdout, figures)
}

#[test]
fn generate_train_and_eval_reach_the_goal_on_held_out_addresses() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    succeed(
        threatflow()
            .args(["generate", "addresses", "--count", "8000", "--seed", "17"])
            .arg("--sources")
            .arg(repository().join("models/address/sources"))
            .arg("--out")
            .arg(&data)
            .output()
            .unwrap(),
    );
    let (first, second) = (work.path().join("first"), work.path().join("second"));
    let stdout = train(&data.join("train.jsonl"), &first);
    assert!(stdout.contains("out-of-fold"), "{stdout}");
    train(&data.join("train.jsonl"), &second);
    for file in [
        "markov.json",
        "calibration.json",
        "disposable_domains.txt",
        "free_domains.txt",
    ] {
        let a = std::fs::read(first.join("address/t1").join(file)).unwrap();
        let b = std::fs::read(second.join("address/t1").join(file)).unwrap();
        assert!(a == b, "{file} differs between two trainings with one seed");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("address/t1/manifest.json")).unwrap())
            .unwrap();
    assert!(manifest["calibration_version"]
        .as_str()
        .unwrap()
        .starts_with("t1+"));
    assert!(manifest["domain_lists_version"]
        .as_str()
        .unwrap()
        .contains("disposable-email-domains"));

    let model = first.join("address/t1");
    let (stdout, figures) = eval_json(&data.join("holdout.jsonl"), &model);
    let value = |key: &str| {
        figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {stdout}"))
    };
    // The goal is precision ≥ 0.90 and recall ≥ 0.85; a smaller training set here.
    assert!(value("precision") > 0.88, "{stdout}");
    assert!(value("recall") > 0.85, "{stdout}");
    assert!(value("auc") > 0.95, "{stdout}");
    assert!(
        value("f1") > figures["markov_only"]["f1"].as_f64().unwrap(),
        "calibration adds nothing: {stdout}"
    );
    assert_eq!(value("rows") as usize, 1600);

    // The same rows as CSV give the same figures.
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(data.join("holdout.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let csv: String = std::iter::once("address,label\n".to_owned())
        .chain(
            rows.iter()
                .map(|row| format!("{},{}\n", row["address"].as_str().unwrap(), row["label"])),
        )
        .collect();
    std::fs::write(work.path().join("holdout.csv"), csv).unwrap();
    let (_, from_csv) = eval_json(&work.path().join("holdout.csv"), &model);
    for key in ["rows", "precision", "recall", "f1", "auc"] {
        assert_eq!(from_csv[key], figures[key], "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_scores_an_addresses_topic() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 2)?;
    let engine = OperatorEngine::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        &topics,
        ("address", "address"),
        "",
    )?;
    let logs = || engine.logs();

    // Addresses the shipped model never saw (another seed), then two that do not parse.
    let sources = AddressSources::load(&repository().join("models/address/sources")).unwrap();
    let labeled = generate(&sources, 3000, 0.4, 99);
    let labeled = &labeled[labeled.len() - 600..];
    let event = |address: &str| {
        encode_json(&InputEvent::Address(AddressEvent {
            event_id: None,
            address: address.to_owned(),
            context: "signup".to_owned(),
            account: None,
            observed_ms: None,
        }))
    };
    let mut payloads: Vec<Vec<u8>> = labeled.iter().map(|row| event(&row.address)).collect();
    payloads.push(event("not-an-address"));
    payloads.push(event("two words@example.com"));
    let landed = threatflow_e2e::produce(&broker.bootstrap, &topics.input, &payloads).await?;

    let mut collector = OutputCollector::new(&broker.bootstrap, &topics)?;
    collector.collect_until(payloads.len(), Duration::from_secs(90))?;
    for coordinates in &landed[labeled.len()..] {
        assert_eq!(
            collector.dead_letters.get(coordinates).map(Vec::as_slice),
            Some(&["operator_rejected".to_owned()][..]),
            "{}",
            logs()
        );
    }
    let records = consume_scored(
        &broker.bootstrap,
        &[&topics.output],
        2,
        Duration::from_secs(60),
        |r| r.get(&topics.output).map_or(0, Vec::len) >= labeled.len(),
    );
    let scored = records.get(&topics.output).cloned().unwrap_or_default();
    assert_eq!(scored.len(), labeled.len(), "{}", logs());
    let (mut caught, mut fraudulent, mut false_alarms) = (0, 0, 0);
    for (row, coordinates) in labeled.iter().zip(&landed) {
        let record = scored
            .iter()
            .find(|s| s.source.partition == coordinates.0 && s.source.offset == coordinates.1)
            .expect("scored once");
        assert_eq!(record.operator, "address");
        let scores = &record.scores;
        assert_eq!(
            scores["risk"],
            scores["markov_risk"].max(scores["calibrated_probability"])
        );
        let flagged = record.labels["decision"] != "allow";
        if row.label == 1 {
            fraudulent += 1;
            caught += usize::from(flagged);
        } else {
            false_alarms += usize::from(flagged);
        }
    }
    assert!(
        caught as f64 > 0.85 * fraudulent as f64,
        "caught {caught} of {fraudulent}"
    );
    assert!(
        false_alarms as f64 <= 0.12 * (labeled.len() - fraudulent) as f64,
        "{false_alarms}"
    );

    let (status, body) = threatflow_e2e::http_get(&engine.http, "/models")?;
    assert_eq!(status, 200, "{body}");
    let models: serde_json::Value = serde_json::from_str(&body)?;
    let loaded = &models[&topics.input];
    assert_eq!(loaded["operator"], "address", "{body}");
    assert!(
        loaded["model"]["calibration_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1+")),
        "{body}"
    );
    assert!(
        loaded["model"]["disposable_domains"].as_u64().unwrap_or(0) > 100_000,
        "{body}"
    );
    drop(engine);
    Ok(())
}
