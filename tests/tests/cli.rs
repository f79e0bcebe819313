//! The command line as a user runs it: `config check` accepts the shipped example configs
//! (with the repository's models), rejects a broken one with every problem named and exit
//! status 2, and fails (status 1) a valid config whose models, rule files or ONNX Runtime
//! library cannot be loaded, or whose broker does not answer.

use std::process::Command;

fn threatflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

fn models_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
}

fn config_check(path: &std::path::Path) -> std::process::Output {
    threatflow()
        .args(["config", "check"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn config_check_prints_the_effective_config_with_env_overrides_and_masked_secrets() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/config/threatflow.toml"
    );
    let state = tempfile::tempdir().unwrap();
    let output = threatflow()
        .args(["config", "check", "--offline", example])
        .env("THREATFLOW_PIPELINE__BATCH_SIZE", "77")
        .env("THREATFLOW_KAFKA__OPTIONS__SASL_PASSWORD", "s3cr3t-value")
        .env("THREATFLOW_HTTP__ADMIN_TOKEN", "admin-t0ken-value")
        .env("THREATFLOW_STORAGE__MODEL_DIR", models_dir())
        .env("THREATFLOW_STORAGE__STATE_DIR", state.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("batch_size = 77"), "{stdout}");
    for operator in ["flow", "alert", "email", "prompt"] {
        assert!(
            stdout.contains(&format!("# ok    operator {operator} for topic")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("\"sasl.password\" = \"********\""),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cr3t-value"), "{stdout}");
    assert!(!stdout.contains("admin-t0ken-value"), "{stdout}");
    // The artifact store (the models folder by default) lists each bound operator's versions.
    assert!(
        stdout.contains("# ok    artifact store") && stdout.contains("flow [v1]"),
        "{stdout}"
    );
}

#[test]
fn config_check_rejects_unknown_keys_and_bad_values_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[kafka]
brokers = "localhost:9092"
group_id = "g"
[[bindings]]
topic = "flows"
schema = "flow"
operator = "passthrough"
output_topic = "flows"
[pipeline]
batch_size = 0
"#,
    )
    .unwrap();
    let output = config_check(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pipeline.batch_size"), "{stderr}");
    assert!(stderr.contains("would loop"), "{stderr}");

    std::fs::write(
        &path,
        "[kafka]\nbrokers = \"x\"\ngroup_id = \"g\"\nbrokerz = 1\n",
    )
    .unwrap();
    let output = config_check(&path);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("brokerz"));
}

#[test]
fn config_check_fails_a_config_whose_models_rules_library_or_broker_are_missing() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/config/threatflow.toml"
    );
    let state = tempfile::tempdir().unwrap();
    let run = |overrides: &[(&str, &str)], offline: bool| {
        let mut command = threatflow();
        command.args(["config", "check"]);
        if offline {
            command.arg("--offline");
        }
        command
            .arg(example)
            .env("THREATFLOW_STORAGE__MODEL_DIR", models_dir())
            .env("THREATFLOW_STORAGE__STATE_DIR", state.path())
            // Nothing listens on port 9 of loopback: the broker check must fail fast.
            .env("THREATFLOW_KAFKA__BROKERS", "127.0.0.1:9");
        for (name, value) in overrides {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let cases = [
        (
            "THREATFLOW_OPERATORS__FLOW__VERSION",
            "v999",
            "operator flow",
        ),
        (
            "THREATFLOW_OPERATORS__ALERT__RULES_FILE",
            "/nonexistent/rules.toml",
            "operator alert",
        ),
        (
            "THREATFLOW_OPERATORS__PROMPT__L2__ONNXRUNTIME_LIBRARY",
            "/nonexistent/libonnxruntime.so",
            "operator prompt",
        ),
        (
            "THREATFLOW_REGISTRY__STORE",
            "/nonexistent/model-store",
            "artifact store",
        ),
    ];
    for (name, value, failing) in cases {
        let (code, stdout) = run(&[(name, value)], true);
        assert_eq!(code, Some(1), "{name}: {stdout}");
        assert!(
            stdout.contains(&format!("# FAIL  {failing}")),
            "{name}: {stdout}"
        );
    }
    let (code, stdout) = run(&[], false);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("# FAIL  brokers 127.0.0.1:9"), "{stdout}");
}

#[test]
fn the_readme_demo_runs_on_the_embedded_broker_and_loses_nothing() {
    // The embedded broker (librdkafka's mock cluster) has no CreateTopics: every topic the
    // engine would create itself (changelogs, registry log, drift topic) must be made by the
    // demo, or the engine fails to start.
    let work = tempfile::tempdir().unwrap();
    let output = threatflow()
        .args(["demo", "--events", "300", "--json"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(summary["produced"], 300, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert!(summary["scored"].as_u64().unwrap() > 0, "{summary}");
    // Throughput flat out, latency open loop at half of it: the figures a user should expect.
    assert_eq!(summary["flat_out"], true, "{summary}");
    let throughput = summary["events_per_sec"].as_f64().unwrap();
    let latency_rate = summary["latency_at_events_per_sec"].as_f64().unwrap();
    assert!(
        (latency_rate - throughput / 2.0).abs() < 1e-6 * throughput.max(1.0),
        "{summary}"
    );
    assert!(
        summary["latency_p50_ms"].as_u64() <= summary["latency_p99_ms"].as_u64(),
        "{summary}"
    );
}
