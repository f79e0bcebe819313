//! Reliability on the real broker: a bad record costs one dead letter that always fits, an
//! unwritable output stops its binding loudly, a dying operator or a failing ONNX Runtime
//! costs no dead letter and no input, and every hostile input gets its reason code without
//! its text reaching a detail or a log line.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use threatflow::dead_letter::DeadLetter;
use threatflow::decode::confluent_frame;
use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow_e2e::{
    free_loopback_address, http_get, repository, unique_name, Broker, EngineProcess,
    OutputCollector, TestTopics,
};

const TIMEOUT: Duration = Duration::from_secs(60);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

/// Writes `config` into `dir` and starts the engine on it with `env`.
fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> anyhow::Result<EngineProcess> {
    let config_path = dir.join(format!("{}.toml", unique_name("engine")));
    std::fs::write(&config_path, config)?;
    EngineProcess::start_with_env(binary(), &config_path, &dir.join("engine.log"), env)
}

fn engine_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
}

/// Produces `(key, value)` records (value `None` = tombstone), allowing records up to 8 MB.
async fn produce_raw(
    bootstrap: &str,
    topic: &str,
    records: &[Option<Vec<u8>>],
) -> anyhow::Result<Vec<(i32, i64)>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.max.bytes", "8000000")
        .create()?;
    let mut landed = Vec::new();
    for (index, value) in records.iter().enumerate() {
        let key = format!("k{index}");
        let mut record = FutureRecord::<str, [u8]>::to(topic).key(&key);
        if let Some(value) = value {
            record = record.payload(value.as_slice());
        }
        let delivery = producer
            .send(record, Timeout::Never)
            .await
            .map_err(|(error, _)| anyhow::anyhow!("produce failed: {error}"))?;
        landed.push((delivery.partition, delivery.offset));
    }
    Ok(landed)
}

/// Reads dead letters of `topic` until `expected` arrived or the timeout passes.
fn read_dead_letters(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    expected: usize,
) -> anyhow::Result<Vec<DeadLetter>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("dlq-reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, i32::try_from(partition)?, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut letters = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while letters.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            letters.push(serde_json::from_slice(
                message.payload().unwrap_or_default(),
            )?);
        }
    }
    Ok(letters)
}

