//! Keyed state follows its partition, on a real broker: two engine processes in one group over
//! emails and alerts keyed by user. Process 1 builds up windows; process 2 joins and takes
//! over some partitions, and the users on moved partitions continue their windows (message
//! counts keep counting) while process 1 drops their state. Then process 2 is killed with
//! SIGKILL and a fresh process 3 with an empty state directory restores from the changelog;
//! no input is folded twice (window counts equal the distinct inputs per user).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use threatflow::events::{AlertEvent, EmailEvent, InputEvent};
use threatflow::generate::encode_json;
use threatflow::scored::Scored;
use threatflow_e2e::{
    consume_scored, free_loopback_address, http_get, repository, unique_name, Broker, EngineProcess,
};

const PARTITIONS: u32 = 4;
const USERS: usize = 12;
const HOUR: i64 = 3_600_000;
/// Monday 2026-03-02 10:00 UTC.
const START: i64 = 1_772_445_600_000;

struct Topics {
    emails: String,
    alerts: String,
    scored_emails: String,
    scored_alerts: String,
    dead_letter: String,
    group: String,
}

impl Topics {
    fn create(broker: &Broker) -> anyhow::Result<Self> {
        let topics = Self {
            emails: unique_name("emails"),
            alerts: unique_name("alerts"),
            scored_emails: unique_name("scored-emails"),
            scored_alerts: unique_name("scored-alerts"),
            dead_letter: unique_name("dlq"),
            group: unique_name("group"),
        };
        for topic in [
            &topics.emails,
            &topics.alerts,
            &topics.scored_emails,
            &topics.scored_alerts,
            &topics.dead_letter,
        ] {
            broker.create_topic(topic, PARTITIONS)?;
        }
        Ok(topics)
    }
}

/// One engine process with its own state directory and HTTP address.
struct Engine {
    process: Option<EngineProcess>,
    http: String,
    log: PathBuf,
}

impl Engine {
    /// Starts process `name`; `commit_interval_ms` as in `[pipeline]`.
    fn start(
        broker: &Broker,
        topics: &Topics,
        work: &Path,
        name: &str,
        commit_interval_ms: u64,
    ) -> anyhow::Result<Self> {
        let http = free_loopback_address()?;
        let config = format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"

[kafka.consumer_options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[[bindings]]
topic = "{emails}"
schema = "email"
operator = "email"
output_topic = "{scored_emails}"
workers = 2

[[bindings]]
topic = "{alerts}"
schema = "alert"
operator = "alert"
output_topic = "{scored_alerts}"
workers = 2

[output]
dead_letter_topic = "{dead_letter}"

[storage]
state_dir = "{state}"
model_dir = "{models}"

[http]
bind = "{http}"

[pipeline]
linger_ms = 10
shutdown_grace_ms = 15000
state_checkpoint_ms = 500
commit_interval_ms = {commit_interval_ms}
"#,
            brokers = broker.bootstrap,
            group = topics.group,
            emails = topics.emails,
            alerts = topics.alerts,
            scored_emails = topics.scored_emails,
            scored_alerts = topics.scored_alerts,
            dead_letter = topics.dead_letter,
            state = work.join(name).join("state").display(),
            models = repository().join("models").display(),
        );
        std::fs::create_dir_all(work.join(name))?;
        let config_path = work.join(name).join("engine.toml");
        std::fs::write(&config_path, config)?;
        let log = work.join(name).join("engine.log");
        let process = EngineProcess::start(
            Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
            &config_path,
            &log,
        )?;
        Ok(Self {
            process: Some(process),
            http,
            log,
        })
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Partitions whose keyed state this process holds, per input topic (from `/ready`).
    fn state_partitions(&self) -> BTreeMap<String, BTreeSet<i32>> {
        http_get(&self.http, "/ready")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|ready| serde_json::from_value(ready["state_partitions"].clone()).ok())
            .unwrap_or_default()
    }

    fn kill_hard(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill_hard().unwrap();
        }
    }
}

fn email(user: usize, at_ms: i64) -> Vec<u8> {
    encode_json(&InputEvent::Email(Box::new(EmailEvent {
        event_id: None,
        from: format!("user{user}@corp.example"),
        to: vec!["colleague@corp.example".to_owned()],
        cc: vec![],
        bcc: vec![],
        date_ms: Some(at_ms),
        subject: "Re: build failure on the test cluster".to_owned(),
        body: "I rebuilt the package and the tests pass now; the nightly job should be green."
            .to_owned(),
        attachments: vec![],
        raw_rfc822: None,
    })))
}

