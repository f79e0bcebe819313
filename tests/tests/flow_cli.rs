//! `threatflow train flow` and `eval flow` as a user runs them: the shipped model's figures
//! on KDDTest+ with the JSON last line and the report files, and reproducible training.

use std::path::Path;
use std::process::Command;

use threatflow_e2e::{repository, succeed};

fn threatflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

fn last_json_line(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().last().expect("no output");
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
}

#[test]
fn eval_prints_the_figures_as_a_json_last_line_and_writes_the_report() {
    let report = tempfile::tempdir().unwrap();
    let stdout = succeed(
        threatflow()
            .current_dir(repository())
            .args([
                "eval",
                "flow",
                "--json",
                "--data",
                "models/flow/data/KDDTest+.txt",
            ])
            .arg("--report")
            .arg(report.path())
            .output()
            .unwrap(),
    );
    let figures = last_json_line(&stdout);
    for key in ["accuracy", "precision", "recall", "f1", "auc"] {
        let value = figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing"));
        assert!((0.0..=1.0).contains(&value), "{key} = {value}");
    }
    assert_eq!(figures["rows"], 22_544);
    // A model that learned nothing would sit near the majority share (0.57).
    assert!(figures["auc"].as_f64().unwrap() > 0.9);
    assert_eq!(figures["teams"].as_array().unwrap().len(), 4);
    assert!(stdout.contains("| r2l |"), "{stdout}");
    for file in ["report.md", "report.json", "roc.png", "pr.png"] {
        let bytes = std::fs::read(report.path().join(file)).unwrap();
        assert!(!bytes.is_empty(), "{file}");
        if file.ends_with(".png") {
            assert_eq!(&bytes[1..4], b"PNG");
        }
    }
}

fn train(data: &Path, models: &Path) -> String {
    succeed(
        threatflow()
            .args(["train", "flow", "--version", "t1", "--seed", "5"])
            .arg("--data")
            .arg(data)
            .arg("--model-dir")
            .arg(models)
            .output()
            .unwrap(),
    )
}

#[test]
fn training_is_reproducible_for_a_seed_and_yields_a_loadable_model() {
    let work = tempfile::tempdir().unwrap();
    // Every fifth row of the training file keeps the test quick in a debug build.
    let full =
        std::fs::read_to_string(repository().join("models/flow/data/KDDTrain+_20Percent.txt"))
            .unwrap();
    let subset: String = full
        .lines()
        .step_by(5)
        .map(|line| format!("{line}\n"))
        .collect();
    let data = work.path().join("subset.txt");
    std::fs::write(&data, subset).unwrap();

    let (first, second) = (work.path().join("a"), work.path().join("b"));
    let report = train(&data, &first);
    assert!(report.contains("validation split"), "{report}");
    train(&data, &second);
    for file in ["binary.json", "category.json"] {
        let a = std::fs::read(first.join("flow/t1").join(file)).unwrap();
        let b = std::fs::read(second.join("flow/t1").join(file)).unwrap();
        assert!(a == b, "{file} differs between two runs with one seed");
    }
    let stdout = succeed(
        threatflow()
            .args(["eval", "flow", "--json", "--model"])
            .arg(first.join("flow/t1"))
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap(),
    );
    assert!(last_json_line(&stdout)["accuracy"].as_f64().unwrap() > 0.9);
}

#[test]
fn bench_trees_runs_xgboost_beside_our_evaluator_on_the_same_trees_and_rows() {
    // The command makes its own Python environment (pinned xgboost-cpu wheel) when missing.
    // Only the accounting is asserted: both sides ran on the same rows and agree on every
    // margin; rates are reported, never judged here.
    let stdout = succeed(
        threatflow()
            .current_dir(repository())
            .args(["bench", "trees", "--json", "--rows", "300"])
            .args(["--repeats", "5", "--rounds", "1"])
            .output()
            .unwrap(),
    );
    let figures = last_json_line(&stdout);
    for key in ["rows_per_sec", "xgboost_rows_per_sec", "ratio"] {
        assert!(figures[key].as_f64().unwrap() > 0.0, "{key}: {figures}");
    }
    assert_eq!(figures["flow"]["rows"], 300, "{figures}");
    assert_eq!(figures["fixture"]["rows"], 300, "{figures}");
    for model in ["flow", "fixture"] {
        let difference = figures[model]["max_margin_difference"].as_f64().unwrap();
        assert!(difference < 1e-4, "{model}: {figures}");
    }
}
