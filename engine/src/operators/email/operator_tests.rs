use std::path::PathBuf;

use super::*;
use crate::events::{Attachment, EmailEvent, PromptEvent};
use crate::operators::testing::Started;
use crate::runtime::PartitionState;

const DAY: i64 = 86_400_000;
/// Monday 2026-03-02 10:00 UTC.
const MONDAY_10: i64 = 1_772_445_600_000;

fn models_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
}

fn started(_state_dir: &std::path::Path, config: EmailOperatorConfig) -> Started {
    let mut operators = crate::config::OperatorSections::default();
    operators.set("email", &config).unwrap();
    crate::operators::testing::start(
        "email",
        &OperatorContext {
            model_dir: &models_root(),
            operators: &operators,
            input_topic: "emails",
            kafka: None,
            pinned_version_dir: None,
        },
    )
    .unwrap()
}

/// The window state of `partition`.
fn windows(operator: &mut Started, partition: i32) -> &mut PartitionWindows {
    operator
        .state
        .partition::<PartitionWindows>(partition)
        .unwrap()
}

/// A fresh state rebuilt from changelog records, as a restore does.
fn restored(records: &[crate::runtime::StateChange]) -> PartitionWindows {
    let mut state = PartitionWindows::default();
    for (key, value) in records {
        state.restore_entry(key, value.as_deref()).unwrap();
    }
    state
}

fn normal(from: &str, date_ms: i64) -> EmailEvent {
    EmailEvent {
        event_id: None,
        from: from.to_owned(),
        to: vec!["colleague@corp.example".to_owned()],
        cc: vec![],
        bcc: vec![],
        date_ms: Some(date_ms),
        subject: "Re: build failure on the test cluster".to_owned(),
        body: "I rebuilt the package and the tests pass now. Let me know if the nightly job still fails tomorrow.".to_owned(),
        attachments: vec![],
        raw_rfc822: None,
    }
}

fn exfiltration(from: &str, date_ms: i64) -> EmailEvent {
    EmailEvent {
        to: vec!["me.private77@protonmail.com".to_owned()],
        subject: "confidential internal copy".to_owned(),
        body: "secret credentials and the restricted proprietary download, leaked copy of everything confidential".to_owned(),
        attachments: (0..3)
            .map(|i| Attachment {
                filename: format!("dump{i}.zip"),
                content_type: "application/zip".to_owned(),
                size_bytes: 15_000_000,
            })
            .collect(),
        ..normal(from, date_ms)
    }
}

fn sourced(partition: i32, offset: i64, email: EmailEvent) -> SourcedEvent {
    let mut event = SourcedEvent::at_offset("emails", offset, InputEvent::Email(Box::new(email)));
    event.source.partition = partition;
    event.event_id = event.source.derived_event_id();
    event
}

fn scored(outcome: &Outcome) -> (&Scored, &[ExtraRecord]) {
    match outcome {
        Outcome::Scored { scored, extra } => (scored, extra),
        Outcome::Rejected { detail } => panic!("rejected: {detail}"),
    }
}

/// Ten normal messages a day for a week from each of 6 users, at work hours.
fn normal_week(partition: i32, first_offset: i64) -> Vec<SourcedEvent> {
    let mut events = Vec::new();
    let mut offset = first_offset;
    for day in 0..5 {
        for user in 0..6 {
            for k in 0..2 {
                let at = MONDAY_10 + day * DAY + (user * 2 + k) * 600_000;
                events.push(sourced(
                    partition,
                    offset,
                    normal(&format!("user{user}@corp.example"), at),
                ));
                offset += 1;
            }
        }
    }
    events
}

use crate::scored::Scored;

