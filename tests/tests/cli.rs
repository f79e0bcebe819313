//! The command line as a user runs it: `config check` accepts the shipped example configs and
//! rejects a broken one with every problem named and exit status 2.

use std::process::Command;

fn threatflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
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
    let output = threatflow()
        .args(["config", "check", example])
        .env("THREATFLOW_PIPELINE__BATCH_SIZE", "77")
        .env("THREATFLOW_KAFKA__OPTIONS__SASL_PASSWORD", "s3cr3t-value")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("batch_size = 77"), "{stdout}");
    assert!(
        stdout.contains("\"sasl.password\" = \"********\""),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cr3t-value"), "{stdout}");
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
