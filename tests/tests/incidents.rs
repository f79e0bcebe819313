//! Alert correlation on a real broker: a generated intrusion spread over three hosts (one
//! user moving from a workstation to two servers, five ATT&CK tactics in 40 minutes)
//! becomes one incident on the incidents topic, with the right tactic sequence and member
//! ids, and its member alerts carry the incident id; a benign burst of the same size (a
//! patch job's execution alerts on five hosts) becomes none. The engine creates the
//! incidents topic itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use threatflow::scored::Scored;
use threatflow_e2e::{consume_scored, unique_name, Broker, OperatorEngine, TestTopics};

const MINUTE: i64 = 60_000;
const START: i64 = 1_796_000_000_000;

fn alert(id: &str, tactic: &str, user: &str, host: &str, minute: i64) -> Vec<u8> {
    // Each host has its own address (correlation also joins alerts on shared IPs).
    let ip = match host {
        "srv-files" => "10.20.1.10".to_owned(),
        "srv-db" => "10.20.1.11".to_owned(),
        other => format!("10.20.0.{}", other.trim_start_matches("ws-")),
    };
    json!({
        "alert_id": id, "severity": "high", "siem_source": "elastic", "rule_id": format!("R-{tactic}"),
        "rule_name": format!("rule for {tactic}"), "tactics": [tactic], "techniques": [],
        "users": [user], "hosts": [host], "ips": [ip], "ioc_count": 0,
        "asset_count": 1, "asset_criticality": 0.6, "event_count": 3,
        "first_seen_ms": START + minute * MINUTE, "last_seen_ms": START + minute * MINUTE
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intrusion_over_three_hosts_is_one_incident_and_a_benign_burst_none() {
    let broker = Broker::start().unwrap();
    // One partition: correlation sees one partition's alerts (key alerts by entity in
    // production).
    let topics = TestTopics::create(&broker, 1).unwrap();
    // Not created here: the engine creates its incidents topic at start.
    let incident_topic = unique_name("incidents");
    let engine = OperatorEngine::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        &topics,
        ("alert", "alert"),
        // No risk floor: the test is about grouping, not about these alerts' risk.
        &format!(
            "\n[operators.alert]\nincident_topic = \"{incident_topic}\"\nincident_min_risk = 0\n"
        ),
    )
    .unwrap();
    let intrusion = [
        ("i1", "TA0001", "j.doe", "ws-17", 0),
        ("i2", "TA0002", "j.doe", "ws-17", 6),
        ("i3", "TA0006", "j.doe", "ws-17", 14),
        ("i4", "TA0008", "j.doe", "srv-files", 27),
        ("i5", "TA0010", "j.doe", "srv-db", 40),
    ];
    let burst = (0..5).map(|i| {
        (
            format!("p{i}"),
            "TA0002",
            "patch-admin",
            format!("ws-{}", 40 + i),
            2 + i,
        )
    });
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut burst = burst.peekable();
    for (id, tactic, user, host, minute) in intrusion {
        payloads.push(alert(id, tactic, user, host, minute));
        if let Some((id, tactic, user, host, minute)) = burst.next() {
            payloads.push(alert(&id, tactic, user, &host, minute));
        }
    }
    threatflow_e2e::produce(&broker.bootstrap, &topics.input, &payloads)
        .await
        .unwrap();
    let records = consume_scored(
        &broker.bootstrap,
        &[&topics.output, &incident_topic],
        1,
        Duration::from_secs(90),
        |records| {
            records.get(&topics.output).map_or(0, Vec::len) >= payloads.len()
                && records
                    .get(&incident_topic)
                    .is_some_and(|r| r.iter().any(|i| i.scores["alerts"] >= 5.0))
        },
    );
    let scored = records.get(&topics.output).cloned().unwrap_or_default();
    assert_eq!(scored.len(), payloads.len(), "{}", engine.logs());
    // The latest record per incident id is its current state.
    let incidents: BTreeMap<String, Scored> = records
        .get(&incident_topic)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|record| (record.event_id.clone(), record))
        .collect();
    let labels: Vec<_> = scored
        .iter()
        .map(|r| r.labels.get("incident").cloned())
        .collect();
    assert_eq!(
        incidents.len(),
        1,
        "{incidents:#?} {labels:?}\n{}",
        engine.logs()
    );
    let (id, incident) = incidents.iter().next().unwrap();
    assert_eq!(
        incident.labels["tactics"],
        "TA0001,TA0002,TA0006,TA0008,TA0010"
    );
    assert_eq!(incident.labels["members"], "i1,i2,i3,i4,i5");
    assert_eq!(
        incident.labels["entities"],
        "host:srv-db,host:srv-files,host:ws-17,ip:10.20.0.17,ip:10.20.1.10,ip:10.20.1.11,user:j.doe"
    );
    assert_eq!(incident.scores["alerts"], 5.0);
    // Declared by the third alert, updated by the fourth and fifth.
    assert_eq!(incident.labels["incident_update"], "true");
    assert!(incident.scores["risk"] >= incident.scores["max_member_risk"]);
    let narrative = incident.explanation[0].detail.clone().unwrap();
    assert!(
        narrative.starts_with("initial access → execution → credential access → lateral movement → exfiltration within 40 min"),
        "{narrative}"
    );
    // Members from the third tactic on carry the incident id; burst alerts never do.
    let label = |alert_id: &str| {
        scored
            .iter()
            .find(|record| record_alert_id(record) == alert_id)
            .map(|record| record.labels.get("incident").cloned().unwrap_or_default())
            .unwrap()
    };
    for member in ["i3", "i4", "i5"] {
        assert_eq!(&label(member), id, "{member}");
    }
    for benign in ["p0", "p1", "p2", "p3", "p4"] {
        assert_eq!(label(benign), "", "{benign}");
    }
}

/// The alert id of a scored alert (its input order: ids were produced in order).
fn record_alert_id(record: &Scored) -> String {
    let order = ["i1", "p0", "i2", "p1", "i3", "p2", "i4", "p3", "i5", "p4"];
    order[record.source.offset as usize].to_owned()
}
