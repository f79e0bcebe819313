//! The chart's Grafana dashboard and Prometheus alert rules use only metrics a running
//! engine exposes: an engine (with the trainer role, a small drift window) takes traffic of
//! every stream with bad input, a scoring API call and an analyst verdict; then every
//! `threatflow_*` name in `helm/threatflow/dashboards/threatflow.json` and
//! `templates/prometheusrule.yaml` must be on its `/metrics`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow_e2e::all_operators::{AllOperators, OPERATORS};
use threatflow_e2e::{http_call, repository, Broker};

/// Every `threatflow_*` metric a file names (histogram series reduced to their metric).
fn metric_names(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut names = BTreeSet::new();
    for (index, _) in text.match_indices("threatflow_") {
        let name: String = text[index..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name)
            .to_owned();
        names.insert(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_alerts_is_exposed_by_a_running_engine() {
    let chart = repository().join("helm/threatflow");
    let mut wanted = metric_names(&chart.join("dashboards/threatflow.json"));
    wanted.extend(metric_names(&chart.join("templates/prometheusrule.yaml")));
    assert!(wanted.len() >= 10, "{wanted:?}");

    let broker = Broker::start().unwrap();
    broker.create_topic("feedback.flow", 1).unwrap();
    let engine = AllOperators::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        "\n[lifecycle]\ntrainer = true\n\n[drift]\nwindow = 50\n",
    );
    let mut generator = EventGenerator::new(17);
    for kind in OPERATORS {
        let mut payloads: Vec<Vec<u8>> = (0..120)
            .map(|_| encode_json(&generator.event(kind)))
            .collect();
        payloads.push(b"not json at all".to_vec());
        threatflow_e2e::produce(&broker.bootstrap, &engine.inputs[kind.name()], &payloads)
            .await
            .unwrap();
    }
    let flow = encode_json(&generator.event(threatflow::events::SchemaKind::Flow));
    let answer = http_call(&engine.http, "POST", "/v1/score/flow", &[], Some(&flow)).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let verdict = json!({"event_id": format!("{}-0-0", engine.inputs["flow"]), "operator": "flow",
                         "verdict": "true_positive", "timestamp_ms": 1_796_000_000_000i64});
    threatflow_e2e::produce(
        &broker.bootstrap,
        "feedback.flow",
        &[verdict.to_string().into_bytes()],
    )
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut missing: Vec<String> = wanted.iter().cloned().collect();
    while Instant::now() < deadline && !missing.is_empty() {
        let exposed = http_call(&engine.http, "GET", "/metrics", &[], None)
            .unwrap()
            .body;
        missing.retain(|name| {
            !exposed
                .lines()
                .any(|line| !line.starts_with('#') && line.starts_with(name.as_str()))
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        missing.is_empty(),
        "not on /metrics: {missing:?}\n{}",
        engine.logs()
    );
}
