//! `output.format = "ocsf"` on a real broker: every operator's events that cross a threshold
//! come out as OCSF Detection Findings that validate against the pinned OCSF 1.5.0 models
//! (PyPI `py-ocsf-models`, `tests/ocsf/validate.py`, no attribute outside the schema), and
//! analysts' verdicts come back as Update / Close findings with the same `finding_info.uid`
//! (a false positive closes as Suppressed).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use threatflow::generate::{encode_json, EventGenerator};
use threatflow_e2e::all_operators::{AllOperators, OPERATORS};
use threatflow_e2e::records::{read_records, test_tool, Record, Until};
use threatflow_e2e::{repository, succeed, Broker};

/// Every record of the output topics as JSON, by topic, until `enough` or `timeout`.
fn read_outputs(
    bootstrap: &str,
    topics: &[&String],
    timeout: Duration,
    enough: impl Fn(&BTreeMap<String, Vec<Value>>) -> bool,
) -> BTreeMap<String, Vec<Value>> {
    let by_topic = |records: &[Record]| {
        let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for record in records {
            grouped
                .entry(record.topic.clone())
                .or_default()
                .push(record.json());
        }
        grouped
    };
    let names: Vec<&str> = topics.iter().map(|topic| topic.as_str()).collect();
    // Few records (findings only): regrouping them on each poll costs nothing that matters.
    let records = read_records(bootstrap, &names, 1, Until::Timeout(timeout), |records| {
        enough(&by_topic(records))
    });
    by_topic(&records)
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
    let output = std::process::Command::new(test_tool("APITEST_PYTHON", "python"))
        .arg(repository().join("tests/ocsf/validate.py"))
        .arg(file.path())
        .output()
        .unwrap();
    let stdout = succeed(output);
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
