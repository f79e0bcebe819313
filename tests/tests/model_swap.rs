//! A model swap under load, on a real broker: two versions of the flow model, the swap lands
//! mid-stream through `POST /models/<topic>`; every input has exactly one output, each
//! partition's outputs switch from the old version to the new once and never back, inputs
//! produced after the swap answered all carry the new version, and no output carries any
//! other version. A version that fails to load is refused and the current one keeps scoring.

use std::path::Path;
use std::time::Duration;

use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow_e2e::{
    consume_scored, free_loopback_address, http_get, http_post_json, http_post_json_as, produce,
    repository, Broker, EngineProcess, TestTopics,
};

/// Copies the shipped flow model into `<models>/flow/<version>` under `version`.
fn flow_version(models: &Path, version: &str) {
    let shipped = threatflow::ml::artifact::newest_version(&repository().join("models/flow"))
        .expect("shipped flow model");
    let target = models.join("flow").join(version);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if name == "manifest.json" {
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            manifest["version"] = serde_json::json!(version);
            std::fs::write(
                target.join(&name),
                serde_json::to_vec_pretty(&manifest).unwrap(),
            )
            .unwrap();
        } else {
            std::fs::copy(&path, target.join(&name)).unwrap();
        }
    }
}

/// The bearer token the test engine's admin endpoint requires.
const ADMIN_TOKEN: &str = "swap-test-token";

