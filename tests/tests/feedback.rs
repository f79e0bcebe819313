//! The learning loop on a real broker: analysts' verdicts on a feedback topic are joined to
//! the inputs they judge, buffered, and retrain the flow model; the quality gate keeps a
//! retrained model that learned the truth (which is then promoted and scores the stream) and
//! rejects one taught flipped labels (the champion stays); bad verdicts are dead letters;
//! verdicts whose input has left the topic are counted without blocking the rest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use threatflow::events::InputEvent;
use threatflow::generate::encode_json;
use threatflow::operators::flow::dataset::{parse_nsl_kdd, LabelledFlow};
use threatflow::scored::Scored;
use threatflow_e2e::{
    consume_scored, free_loopback_address, http_get, produce, repository, succeed, unique_name,
    Broker, EngineProcess, TestTopics,
};

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

/// Every `step`-th row of an NSL-KDD file of the repository.
fn nsl_kdd_rows(file: &str, step: usize) -> Vec<LabelledFlow> {
    nsl_kdd_rows_from(file, 0, step)
}

/// Every `step`-th row of an NSL-KDD file from row `first` on.
fn nsl_kdd_rows_from(file: &str, first: usize, step: usize) -> Vec<LabelledFlow> {
    let path = repository().join("models/flow/data").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let rows = parse_nsl_kdd(&text, &path).unwrap();
    rows.into_iter().skip(first).step_by(step).collect()
}

/// A running engine with the trainer role, its champion trained on a fifth of the
/// bootstrap file (quick in a debug build).
struct Loop {
    bootstrap: String,
    _broker: Option<Broker>,
    _mock:
        Option<rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
    topics: TestTopics,
    work: tempfile::TempDir,
    config: PathBuf,
    http: String,
    feedback_topic: String,
    _engine: EngineProcess,
}

impl Loop {
    fn start(trainer: &str) -> anyhow::Result<Self> {
        Self::start_with(trainer, "")
    }

    /// With more config `sections` (appended after the trainer's).
    fn start_with(trainer: &str, sections: &str) -> anyhow::Result<Self> {
        let broker = Broker::start()?;
        let topics = TestTopics::create(&broker, 2)?;
        let prefix = format!("{}.", unique_name("feedback"));
        broker.create_topic(&format!("{prefix}flow"), 1)?;
        let bootstrap = broker.bootstrap.clone();
        Self::start_on(
            bootstrap,
            Some(broker),
            None,
            topics,
            &prefix,
            &format!("{trainer}\u{0}{sections}"),
        )
    }

    /// On librdkafka's mock cluster, which (unlike Tansu) drops a partition's oldest records
    /// past 5 MB — retention, for the test of verdicts whose input is gone. The engine makes
    /// its registry and drift topics itself, which this broker cannot: they are made here.
    fn start_on_mock(trainer: &str) -> anyhow::Result<Self> {
        let mock = rdkafka::mocking::MockCluster::new(1)?;
        let topics = TestTopics::new(1);
        let prefix = format!("{}.", unique_name("feedback"));
        for topic in topics.names().into_iter().map(str::to_owned).chain([
            format!("{prefix}flow"),
            "threatflow.registry".into(),
            "threatflow.drift".into(),
        ]) {
            mock.create_topic(&topic, 1, 1)?;
        }
        let bootstrap = mock.bootstrap_servers();
        Self::start_on(bootstrap, None, Some(mock), topics, &prefix, trainer)
    }