#[test]
fn messages_are_scored_with_detectors_votes_user_and_explanation() {
    let state = tempfile::tempdir().unwrap();
    let mut operator = started(state.path(), EmailOperatorConfig::default());
    assert_eq!(operator.model_version(), "v1");
    let outcomes = operator.score_batch(&normal_week(0, 0)).unwrap();
    let (record, _) = scored(&outcomes[0]);
    assert_eq!(record.operator, "email");
    assert_eq!(record.labels["user"], "user0");
    assert_eq!(record.labels["window"], "folded");
    for key in [
        "anomaly_score",
        "autoencoder",
        "one_class",
        "isolation_forest",
        "user_risk",
        "votes",
    ] {
        assert!(record.scores.contains_key(key), "{key}");
    }
    assert!(record
        .explanation
        .iter()
        .any(|c| c.name.starts_with("detector:")));
    assert_eq!(record.explanation.len(), 5 + 3);
    let bad = operator
        .score_batch(&[sourced(
            0,
            99,
            exfiltration(
                "Jane <jane@corp.example>",
                MONDAY_10 + 5 * DAY + 3 * 3_600_000,
            ),
        )])
        .unwrap();
    let (bad_record, _) = scored(&bad[0]);
    assert!(bad_record.scores["anomaly_score"] > record.scores["anomaly_score"]);
    assert_eq!(bad_record.labels["voted_anomaly"], "true");
    assert!(bad_record
        .thresholds_crossed
        .contains(&"voted_anomaly".to_owned()));
}

#[test]
fn malformed_mail_is_rejected_without_quoting_it() {
    let state = tempfile::tempdir().unwrap();
    let mut operator = started(state.path(), EmailOperatorConfig::default());
    let mut no_sender = normal("secret-person", MONDAY_10);
    no_sender.body = "the launch codes".to_owned();
    let mut raw_garbage = normal("", MONDAY_10);
    raw_garbage.raw_rfc822 = Some("the launch codes".to_owned());
    let mut negative = normal("a@corp.example", MONDAY_10);
    negative.attachments.push(Attachment {
        filename: "x".into(),
        content_type: "x/y".into(),
        size_bytes: -5,
    });
    let prompt = SourcedEvent::at_offset(
        "emails",
        3,
        InputEvent::Prompt(PromptEvent {
            event_id: None,
            text: "the launch codes".into(),
            user: None,
            app: None,
            session_id: None,
            timestamp_ms: None,
        }),
    );
    let outcomes = operator
        .score_batch(&[
            sourced(0, 0, no_sender),
            sourced(0, 1, raw_garbage),
            sourced(0, 2, negative),
            prompt,
        ])
        .unwrap();
    for outcome in &outcomes {
        let Outcome::Rejected { detail } = outcome else {
            panic!("expected a rejection");
        };
        assert!(
            !detail.contains("launch") && !detail.contains("secret"),
            "{detail}"
        );
    }
}

#[test]
fn an_insiders_user_risk_rises_above_the_benign_users() {
    let state = tempfile::tempdir().unwrap();
    let mut operator = started(state.path(), EmailOperatorConfig::default());
    let mut events = normal_week(0, 0);
    let next = events.len() as i64;
    // user3 exfiltrates at night on Thursday and Friday of the following week.
    for k in 0..6 {
        let at = MONDAY_10 + 10 * DAY + (k / 3) * DAY + 13 * 3_600_000 + k * 60_000;
        events.push(sourced(0, next + k, exfiltration("user3@corp.example", at)));
    }
    let outcomes = operator.score_batch(&events).unwrap();
    let users: Vec<&ExtraRecord> = outcomes.iter().flat_map(|o| scored(o).1).collect();
    assert!(users
        .iter()
        .all(|r| r.topic == "scored.email-users" && r.scored.labels["entity_type"] == "user"));
    let last_risk = |user: &str| {
        users
            .iter()
            .rev()
            .find(|r| r.key == user)
            .map(|r| r.scored.scores["user_risk"])
            .unwrap()
    };
    let insider = last_risk("user3");
    for benign in ["user0", "user1", "user2", "user4", "user5"] {
        assert!(
            insider > last_risk(benign) + 0.2,
            "{insider} vs {benign} {}",
            last_risk(benign)
        );
    }
    let record = users.iter().rev().find(|r| r.key == "user3").unwrap();
    assert!(record.scored.scores["voted_anomalies"] >= 2.0);
    let window = &windows(&mut operator, 0).users["user3"];
    assert!(window.sightings.iter().filter(|s| s.voted).count() >= 5);
    assert_eq!(record.scored.labels["behaviour"], "absent");
}