fn flows(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut generator = EventGenerator::new(seed);
    (0..count)
        .map(|_| encode_json(&generator.event(SchemaKind::Flow)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_swap_mid_stream_loses_nothing_and_versions_switch_once() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 4)?;
    let work = tempfile::tempdir()?;
    let models = work.path().join("models");
    flow_version(&models, "v1-old");
    flow_version(&models, "v2-new");
    let http = free_loopback_address()?;
    let config = topics
        .operator_config(
            &broker.bootstrap,
            &work.path().join("state"),
            &http,
            ("flow", "flow"),
            &models,
            "[operators.flow]\nversion = \"v1-old\"\n",
        )
        .replace(
            "[http]\n",
            &format!("[http]\nmodel_admin = true\nadmin_token = \"{ADMIN_TOKEN}\"\n"),
        )
        .replace("output_topic = ", "workers = 2\noutput_topic = ");
    let config_path = work.path().join("engine.toml");
    std::fs::write(&config_path, config)?;
    let _engine = EngineProcess::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &config_path,
        &work.path().join("engine.log"),
    )?;
    let logs = || std::fs::read_to_string(work.path().join("engine.log")).unwrap_or_default();

    // Before: a stream under way on the old version.
    let mut landed = Vec::new();
    for round in 0..5 {
        landed.extend(produce(&broker.bootstrap, &topics.input, &flows(400, round)).await?);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let first = consume_scored(
        &broker.bootstrap,
        &[&topics.output],
        topics.partitions,
        Duration::from_secs(60),
        |records| records.values().map(Vec::len).sum::<usize>() >= 2000,
    );
    assert!(
        first.values().map(Vec::len).sum::<usize>() >= 2000,
        "the first 2000 inputs were not scored\n{}",
        logs()
    );
    let (_, before) = http_get(&http, "/models")?;
    assert!(before.contains("v1-old"), "{before}\n{}", logs());

    // A version that does not load is refused; the old one keeps scoring.
    let (status, body) = http_post_json_as(
        &http,
        &format!("/models/{}", topics.input),
        r#"{"version": "v9-missing"}"#,
        ADMIN_TOKEN,
    )?;
    assert_eq!(status, 422, "{body}");
    let (status, _) = http_post_json_as(
        &http,
        "/models/no-such-topic",
        r#"{"version": "v2-new"}"#,
        ADMIN_TOKEN,
    )?;
    assert_eq!(status, 404);
    // Without the bearer token (or with a wrong one) nothing changes.
    let swap_path = format!("/models/{}", topics.input);
    let (status, _) = http_post_json(&http, &swap_path, r#"{"version": "v2-new"}"#)?;
    assert_eq!(status, 401);
    let (status, _) = http_post_json_as(&http, &swap_path, r#"{"version": "v2-new"}"#, "wrong")?;
    assert_eq!(status, 401);
    let (status, _) = http_post_json_as(
        &http,
        &format!("/models/{}", topics.input),
        r#"{"version": "../flow/v2-new"}"#,
        ADMIN_TOKEN,
    )?;
    assert_eq!(status, 400);

    // The swap, while more input is being produced.
    let producing = {
        let bootstrap = broker.bootstrap.clone();
        let input = topics.input.clone();
        tokio::spawn(async move {
            let mut landed = Vec::new();
            for round in 10..14 {
                landed.extend(produce(&bootstrap, &input, &flows(400, round)).await?);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(landed)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = http_post_json_as(
        &http,
        &format!("/models/{}", topics.input),
        r#"{"version": "v2-new"}"#,
        ADMIN_TOKEN,
    )?;
    assert_eq!(status, 200, "{body}\n{}", logs());
    assert!(body.contains("v2-new"), "{body}");
    landed.extend(producing.await??);
    // After: everything produced from now on must be scored by the new version.
    let after_swap = produce(&broker.bootstrap, &topics.input, &flows(800, 99)).await?;
    landed.extend(after_swap.iter().copied());
    let (_, current) = http_get(&http, "/models")?;
    assert!(current.contains("v2-new"), "{current}");

    let expected = landed.len();
    let scored = consume_scored(
        &broker.bootstrap,
        &[&topics.output],
        topics.partitions,
        Duration::from_secs(90),
        |records| records.values().map(Vec::len).sum::<usize>() >= expected,
    );
    let outputs = scored.get(&topics.output).cloned().unwrap_or_default();
    // Exactly one output per input, nothing lost (a clean run: no re-delivery either).
    let mut per_input = std::collections::HashMap::new();
    for output in &outputs {
        *per_input
            .entry((output.source.partition, output.source.offset))
            .or_insert(0) += 1;
    }
    let lost: Vec<_> = landed
        .iter()
        .filter(|coordinates| !per_input.contains_key(coordinates))
        .collect();
    assert!(lost.is_empty(), "{} inputs lost\n{}", lost.len(), logs());
    assert_eq!(outputs.len(), expected, "duplicates\n{}", logs());
    // Only the two versions; per partition, old then new, switching once.
    let mut by_partition: std::collections::BTreeMap<i32, Vec<(i64, String)>> = Default::default();
    for output in &outputs {
        assert!(
            ["v1-old", "v2-new"].contains(&output.model_version.as_str()),
            "unexpected version {}",
            output.model_version
        );
        by_partition
            .entry(output.source.partition)
            .or_default()
            .push((output.source.offset, output.model_version.clone()));
    }
    let mut old_total = 0;
    for (partition, mut versions) in by_partition {
        versions.sort();
        let switches = versions.windows(2).filter(|w| w[0].1 != w[1].1).count();
        assert!(
            switches <= 1,
            "partition {partition} switched {switches} times"
        );
        assert!(
            versions.first().is_some_and(|(_, v)| v == "v1-old"),
            "partition {partition} did not start on the old version"
        );
        old_total += versions.iter().filter(|(_, v)| v == "v1-old").count();
    }
    assert!(
        old_total >= 2000,
        "the first 2000 inputs were scored before the swap"
    );
    let by_coordinates: std::collections::HashMap<_, _> = outputs
        .iter()
        .map(|o| {
            (
                (o.source.partition, o.source.offset),
                o.model_version.as_str(),
            )
        })
        .collect();
    assert!(
        after_swap
            .iter()
            .all(|coordinates| by_coordinates[coordinates] == "v2-new"),
        "inputs produced after the swap answered were scored by the old model"
    );
    Ok(())
}
