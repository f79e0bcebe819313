//! Short runs of the reliability commands, so they stay working: `threatflow-fuzz-decoders`
//! on a few thousand inputs per format and schema, and `threatflow-chaos` with two SIGKILLs
//! of the engine on a small load. Accounting only — never timings (the long runs and their
//! figures are in the README and the closing notes).

use std::process::Command;

fn last_json_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("no JSON summary ({error}):\n{text}"))
}

#[test]
fn decoder_fuzz_short_run_finds_no_panic_and_no_value_in_details() {
    let output = Command::new(env!("CARGO_BIN_EXE_threatflow-fuzz-decoders"))
        .args(["--runs", "3000", "--seed", "11"])
        .output()
        .unwrap();
    let summary = last_json_line(&output.stdout);
    assert!(output.status.success(), "{summary}");
    assert_eq!(summary["total_runs"], 3000 * 20);
    assert_eq!(summary["panics"], 0);
    assert_eq!(summary["violations"], 0);
}

#[test]
fn chaos_short_run_loses_nothing_across_two_kills() {
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_threatflow-chaos"))
        .args(["--engine", env!("CARGO_BIN_EXE_threatflow-under-test")])
        .args(["--events", "1500", "--rate", "150", "--kills", "2"])
        .args(["--min-interval-ms", "500", "--max-interval-ms", "1500"])
        .args(["--quiet-secs", "60"])
        .arg("--work-dir")
        .arg(work.path())
        .env("TANSU_BIN", threatflow_e2e::tansu_binary())
        .output()
        .unwrap();
    let summary = last_json_line(&output.stdout);
    assert!(
        output.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(summary["inputs"], 1500);
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["not_yet_seen"], 0, "{summary}");
    assert_eq!(summary["kills"], 2);
}