    fn start_on(
        bootstrap: String,
        broker: Option<Broker>,
        mock: Option<
            rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        >,
        topics: TestTopics,
        prefix: &str,
        trainer: &str,
    ) -> anyhow::Result<Self> {
        let work = tempfile::tempdir()?;
        let full =
            std::fs::read_to_string(repository().join("models/flow/data/KDDTrain+_20Percent.txt"))?;
        let subset: String = full
            .lines()
            .step_by(5)
            .map(|line| format!("{line}\n"))
            .collect();
        let data = work.path().join("bootstrap.txt");
        std::fs::write(&data, subset)?;
        succeed(
            cli()
                .args(["train", "flow", "--version", "t1", "--seed", "5", "--data"])
                .arg(&data)
                .arg("--model-dir")
                .arg(work.path().join("models"))
                .output()?,
        );
        let feedback_topic = format!("{prefix}flow");
        let http = free_loopback_address()?;
        let (trainer, sections) = trainer.split_once('\u{0}').unwrap_or((trainer, ""));
        let extra = format!(
            "[lifecycle]\ntrainer = true\n\n[feedback]\ntopic_prefix = \"{prefix}\"\nprecision_min_verdicts = 20\n\n[trainer]\n{trainer}\nbuffer_dir = \"{}\"\n\n[trainer.data]\nflow = \"{}\"\n\n{sections}",
            work.path().join("buffer").display(),
            data.display()
        );
        let config_text = topics.operator_config(
            &bootstrap,
            &work.path().join("state"),
            &http,
            ("flow", "flow"),
            &work.path().join("models"),
            &extra,
        );
        let config = work.path().join("engine.toml");
        std::fs::write(&config, config_text)?;
        let binary = Path::new(env!("CARGO_BIN_EXE_threatflow-under-test"));
        let engine = EngineProcess::start(binary, &config, &work.path().join("engine.log"))?;
        let this = Self {
            bootstrap,
            _broker: broker,
            _mock: mock,
            topics,
            work,
            config,
            http,
            feedback_topic,
            _engine: engine,
        };
        this.wait_for(Duration::from_secs(60), "t1 scoring", |models| {
            models["model_version"] == "t1"
        });
        Ok(this)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.work.path().join("engine.log")).unwrap_or_default()
    }

    /// The binding's `/models` entry.
    fn models(&self) -> serde_json::Value {
        http_get(&self.http, "/models")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .map(|models| models[&self.topics.input].clone())
            .unwrap_or_default()
    }

    fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let models = self.models();
            if done(&models) {
                return models;
            }
            assert!(
                started.elapsed() < timeout,
                "no {what} within {timeout:?}: {models:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn show(&self) -> serde_json::Value {
        let output = succeed(
            cli()
                .args(["models", "--config"])
                .arg(&self.config)
                .args(["show", "flow", "--json"])
                .output()
                .unwrap(),
        );
        let last = output.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|_| panic!("{output}"))
    }

    /// Streams `rows` and returns each one's scored event, in order.
    async fn score(&self, rows: &[LabelledFlow]) -> anyhow::Result<Vec<Scored>> {
        let payloads: Vec<Vec<u8>> = rows
            .iter()
            .map(|row| encode_json(&InputEvent::Flow(Box::new(row.event.clone()))))
            .collect();
        let landed = produce(&self.bootstrap, &self.topics.input, &payloads).await?;
        let output = &self.topics.output;
        let scored = consume_scored(
            &self.bootstrap,
            &[output],
            self.topics.partitions,
            Duration::from_secs(90),
            |records| {
                records.get(output).is_some_and(|outputs| {
                    landed.iter().all(|(partition, offset)| {
                        outputs.iter().any(|scored| {
                            scored.source.partition == *partition && scored.source.offset == *offset
                        })
                    })
                })
            },
        );
        let outputs = scored.get(output).cloned().unwrap_or_default();
        Ok(landed
            .iter()
            .map(|(partition, offset)| {
                outputs
                    .iter()
                    .rev()
                    .find(|scored| {
                        scored.source.partition == *partition && scored.source.offset == *offset
                    })
                    .unwrap_or_else(|| panic!("{partition}/{offset} not scored\n{}", self.logs()))
                    .clone()
            })
            .collect())
    }

    /// Sends one verdict per scored event: `threat[i]` is what the analyst says.
    async fn judge(
        &self,
        scored: &[Scored],
        rows: &[LabelledFlow],
        flip: bool,
    ) -> anyhow::Result<()> {
        let verdicts: Vec<Vec<u8>> = scored
            .iter()
            .zip(rows)
            .enumerate()
            .map(|(index, (scored, row))| {
                let threat = row.is_attack() != flip;
                let alerted = scored.labels.get("verdict").map(String::as_str) == Some("attack");
                let verdict = match (alerted, threat) {
                    (true, true) => "true_positive",
                    (true, false) => "false_positive",
                    (false, false) => "true_negative",
                    (false, true) => "false_negative",
                };
                serde_json::to_vec(&serde_json::json!({
                    "event_id": scored.event_id,
                    "operator": "flow",
                    "model_version": scored.model_version,
                    "verdict": verdict,
                    "label": if threat { row.label.clone() } else { "normal".to_owned() },
                    "analyst": "a17",
                    "timestamp_ms": 1_800_000_000_000_i64 + index as i64,
                    "source": {"topic": scored.source.topic, "partition": scored.source.partition, "offset": scored.source.offset},
                }))
                .unwrap()
            })
            .collect();
        produce(&self.bootstrap, &self.feedback_topic, &verdicts).await?;
        Ok(())
    }
}