fn alert(user: usize, index: usize, at_ms: i64) -> Vec<u8> {
    encode_json(&InputEvent::Alert(Box::new(AlertEvent {
        event_id: None,
        alert_id: format!("a-{user}-{index}"),
        severity: "medium".to_owned(),
        siem_source: "splunk".to_owned(),
        rule_id: "R-1001".to_owned(),
        rule_name: "Suspicious login".to_owned(),
        tactics: vec!["TA0001".to_owned()],
        techniques: vec!["T1078".to_owned()],
        users: vec![format!("user{user}")],
        hosts: vec![],
        ips: vec!["10.0.0.1".to_owned()],
        ioc_count: 0,
        asset_count: 1,
        asset_criticality: 0.5,
        event_count: 3,
        first_seen_ms: at_ms - 60_000,
        last_seen_ms: at_ms,
    })))
}

/// Round `round` (0-based): two emails and two alerts per user, keyed by user, in time order.
async fn produce_round(broker: &Broker, topics: &Topics, round: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "5")
        .create()?;
    for k in 0..2 {
        let index = round * 2 + k;
        for user in 0..USERS {
            let at = START + (index as i64) * HOUR + (user as i64) * 60_000;
            let key = format!("user{user}");
            for (topic, payload) in [
                (&topics.emails, email(user, at)),
                (&topics.alerts, alert(user, index, at)),
            ] {
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(&payload),
                        Timeout::Never,
                    )
                    .await
                    .map_err(|(error, _)| anyhow::anyhow!("produce failed: {error}"))?;
            }
        }
    }
    Ok(())
}

/// Every scored email and alert so far, once `expected` of each arrived (or time ran out).
fn outputs(broker: &Broker, topics: &Topics, expected: usize) -> HashMap<String, Vec<Scored>> {
    consume_scored(
        &broker.bootstrap,
        &[&topics.scored_emails, &topics.scored_alerts],
        PARTITIONS,
        Duration::from_secs(120),
        |records| {
            [&topics.scored_emails, &topics.scored_alerts]
                .iter()
                .all(|topic| distinct_inputs(records.get(*topic)) >= expected)
        },
    )
}

fn distinct_inputs(records: Option<&Vec<Scored>>) -> usize {
    records
        .into_iter()
        .flatten()
        .map(|r| (r.source.partition, r.source.offset))
        .collect::<BTreeSet<_>>()
        .len()
}