fn flow_payloads(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut generator = EventGenerator::new(seed);
    (0..count)
        .map(|_| encode_json(&generator.event(SchemaKind::Flow)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_900_kb_garbage_record_is_one_truncated_dead_letter_and_the_topic_moves_on(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 1)?;
    let dir = tempfile::tempdir()?;
    let garbage: Vec<u8> = (0..900_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut records = vec![Some(garbage)];
    records.extend(flow_payloads(31, 3).into_iter().map(Some));
    let landed = produce_raw(&broker.bootstrap, &topics.input, &records).await?;
    let config = topics.engine_config(&broker.bootstrap, &dir.path().join("state"), "", "");
    let engine = start(dir.path(), &config, &[])?;
    let mut outputs = OutputCollector::new(&broker.bootstrap, &topics)?;
    outputs.collect_until(landed.len(), TIMEOUT)?;
    drop(engine);
    assert!(
        outputs.missing(&landed).is_empty(),
        "{}",
        engine_log(dir.path())
    );
    for valid in &landed[1..] {
        assert_eq!(
            outputs.scored.get(valid),
            Some(&1),
            "valid input after the garbage"
        );
    }
    let letters = read_dead_letters(&broker.bootstrap, &topics.dead_letter, 1, 1)?;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.reason.code(), "undecodable");
    assert!(
        letter.value_truncated,
        "a 900 kB value cannot fit in base64 JSON"
    );
    assert_eq!(letter.original_size, Some(900_000));
    let kept = letter.original_value.as_deref().unwrap_or_default();
    assert!(!kept.is_empty() && kept.len() < 900_000);
    assert_eq!(
        kept,
        &records[0].as_deref().unwrap_or_default()[..kept.len()]
    );
    Ok(())
}

/// Polls `/ready` until its body lists `input_topic` under `stopped_bindings` (or the timeout
/// passes) and returns the last body seen.
fn ready_once_binding_stopped(http: &str, input_topic: &str) -> serde_json::Value {
    let deadline = Instant::now() + TIMEOUT;
    let mut ready = serde_json::Value::Null;
    while Instant::now() < deadline && !ready["stopped_bindings"][input_topic].is_string() {
        if let Ok((_, text)) = http_get(http, "/ready") {
            ready = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_topic_makes_the_engine_not_ready_without_retrying_forever(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let mut topics = TestTopics::create(&broker, 1)?;
    // Tansu has no ACLs; a topic name Kafka refuses is what this engine cannot write here.
    topics.output = format!("{} is not a valid topic name!", topics.output);
    let dir = tempfile::tempdir()?;
    let inputs = flow_payloads(32, 20);
    threatflow_e2e::produce(&broker.bootstrap, &topics.input, &inputs).await?;
    let http = free_loopback_address()?;
    let config = topics.engine_config(&broker.bootstrap, &dir.path().join("state"), &http, "");
    let mut engine = start(dir.path(), &config, &[])?;
    let body = ready_once_binding_stopped(&http, &topics.input).to_string();
    let (status, body_now) = http_get(&http, "/ready")?;
    assert_eq!(status, 503, "{body_now}\n{}", engine_log(dir.path()));
    assert!(body.contains(&topics.input), "{body}");
    let log = engine_log(dir.path());
    assert!(log.contains("binding stopped"), "{log}");
    assert!(
        log.contains("is not a valid topic name"),
        "the error names the topic: {log}"
    );
    // No retry loop: the log does not keep growing with produce warnings.
    let warnings = |log: &str| log.matches("will retry").count();
    let before = warnings(&engine_log(dir.path()));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(warnings(&engine_log(dir.path())), before, "still retrying");
    assert!(
        engine.wait_exit(Duration::ZERO)?.is_none(),
        "the engine stays up, not ready"
    );
    let committed =
        threatflow_e2e::committed_total(&broker.bootstrap, &topics.group, &topics.input, 1)?;
    assert_eq!(committed, 0, "inputs committed without their outputs");
    Ok(())
}

/// Polls `/ready` until the engine exits; returns the statuses seen and the exit status.
fn watch_until_exit(
    engine: &mut EngineProcess,
    http: &str,
) -> anyhow::Result<(Vec<u16>, std::process::ExitStatus)> {
    let deadline = Instant::now() + TIMEOUT;
    let mut statuses = Vec::new();
    while Instant::now() < deadline {
        if let Some(status) = engine.wait_exit(Duration::ZERO)? {
            return Ok((statuses, status));
        }
        if let Ok((code, _)) = http_get(http, "/ready") {
            if statuses.last() != Some(&code) {
                statuses.push(code);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    anyhow::bail!("engine did not exit; /ready went {statuses:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_operator_fails_the_engine_and_loses_no_input() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 2)?;
    let dir = tempfile::tempdir()?;
    let inputs = flow_payloads(33, 300);
    let landed = threatflow_e2e::produce(&broker.bootstrap, &topics.input, &inputs).await?;
    let http = free_loopback_address()?;
    let passthrough = topics.engine_config(
        &broker.bootstrap,
        &dir.path().join("state"),
        &http,
        "batch_size = 20",
    );
    let faulty = passthrough.replace("operator = \"passthrough\"", "operator = \"fault\"")
        + "\n[operators.fault]\nmode = \"panic\"\nafter_events = 100\n";
    let mut engine = start(dir.path(), &faulty, &[])?;
    let (statuses, exit) = watch_until_exit(&mut engine, &http)?;
    let log = engine_log(dir.path());
    assert!(!exit.success(), "exit {exit:?}\n{log}");
    assert!(log.contains("panicked"), "{log}");
    assert_eq!(statuses.last(), Some(&503), "/ready went {statuses:?}");
    // Restarted with a working operator, every input is accounted for: none was committed
    // without its output.
    let engine = start(dir.path(), &passthrough, &[])?;
    let mut outputs = OutputCollector::new(&broker.bootstrap, &topics)?;
    outputs.collect_until(landed.len(), TIMEOUT)?;
    drop(engine);
    assert!(
        outputs.missing(&landed).is_empty(),
        "{}",
        engine_log(dir.path())
    );
    assert!(outputs.dead_letters.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onnx_runtime_failure_dead_letters_nothing_and_the_prompts_are_scored_after_restart(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 1)?;
    let dir = tempfile::tempdir()?;
    let prompts: Vec<Vec<u8>> = (0..120)
        .map(|index| {
            serde_json::to_vec(&serde_json::json!({
                "text": format!("please summarise meeting note number {index} for the team")
            }))
            .unwrap_or_default()
        })
        .collect();
    let landed = threatflow_e2e::produce(&broker.bootstrap, &topics.input, &prompts).await?;
    let http = free_loopback_address()?;
    let config = topics.operator_config(
        &broker.bootstrap,
        &dir.path().join("state"),
        &http,
        ("prompt", "prompt"),
        &repository().join("models"),
        "batch_size = 10",
    ) + "\n[operators.prompt.l2]\nmax_batch = 4\n";
    let mut engine = start(
        dir.path(),
        &config,
        &[(
            threatflow::operators::prompt::batcher::FAULT_INJECTION_ENV,
            "3",
        )],
    )?;
    let (_, exit) = watch_until_exit(&mut engine, &http)?;
    let log = engine_log(dir.path());
    assert!(!exit.success(), "{log}");
    assert!(log.contains("injected fault"), "{log}");
    assert!(log.contains("fatal engine failure"), "{log}");
    let engine = start(dir.path(), &config, &[])?;
    let mut outputs = OutputCollector::new(&broker.bootstrap, &topics)?;
    outputs.collect_until(landed.len(), TIMEOUT)?;
    drop(engine);
    assert!(
        outputs.missing(&landed).is_empty(),
        "{}",
        engine_log(dir.path())
    );
    assert!(
        outputs.dead_letters.is_empty(),
        "an engine failure made dead letters: {:?}",
        outputs.dead_letters
    );
    Ok(())
}

/// A valid flow event as JSON text with `field` set to `literal` (raw JSON text).
fn flow_with(seed: u64, field: &str, literal: &str) -> Vec<u8> {
    let mut generator = EventGenerator::new(seed);
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&encode_json(&generator.event(SchemaKind::Flow)))
            .unwrap_or_default();
    object.insert(field.to_owned(), serde_json::json!("@@PLACEHOLDER@@"));
    serde_json::to_string(&object)
        .unwrap_or_default()
        .replace("\"@@PLACEHOLDER@@\"", literal)
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_each_get_their_reason_and_their_text_reaches_no_detail_or_log(
) -> anyhow::Result<()> {
    const SECRET: &str = "hunter2-do-not-log";
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 1)?;
    let dir = tempfile::tempdir()?;
    let mut generator = EventGenerator::new(34);
    let prompt_avro = threatflow::decode::encode_input_avro(&generator.event(SchemaKind::Prompt))?;
    let flow_avro = threatflow::decode::encode_input_avro(&generator.event(SchemaKind::Flow))?;
    let secret_json = format!("\"{SECRET}\"");
    let mut truncated = flow_with(35, "service", &secret_json);
    truncated.truncate(truncated.len() - 40);
    let mut five_mb = format!("{{\"service\": \"{SECRET}").into_bytes();
    five_mb.resize(5 * 1024 * 1024, b'a');
    let depth = 100_000;
    let mut nested = "[".repeat(depth).into_bytes();
    nested.extend(std::iter::repeat_n(b']', depth));
    let mut invalid_utf8 = flow_with(36, "service", &secret_json);
    let at = invalid_utf8
        .windows(SECRET.len())
        .position(|window| window == SECRET.as_bytes())
        .unwrap_or(0);
    invalid_utf8[at] = 0xff;
    invalid_utf8[at + 1] = 0xfe;
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("truncated json", Some(truncated), "undecodable"),
        ("5 MB", Some(five_mb), "oversized"),
        ("100k-deep nesting", Some(nested), "undecodable"),
        (
            "NaN",
            Some(flow_with(37, "duration", "NaN")),
            "invalid_value",
        ),
        (
            "Infinity",
            Some(flow_with(38, "duration", "Infinity")),
            "invalid_value",
        ),
        (
            "1e400",
            Some(flow_with(39, "src_bytes", "1e400")),
            "invalid_value",
        ),
        (
            "out of range",
            Some(flow_with(40, "src_bytes", "-5")),
            "invalid_value",
        ),
        (
            "wrong type",
            Some(flow_with(41, "src_bytes", &secret_json)),
            "wrong_schema",
        ),
        (
            "null",
            Some(flow_with(42, "duration", "null")),
            "missing_field",
        ),
        (
            "missing field",
            Some(br#"{"service": "http"}"#.to_vec()),
            "missing_field",
        ),
        (
            "unknown schema id",
            Some(confluent_frame(999, &flow_avro)),
            "unknown_schema_id",
        ),
        (
            "foreign schema id",
            Some(confluent_frame(8, &prompt_avro)),
            "wrong_schema",
        ),
        ("invalid utf-8", Some(invalid_utf8), "undecodable"),
        ("empty", Some(Vec::new()), "undecodable"),
        ("tombstone", None, "undecodable"),
    ];
    let mut records: Vec<Option<Vec<u8>>> =
        cases.iter().map(|(_, value, _)| value.clone()).collect();
    records.push(Some(encode_json(&generator.event(SchemaKind::Flow))));
    let landed = produce_raw(&broker.bootstrap, &topics.input, &records).await?;
    let config = topics.engine_config(
        &broker.bootstrap,
        &dir.path().join("state"),
        "",
        "[schema_ids]\n\"7\" = \"flow\"\n\"8\" = \"prompt\"\n",
    );
    let engine = start(dir.path(), &config, &[])?;
    let mut outputs = OutputCollector::new(&broker.bootstrap, &topics)?;
    outputs.collect_until(landed.len(), TIMEOUT)?;
    drop(engine);
    let log = engine_log(dir.path());
    assert!(outputs.missing(&landed).is_empty(), "{log}");
    assert_eq!(
        outputs.scored.get(&landed[cases.len()]),
        Some(&1),
        "the valid input after them"
    );
    for ((name, _, reason), coordinates) in cases.iter().zip(&landed) {
        assert_eq!(
            outputs.dead_letters.get(coordinates),
            Some(&vec![(*reason).to_owned()]),
            "{name}"
        );
    }
    let letters = read_dead_letters(&broker.bootstrap, &topics.dead_letter, 1, cases.len())?;
    assert_eq!(letters.len(), cases.len());
    for letter in &letters {
        assert!(
            !letter.detail.contains(SECRET),
            "detail quotes the input: {}",
            letter.detail
        );
        assert!(!letter.detail.contains("hunter2"), "{}", letter.detail);
        assert!(letter.detail.len() <= 300, "{}", letter.detail);
    }
    let oversized = letters
        .iter()
        .find(|letter| letter.reason.code() == "oversized")
        .ok_or_else(|| anyhow::anyhow!("no oversized dead letter"))?;
    assert!(oversized.value_truncated);
    assert_eq!(oversized.original_size, Some(5 * 1024 * 1024));
    assert!(!log.contains("hunter2"), "the log quotes an input:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_dead_letter_topic_stops_the_binding_and_counts_no_dead_letter(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let mut topics = TestTopics::create(&broker, 1)?;
    topics.dead_letter = format!("{} is not a valid topic name!", topics.dead_letter);
    let dir = tempfile::tempdir()?;
    let garbage: Vec<Vec<u8>> = (0..5)
        .map(|index| format!("not json {index}").into_bytes())
        .collect();
    threatflow_e2e::produce(&broker.bootstrap, &topics.input, &garbage).await?;
    let http = free_loopback_address()?;
    let config = topics.engine_config(&broker.bootstrap, &dir.path().join("state"), &http, "");
    let _engine = start(dir.path(), &config, &[])?;
    let ready = ready_once_binding_stopped(&http, &topics.input);
    let body = ready.to_string();
    assert_eq!(ready["ready"], false, "{body}");
    let reason = ready["stopped_bindings"][&topics.input]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("is not a valid topic name"), "{body}");
    let (_, metrics) = http_get(&http, "/metrics")?;
    let written = metrics.lines().any(|line| {
        line.starts_with("threatflow_dead_letters_total") && line.contains(&topics.input)
    });
    assert!(
        !written,
        "dead letters counted that were never written:\n{metrics}"
    );
    let committed =
        threatflow_e2e::committed_total(&broker.bootstrap, &topics.group, &topics.input, 1)?;
    assert_eq!(committed, 0);
    Ok(())
}
