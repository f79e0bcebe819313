//! OpenTelemetry traces: an engine with `log.otlp_endpoint` exports, over OTLP/HTTP, one
//! `batch` span per scored batch with `decode`, `score` and `emit` children, carrying counts,
//! topic, partitions and the model version — and no payload text. The collector is a local
//! receiver decoding with PyPI opentelemetry-proto (`tests/otlp/receiver.py`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The shipped prompt model (`models/prompt/v2`: v1 with its attention fused).
const SHIPPED_PROMPT_VERSION: &str = "v2";
use threatflow_e2e::records::test_tool;
use threatflow_e2e::{consume_scored, repository, Broker, OperatorEngine, TestTopics};

/// Kills the receiver when the test ends.
struct Receiver(std::process::Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_is_a_trace_with_stage_children_and_no_payload() {
    let work = tempfile::tempdir().unwrap();
    let (port_file, spans_file) = (work.path().join("port"), work.path().join("spans.jsonl"));
    let _receiver = Receiver(
        Command::new(test_tool("APITEST_PYTHON", "python"))
            .arg(repository().join("tests/otlp/receiver.py"))
            .arg(&port_file)
            .arg(&spans_file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            if !port.is_empty() {
                break port;
            }
        }
        assert!(Instant::now() < deadline, "the OTLP receiver did not start");
        std::thread::sleep(Duration::from_millis(100));
    };

    let broker = Broker::start().unwrap();
    let topics = TestTopics::create(&broker, 2).unwrap();
    let engine = OperatorEngine::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        &topics,
        ("prompt", "prompt"),
        &format!("\n[log]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let secret = "zanzibar-payload-marker";
    let payloads: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            json!({"text": format!("Please summarise note {i} about {secret}")})
                .to_string()
                .into_bytes()
        })
        .collect();
    threatflow_e2e::produce(&broker.bootstrap, &topics.input, &payloads)
        .await
        .unwrap();
    let scored = consume_scored(
        &broker.bootstrap,
        &[&topics.output],
        2,
        Duration::from_secs(90),
        |r| r.get(&topics.output).map_or(0, Vec::len) >= payloads.len(),
    );
    assert_eq!(
        scored.get(&topics.output).map_or(0, Vec::len),
        payloads.len(),
        "{}",
        engine.logs()
    );

    // The batch exporter sends on its own schedule: wait for the spans to arrive.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans: Vec<Value> = loop {
        let text = std::fs::read_to_string(&spans_file).unwrap_or_default();
        let spans: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let scored_in_batches: i64 = spans
            .iter()
            .filter(|s| s["name"] == "batch")
            .map(|s| s["attributes"]["scored"].as_i64().unwrap_or(0))
            .sum();
        if scored_in_batches >= payloads.len() as i64 || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&spans_file).unwrap_or_default();
    assert!(!text.contains(secret), "payload text in a span:\n{text}");
    let batches: Vec<&Value> = spans.iter().filter(|s| s["name"] == "batch").collect();
    assert!(
        !batches.is_empty(),
        "no batch span:\n{text}\n{}",
        engine.logs()
    );
    let scored_total: i64 = batches
        .iter()
        .map(|s| s["attributes"]["scored"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(scored_total, payloads.len() as i64, "{text}");
    for batch in &batches {
        let attributes = &batch["attributes"];
        assert_eq!(attributes["topic"], topics.input.as_str(), "{batch}");
        assert_eq!(attributes["operator"], "prompt");
        assert_eq!(attributes["model_version"], SHIPPED_PROMPT_VERSION);
        assert!(attributes["records"].as_i64().unwrap() >= 1);
        assert!(attributes["partitions"].as_str().unwrap().starts_with('['));
        assert_eq!(batch["service"], "threatflow");
        for stage in ["decode", "score", "emit"] {
            assert!(
                spans.iter().any(|s| s["name"] == stage
                    && s["parent"] == batch["span_id"]
                    && s["trace_id"] == batch["trace_id"]),
                "no {stage} child of {batch}"
            );
        }
    }
}
