//! The container image (`deploy/Containerfile`, built FROM scratch by `deploy/build-image.sh`
//! with buildah, no Docker daemon): built from this build's binary, then inside it — as the
//! image's non-root user — `threatflow --version`, `threatflow config check` on the bundled
//! example config (every shipped model and the ONNX Runtime library load, the state directory
//! is writable), and `threatflow models verify` on a shipped model. Then as the chart runs the
//! pod (`tests/image/readonly-run.sh`): read-only root filesystem, uid 10001, writable volumes
//! only at /var/lib/threatflow and /tmp — `config check` and a full `demo` (embedded broker,
//! all five operators with their models, state written to the volume) succeed.

use std::process::Command;

use threatflow_e2e::{repository, unique_name};

fn buildah() -> Command {
    let mut command = Command::new("buildah");
    command.args(["--storage-driver", "vfs"]);
    command
}

/// Whether a command succeeded, and its stdout and stderr together.
fn outcome(output: std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn run_in(container: &str, args: &[&str]) -> (bool, String) {
    outcome(
        buildah()
            .args(["run", "--isolation", "chroot", container, "--"])
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn the_image_builds_from_scratch_and_the_engine_runs_inside_it() {
    assert!(
        Command::new("buildah").arg("--version").output().is_ok(),
        "buildah is not installed: run scripts/setup.sh (apt-get install buildah)"
    );
    let tag = format!("localhost/{}:test", unique_name("threatflow"));
    let build = Command::new("bash")
        .arg(repository().join("deploy/build-image.sh"))
        .arg(env!("CARGO_BIN_EXE_threatflow-under-test"))
        .arg(&tag)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let container = String::from_utf8(
        buildah()
            .args(["from", "-q", &tag])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let checks = [
        vec!["/usr/local/bin/threatflow", "--version"],
        vec![
            "/usr/local/bin/threatflow",
            "config",
            "check",
            "--offline",
            "/etc/threatflow/threatflow.toml",
        ],
        vec![
            "/usr/local/bin/threatflow",
            "models",
            "verify",
            "/opt/threatflow/models/flow/v1",
        ],
    ];
    let results: Vec<(bool, String)> = checks.iter().map(|args| run_in(&container, args)).collect();
    let _ = buildah().args(["rm", &container]).output();
    let read_only_check = read_only_run(
        &tag,
        &[],
        &[
            "config",
            "check",
            "--offline",
            "/etc/threatflow/threatflow.toml",
        ],
    );
    let read_only_demo = read_only_run(
        &tag,
        &["THREATFLOW_STORAGE__MODEL_DIR=/opt/threatflow/models"],
        &["demo", "--events", "1500", "--json"],
    );
    let _ = buildah().args(["rmi", &tag]).output();
    let (version_ok, version) = &results[0];
    assert!(*version_ok && version.contains("threatflow"), "{version}");
    let (check_ok, check) = &results[1];
    assert!(*check_ok, "config check in the image:\n{check}");
    for operator in ["prompt", "flow", "email", "alert", "address"] {
        assert!(
            check.contains(&format!("operator {operator} for topic")),
            "{check}"
        );
    }
    assert!(
        check.contains("state directory /var/lib/threatflow/state: writable"),
        "{check}"
    );
    let (verify_ok, verify) = &results[2];
    assert!(*verify_ok, "{verify}");

    let (check_ok, check) = read_only_check;
    assert!(check_ok, "config check on a read-only root:\n{check}");
    assert!(
        check.contains("state directory /var/lib/threatflow/state: writable"),
        "{check}"
    );
    let (demo_ok, demo) = read_only_demo;
    assert!(demo_ok, "demo on a read-only root:\n{demo}");
    let summary: serde_json::Value = demo
        .lines()
        .find(|line| line.starts_with("{\"produced\""))
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no demo summary:\n{demo}"));
    assert_eq!(summary["lost"], 0, "{demo}");
    for operator in ["prompt", "flow", "email", "alert", "address"] {
        assert!(
            summary["topics"][operator]["scored"].as_u64() > Some(0),
            "{operator} scored nothing on a read-only root:\n{demo}"
        );
    }
    assert!(
        demo.contains(" ./state/model-cache "),
        "state went to the volume:\n{demo}"
    );
}

/// `threatflow <args>` from image `tag` on a read-only root filesystem (the chart's pod
/// security settings), with `env` (`NAME=value`) added.
fn read_only_run(tag: &str, env: &[&str], args: &[&str]) -> (bool, String) {
    outcome(
        Command::new("bash")
            .arg(repository().join("tests/image/readonly-run.sh"))
            .arg(tag)
            .args(env)
            .arg("--")
            .arg("/usr/local/bin/threatflow")
            .args(args)
            .output()
            .unwrap(),
    )
}
