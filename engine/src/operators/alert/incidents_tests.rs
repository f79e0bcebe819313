//! Correlation: an intrusion over three hosts is one incident with the right tactic
//! sequence and members; a benign burst of the same size is not; windows, re-delivery and
//! the changelog round trip.

use super::*;
use crate::operators::alert::history::{entity_keys, EntityHistory};
use crate::runtime::PartitionState;

const MINUTE: i64 = 60_000;

fn alert(id: &str, tactic: &str, user: &str, host: &str, minute: i64) -> AlertEvent {
    serde_json::from_value(serde_json::json!({
        "alert_id": id, "severity": "high", "siem_source": "splunk", "rule_id": format!("R-{tactic}"),
        "tactics": [tactic], "techniques": [], "users": [user], "hosts": [host], "ips": [],
        "ioc_count": 0, "asset_count": 1, "asset_criticality": 0.5, "event_count": 1,
        "first_seen_ms": 1_796_000_000_000_i64 + minute * MINUTE,
        "last_seen_ms": 1_796_000_000_000_i64 + minute * MINUTE
    }))
    .unwrap()
}

const SETTINGS: CorrelationSettings = CorrelationSettings {
    window_ms: 120 * MINUTE,
    max_alerts: 50,
    min_tactics: 3,
    min_risk: 0.0,
    entities: EntityKinds::ALL,
};

/// What one observation did, with a copy of the group as it left it.
struct Seen {
    declared: bool,
    changed: bool,
    first_declared: bool,
    incident: Incident,
}

fn observe(book: &mut IncidentBook, alert: &AlertEvent, risk: f64) -> Seen {
    let joined = book
        .observe(
            alert,
            &entity_keys(alert),
            &format!("ev-{}", alert.alert_id),
            risk,
            &SETTINGS,
        )
        .unwrap();
    Seen {
        declared: joined.declared,
        changed: joined.changed,
        first_declared: joined.first_declared,
        incident: book.get(&joined.id).unwrap().clone(),
    }
}

