//! The input drift watch on a real broker: flows drawn from the training file of the flow
//! model raise no drift over ten windows; the same source with `src_bytes` × 50 raises a drift
//! record naming `src_bytes` in the next window; every check is a record on the drift topic.
//! The address operator's calibration health stays quiet on real addresses and alarms on a
//! stream of machine-made ones.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use threatflow::events::InputEvent;
use threatflow::generate::encode_json;
use threatflow::operators::flow::dataset::read_nsl_kdd;
use threatflow_e2e::{
    free_loopback_address, http_get, produce, repository, Broker, EngineProcess, TestTopics,
};

const WINDOW: usize = 300;

/// Drift records of `kind` on `topic` from the beginning, until `count` arrived or `timeout`.
fn drift_records(
    bootstrap: &str,
    topic: &str,
    kind: &str,
    count: usize,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", threatflow_e2e::unique_name("drift-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    while records.len() < count && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let record: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
            if record["kind"] == kind {
                records.push(record);
            }
        }
    }
    records
}

fn checks_done(http: &str, topic: &str) -> u64 {
    http_get(http, "/models")
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|models| models[topic]["drift"]["checks"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shifted_feature_is_named_within_one_window_and_the_same_source_raises_nothing(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 2)?;
    let drift_topic = threatflow_e2e::unique_name("drift");
    let work = tempfile::tempdir()?;
    let models = work.path().join("models/flow/v1");
    std::fs::create_dir_all(&models)?;
    for entry in std::fs::read_dir(repository().join("models/flow/v1"))? {
        let path = entry?.path();
        std::fs::copy(&path, models.join(path.file_name().unwrap()))?;
    }
    let http = free_loopback_address()?;
    let config = topics.operator_config(
        &broker.bootstrap,
        &work.path().join("state"),
        &http,
        ("flow", "flow"),
        &work.path().join("models"),
        &format!("[drift]\nwindow = {WINDOW}\ntopic = \"{drift_topic}\"\n"),
    );
    let config_path = work.path().join("engine.toml");
    std::fs::write(&config_path, config)?;
    let _engine = EngineProcess::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &config_path,
        &work.path().join("engine.log"),
    )?;
    let logs = || std::fs::read_to_string(work.path().join("engine.log")).unwrap_or_default();

    // The source the model was trained on, in a seeded order.
    let mut flows: Vec<_> =
        read_nsl_kdd(&repository().join("models/flow/data/KDDTrain+_20Percent.txt"))?
            .into_iter()
            .map(|row| row.event)
            .collect();
    flows.shuffle(&mut rand::rngs::StdRng::seed_from_u64(11));
    let encode = |flow: &threatflow::events::FlowEvent| {
        encode_json(&InputEvent::Flow(Box::new(flow.clone())))
    };

    let wait_for_checks = |count: u64| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while checks_done(&http, &topics.input) < count {
            assert!(
                Instant::now() < deadline,
                "{count} drift checks not done\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Ten windows of the unshifted source.
    let unshifted: Vec<Vec<u8>> = flows[..10 * WINDOW].iter().map(encode).collect();
    produce(&broker.bootstrap, &topics.input, &unshifted).await?;
    wait_for_checks(10);
    let features = 41;
    let records = drift_records(
        &broker.bootstrap,
        &drift_topic,
        "feature",
        10 * features,
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 10 * features, "{}", logs());
    let false_alarms: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["drifted"] == true).collect();
    assert!(
        false_alarms.is_empty(),
        "unshifted windows drifted: {false_alarms:?}"
    );
    assert!(records
        .iter()
        .all(|r| r["model_version"] == "v1" && r["window_size"].as_i64() <= Some(WINDOW as i64)));

    // One window of the same source with src_bytes × 50.
    let shifted: Vec<Vec<u8>> = flows[10 * WINDOW..11 * WINDOW]
        .iter()
        .map(|flow| {
            let mut flow = flow.clone();
            flow.src_bytes *= 50.0;
            encode(&flow)
        })
        .collect();
    produce(&broker.bootstrap, &topics.input, &shifted).await?;
    wait_for_checks(11);
    let records = drift_records(
        &broker.bootstrap,
        &drift_topic,
        "feature",
        11 * features,
        Duration::from_secs(30),
    );
    let last_check = &records[10 * features..];
    let drifted: Vec<&str> = last_check
        .iter()
        .filter(|r| r["drifted"] == true)
        .map(|r| r["feature"].as_str().unwrap())
        .collect();
    assert!(drifted.contains(&"src_bytes"), "{drifted:?}");
    let src_bytes = last_check
        .iter()
        .find(|r| r["feature"] == "src_bytes")
        .unwrap();
    assert_eq!(src_bytes["test"], "ks");
    assert!(src_bytes["p_value"].as_f64().unwrap() < 0.05 / features as f64);
    let (_, models) = http_get(&http, "/models")?;
    let models: serde_json::Value = serde_json::from_str(&models)?;
    assert!(models[&topics.input]["drift"]["drifted_features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|feature| feature == "src_bytes"));
    let (_, metrics) = http_get(&http, "/metrics")?;
    assert!(
        metrics.contains("threatflow_drift_detections_total{operator=\"flow\""),
        "{metrics}"
    );
    eprintln!(
        "drifted in the shifted window: {drifted:?}; src_bytes D {} p {}",
        src_bytes["ks_statistic"], src_bytes["p_value"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_made_addresses_raise_a_calibration_health_record() -> anyhow::Result<()> {
    use threatflow::operators::address::synth::{generate, AddressSources};
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 1)?;
    let drift_topic = threatflow_e2e::unique_name("drift");
    let work = tempfile::tempdir()?;
    let http = free_loopback_address()?;
    let config = topics.operator_config(
        &broker.bootstrap,
        &work.path().join("state"),
        &http,
        ("address", "address"),
        &repository().join("models"),
        &format!("[drift]\nwindow = {WINDOW}\ntopic = \"{drift_topic}\"\n"),
    );
    let config_path = work.path().join("engine.toml");
    std::fs::write(&config_path, config)?;
    let _engine = EngineProcess::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &config_path,
        &work.path().join("engine.log"),
    )?;
    let logs = || std::fs::read_to_string(work.path().join("engine.log")).unwrap_or_default();
    let address = |text: &str| {
        serde_json::to_vec(&serde_json::json!({"address": text, "context": "signup"})).unwrap()
    };
    // A window of real addresses, then one of machine-made ones (names with digit bursts).
    let ham =
        std::fs::read_to_string(repository().join("models/address/sources/ham_addresses.txt"))?;
    let real: Vec<Vec<u8>> = ham
        .lines()
        .filter(|text| threatflow::operators::address::local_part::parse_address(text).is_ok())
        .take(WINDOW)
        .map(address)
        .collect();
    let sources = AddressSources::load(&repository().join("models/address/sources"))
        .map_err(anyhow::Error::msg)?;
    let machine: Vec<Vec<u8>> = generate(&sources, 6000, 1.0, 3)
        .into_iter()
        .filter(|row| row.scenario == "name_digit_burst")
        .take(WINDOW)
        .map(|row| address(&row.address))
        .collect();
    assert_eq!(machine.len(), WINDOW);
    produce(&broker.bootstrap, &topics.input, &real).await?;
    let figures = 4;
    let first = drift_records(
        &broker.bootstrap,
        &drift_topic,
        "calibration_health",
        figures,
        Duration::from_secs(90),
    );
    assert_eq!(
        first.len(),
        figures,
        "{:?}\n{}",
        http_get(&http, "/models"),
        logs()
    );
    assert!(first.iter().all(|r| r["drifted"] == false), "{first:#?}");
    produce(&broker.bootstrap, &topics.input, &machine).await?;
    let both = drift_records(
        &broker.bootstrap,
        &drift_topic,
        "calibration_health",
        2 * figures,
        Duration::from_secs(90),
    );
    assert_eq!(both.len(), 2 * figures, "{}", logs());
    let alarms: Vec<&serde_json::Value> = both[figures..]
        .iter()
        .filter(|r| r["drifted"] == true)
        .collect();
    let boost = alarms
        .iter()
        .find(|r| r["feature"] == "boost_rate")
        .unwrap_or_else(|| panic!("{:#?}", &both[figures..]));
    assert!(boost["ks_statistic"].as_f64().unwrap() > 0.8, "{boost}");
    assert_eq!(boost["operator"], "address");
    // Score drift too: the share crossing `review` moved between the two windows.
    let score = drift_records(
        &broker.bootstrap,
        &drift_topic,
        "score",
        1,
        Duration::from_secs(10),
    );
    eprintln!("calibration alarm: {boost}\nscore drift: {score:?}");
    // And the input watch: the address's own values against the version's reference sample
    // (13 features per window), the digit bursts named in the machine-made window.
    let inputs = 13;
    let mut features = drift_records(
        &broker.bootstrap,
        &drift_topic,
        "feature",
        2 * inputs,
        Duration::from_secs(30),
    );
    assert_eq!(features.len(), 2 * inputs, "{}", logs());
    // Windows in time order, whatever partitions the records came through.
    features.sort_by_key(|r| r["window_start_ms"].as_i64());
    let named: Vec<&str> = features[inputs..]
        .iter()
        .filter(|r| r["drifted"] == true)
        .filter_map(|r| r["feature"].as_str())
        .collect();
    assert!(
        named.contains(&"longest_digit_run") && named.contains(&"digit_ratio"),
        "{named:?}"
    );
    let real_named: Vec<&str> = features[..inputs]
        .iter()
        .filter(|r| r["drifted"] == true)
        .filter_map(|r| r["feature"].as_str())
        .collect();
    eprintln!("real addresses against the generated reference: drifted {real_named:?}");
    Ok(())
}
