//! The email operator as users run it: `generate` → `train` → `eval` on the command line
//! (reproducible training, the eval figures), and the engine replaying an insider scenario
//! from a real broker: the insider's user risk rises above the benign users', a behaviour
//! score from another topic is fused in, and malformed mail is dead-lettered.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use threatflow::events::{Attachment, EmailEvent, InputEvent};
use threatflow::generate::encode_json;
use threatflow_e2e::{
    consume_scored, repository, succeed, Broker, OperatorEngine, OutputCollector, TestTopics,
};

fn threatflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

fn train(data: &Path, models: &Path) {
    succeed(
        threatflow()
            .args([
                "train",
                "email",
                "--version",
                "t1",
                "--one-class-rows",
                "600",
            ])
            .arg("--data")
            .arg(data)
            .arg("--model-dir")
            .arg(models)
            .output()
            .unwrap(),
    );
}

#[test]
fn generate_train_twice_identically_and_eval_prints_the_figures() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    succeed(
        threatflow()
            .args([
                "generate",
                "emails",
                "--users",
                "60",
                "--insiders",
                "3",
                "--weeks",
                "3",
                "--seed",
                "9",
            ])
            .arg("--sources")
            .arg(repository().join("models/email/sources/ham.jsonl.gz"))
            .arg("--out")
            .arg(&data)
            .output()
            .unwrap(),
    );
    let (first, second) = (work.path().join("first"), work.path().join("second"));
    train(&data.join("train"), &first);
    train(&data.join("train"), &second);
    for file in [
        "preprocess.json",
        "autoencoder.json",
        "one_class.json",
        "isolation_forest.json",
        "scales.json",
    ] {
        let a = std::fs::read(first.join("email/t1").join(file)).unwrap();
        let b = std::fs::read(second.join("email/t1").join(file)).unwrap();
        assert!(a == b, "{file} differs between two trainings with one seed");
    }
    let stdout = succeed(
        threatflow()
            .args(["eval", "email", "--json", "--data"])
            .arg(data.join("holdout"))
            .arg("--model")
            .arg(first.join("email/t1"))
            .output()
            .unwrap(),
    );
    let figures: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let value = |key: &str| {
        figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {stdout}"))
    };
    assert!(value("message_auc") > 0.9, "{stdout}");
    assert!(value("message_pr_auc") > 0.1, "{stdout}");
    assert!(value("user_auc") > 0.8, "{stdout}");
    assert!(
        (0.0..=1.0).contains(&value("user_recall_at_5pct")),
        "{stdout}"
    );
    assert_eq!(value("insiders"), 3.0);
    assert_eq!(value("top_users"), 3.0); // ⌈0.05 · 60⌉
    assert!(stdout.contains("message level: ROC-AUC"), "{stdout}");
}

const DAY: i64 = 86_400_000;
/// Monday 2026-03-02 10:00 UTC.
const MONDAY_10: i64 = 1_772_445_600_000;

fn normal(from: &str, date_ms: i64) -> EmailEvent {
    EmailEvent {
        event_id: None,
        from: from.to_owned(),
        to: vec!["colleague@corp.example".to_owned()],
        cc: vec![],
        bcc: vec![],
        date_ms: Some(date_ms),
        subject: "Re: build failure on the test cluster".to_owned(),
        body: "I rebuilt the package and the tests pass now; the nightly job should be green."
            .to_owned(),
        attachments: vec![],
        raw_rfc822: None,
    }
}