#[test]
fn state_restored_after_a_restart_equals_the_state_before_and_replays_are_not_folded_twice() {
    let state = tempfile::tempdir().unwrap();
    let first_events: Vec<SourcedEvent> = normal_week(0, 0)
        .into_iter()
        .chain(normal_week(3, 100))
        .collect();
    let mut operator = started(state.path(), EmailOperatorConfig::default());
    operator.score_batch(&first_events).unwrap();
    let before_0 = windows(&mut operator, 0).clone();
    let before_3 = windows(&mut operator, 3).clone();
    assert_eq!(before_0.next_offset, 60);
    assert_eq!(before_3.next_offset, 160);
    // What a checkpoint writes to the changelog rebuilds the same state elsewhere.
    let changes_0 = windows(&mut operator, 0).take_changes();
    let changes_3 = windows(&mut operator, 3).take_changes();
    assert_eq!(
        changes_0.len(),
        before_0.users.len() + 1,
        "users + partition facts"
    );
    assert!(
        windows(&mut operator, 0).take_changes().is_empty(),
        "nothing changed since"
    );
    let (moved_0, moved_3) = (restored(&changes_0), restored(&changes_3));
    assert_eq!(moved_0.users, before_0.users);
    assert_eq!(moved_3.users, before_3.users);
    assert_eq!(moved_0.next_offset, 60);
    assert_eq!(moved_0.stream_time_ms, before_0.stream_time_ms);
    let mut restarted = started(state.path(), EmailOperatorConfig::default());
    restarted.state.insert(0, Box::new(moved_0));
    restarted.state.insert(3, Box::new(moved_3));
    // At-least-once redelivery of the last 10 events: scored again, state unchanged.
    let outcomes = restarted.score_batch(&first_events[50..60]).unwrap();
    for outcome in &outcomes {
        assert_eq!(scored(outcome).0.labels["window"], "replayed");
    }
    let users_before: Vec<_> = before_0
        .users
        .iter()
        .map(|(k, w)| (k.clone(), w.sightings.clone()))
        .collect();
    for (user, sightings) in users_before {
        assert_eq!(windows(&mut restarted, 0).users[&user].sightings, sightings);
    }
}

#[test]
fn late_events_are_counted_and_the_timer_emits_changed_users_and_heartbeats() {
    let state = tempfile::tempdir().unwrap();
    let config = EmailOperatorConfig {
        user_min_change: 1.0, // only the timer emits
        user_timer_ms: 1,
        user_refresh_ms: 1,
        ..EmailOperatorConfig::default()
    };
    let mut operator = started(state.path(), config);
    let outcomes = operator.score_batch(&normal_week(0, 0)).unwrap();
    // The first record of a user is always due.
    assert_eq!(outcomes.iter().map(|o| scored(o).1.len()).sum::<usize>(), 6);
    let late = operator
        .score_batch(&[sourced(
            0,
            500,
            normal("user1@corp.example", MONDAY_10 - 3 * DAY),
        )])
        .unwrap();
    assert_eq!(scored(&late[0]).0.labels["window"], "late");
    assert_eq!(windows(&mut operator, 0).late_dropped, 1);
    windows(&mut operator, 0).take_changes();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let records = operator.tick(SystemTime::now());
    assert_eq!(
        records.len(),
        6,
        "every user: changed or due for a heartbeat"
    );
    assert!(records
        .iter()
        .all(|r| r.scored.labels["trigger"] == "timer"));
    // The timer's emitted risks are state too: the next checkpoint carries every user.
    let changes = windows(&mut operator, 0).take_changes();
    assert_eq!(
        changes
            .iter()
            .filter(|(key, _)| key.starts_with("user"))
            .count(),
        6
    );
}