/// The user number in `user7@corp.example`, `user7` or `user:user7`.
fn user_number(text: &str) -> Option<usize> {
    let start = text.find("user")? + 4;
    let start = if text[start..].starts_with(":user") {
        start + 5
    } else {
        start
    };
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Per user: the partition it lives on, the largest window message count among its scored
/// emails, and the largest count of prior alerts (24 h) among its scored alerts.
fn counts(
    outputs: &HashMap<String, Vec<Scored>>,
    topics: &Topics,
) -> BTreeMap<usize, (i32, f64, f64)> {
    let mut per_user: BTreeMap<usize, (i32, f64, f64)> = BTreeMap::new();
    for email in outputs.get(&topics.scored_emails).into_iter().flatten() {
        let user = user_number(&email.labels["user"]).expect("test user");
        let entry = per_user
            .entry(user)
            .or_insert((email.source.partition, 0.0, -1.0));
        entry.1 = entry.1.max(email.scores["user_window_messages"]);
    }
    for alert in outputs.get(&topics.scored_alerts).into_iter().flatten() {
        let user = user_number(&alert.labels["entities"]).expect("test user");
        if let Some(entry) = per_user.get_mut(&user) {
            entry.2 = entry.2.max(alert.scores["entity_alerts_24h"]);
        }
    }
    per_user
}

/// `assigned_partitions` from `/ready`.
fn assigned(engine: &Engine) -> u64 {
    http_get(&engine.http, "/ready")
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|ready| ready["assigned_partitions"].as_u64())
        .unwrap_or(0)
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_follow_their_partition_and_restore_from_the_changelog_without_double_folds(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = Topics::create(&broker)?;
    let work = tempfile::tempdir()?;
    let per_round = USERS * 2;

    // Process 1 alone builds up every user's window.
    let process_1 = Engine::start(&broker, &topics, work.path(), "p1", 250)?;
    produce_round(&broker, &topics, 0).await?;
    let first = outputs(&broker, &topics, per_round);
    let after_first = counts(&first, &topics);
    assert_eq!(after_first.len(), USERS, "{}", process_1.logs());
    for (user, (_, messages, _)) in &after_first {
        assert_eq!(*messages, 2.0, "{user} after round 1\n{}", process_1.logs());
    }

    // Process 2 joins and takes over some partitions. It never commits on its own (a commit
    // interval longer than the test), so after its kill every input it scored is re-delivered
    // — while its checkpoints (every 500 ms) already made their folds durable: the re-delivered
    // inputs must be scored again and folded zero more times.
    let mut process_2 = Engine::start(&broker, &topics, work.path(), "p2", 600_000)?;
    let total = u64::from(2 * PARTITIONS);
    let settled = wait_until(Duration::from_secs(90), || {
        let (one, two) = (assigned(&process_1), assigned(&process_2));
        two > 0 && one + two == total
    });
    assert!(
        settled,
        "no rebalance to two members\np1:\n{}\np2:\n{}",
        process_1.logs(),
        process_2.logs()
    );
    produce_round(&broker, &topics, 1).await?;
    let second = outputs(&broker, &topics, 2 * per_round);
    let held_by_2 = process_2.state_partitions();
    let held_by_1 = process_1.state_partitions();
    let moved: BTreeSet<i32> = held_by_2.get(&topics.emails).cloned().unwrap_or_default();
    assert!(
        !moved.is_empty(),
        "no email partition moved\n{}",
        process_2.logs()
    );
    assert!(
        held_by_1
            .get(&topics.emails)
            .is_none_or(|held| held.is_disjoint(&moved)),
        "process 1 still holds moved partitions: {held_by_1:?} vs {held_by_2:?}"
    );
    let after_second = counts(&second, &topics);
    let mut moved_users = 0;
    for (user, (partition, messages, prior_alerts)) in &after_second {
        // Two rounds of two: the window keeps counting on whichever process holds it.
        assert_eq!(
            *messages,
            4.0,
            "user{user} (partition {partition}) after round 2\np1:\n{}\np2:\n{}",
            process_1.logs(),
            process_2.logs()
        );
        assert_eq!(*prior_alerts, 3.0, "{user} prior alerts after round 2");
        moved_users += usize::from(moved.contains(partition));
    }
    assert!(moved_users > 0, "no user lives on a moved partition");

    // Process 2 dies hard; a fresh process 3 (empty state directory) restores from the
    // changelog what process 2 made durable, and re-folds nothing it already had.
    // Let process 2 checkpoint what it scored before it dies.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    process_2.kill_hard();
    let process_3 = Engine::start(&broker, &topics, work.path(), "p3", 250)?;
    let settled = wait_until(Duration::from_secs(90), || {
        let (one, three) = (assigned(&process_1), assigned(&process_3));
        three > 0 && one + three == total
    });
    assert!(settled, "process 3 did not join\n{}", process_3.logs());
    produce_round(&broker, &topics, 2).await?;
    let third = outputs(&broker, &topics, 3 * per_round);
    let after_third = counts(&third, &topics);
    assert_eq!(after_third.len(), USERS);
    for (user, (partition, messages, prior_alerts)) in &after_third {
        assert_eq!(
            *messages,
            6.0,
            "user{user} (partition {partition}): window messages after round 3\np3:\n{}",
            process_3.logs()
        );
        assert_eq!(*prior_alerts, 5.0, "user{user}: prior alerts after round 3");
    }
    let replayed = third
        .get(&topics.scored_emails)
        .into_iter()
        .flatten()
        .filter(|email| email.labels["window"] == "replayed")
        .count();
    assert!(
        replayed > 0,
        "process 3 re-scored none of process 2's uncommitted inputs as replays"
    );
    let restored = process_3.logs();
    assert!(
        restored
            .lines()
            .any(|line| line.contains("partition state restored") && line.contains("changelog")),
        "process 3 restored nothing from the changelog\n{restored}"
    );
    Ok(())
}