/// Thresholds so the one retraining starts when all `rows` verdicts are in.
fn trainer_settings(rows: usize) -> String {
    format!(
        "interval_secs = 3600\nmin_new_rows = {rows}\nimmediate_rows = {rows}\nshadow_period_secs = 1\nmin_shadow_agreement = 0.5\ngate_margin = 0.02"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_retrain_a_model_that_passes_the_gate_is_promoted_and_scores_the_stream(
) -> anyhow::Result<()> {
    // The stream: the test file's flows (attack types the bootstrap data lacks).
    let rows = nsl_kdd_rows("KDDTest+.txt", 40);
    let rows = &rows[..300];
    let lab = Loop::start(&trainer_settings(rows.len()))?;
    let scored = lab.score(rows).await?;
    assert!(scored.iter().all(|s| s.model_version == "t1"));
    // Two bad verdicts first: they must become dead letters and not count.
    produce(
        &lab.bootstrap,
        &lab.feedback_topic,
        &[
            b"{not json".to_vec(),
            serde_json::to_vec(&serde_json::json!({
                "event_id": "nowhere-0-999999", "operator": "flow", "verdict": "benign",
                "timestamp_ms": 1, "source": {"topic": lab.topics.input, "partition": 0, "offset": 999_999},
            }))?,
        ],
    )
    .await?;
    lab.judge(&scored, rows, false).await?;

    let models = lab.wait_for(
        Duration::from_secs(300),
        "promoted retrained model",
        |models| {
            models["model_version"]
                .as_str()
                .is_some_and(|version| version.starts_with("fb"))
                && models["learning"]["last_evaluation"]["outcome"].is_string()
        },
    );
    let version = models["model_version"].as_str().unwrap().to_owned();
    let learning = &models["learning"];
    assert_eq!(learning["verdicts"]["refused"], 2, "{learning:#}");
    assert_eq!(learning["verdicts"]["buffered"], rows.len(), "{learning:#}");
    assert_eq!(learning["buffer_rows"], rows.len());
    assert_eq!(
        learning["last_training"]["outcome"], "challenger",
        "{learning:#}"
    );
    assert_eq!(
        learning["last_evaluation"]["outcome"], "promoted",
        "{learning:#}"
    );
    assert!(
        learning["live_precision"]["t1"]["verdicts"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Later events carry the new version.
    let later = lab.score(&nsl_kdd_rows("KDDTest+.txt", 41)[..50]).await?;
    assert!(
        later.iter().all(|s| s.model_version == version),
        "{version}"
    );

    // `models show`: rows used, the gate's figures, the promotion.
    let show = lab.show();
    assert_eq!(show["champion"], version.as_str());
    let retraining = &show["version"]["retraining"];
    let trained_on = retraining["feedback_rows"].as_u64().unwrap();
    let held_out = retraining["holdout_rows"].as_u64().unwrap();
    assert_eq!(trained_on + held_out, rows.len() as u64);
    assert!(held_out > 20 && trained_on > 200, "{retraining:#}");
    assert_eq!(retraining["champion"], "t1");
    let gate = &retraining["gate"];
    assert_eq!(gate["passed"], true, "{gate:#}");
    let slices = gate["slices"].as_array().unwrap();
    assert_eq!(slices.len(), 4, "two figures on two slices: {gate:#}");
    let validation = slices.iter().find(|s| s["slice"] == "validation").unwrap();
    assert!(validation["rows"].as_u64().unwrap() > 500, "{validation:#}");
    let holdout = slices
        .iter()
        .find(|s| s["slice"] == "feedback_holdout")
        .unwrap();
    eprintln!(
        "gate: {gate:#}\nevaluation: {:#}",
        learning["last_evaluation"]
    );
    // The stream's novel attacks are what the champion misses and the feedback teaches.
    assert!(
        holdout["challenger"].as_f64().unwrap() >= holdout["champion"].as_f64().unwrap(),
        "{holdout:#}"
    );
    let history = show["history"].as_array().unwrap();
    let by_trainer = |action: &str| {
        history.iter().any(|record| {
            record["action"] == action
                && record["version"] == version.as_str()
                && record["by"].as_str().unwrap_or("").starts_with("trainer:")
        })
    };
    assert!(
        by_trainer("register") && by_trainer("challenge") && by_trainer("promote"),
        "{:#}",
        show["history"]
    );

    // Bad verdicts are dead letters with their reasons.
    let dead = consume_scored_dead_letters(&lab, 2);
    assert!(dead.contains(&"undecodable".to_owned()), "{dead:?}");
    assert!(dead.contains(&"unknown_event".to_owned()), "{dead:?}");
    Ok(())
}

/// Reason codes on the dead-letter topic (read until `count`).
fn consume_scored_dead_letters(lab: &Loop, count: usize) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &lab.bootstrap)
        .set("group.id", unique_name("dlq-reader"))
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..lab.topics.partitions as i32 {
        list.add_partition_offset(&lab.topics.dead_letter, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut reasons = Vec::new();
    let started = Instant::now();
    while reasons.len() < count && started.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let record: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
            reasons.push(record["reason"].as_str().unwrap_or_default().to_owned());
        }
    }
    reasons
}

/// Inverted verdicts on traffic like the model knows leave its ranking intact (recall at the
/// champion's false-positive rate stays 0.998 on validation) but move its threshold: the
/// gate's decision figure sees it (validation balanced accuracy falls well past the margin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_that_contradict_the_truth_train_a_model_the_gate_rejects() -> anyhow::Result<()> {
    // Traffic like the model knows (bootstrap-file rows outside the champion's fifth), every
    // verdict inverted: the retrained model learns the contradiction, and the champion's
    // validation rows (the truth) show it.
    let rows = nsl_kdd_rows_from("KDDTrain+_20Percent.txt", 2, 40);
    let rows = &rows[..300];
    let lab = Loop::start(&trainer_settings(rows.len()))?;
    let scored = lab.score(rows).await?;
    lab.judge(&scored, rows, true).await?;
    let models = lab.wait_for(Duration::from_secs(300), "retraining outcome", |models| {
        models["learning"]["last_training"]["outcome"].is_string()
    });
    let learning = &models["learning"];
    eprintln!("{:#}", learning["last_training"]);
    assert_eq!(
        learning["last_training"]["outcome"], "rejected",
        "{learning:#}"
    );
    assert_eq!(models["model_version"], "t1");
    let show = lab.show();
    assert_eq!(show["champion"], "t1");
    assert!(show["challenger"].is_null(), "{show:#}");
    let rejected = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["action"] == "reject")
        .unwrap_or_else(|| panic!("{show:#}"));
    let reason = rejected["reason"].as_str().unwrap();
    assert!(reason.contains("worse than the champion"), "{reason}");
    assert!(
        reason.contains("validation balanced accuracy of the alerting decision"),
        "{reason}"
    );
    assert_eq!(rejected["metrics"]["gate"]["passed"], false);
    // The analysts' flipped labels also show as a precision collapse on the champion.
    assert!(
        learning["live_precision"]["t1"]["precision"]
            .as_f64()
            .unwrap()
            < 0.5
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_whose_input_left_the_topic_are_counted_and_do_not_block_the_rest(
) -> anyhow::Result<()> {
    let rows = nsl_kdd_rows("KDDTest+.txt", 97);
    let (early, late) = (&rows[..60], &rows[60..100]);
    let lab = Loop::start_on_mock(&trainer_settings(10_000))?;
    let early_scored = lab.score(early).await?;
    // Over 5 MB after them: the broker drops the early records (its retention).
    let filler: Vec<Vec<u8>> = (0..7000)
        .map(|i| {
            encode_json(&InputEvent::Flow(Box::new(
                rows[i % rows.len()].event.clone(),
            )))
        })
        .collect();
    let mut sent = 0;
    while sent < 7 * 1024 * 1024 {
        produce(&lab.bootstrap, &lab.topics.input, &filler).await?;
        sent += filler.iter().map(Vec::len).sum::<usize>();
    }
    let late_scored = lab.score(late).await?;
    let verdict_rows: Vec<LabelledFlow> = early.iter().chain(late).cloned().collect();
    let verdict_scored: Vec<Scored> = early_scored.iter().chain(&late_scored).cloned().collect();
    lab.judge(&verdict_scored, &verdict_rows, false).await?;
    let models = lab.wait_for(Duration::from_secs(120), "every verdict taken", |models| {
        let learning = &models["learning"];
        learning["verdicts"]["expired"].as_u64().unwrap_or(0) >= early.len() as u64
            && learning["buffer_rows"] == late.len()
    });
    let learning = &models["learning"];
    // At-least-once: a verdict read again after a rebalance counts again, never less.
    assert_eq!(learning["verdicts"]["buffered"], late.len(), "{learning:#}");
    assert!(learning["verdicts"]["refused"].is_null(), "{learning:#}");
    // Expired verdicts that say the engine alerted still count for live precision.
    let alerted = verdict_scored
        .iter()
        .filter(|s| s.labels.get("verdict").map(String::as_str) == Some("attack"))
        .count();
    assert!(
        learning["live_precision"]["t1"]["verdicts"]
            .as_u64()
            .unwrap()
            >= alerted as u64,
        "{learning:#}"
    );
    let (_, metrics) = threatflow_e2e::http_get(&lab.http, "/metrics")?;
    assert!(
        metrics
            .contains("threatflow_feedback_verdicts_total{operator=\"flow\",outcome=\"expired\"}"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_lowers_the_bar_for_retraining_on_the_verdicts_that_follow() -> anyhow::Result<()> {
    // Retraining takes 1,000 new rows, or 20 once the operator has drifted.
    let lab = Loop::start_with(
        "interval_secs = 3600\nmin_new_rows = 1000\nimmediate_rows = 1000\nretrain_on_drift = true\ndrift_min_new_rows = 20\nshadow_period_secs = 3600",
        "[drift]\nwindow = 200\n",
    )?;
    // Bootstrap-like flows, half a window: no drift check yet.
    let rows = nsl_kdd_rows_from("KDDTrain+_20Percent.txt", 2, 50);
    let (calm, later) = rows.split_at(100);
    let scored = lab.score(calm).await?;
    lab.judge(&scored[..40], &calm[..40], false).await?;
    let models = lab.wait_for(Duration::from_secs(60), "40 verdicts buffered", |models| {
        models["learning"]["verdicts"]["buffered"] == 40
    });
    std::thread::sleep(Duration::from_secs(3));
    let learning = &lab.models()["learning"];
    assert!(learning["last_training"].is_null(), "{learning:#}");
    assert!(learning["pending_drift"].is_null(), "{models:#}");

    // The next 100 flows with src_bytes × 50 complete a window that drifts.
    let shifted: Vec<LabelledFlow> = later[..100]
        .iter()
        .cloned()
        .map(|mut row| {
            row.event.src_bytes *= 50.0;
            row
        })
        .collect();
    lab.score(&shifted).await?;
    let models = lab.wait_for(
        Duration::from_secs(180),
        "a retraining on drift",
        |models| models["learning"]["last_training"]["outcome"].is_string(),
    );
    let learning = &models["learning"];
    let trigger = learning["last_trigger"].as_str().unwrap_or_default();
    assert!(trigger.starts_with("drift: feature"), "{learning:#}");
    assert!(trigger.contains("src_bytes"), "{learning:#}");
    assert!(learning["pending_drift"].is_null(), "{learning:#}");
    assert_eq!(
        learning["last_training"]["feedback_rows"].as_u64().unwrap()
            + learning["last_training"]["holdout_rows"].as_u64().unwrap(),
        40,
        "{learning:#}"
    );
    eprintln!("retraining on drift: {:#}", learning["last_training"]);
    Ok(())
}
