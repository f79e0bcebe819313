//! The model registry on a real broker: a promotion and a rollback reach two engine
//! processes while they score a stream; a tampered version is refused at swap time while the
//! old one keeps scoring; a shadow challenger's agreement tells an identical model from one
//! trained on shuffled labels; a replay with the champion reproduces the live scores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow::scored::Scored;
use threatflow_e2e::{
    consume_scored, free_loopback_address, http_get, produce, repository, succeed, Broker,
    EngineProcess, TestTopics,
};

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

/// Copies the shipped flow model to `parent/<version>` with that version name.
fn flow_copy(parent: &Path, version: &str) -> PathBuf {
    let target = parent.join(version);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(repository().join("models/flow/v1")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
    }
    let manifest_path = target.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["version"] = version.into();
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    target
}

fn flows(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut generator = EventGenerator::new(seed);
    (0..count)
        .map(|_| encode_json(&generator.event(SchemaKind::Flow)))
        .collect()
}

/// A flow engine config whose models (and artifact store) are `models`.
fn flow_config(
    topics: &TestTopics,
    broker: &Broker,
    work: &Path,
    name: &str,
    http: &str,
) -> PathBuf {
    let config = topics.operator_config(
        &broker.bootstrap,
        &work.join(format!("state-{name}")),
        http,
        ("flow", "flow"),
        &work.join("models"),
        "[registry]\nshadow_fraction = 0.5\n",
    );
    let path = work.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

fn models(config: &Path, args: &[&str]) -> std::process::Output {
    cli()
        .arg("models")
        .args(args)
        .args(["--config", &config.display().to_string()])
        .env("THREATFLOW_USER", "analyst-ana")
        .output()
        .unwrap()
}

/// The model version a pod's `/models` shows for `topic`.
fn live_version(http: &str, topic: &str) -> Option<String> {
    let (_, body) = http_get(http, "/models").ok()?;
    let models: serde_json::Value = serde_json::from_str(&body).ok()?;
    models[topic]["model_version"].as_str().map(str::to_owned)
}

/// Waits until every pod shows `version`; the seconds it took.
fn wait_for_version(pods: &[&str], topic: &str, version: &str, logs: &dyn Fn() -> String) -> f64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if pods
            .iter()
            .all(|http| live_version(http, topic).as_deref() == Some(version))
        {
            return started.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("pods did not switch to {version} within 30 s\n{}", logs());
}

fn scored_by_coordinates(outputs: &[Scored]) -> HashMap<(i32, i64), Vec<&Scored>> {
    let mut by = HashMap::<(i32, i64), Vec<&Scored>>::new();
    for output in outputs {
        by.entry((output.source.partition, output.source.offset))
            .or_default()
            .push(output);
    }
    by
}

/// The output topic's scored events, read until every input in `inputs` has one (or
/// `timeout`).
fn scored_until_all(
    broker: &Broker,
    topics: &TestTopics,
    inputs: &[threatflow_e2e::Coordinates],
    timeout: Duration,
) -> Vec<Scored> {
    let scored = consume_scored(
        &broker.bootstrap,
        &[&topics.output],
        topics.partitions,
        timeout,
        |records| {
            records.get(&topics.output).is_some_and(|outputs| {
                let by = scored_by_coordinates(outputs);
                inputs
                    .iter()
                    .all(|coordinates| by.contains_key(coordinates))
            })
        },
    );
    scored.get(&topics.output).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_and_rollback_reach_both_pods_while_they_score() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 4)?;
    let work = tempfile::tempdir()?;
    flow_copy(&work.path().join("models/flow"), "v1");
    let v2 = flow_copy(&work.path().join("build"), "v2");
    let (http_a, http_b) = (free_loopback_address()?, free_loopback_address()?);
    let config_a = flow_config(&topics, &broker, work.path(), "a", &http_a);
    let config_b = flow_config(&topics, &broker, work.path(), "b", &http_b);
    let binary = Path::new(env!("CARGO_BIN_EXE_threatflow-under-test"));
    let _pod_a = EngineProcess::start(binary, &config_a, &work.path().join("a.log"))?;
    let logs = || {
        ["a.log", "b.log"]
            .iter()
            .map(|name| std::fs::read_to_string(work.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    // Pod a registers the local v1 as champion on the empty registry; pod b boots on it.
    wait_for_version(&[&http_a], &topics.input, "v1", &logs);
    let _pod_b = EngineProcess::start(binary, &config_b, &work.path().join("b.log"))?;
    wait_for_version(&[&http_a, &http_b], &topics.input, "v1", &logs);

    let mut landed = produce(&broker.bootstrap, &topics.input, &flows(600, 1)).await?;
    let producing = {
        let (bootstrap, input) = (broker.bootstrap.clone(), topics.input.clone());
        tokio::spawn(async move {
            let mut landed = Vec::new();
            for round in 10..40 {
                landed.extend(produce(&bootstrap, &input, &flows(100, round)).await?);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(landed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    succeed(models(
        &config_a,
        &["push", &v2.display().to_string(), "--as", "none"],
    ));
    succeed(models(
        &config_a,
        &[
            "promote",
            "flow",
            "v2",
            "--reason",
            "better recall on replay",
        ],
    ));
    let promote_seconds = wait_for_version(&[&http_a, &http_b], &topics.input, "v2", &logs);
    let after_promote = produce(&broker.bootstrap, &topics.input, &flows(300, 2)).await?;
    // Scored before the rollback (else they would rightly be scored by v1).
    scored_until_all(&broker, &topics, &after_promote, Duration::from_secs(60));
    succeed(models(
        &config_b,
        &["rollback", "flow", "--reason", "false positives on tier 1"],
    ));
    let rollback_seconds = wait_for_version(&[&http_a, &http_b], &topics.input, "v1", &logs);
    landed.extend(producing.await??);
    let after_rollback = produce(&broker.bootstrap, &topics.input, &flows(300, 3)).await?;
    eprintln!("promotion visible on both pods after {promote_seconds:.2} s, rollback after {rollback_seconds:.2} s");
    for pod in [&http_a, &http_b] {
        let (_, metrics) = http_get(pod, "/metrics")?;
        for (version, value) in [("v1", 1), ("v2", 0)] {
            let line = format!(
                "threatflow_model_version_info{{operator=\"flow\",topic=\"{}\",version=\"{version}\"}} {value}",
                topics.input
            );
            assert!(metrics.contains(&line), "{line} missing\n{metrics}");
        }
    }

    landed.extend(after_promote.iter().copied());
    landed.extend(after_rollback.iter().copied());
    let expected = landed.len();
    let outputs = scored_until_all(&broker, &topics, &landed, Duration::from_secs(120));
    let by = scored_by_coordinates(&outputs);
    let lost = landed.iter().filter(|c| !by.contains_key(c)).count();
    assert_eq!(lost, 0, "{lost} of {expected} inputs lost\n{}", logs());
    for output in &outputs {
        assert!(
            ["v1", "v2"].contains(&output.model_version.as_str()),
            "a third version {}",
            output.model_version
        );
    }
    // Produced after both pods showed v2 (before the rollback): scored by v2; after the
    // rollback showed on both: v1.
    for (coordinates, version) in after_promote
        .iter()
        .map(|c| (c, "v2"))
        .chain(after_rollback.iter().map(|c| (c, "v1")))
    {
        assert!(
            by[coordinates].iter().all(|o| o.model_version == version),
            "{coordinates:?} not scored by {version}"
        );
    }
    let versions = threatflow_e2e::histogram(outputs.iter().map(|o| o.model_version.clone()));
    eprintln!("outputs by version: {versions:?}");

    // The history: bootstrap, the promotion and the rollback, with who, when and why.
    let shown = succeed(models(&config_a, &["show", "flow", "--json"]));
    let show: serde_json::Value = serde_json::from_str(shown.lines().last().unwrap())?;
    let changes: Vec<&serde_json::Value> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["action"] != "register")
        .collect();
    assert_eq!(changes.len(), 3, "{shown}");
    let summary: Vec<(String, String, String)> = changes
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["version"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(summary[0].0, "promote");
    assert_eq!(summary[0].1, "v1");
    assert!(summary[0].2.starts_with("bootstrap"), "{summary:?}");
    assert_eq!(
        summary[1],
        (
            "promote".into(),
            "v2".into(),
            "better recall on replay".into()
        )
    );
    assert_eq!(
        summary[2],
        (
            "rollback".into(),
            "v1".into(),
            "false positives on tier 1".into()
        )
    );
    for change in &changes {
        assert!(change["at"].as_str().is_some_and(|at| at.ends_with('Z')));
    }
    assert_eq!(changes[1]["by"], "analyst-ana");
    assert_eq!(show["champion"], "v1");
    Ok(())
}

/// A registry record written by another client (e.g. a promotion racing a store change).
fn append_record(bootstrap: &str, topic: &str, record: serde_json::Value) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let payload = record.to_string();
    producer
        .send(
            BaseRecord::to(topic)
                .key("flow/test")
                .payload(&payload)
                .partition(0),
        )
        .map_err(|(error, _)| error)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_versions_are_refused_shadow_agreement_separates_models_and_replay_reproduces_scores(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 2)?;
    let work = tempfile::tempdir()?;
    let store = work.path().join("models/flow");
    flow_copy(&store, "v1");
    let http = free_loopback_address()?;
    let config = flow_config(&topics, &broker, work.path(), "pod", &http);
    let shadow_topic = threatflow_e2e::unique_name("shadow");
    broker.create_topic(&shadow_topic, 1)?;
    let with_shadow_topic = std::fs::read_to_string(&config)?.replace(
        "[registry]\n",
        &format!("[registry]\nshadow_topic = \"{shadow_topic}\"\n"),
    );
    std::fs::write(&config, with_shadow_topic)?;
    let _pod = EngineProcess::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &config,
        &work.path().join("pod.log"),
    )?;
    let logs = || std::fs::read_to_string(work.path().join("pod.log")).unwrap_or_default();
    wait_for_version(&[&http], &topics.input, "v1", &logs);
    let mut landed = produce(&broker.bootstrap, &topics.input, &flows(400, 5)).await?;

    // Tampered: v2 pushed whole, then one byte of its stored model changed.
    succeed(models(
        &config,
        &[
            "push",
            &flow_copy(&work.path().join("build"), "v2")
                .display()
                .to_string(),
            "--as",
            "none",
        ],
    ));
    let stored = store.join("v2/binary.json");
    let mut bytes = std::fs::read(&stored)?;
    bytes[100] ^= 0x01;
    std::fs::write(&stored, bytes)?;
    let refused = models(&config, &["promote", "flow", "v2"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("differs from the manifest"));
    // A promotion that reaches the pod anyway (another client) is refused at swap time.
    append_record(
        &broker.bootstrap,
        "threatflow.registry",
        serde_json::json!({"operator": "flow", "action": "promote", "version": "v2", "by": "other-tool",
                           "at": "2026-11-29T00:00:00Z", "at_ms": 0, "reason": "race"}),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !logs().contains("registry champion refused") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(logs().contains("registry champion refused"), "{}", logs());
    assert_eq!(live_version(&http, &topics.input).as_deref(), Some("v1"));
    let (_, metrics) = http_get(&http, "/metrics")?;
    assert!(
        metrics.contains("threatflow_model_swap_failures_total{operator=\"flow\"} 1"),
        "{metrics}"
    );
    landed.extend(produce(&broker.bootstrap, &topics.input, &flows(200, 6)).await?);

    // Shadow: an identical challenger agrees; one trained on shuffled labels does not.
    let identical = flow_copy(&work.path().join("build"), "v3-same");
    succeed(models(&config, &["push", &identical.display().to_string()]));
    let agreement = |version: &str| -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = http_get(&http, "/models").unwrap();
            let models: serde_json::Value = serde_json::from_str(&body).unwrap();
            let shadow = &models[&topics.input]["shadow"];
            if shadow["challenger"] == version && shadow["compared"].as_u64().unwrap_or(0) >= 150 {
                return shadow["verdict_agreement"].as_f64().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no shadow figures for {version}: {body}\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let shadow_traffic = |seed| {
        let (bootstrap, input) = (broker.bootstrap.clone(), topics.input.clone());
        async move { produce(&bootstrap, &input, &flows(600, seed)).await }
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    landed.extend(shadow_traffic(7).await?);
    let same = agreement("v3-same");
    let shuffled_data = work.path().join("shuffled.txt");
    shuffle_labels(
        &repository().join("models/flow/data/KDDTrain+_20Percent.txt"),
        &shuffled_data,
        4000,
    );
    let build = work.path().join("build");
    succeed(
        cli()
            .args([
                "train",
                "flow",
                "--data",
                &shuffled_data.display().to_string(),
            ])
            .args([
                "--model-dir",
                &build.display().to_string(),
                "--version",
                "v4-shuffled",
            ])
            .output()?,
    );
    succeed(models(
        &config,
        &[
            "push",
            &build.join("flow/v4-shuffled").display().to_string(),
        ],
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    landed.extend(shadow_traffic(8).await?);
    let shuffled = agreement("v4-shuffled");
    eprintln!("shadow verdict agreement: identical {same:.3}, shuffled labels {shuffled:.3}");
    assert!(same >= 0.999, "identical challenger agreed on {same}");
    assert!(
        shuffled <= same - 0.2,
        "shuffled challenger agreed on {shuffled}"
    );
    assert_eq!(
        live_version(&http, &topics.input).as_deref(),
        Some("v1"),
        "the challenger never scores outputs"
    );

    // Replay with the champion reproduces every live score of the range.
    let expected = landed.len();
    let scored = consume_scored(
        &broker.bootstrap,
        &[&topics.output],
        topics.partitions,
        Duration::from_secs(90),
        |records| {
            records
                .get(&topics.output)
                .is_some_and(|o| o.len() >= expected)
        },
    );
    let live = scored.get(&topics.output).cloned().unwrap_or_default();
    assert!(live.iter().all(|o| o.model_version == "v1"));
    // The challengers' own scored events went to the shadow topic, not the output.
    let enough_of_each = |outputs: &[Scored]| {
        ["v3-same", "v4-shuffled"].iter().all(|version| {
            outputs
                .iter()
                .filter(|o| o.model_version == *version)
                .count()
                >= 150
        })
    };
    let shadowed = consume_scored(
        &broker.bootstrap,
        &[&shadow_topic],
        1,
        Duration::from_secs(30),
        |records| {
            records
                .get(&shadow_topic)
                .is_some_and(|o| enough_of_each(o))
        },
    );
    let shadow_versions = threatflow_e2e::histogram(
        shadowed
            .get(&shadow_topic)
            .into_iter()
            .flatten()
            .map(|o| o.model_version.clone()),
    );
    assert!(
        shadow_versions.get("v3-same").copied().unwrap_or(0) >= 150
            && shadow_versions.get("v4-shuffled").copied().unwrap_or(0) >= 150,
        "{shadow_versions:?}"
    );

    // The live group has committed everything; a replay must not move its offsets or its
    // assignment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let committed = |bootstrap: &str| {
        threatflow_e2e::committed_total(bootstrap, &topics.group, &topics.input, topics.partitions)
            .unwrap()
    };
    while committed(&broker.bootstrap) < expected as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(committed(&broker.bootstrap), expected as i64);
    let rebalances_before = logs().matches("partitions assigned").count();
    let replayed_file = work.path().join("replayed.jsonl");
    let summary = succeed(
        cli()
            .args([
                "replay",
                "--config",
                &config.display().to_string(),
                "--topic",
                &topics.input,
            ])
            .args(["--from", "0", "--model-version", "v1", "--json"])
            .args(["--output", &replayed_file.display().to_string()])
            .output()?,
    );
    let replayed: Vec<Scored> = std::fs::read_to_string(&replayed_file)?
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(replayed.len() >= expected, "{summary}");
    let live_by = scored_by_coordinates(&live);
    let mut compared = 0;
    for event in &replayed {
        let Some(originals) = live_by.get(&(event.source.partition, event.source.offset)) else {
            continue;
        };
        for original in originals {
            assert_eq!(original.scores, event.scores, "{:?}", event.source);
            assert_eq!(original.labels, event.labels);
        }
        compared += 1;
    }
    assert_eq!(compared, expected, "{summary}");
    let figures: serde_json::Value = serde_json::from_str(summary.lines().last().unwrap())?;
    assert_eq!(figures["model_version"], "v1");
    assert!(figures["score"]["p50"].is_number(), "{summary}");
    assert_eq!(
        committed(&broker.bootstrap),
        expected as i64,
        "the replay moved the live group's offsets"
    );
    assert_eq!(
        logs().matches("partitions assigned").count(),
        rebalances_before,
        "the replay caused a rebalance"
    );

    // A range by time: from before the first record to a time after the last one, with the
    // challenger (shuffled labels) — the same records, other verdicts.
    let by_time_run = cli()
        .args([
            "replay",
            "--config",
            &config.display().to_string(),
            "--topic",
            &topics.input,
        ])
        .args([
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ])
        .args(["--model-version", "v4-shuffled", "--json"])
        .output()?;
    let ranges = String::from_utf8_lossy(&by_time_run.stderr).into_owned();
    let by_time = succeed(by_time_run);
    let by_time: serde_json::Value = serde_json::from_str(by_time.lines().last().unwrap())?;
    assert_eq!(by_time["records"], expected, "{by_time}\n{ranges}");
    assert_eq!(by_time["model_version"], "v4-shuffled");
    assert_ne!(by_time["verdicts"], figures["verdicts"]);
    Ok(())
}

/// Writes the first `rows` rows of an NSL-KDD file with the label column shuffled.
fn shuffle_labels(source: &Path, target: &Path, rows: usize) {
    use rand::seq::SliceRandom;
    let text = std::fs::read_to_string(source).unwrap();
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .take(rows)
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect();
    let mut labels: Vec<String> = rows.iter().map(|row| row[41].clone()).collect();
    labels.shuffle(&mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5));
    for (row, label) in rows.iter_mut().zip(labels) {
        row[41] = label;
    }
    let lines: Vec<String> = rows.iter().map(|row| row.join(",")).collect();
    std::fs::write(target, lines.join("\n") + "\n").unwrap();
}