#[test]
fn an_intrusion_over_three_hosts_is_one_incident_in_kill_chain_order() {
    let mut book = IncidentBook::default();
    let steps = [
        alert("a1", "TA0001", "j.doe", "ws-17", 0),
        alert("a2", "TA0002", "j.doe", "ws-17", 5),
        alert("a3", "TA0006", "j.doe", "ws-17", 12),
        alert("a4", "TA0008", "j.doe", "srv-files", 25),
        alert("a5", "TA0010", "svc-backup", "srv-files", 40),
    ];
    let joined: Vec<Seen> = steps.iter().map(|a| observe(&mut book, a, 40.0)).collect();
    assert_eq!(book.len(), 1);
    assert_eq!(
        joined.iter().map(|j| j.declared).collect::<Vec<_>>(),
        [false, false, true, true, true]
    );
    assert_eq!(
        joined.iter().map(|j| j.first_declared).collect::<Vec<_>>(),
        [false, false, true, false, false]
    );
    let incident = &joined[4].incident;
    let tactics: Vec<&str> = incident.tactics.iter().map(|s| s.tactic.as_str()).collect();
    assert_eq!(tactics, ["TA0001", "TA0002", "TA0006", "TA0008", "TA0010"]);
    let members: Vec<&str> = incident
        .members
        .iter()
        .map(|m| m.alert_id.as_str())
        .collect();
    assert_eq!(members, ["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(
        incident
            .entities
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        [
            "host:srv-files",
            "host:ws-17",
            "user:j.doe",
            "user:svc-backup"
        ]
    );
    assert_eq!(incident.id, "inc-ev-a1");
    // Risk grows with progression at a constant member risk.
    let risks: Vec<f64> = joined.iter().map(|j| j.incident.risk()).collect();
    assert!(risks.windows(2).all(|w| w[1] >= w[0]), "{risks:?}");
    assert!(risks[4] > 80.0 && risks[0] == 40.0, "{risks:?}");
    assert_eq!(
        incident.narrative(),
        "initial access → execution → credential access → lateral movement → exfiltration \
         within 40 min, 4 entities, 5 alerts"
    );
}

#[test]
fn a_benign_burst_of_the_same_size_is_no_incident() {
    let mut book = IncidentBook::default();
    // Patch day: the admin account runs the same execution alert on many hosts.
    for index in 0..5 {
        let burst = alert(
            &format!("p{index}"),
            "TA0002",
            "patch-admin",
            &format!("ws-{index}"),
            index,
        );
        assert!(!observe(&mut book, &burst, 30.0).declared);
    }
    assert_eq!(book.len(), 1);
}

#[test]
fn windows_redelivery_expiry_and_bounds_hold() {
    let mut book = IncidentBook::default();
    let first = alert("w1", "TA0001", "u", "h", 0);
    observe(&mut book, &first, 10.0);
    let again = observe(&mut book, &first, 10.0);
    assert!(!again.changed);
    assert_eq!(again.incident.alert_count, 1);
    // Beyond the window: a new group.
    let late = alert("w2", "TA0002", "u", "h", 200);
    assert_eq!(observe(&mut book, &late, 10.0).incident.id, "inc-ev-w2");
    assert_eq!(book.len(), 2);
    book.expire(1_796_000_000_000 + 200 * MINUTE, SETTINGS.window_ms);
    assert_eq!(book.len(), 1);
    let small = CorrelationSettings {
        max_alerts: 2,
        ..SETTINGS
    };
    let mut bounded = IncidentBook::default();
    for index in 0..5 {
        let a = alert(&format!("b{index}"), "TA0002", "u", "h", index);
        bounded.observe(&a, &entity_keys(&a), &format!("ev-b{index}"), 5.0, &small);
    }
    let joined = bounded
        .observe(&first, &entity_keys(&first), "ev-x", 5.0, &small)
        .unwrap();
    let group = bounded.get(&joined.id).unwrap();
    assert_eq!((group.members.len(), group.alert_count), (2, 6));
}

#[test]
fn incidents_follow_their_partition_through_the_changelog() {
    let mut history = EntityHistory::default();
    for a in [
        alert("c1", "TA0001", "u", "h1", 0),
        alert("c2", "TA0002", "u", "h2", 3),
    ] {
        let keys = entity_keys(&a);
        history
            .incidents
            .observe(&a, &keys, &format!("ev-{}", a.alert_id), 50.0, &SETTINGS);
    }
    let changes = history.take_changes();
    let mut restored = EntityHistory::default();
    for (key, value) in &changes {
        restored.restore_entry(key, value.as_deref()).unwrap();
    }
    assert_eq!(restored.incidents.len(), 1);
    let next = alert("c3", "TA0008", "u", "h3", 10);
    let joined = restored
        .incidents
        .observe(&next, &entity_keys(&next), "ev-c3", 50.0, &SETTINGS)
        .unwrap();
    assert_eq!(joined.id, "inc-ev-c1");
    assert!(joined.declared);
    assert!(history
        .snapshot()
        .iter()
        .any(|(key, _)| key == "incident:inc-ev-c1"));
}

#[test]
fn incident_records_are_ocsf_create_then_update_findings_keyed_by_the_incident() {
    use crate::events::InputEvent;
    use crate::operators::SourcedEvent;
    let mut book = IncidentBook::default();
    let steps = [
        alert("o1", "TA0001", "u", "h", 0),
        alert("o2", "TA0002", "u", "h", 5),
        alert("o3", "TA0006", "u", "h", 9),
        alert("o4", "TA0008", "u", "h2", 20),
    ];
    let mut findings = Vec::new();
    for (offset, step) in steps.iter().enumerate() {
        let joined = observe(&mut book, step, 70.0);
        if joined.declared {
            let sourced = SourcedEvent::at_offset(
                "alerts",
                offset as i64,
                InputEvent::Alert(Box::new(step.clone())),
            );
            let record = record(&joined.incident, &sourced, "v1", 0, !joined.first_declared);
            assert!(crate::ocsf::is_incident(&record));
            findings.push(crate::ocsf::incident_finding(&record, false).unwrap());
        }
    }
    assert_eq!(findings.len(), 2);
    assert_eq!(
        (
            findings[0]["activity_id"].clone(),
            findings[0]["type_uid"].clone()
        ),
        (1.into(), 200401.into())
    );
    assert_eq!(
        (
            findings[1]["activity_id"].clone(),
            findings[1]["status"].clone()
        ),
        (2.into(), "In Progress".into())
    );
    for finding in &findings {
        assert_eq!(finding["finding_info"]["uid"], "inc-ev-o1");
        assert!(finding["finding_info"]["title"]
            .as_str()
            .unwrap()
            .contains("initial access → execution"));
    }
}

fn with_ips(mut alert: AlertEvent, ips: &[&str]) -> AlertEvent {
    alert.ips = ips.iter().map(|ip| (*ip).to_owned()).collect();
    alert
}

#[test]
fn a_shared_source_ip_joins_alerts_of_different_users_and_hosts() {
    // The same external address phishes one user, then logs in to another host as another
    // user: only the IP ties them.
    let steps = [
        with_ips(alert("p1", "TA0001", "a.lee", "ws-1", 0), &["203.0.113.9"]),
        with_ips(
            alert("p2", "TA0006", "b.kim", "ws-2", 10),
            &[" 203.0.113.9 "],
        ),
        with_ips(
            alert("p3", "TA0008", "c.ng", "srv-9", 20),
            &["203.0.113.9", "::1"],
        ),
    ];
    let run = |kinds: EntityKinds| {
        let settings = CorrelationSettings {
            entities: kinds,
            ..SETTINGS
        };
        let mut book = IncidentBook::default();
        let ids: Vec<String> = steps
            .iter()
            .map(|a| {
                let keys = correlation_keys(a, &entity_keys(a), kinds);
                book.observe(a, &keys, &format!("ev-{}", a.alert_id), 70.0, &settings)
                    .unwrap()
                    .id
            })
            .collect();
        (book.len(), ids)
    };
    let (groups, ids) = run(EntityKinds::ALL);
    assert_eq!(groups, 1);
    assert!(ids.iter().all(|id| id == "inc-ev-p1"));
    let (groups, _) = run(EntityKinds {
        ips: false,
        ..EntityKinds::ALL
    });
    assert_eq!(groups, 3, "without IPs nothing ties the three alerts");
    // Loopback and unparsable addresses name no machine; kinds filter the entity keys.
    let odd = with_ips(
        alert("p4", "TA0002", "u", "h", 0),
        &["127.0.0.1", "0.0.0.0", "nonsense", "10.0.0.5"],
    );
    assert_eq!(
        correlation_keys(&odd, &entity_keys(&odd), EntityKinds::ALL),
        ["host:h", "ip:10.0.0.5", "user:u"]
    );
    let users_only = EntityKinds::parse(&["user".to_owned()]).unwrap();
    assert_eq!(
        correlation_keys(&odd, &entity_keys(&odd), users_only),
        ["user:u"]
    );
    assert!(EntityKinds::parse(&["mac".to_owned()]).is_err());
}

#[test]
fn group_facts_describe_the_group_an_alert_joins_before_it() {
    let mut book = IncidentBook::default();
    let first = alert("g1", "TA0001", "u", "h", 0);
    let keys = entity_keys(&first);
    assert_eq!(
        book.group_facts(&keys, first.last_seen_ms, &SETTINGS),
        GroupFacts::default()
    );
    for a in [
        first,
        alert("g2", "TA0002", "u", "h", 5),
        alert("g3", "TA0006", "u", "h", 9),
    ] {
        observe(&mut book, &a, 50.0);
    }
    let next = alert("g4", "TA0008", "u", "h2", 20);
    assert_eq!(
        book.group_facts(&entity_keys(&next), next.last_seen_ms, &SETTINGS),
        GroupFacts {
            alerts: 3,
            tactics: 3,
            incident: true
        }
    );
    // Asked again for a member (a re-delivered alert), the facts are those before it.
    let third = alert("g3", "TA0006", "u", "h", 9);
    assert_eq!(
        book.group_facts(&entity_keys(&third), third.last_seen_ms, &SETTINGS),
        GroupFacts {
            alerts: 2,
            tactics: 2,
            incident: false
        }
    );
    // Past the window, and on other entities, there is no group.
    let late = alert("g5", "TA0008", "u", "h", 9 + 121);
    assert_eq!(
        book.group_facts(&entity_keys(&late), late.last_seen_ms, &SETTINGS),
        GroupFacts::default()
    );
    let other = alert("g6", "TA0008", "v", "k", 21);
    assert_eq!(
        book.group_facts(&entity_keys(&other), other.last_seen_ms, &SETTINGS),
        GroupFacts::default()
    );
}

#[test]
fn an_incident_record_lists_the_first_members_and_counts_them_all() {
    use crate::events::InputEvent;
    use crate::operators::SourcedEvent;
    let mut book = IncidentBook::default();
    let tactics = ["TA0001", "TA0002", "TA0006", "TA0008"];
    let mut last = None;
    for index in 0..40 {
        let step = alert(
            &format!("m{index}"),
            tactics[index % tactics.len()],
            "u",
            &format!("h{index}"),
            index as i64,
        );
        last = Some((observe(&mut book, &step, 70.0), step));
    }
    let (seen, step) = last.unwrap();
    assert_eq!(seen.incident.members.len(), 40);
    let sourced = SourcedEvent::at_offset("alerts", 39, InputEvent::Alert(Box::new(step)));
    let record = record(&seen.incident, &sourced, "v1", 0, true);
    let members: Vec<&str> = record.labels["members"].split(',').collect();
    assert_eq!(members.len(), INCIDENT_LIST_LIMIT);
    assert_eq!(members[0], "m0");
    assert_eq!(
        record.labels["member_events"].split(',').count(),
        INCIDENT_LIST_LIMIT
    );
    assert_eq!(record.scores["alerts"], 40.0);
    // One user and forty hosts: 41 entities, the first 25 listed (sorted).
    assert_eq!(record.scores["entities"], 41.0);
    assert_eq!(
        record.labels["entities"].split(',').count(),
        INCIDENT_LIST_LIMIT
    );
}
