//! End-to-end tests of the streaming core against a real Tansu broker process: every input
//! becomes exactly the outputs it should, bad input is dead-lettered with the right reason,
//! nothing is lost across `kill -9`, and a graceful shutdown commits what it processed.

use std::time::Duration;

use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, BadInput, EventGenerator};
use threatflow_e2e::{
    free_loopback_address, histogram, Broker, EngineProcess, OutputCollector, TestTopics,
};

/// Long enough for a Tansu group join (~5 s) plus processing on a loaded 2-core machine.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(90);

fn good_flows(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut generator = EventGenerator::new(seed);
    (0..count)
        .map(|_| encode_json(&generator.event(SchemaKind::Flow)))
        .collect()
}

struct Fixture {
    broker: Broker,
    topics: TestTopics,
    dir: tempfile::TempDir,
}

fn fixture(partitions: u32) -> anyhow::Result<Fixture> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, partitions)?;
    Ok(Fixture {
        broker,
        topics,
        dir: tempfile::tempdir()?,
    })
}

impl Fixture {
    fn write_config(&self, extra: &str) -> anyhow::Result<std::path::PathBuf> {
        self.write_config_with_http("127.0.0.1:0", extra)
    }

    fn write_config_with_http(
        &self,
        http_bind: &str,
        extra: &str,
    ) -> anyhow::Result<std::path::PathBuf> {
        let path = self.dir.path().join("engine.toml");
        let state = self.dir.path().join("state");
        let text = self
            .topics
            .engine_config(&self.broker.bootstrap, &state, http_bind, extra);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn start_engine(&self, config: &std::path::Path, run: usize) -> anyhow::Result<EngineProcess> {
        EngineProcess::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
            config,
            &self.dir.path().join(format!("engine-{run}.log")),
        )
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .path()
                .extension()
                .is_some_and(|extension| extension == "log")
            {
                let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                text.push_str(&format!("--- {}\n", entry.path().display()));
                text.extend(tail.into_iter().rev().map(|line| format!("{line}\n")));
            }
        }
        text
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_yields_one_scored_event_with_its_source_offset() -> anyhow::Result<()> {
    let fixture = fixture(3)?;
    let config = fixture.write_config("")?;
    let payloads = good_flows(1, 2_000);
    let landed =
        threatflow_e2e::produce(&fixture.broker.bootstrap, &fixture.topics.input, &payloads)
            .await?;
    let engine = fixture.start_engine(&config, 0)?;
    let mut outputs = OutputCollector::new(&fixture.broker.bootstrap, &fixture.topics)?;
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    drop(engine);
    let missing = outputs.missing(&landed);
    assert!(
        missing.is_empty(),
        "{} inputs without output, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        fixture.logs()
    );
    assert!(
        outputs.dead_letters.is_empty(),
        "good input dead-lettered: {:?}",
        outputs.dead_letters
    );
    assert_eq!(outputs.scored.len(), landed.len());
    assert_eq!(outputs.duplicates(), 0, "a clean run re-delivers nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_good_and_bad_input_is_fully_accounted_for() -> anyhow::Result<()> {
    let fixture = fixture(2)?;
    // A limit well under the broker's 1 MB record limit, so oversized samples reach the engine.
    let max_message_bytes = 64 * 1024;
    // Confluent framing is in use on this topic (some id is mapped), so an unmapped id is
    // reported as unknown_schema_id rather than as undecodable raw Avro.
    let config = fixture.write_config(&format!(
        "max_message_bytes = {max_message_bytes}\n[schema_ids]\n\"1\" = \"flow\""
    ))?;
    let mut generator = EventGenerator::new(2);
    let mut payloads = Vec::new();
    let mut expected = Vec::new();
    for _round in 0..25 {
        for class in BadInput::ALL {
            payloads.push(encode_json(&generator.event(SchemaKind::Flow)));
            expected.push(None);
            payloads.push(generator.bad_payload(SchemaKind::Flow, class, max_message_bytes));
            expected.push(Some(class.expected_reason().code().to_owned()));
        }
    }
    let landed =
        threatflow_e2e::produce(&fixture.broker.bootstrap, &fixture.topics.input, &payloads)
            .await?;
    let engine = fixture.start_engine(&config, 0)?;
    let mut outputs = OutputCollector::new(&fixture.broker.bootstrap, &fixture.topics)?;
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    drop(engine);
    assert_none_missing(&outputs, &landed, &fixture);
    for (coordinates, expected_reason) in landed.iter().zip(&expected) {
        match expected_reason {
            None => {
                assert_eq!(
                    outputs.scored.get(coordinates),
                    Some(&1),
                    "good input {coordinates:?}"
                );
                assert!(!outputs.dead_letters.contains_key(coordinates));
            }
            Some(reason) => {
                assert!(
                    !outputs.scored.contains_key(coordinates),
                    "bad input scored {coordinates:?}"
                );
                assert_eq!(
                    outputs.dead_letters.get(coordinates),
                    Some(&vec![reason.clone()]),
                    "at {coordinates:?}"
                );
            }
        }
    }
    let reasons = histogram(outputs.dead_letters.values().flatten().cloned());
    assert_eq!(
        reasons.values().sum::<usize>(),
        25 * BadInput::ALL.len(),
        "{reasons:?}"
    );
    Ok(())
}

/// Inputs of the crash test; large enough that each kill lands mid-stream.
const CRASH_INPUTS: usize = 20_000;
/// Kills, each after a further share of the inputs has been accounted for.
const CRASH_KILLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_is_lost_across_repeated_kill_9() -> anyhow::Result<()> {
    let fixture = fixture(3)?;
    // Small batches and a slow auto-commit widen the uncommitted window a kill can hit.
    let config = fixture.write_config("batch_size = 50")?;
    let payloads = good_flows(3, CRASH_INPUTS);
    let landed =
        threatflow_e2e::produce(&fixture.broker.bootstrap, &fixture.topics.input, &payloads)
            .await?;
    let mut outputs = OutputCollector::new(&fixture.broker.bootstrap, &fixture.topics)?;
    let mut kill_points = Vec::new();
    let mut last_committed = 0;
    for run in 0..CRASH_KILLS {
        let engine = fixture.start_engine(&config, run)?;
        let before = outputs.accounted();
        // Kill once this run has made real progress — outputs beyond the target and a commit
        // of its own — but before it could finish. The commit check matters under load: the
        // collector's backlog from the previous run alone can reach the target before this
        // run has even joined the group.
        let target = (before + CRASH_INPUTS / (CRASH_KILLS + 2)).min(CRASH_INPUTS - 1);
        let deadline = std::time::Instant::now() + OUTPUT_TIMEOUT;
        let mut committed_now = last_committed;
        while (outputs.accounted() < target || committed_now <= last_committed)
            && std::time::Instant::now() < deadline
        {
            outputs.poll_for(Duration::from_millis(20))?;
            if outputs.accounted() >= target {
                committed_now = threatflow_e2e::committed_total(
                    &fixture.broker.bootstrap,
                    &fixture.topics.group,
                    &fixture.topics.input,
                    fixture.topics.partitions,
                )?;
            }
        }
        engine.kill_hard()?;
        kill_points.push(outputs.accounted());
        // Commits happen while running, not only at shutdown: the restart point moved on.
        let committed = threatflow_e2e::committed_total(
            &fixture.broker.bootstrap,
            &fixture.topics.group,
            &fixture.topics.input,
            fixture.topics.partitions,
        )?;
        assert!(
            committed > last_committed,
            "run {run}: no offset committed before the kill ({committed})\n{}",
            fixture.logs()
        );
        last_committed = committed;
        assert!(
            outputs.accounted() < CRASH_INPUTS,
            "run {run} finished before it was killed: {kill_points:?}"
        );
        assert!(
            outputs.accounted() > before,
            "run {run} made no progress\n{}",
            fixture.logs()
        );
    }
    let engine = fixture.start_engine(&config, CRASH_KILLS)?;
    outputs.collect_until(CRASH_INPUTS, OUTPUT_TIMEOUT)?;
    // Let any re-delivered tail arrive so the duplicate count is complete.
    outputs.poll_for(Duration::from_secs(2))?;
    drop(engine);
    let missing = outputs.missing(&landed);
    println!(
        "crash test: {CRASH_INPUTS} inputs, {CRASH_KILLS} kills at {kill_points:?} accounted, {} lost, {} duplicates",
        missing.len(),
        outputs.duplicates()
    );
    assert!(
        missing.is_empty(),
        "{} inputs lost, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        fixture.logs()
    );
    assert!(outputs.dead_letters.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_commits_so_nothing_is_processed_twice() -> anyhow::Result<()> {
    let fixture = fixture(3)?;
    let config = fixture.write_config("")?;
    let first = good_flows(4, 3_000);
    let mut landed =
        threatflow_e2e::produce(&fixture.broker.bootstrap, &fixture.topics.input, &first).await?;
    let mut outputs = OutputCollector::new(&fixture.broker.bootstrap, &fixture.topics)?;
    let engine = fixture.start_engine(&config, 0)?;
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    assert_none_missing(&outputs, &landed, &fixture);
    let status = engine.terminate(Duration::from_secs(30))?;
    assert!(
        status.success(),
        "engine exit status after SIGTERM: {status}\n{}",
        fixture.logs()
    );

    let engine = fixture.start_engine(&config, 1)?;
    let second = good_flows(5, 1_000);
    landed.extend(
        threatflow_e2e::produce(&fixture.broker.bootstrap, &fixture.topics.input, &second).await?,
    );
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    outputs.poll_for(Duration::from_secs(2))?;
    drop(engine);
    assert_none_missing(&outputs, &landed, &fixture);
    assert_eq!(
        outputs.duplicates(),
        0,
        "inputs re-processed after a graceful restart\n{}",
        fixture.logs()
    );
    Ok(())
}

/// Polls `path` until it answers `status` or `timeout` passes; returns the last answer.
fn wait_for_status(address: &str, path: &str, status: u16, timeout: Duration) -> (u16, String) {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = (0, String::new());
    while std::time::Instant::now() < deadline {
        if let Ok(answer) = threatflow_e2e::http_get(address, path) {
            if answer.0 == status {
                return answer;
            }
            last = answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoint_reports_health_readiness_and_metrics() -> anyhow::Result<()> {
    let fixture = fixture(2)?;
    let address = threatflow_e2e::free_loopback_address()?;
    let config = fixture.write_config_with_http(&address, "")?;
    let engine = fixture.start_engine(&config, 0)?;
    let (status, _) = wait_for_status(&address, "/health", 200, Duration::from_secs(20));
    assert_eq!(status, 200, "/health\n{}", fixture.logs());
    let (status, body) = wait_for_status(&address, "/ready", 200, OUTPUT_TIMEOUT);
    assert_eq!(
        status,
        200,
        "/ready never became ready: {body}\n{}",
        fixture.logs()
    );
    assert!(body.contains("\"assigned_partitions\":2"), "{body}");

    let mut generator = EventGenerator::new(6);
    let mut payloads = good_flows(7, 300);
    payloads.push(generator.bad_payload(SchemaKind::Flow, BadInput::TruncatedJson, 1 << 20));
    let landed =
        threatflow_e2e::produce(&fixture.broker.bootstrap, &fixture.topics.input, &payloads)
            .await?;
    let mut outputs = OutputCollector::new(&fixture.broker.bootstrap, &fixture.topics)?;
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    assert!(outputs.missing(&landed).is_empty());

    // Consumer lag comes from librdkafka statistics, emitted every 5 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut metrics = String::new();
    while std::time::Instant::now() < deadline {
        metrics = threatflow_e2e::http_get(&address, "/metrics")?.1;
        if metrics.contains("threatflow_consumer_lag_messages{")
            && metrics.contains("threatflow_events_consumed_total{")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let input = &fixture.topics.input;
    for expected in [
        format!("threatflow_events_consumed_total{{topic=\"{input}\"}} 301"),
        "threatflow_events_scored_total{operator=\"passthrough\"} 300".to_owned(),
        format!("threatflow_dead_letters_total{{reason=\"undecodable\",topic=\"{input}\"}} 1"),
        "threatflow_batch_duration_seconds_bucket{".to_owned(),
        format!("threatflow_consumer_lag_messages{{topic=\"{input}\""),
        "threatflow_assigned_partitions 2".to_owned(),
    ] {
        assert!(
            metrics.contains(&expected),
            "missing {expected:?} in /metrics:\n{metrics}"
        );
    }
    let status = engine.terminate(Duration::from_secs(30))?;
    assert!(status.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_out_and_back_in_rebalances_without_loss_or_duplicates() -> anyhow::Result<()> {
    let fixture = fixture(3)?;
    let config = fixture.write_config("")?;
    let mut outputs = OutputCollector::new(&fixture.broker.bootstrap, &fixture.topics)?;
    let produce = |seed: u64| {
        let payloads = good_flows(seed, 1_500);
        let bootstrap = fixture.broker.bootstrap.clone();
        let topic = fixture.topics.input.clone();
        async move { threatflow_e2e::produce(&bootstrap, &topic, &payloads).await }
    };

    let http = [free_loopback_address()?, free_loopback_address()?];
    let start = |run: usize| {
        EngineProcess::start_with_env(
            std::path::Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
            &config,
            &fixture.dir.path().join(format!("engine-{run}.log")),
            &[("THREATFLOW_HTTP__BIND", &http[run])],
        )
    };
    let first = start(0)?;
    let mut landed = produce(8).await?;
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    assert_none_missing(&outputs, &landed, &fixture);

    // A second member joins: the first revokes its partitions (drain, commit) and the group
    // splits them. Inputs produced during and after the rebalance are scored exactly once.
    let second = start(1)?;
    landed.extend(produce(9).await?);
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    landed.extend(produce(10).await?);
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    if !outputs.missing(&landed).is_empty() {
        // What each engine says about itself, for the failure message below.
        for address in &http {
            let metrics = threatflow_e2e::http_get(address, "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default();
            let ready = threatflow_e2e::http_get(address, "/ready")
                .map(|(_, body)| body)
                .unwrap_or_default();
            eprintln!("engine {address} /ready: {ready}");
            for line in metrics.lines().filter(|line| {
                !line.starts_with('#')
                    && [
                        "paused", "inflight", "assigned", "lag", "consumed", "scored",
                    ]
                    .iter()
                    .any(|key| line.contains(key))
            }) {
                eprintln!("engine {address}: {line}");
            }
        }
    }
    assert_none_missing(&outputs, &landed, &fixture);

    // The second member leaves gracefully; the first takes its partitions back.
    let status = second.terminate(Duration::from_secs(30))?;
    assert!(status.success(), "{}", fixture.logs());
    landed.extend(produce(11).await?);
    outputs.collect_until(landed.len(), OUTPUT_TIMEOUT)?;
    outputs.poll_for(Duration::from_secs(2))?;
    let status = first.terminate(Duration::from_secs(30))?;
    assert!(status.success(), "{}", fixture.logs());

    assert_none_missing(&outputs, &landed, &fixture);
    assert_eq!(
        outputs.duplicates(),
        0,
        "a rebalance re-processed inputs\n{}",
        fixture.logs()
    );
    let logs = fixture.logs();
    assert!(
        logs.contains("partitions revoked"),
        "no rebalance happened:\n{logs}"
    );
    Ok(())
}

/// Fails with the inputs that have no output (per partition: how many and the first few
/// offsets, so a stall and a loss can be told apart) and the engines' logs.
fn assert_none_missing(
    outputs: &OutputCollector,
    landed: &[threatflow_e2e::Coordinates],
    fixture: &Fixture,
) {
    let missing = outputs.missing(landed);
    if missing.is_empty() {
        return;
    }
    let mut by_partition: std::collections::BTreeMap<i32, Vec<i64>> = Default::default();
    for (partition, offset) in &missing {
        by_partition.entry(*partition).or_default().push(*offset);
    }
    let summary: Vec<String> = by_partition
        .iter()
        .map(|(partition, offsets)| {
            let first: Vec<i64> = offsets.iter().take(5).copied().collect();
            format!(
                "partition {partition}: {} missing, first {first:?}",
                offsets.len()
            )
        })
        .collect();
    panic!(
        "{} of {} inputs have no output ({})\n{}",
        missing.len(),
        landed.len(),
        summary.join("; "),
        fixture.logs()
    );
}
