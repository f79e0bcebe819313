//! `output.format = "ocsf"` on a real broker: every operator's events that cross a threshold
//! come out as OCSF Detection Findings that validate against the pinned OCSF 1.5.0 models
//! (PyPI `py-ocsf-models`, `tests/ocsf/validate.py`, no attribute outside the schema), and
//! analysts' verdicts come back as Update / Close findings with the same `finding_info.uid`
//! (a false positive closes as Suppressed).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use threatflow::generate::{encode_json, EventGenerator};
use threatflow_e2e::all_operators::{AllOperators, OPERATORS};
use threatflow_e2e::{repository, unique_name, Broker};

/// Reads every record of the output topics, by topic, until `enough` or `timeout`.
fn read_outputs(
    bootstrap: &str,
    topics: &[&String],
    timeout: Duration,
    enough: impl Fn(&BTreeMap<String, Vec<Value>>) -> bool,
) -> BTreeMap<String, Vec<Value>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        assignment
            .add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !enough(&records) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let value = serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
            records
                .entry(message.topic().to_owned())
                .or_default()
                .push(value);
        }
    }
    records
}

fn validator_python() -> std::path::PathBuf {
    std::env::var_os("APITEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repository().join(".tools/apitest/bin/python"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_validate_as_ocsf_and_verdicts_update_or_close_them() {
    let broker = Broker::start().unwrap();
    for kind in OPERATORS {
        broker
            .create_topic(&format!("feedback.{}", kind.name()), 1)
            .unwrap();
    }
    let engine = AllOperators::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        "",
        "",
        &[("THREATFLOW_OUTPUT__FORMAT", "ocsf")],
    );
    let mut generator = EventGenerator::new(99);
    for kind in OPERATORS {
        let payloads: Vec<Vec<u8>> = (0..60)
            .map(|_| encode_json(&generator.event(kind)))
            .collect();
        threatflow_e2e::produce(&broker.bootstrap, &engine.inputs[kind.name()], &payloads)
            .await
            .unwrap();
    }
    let outputs: Vec<&String> = engine.outputs.values().collect();
    let every_operator = |records: &BTreeMap<String, Vec<Value>>| {
        outputs
            .iter()
            .all(|topic| records.get(*topic).is_some_and(|r| !r.is_empty()))
    };
    let findings = read_outputs(
        &broker.bootstrap,
        &outputs,
        Duration::from_secs(120),
        every_operator,
    );
    assert!(
        every_operator(&findings),
        "an operator wrote no finding: {:?}\n{}",
        findings
            .iter()
            .map(|(t, r)| (t, r.len()))
            .collect::<Vec<_>>(),
        engine.logs()
    );
    let created: usize = findings.values().map(Vec::len).sum();
    // Fewer findings than inputs: only events that cross a threshold become findings.
    assert!(created < 60 * OPERATORS.len(), "{created}");
    for records in findings.values() {
        for finding in records {
            assert_eq!(finding["activity_id"], 1, "{finding}");
            assert!(!finding["finding_info"]["types"]
                .as_array()
                .unwrap()
                .is_empty());
        }
    }

    // Verdicts: a false positive on a flow finding, a true positive on an alert finding.
    let pick = |operator: &str| {
        findings[&engine.outputs[operator]][0]["finding_info"]["uid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (flow_uid, alert_uid) = (pick("flow"), pick("alert"));
    for (operator, uid, verdict) in [
        ("flow", &flow_uid, "false_positive"),
        ("alert", &alert_uid, "true_positive"),
    ] {
        let record = json!({"event_id": uid, "operator": operator, "verdict": verdict,
                            "timestamp_ms": 1_796_000_000_000i64, "comment": "checked"});
        threatflow_e2e::produce(
            &broker.bootstrap,
            &format!("feedback.{operator}"),
            &[record.to_string().into_bytes()],
        )
        .await
        .unwrap();
    }
    let updated =
        |records: &BTreeMap<String, Vec<Value>>, operator: &str, uid: &str, activity: i64| {
            records.get(&engine.outputs[operator]).is_some_and(|r| {
                r.iter()
                    .any(|f| f["finding_info"]["uid"] == uid && f["activity_id"] == activity)
            })
        };
    let all = read_outputs(
        &broker.bootstrap,
        &outputs,
        Duration::from_secs(60),
        |records| {
            updated(records, "flow", &flow_uid, 3) && updated(records, "alert", &alert_uid, 2)
        },
    );
    let closed = all[&engine.outputs["flow"]]
        .iter()
        .find(|f| f["finding_info"]["uid"] == flow_uid.as_str() && f["activity_id"] == 3)
        .unwrap_or_else(|| panic!("no Close finding for {flow_uid}\n{}", engine.logs()));
    assert_eq!(closed["status_id"], 3, "suppressed: {closed}");
    assert_eq!(closed["type_uid"], 200403);
    assert!(
        updated(&all, "alert", &alert_uid, 2),
        "no Update finding for {alert_uid}"
    );

    // Every finding, created, updated and closed, validates against OCSF 1.5.0.
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: Vec<String> = all.values().flatten().map(Value::to_string).collect();
    std::fs::write(file.path(), lines.join("\n") + "\n").unwrap();
    let output = std::process::Command::new(validator_python())
        .arg(repository().join("tests/ocsf/validate.py"))
        .arg(file.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for kind in OPERATORS {
        assert!(
            report["counts"][format!("{}/1", kind.name())]
                .as_u64()
                .unwrap_or(0)
                > 0,
            "{report}"
        );
    }
    assert!(
        report["counts"]["flow/3"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    assert!(
        report["counts"]["alert/2"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
}
