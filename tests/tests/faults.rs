//! Fault injection on librdkafka's mock cluster, with the engine running in-process: produce
//! requests that fail past librdkafka's own retries with an error that may pass (so the
//! engine's retry path must re-send them) and a broker outage mid-stream: nothing may be
//! lost. And an output topic the engine is not authorized to write: the binding stops, the
//! engine reports not ready, nothing is retried forever and nothing is committed.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use threatflow::config::EngineConfig;
use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow::source::Health;
use threatflow_e2e::{OutputCollector, TestTopics};
use tokio_util::sync::CancellationToken;

/// Enough that the engine is still busy when the outage starts, few enough that no partition
/// outgrows the mock broker's log limit (5 MB or 100k records per partition, oldest dropped
/// beyond it: more would be lost to retention before the engine could read them).
const INPUTS: usize = 12_000;
const PARTITIONS: u32 = 6;
/// Produce requests that the mock broker answers with an error librdkafka does not retry
/// (an unknown server error: the engine classifies it as one that may pass, and re-sends).
const FAILED_PRODUCE_REQUESTS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_produce_errors_and_a_broker_outage_lose_nothing() -> anyhow::Result<()> {
    threatflow::telemetry::init_tracing(threatflow::config::LogFormat::Text);
    let metrics = threatflow::telemetry::metrics_handle();
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    let topics = TestTopics::new(PARTITIONS);
    for topic in topics.names() {
        cluster.create_topic(topic, i32::try_from(PARTITIONS)?, 1)?;
    }
    let mut generator = EventGenerator::new(21);
    let payloads: Vec<Vec<u8>> = (0..INPUTS)
        .map(|_| encode_json(&generator.event(SchemaKind::Flow)))
        .collect();
    let landed = threatflow_e2e::produce(&bootstrap, &topics.input, &payloads).await?;

    // From here on, the next produce requests (the engine's) fail past librdkafka's retries.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN; FAILED_PRODUCE_REQUESTS],
    );
    let dir = tempfile::tempdir()?;
    let text = topics.engine_config(
        &bootstrap,
        &dir.path().join("state"),
        "",
        "batch_size = 100",
    );
    let config = EngineConfig::from_toml_with_env(&text, Vec::new())?;
    let shutdown = CancellationToken::new();
    let engine = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            threatflow::pipeline::run(&config, shutdown, Arc::new(Health::default()))
        })
    };

    let mut outputs = OutputCollector::new(&bootstrap, &topics)?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while outputs.accounted() < INPUTS / 5 && std::time::Instant::now() < deadline {
        outputs.poll_for(Duration::from_millis(10))?;
    }
    assert!(
        outputs.accounted() < INPUTS,
        "engine finished before the outage"
    );
    cluster.broker_down(1)?;
    std::thread::sleep(Duration::from_secs(3));
    cluster.broker_up(1)?;
    outputs.collect_until(INPUTS, TIMEOUT)?;
    shutdown.cancel();
    engine
        .join()
        .map_err(|_| anyhow::anyhow!("engine panicked"))??;

    let missing = outputs.missing(&landed);
    if !missing.is_empty() {
        let exposition = metrics.render();
        let engine_view: Vec<&str> = exposition
            .lines()
            .filter(|line| line.starts_with("threatflow_") && !line.contains("_bucket"))
            .collect();
        eprintln!("engine metrics at failure:\n{}", engine_view.join("\n"));
    }
    assert!(
        missing.is_empty(),
        "{} inputs lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(outputs.dead_letters.is_empty());
    let exposition = metrics.render();
    let retried = exposition
        .lines()
        .filter(|line| line.starts_with("threatflow_produce_errors_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(
        retried > 0.0,
        "the permanent produce errors never reached the retry path:\n{exposition}"
    );
    println!(
        "faults: {INPUTS} inputs, {retried} failed deliveries re-sent, {} duplicates, 0 lost",
        outputs.duplicates()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_output_topic_stops_its_binding_without_retrying_forever(
) -> anyhow::Result<()> {
    threatflow::telemetry::init_tracing(threatflow::config::LogFormat::Text);
    let cluster = MockCluster::new(1)?;
    let bootstrap = cluster.bootstrap_servers();
    let topics = TestTopics::new(2);
    for topic in topics.names() {
        cluster.create_topic(topic, 2, 1)?;
    }
    let mut generator = EventGenerator::new(22);
    let payloads: Vec<Vec<u8>> = (0..200)
        .map(|_| encode_json(&generator.event(SchemaKind::Flow)))
        .collect();
    threatflow_e2e::produce(&bootstrap, &topics.input, &payloads).await?;
    // Every produce request of the engine is refused as unauthorized, for good.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 10_000],
    );
    let dir = tempfile::tempdir()?;
    let text = topics.engine_config(&bootstrap, &dir.path().join("state"), "", "batch_size = 50");
    let config = EngineConfig::from_toml_with_env(&text, Vec::new())?;
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::default());
    let engine = {
        let shutdown = shutdown.clone();
        let health = health.clone();
        std::thread::spawn(move || threatflow::pipeline::run(&config, shutdown, health))
    };
    let deadline = std::time::Instant::now() + TIMEOUT;
    while health.stopped_bindings().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = health.stopped_bindings();
    let reason = stopped
        .get(&topics.input)
        .ok_or_else(|| anyhow::anyhow!("binding never stopped: {stopped:?}"))?;
    assert!(reason.contains("authoriz"), "{reason}");
    assert!(!health.is_ready());
    // Nothing is retried forever: the refused records are given up at once, so the number
    // of produce attempts stops growing.
    let attempts = || {
        threatflow::telemetry::metrics_handle()
            .render()
            .lines()
            .filter(|line| line.starts_with("threatflow_produce_errors_total{"))
            .filter(|line| line.contains(&topics.output) || line.contains(&topics.dead_letter))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    std::thread::sleep(Duration::from_secs(2));
    let before = attempts();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(attempts(), before, "produce attempts keep growing");
    shutdown.cancel();
    engine
        .join()
        .map_err(|_| anyhow::anyhow!("engine panicked"))??;
    // Nothing was acknowledged, so nothing of the input was committed: a fixed engine (or
    // ACL) re-reads all of it.
    let committed = threatflow_e2e::committed_total(&bootstrap, &topics.group, &topics.input, 2)?;
    assert_eq!(committed, 0, "inputs committed without outputs");
    Ok(())
}
