//! The Helm chart (`helm/threatflow`) through the real Helm engine: every `ci/*-values.yaml`
//! scenario renders, lints strictly and validates against the Kubernetes schemas; its engine
//! config passes this build's `threatflow config check`; probes, KEDA triggers and grace
//! period are right; wrong values are refused and a broken chart is caught
//! (`tests/helm/chart_check.py`, PyPI helm-python-sdk + kubernetes-validate).

use threatflow_e2e::records::test_tool;
use threatflow_e2e::{repository, succeed};

#[test]
fn every_chart_scenario_renders_lints_validates_and_the_checks_catch_a_broken_chart() {
    let output = std::process::Command::new(test_tool("APITEST_PYTHON", "python"))
        .arg(repository().join("tests/helm/chart_check.py"))
        .arg(repository())
        .arg(env!("CARGO_BIN_EXE_threatflow-under-test"))
        .output()
        .unwrap();
    let stdout = succeed(output);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let scenarios = report["scenarios"].as_object().unwrap();
    for scenario in ["minimal", "sasl-tls", "gpu", "keda", "hpa", "trainer"] {
        assert!(
            scenarios.contains_key(scenario),
            "{scenario} not checked: {report}"
        );
    }
    assert!(
        !report["broken_chart_caught"].as_array().unwrap().is_empty(),
        "{report}"
    );
}
