//! Short runs of the load test: they assert its accounting — every input produced is scored,
//! dead-lettered or reported late, none lost, every round's figures present — never timings.

use std::path::PathBuf;
use std::process::Command;

fn loadtest(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_threatflow-loadtest"))
        .args(args)
        .args(["--json", "--quiet-secs", "60"])
        .output()
        .expect("the load test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON last line")
}

/// Every round accounts for each input it produced.
fn assert_accounted(summary: &serde_json::Value, events: u64, rounds: usize) {
    assert_eq!(summary["lost"], 0, "{summary}");
    let all = summary["rounds"].as_array().unwrap();
    assert_eq!(all.len(), rounds, "{summary}");
    for round in all {
        assert_eq!(round["produced"], events, "{round}");
        let accounted = round["scored"].as_u64().unwrap()
            + round["dead_lettered"].as_u64().unwrap()
            + round["not_yet_seen"].as_u64().unwrap();
        assert_eq!(accounted, events, "{round}");
        assert!(round["events_per_sec"].as_f64().unwrap() > 0.0, "{round}");
        assert!(
            round["p50_ms"].as_u64() <= round["p99_ms"].as_u64(),
            "{round}"
        );
    }
}

#[test]
fn flat_out_on_the_embedded_broker_with_the_relay_and_passthrough_baselines() {
    let work = tempfile::tempdir().unwrap();
    let plot = work.path().join("plot.png");
    let out = work.path().join("result.json");
    let summary = loadtest(&[
        "--events",
        "600",
        "--baseline",
        "raw",
        "--baseline",
        "passthrough",
        "--plot",
        plot.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_accounted(&summary, 600, 3);
    assert_eq!(summary["broker"], "embedded");
    // The relay writes no dead letters: it forwards bad inputs like good ones.
    // Rounds run in the order asked for: the engine, then each baseline.
    assert_eq!(summary["rounds"][1]["target"], "raw-relay");
    assert_eq!(summary["rounds"][1]["scored"], 600, "{summary}");
    assert_eq!(summary["rounds"][2]["target"], "passthrough");
    // The engines dead-letter the 2 % bad inputs.
    assert_eq!(summary["rounds"][0]["dead_lettered"], 12, "{summary}");
    for key in ["ratio", "raw_ratio", "passthrough_events_per_sec", "p99_ms"] {
        assert!(summary[key].is_number(), "{key}: {summary}");
    }
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(!full["rounds"][0]["timeline"].as_array().unwrap().is_empty());
}

#[test]
fn open_loop_on_tansu_with_two_processes_in_one_group() {
    let tansu = std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/bin/tansu"))
        });
    let summary = loadtest(&[
        "--events",
        "400",
        "--rate",
        "200",
        "--mix",
        "flow=1,alert=1",
        "--baseline",
        "scale-out",
        "--tansu",
        tansu.to_str().unwrap(),
    ]);
    assert_accounted(&summary, 400, 2);
    assert_eq!(summary["broker"], "tansu");
    assert_eq!(summary["rounds"][1]["processes"], 2, "{summary}");
    assert_eq!(summary["latency_at_events_per_sec"], 200.0, "{summary}");
    assert!(summary["scale_out_ratio"].is_number(), "{summary}");
    // Only the mix's streams were produced to.
    let streams = summary["rounds"][0]["produced_by_stream"]
        .as_object()
        .unwrap();
    assert_eq!(streams.keys().collect::<Vec<_>>(), ["alert", "flow"]);
}