fn exfiltration(from: &str, date_ms: i64) -> EmailEvent {
    EmailEvent {
        to: vec!["me.private77@protonmail.com".to_owned()],
        subject: "confidential internal copy".to_owned(),
        body: "secret credentials, the restricted proprietary download and a leaked copy"
            .to_owned(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_raises_an_insiders_risk_above_benign_users_and_fuses_behaviour(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    // One partition: a user's mail stays in order in one window (key the topic by sender in
    // production for the same effect with many partitions).
    let topics = TestTopics::create(&broker, 1)?;
    let users_topic = threatflow_e2e::unique_name("email-users");
    let behaviour_topic = threatflow_e2e::unique_name("entities");
    broker.create_topic(&users_topic, 1)?;
    broker.create_topic(&behaviour_topic, 1)?;
    // The alert operator's view of user1: a behaviour score of 0.9.
    let behaviour = serde_json::json!({
        "event_id": "a-1", "source": {"topic": "alerts", "partition": 0, "offset": 1, "timestamp_ms": null},
        "operator": "alert", "model_version": "v1", "scores": {"behaviour_score": 0.9},
        "labels": {"entity_type": "user", "entity": "User1"}, "explanation": [],
        "thresholds_crossed": [], "event_time_ms": MONDAY_10, "scored_at_ms": MONDAY_10
    });
    threatflow_e2e::produce(
        &broker.bootstrap,
        &behaviour_topic,
        &[serde_json::to_vec(&behaviour)?],
    )
    .await?;

    let extra = format!(
        "[operators.email]\nuser_topic = \"{users_topic}\"\nbehaviour_topic = \"{behaviour_topic}\"\nuser_timer_ms = 500\n"
    );
    let engine = OperatorEngine::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        &topics,
        ("email", "email"),
        &extra,
    )?;
    let logs = || engine.logs();
    // Give the behaviour feed a moment to read its topic.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A week of normal mail from six users, then user3 exfiltrates at night.
    let mut events = Vec::new();
    for day in 0..5 {
        for user in 0..6 {
            for k in 0..2 {
                let at = MONDAY_10 + day * DAY + (user * 2 + k) * 600_000;
                events.push(normal(&format!("User{user} <user{user}@corp.example>"), at));
            }
        }
    }
    for k in 0..6 {
        let at = MONDAY_10 + 10 * DAY + (k / 3) * DAY + 13 * 3_600_000 + k * 60_000;
        events.push(exfiltration("user3@corp.example", at));
    }
    let mut payloads: Vec<Vec<u8>> = events
        .into_iter()
        .map(|e| encode_json(&InputEvent::Email(Box::new(e))))
        .collect();
    let mut malformed = normal("nobody", MONDAY_10);
    malformed.from = "no address here".to_owned();
    payloads.push(encode_json(&InputEvent::Email(Box::new(malformed))));
    let landed = threatflow_e2e::produce(&broker.bootstrap, &topics.input, &payloads).await?;

    let mut collector = OutputCollector::new(&broker.bootstrap, &topics)?;
    collector.collect_until(payloads.len(), Duration::from_secs(90))?;
    assert_eq!(
        collector
            .dead_letters
            .get(landed.last().unwrap())
            .map(Vec::as_slice),
        Some(&["operator_rejected".to_owned()][..]),
        "{}",
        logs()
    );
    let records = consume_scored(
        &broker.bootstrap,
        &[&topics.output, &users_topic],
        1,
        Duration::from_secs(60),
        |r| {
            r.get(&topics.output).map_or(0, Vec::len) >= payloads.len() - 1
                && r.get(&users_topic).is_some_and(|u| {
                    u.iter().any(|s| {
                        s.labels["entity"] == "user3" && s.scores["voted_anomalies"] >= 2.0
                    })
                })
        },
    );
    let messages = records.get(&topics.output).cloned().unwrap_or_default();
    assert_eq!(messages.len(), payloads.len() - 1, "{}", logs());
    assert!(messages
        .iter()
        .all(|m| m.operator == "email" && m.scores.contains_key("anomaly_score")));
    let user_records = records.get(&users_topic).cloned().unwrap_or_default();
    let last_risk = |user: &str| {
        user_records
            .iter()
            .filter(|r| r.labels["entity"] == user)
            .max_by_key(|r| r.scored_at_ms)
            .map(|r| r.scores["user_risk"])
            .unwrap_or_else(|| panic!("no record for {user}: {}", logs()))
    };
    let insider = last_risk("user3");
    for benign in ["user0", "user1", "user2", "user4", "user5"] {
        assert!(
            insider > last_risk(benign),
            "user3 {insider} vs {benign} {}",
            last_risk(benign)
        );
    }
    // user1's risk fuses the behaviour score (0.7 · messages + 0.3 · 0.9).
    let fused = user_records
        .iter()
        .rev()
        .find(|r| r.labels["entity"] == "user1")
        .unwrap();
    assert_eq!(fused.labels["behaviour"], "present", "{}", logs());
    assert_eq!(fused.scores["behaviour_score"], 0.9);
    let expected = 0.7 * fused.scores["message_risk"] + 0.3 * 0.9;
    assert!((fused.scores["user_risk"] - expected).abs() < 1e-9);
    let (status, body) = threatflow_e2e::http_get(&engine.http, "/models")?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("threatflow.email.insider-ensemble"), "{body}");
    drop(engine);
    Ok(())
}
