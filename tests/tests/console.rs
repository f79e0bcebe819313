//! The analyst console in a real browser (headless Chromium driven by selenium, see
//! `tests/browser/console_check.py`) against an engine on a real broker: the live view lists
//! events this test produced, an event's detail lists its contributions with training
//! medians, clicking "False positive" puts a verdict with that event's id and coordinates on
//! the feedback topic, the entity view plots an entity's risk, the models page shows the
//! current version and "Try it" scores through the API. Screenshots of every page go to
//! `target/console-screenshots/`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow_e2e::all_operators::AllOperators;
use threatflow_e2e::records::{read_records, test_tool, Record, Until};
use threatflow_e2e::{http_post_json, http_post_json_as, repository, Broker, HttpAnswer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_reads_explains_and_judges_events_in_the_browser_console() {
    let broker = Broker::start().unwrap();
    let engine = AllOperators::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        "",
        "",
        &[("THREATFLOW_HTTP__ADMIN_TOKEN", "adm1n-token")],
    );
    broker.create_topic("feedback.flow", 1).unwrap();
    let mut generator = EventGenerator::new(41);
    let events = |kind: SchemaKind, count: usize, generator: &mut EventGenerator| -> Vec<Value> {
        (0..count)
            .map(|_| serde_json::from_slice(&encode_json(&generator.event(kind))).unwrap())
            .collect()
    };
    let alerts = events(SchemaKind::Alert, 30, &mut generator);
    engine.stream(&broker, SchemaKind::Alert, &alerts, 0).await;
    let flows = events(SchemaKind::Flow, 80, &mut generator);
    let scored = engine.stream(&broker, SchemaKind::Flow, &flows, 0).await;
    // The flows the browser may open: those explained (by default the ones crossing a
    // team's threshold; the others carry no contributions).
    let flow_ids: Vec<String> = scored
        .iter()
        .filter(|s| s.labels.get("explained").map(String::as_str) == Some("true"))
        .map(|s| s.event_id.clone())
        .collect();
    assert!(!flow_ids.is_empty());

    let shots = repository().join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let output = std::process::Command::new(test_tool("APITEST_PYTHON", "python"))
        .arg(repository().join("tests/browser/console_check.py"))
        .arg(format!("http://{}", engine.http))
        .arg(&shots)
        .arg("v1")
        .args(&flow_ids)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        engine.logs()
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let clicked = report["clicked"].as_str().unwrap().to_owned();
    assert!(flow_ids.contains(&clicked));
    for page in ["live", "detail", "verdict", "entities", "models", "try"] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "{page} screenshot"
        );
    }

    // The click wrote a verdict on that event, with its coordinates, where the trainer reads.
    let verdicts: Vec<Value> = read_records(
        &broker.bootstrap,
        &["feedback.flow"],
        1,
        Until::Timeout(Duration::from_secs(20)),
        |records| !records.is_empty(),
    )
    .iter()
    .map(Record::json)
    .collect();
    let verdict = verdicts
        .iter()
        .find(|record| record["event_id"] == clicked.as_str())
        .unwrap_or_else(|| panic!("no verdict for {clicked} in {verdicts:?}"));
    assert_eq!(verdict["verdict"], "false_positive");
    assert_eq!(verdict["operator"], "flow");
    assert_eq!(verdict["model_version"], "v1");
    let record = scored.iter().find(|s| s.event_id == clicked).unwrap();
    assert_eq!(verdict["source"]["topic"], record.source.topic.as_str());
    assert_eq!(verdict["source"]["offset"], record.source.offset);
    // The models page's admin actions: the admin token is required, and the registry's own
    // checks answer (no such version; no previous champion to roll back to).
    let admin = |path: &str, token: Option<&str>, body: &str| {
        let (status, body) = match token {
            Some(token) => http_post_json_as(&engine.http, path, body, token),
            None => http_post_json(&engine.http, path, body),
        }
        .unwrap();
        HttpAnswer {
            status,
            headers: Vec::new(),
            body,
        }
    };
    let anonymous = admin("/v1/models/flow/promote", None, r#"{"version": "v1"}"#);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let wrong = admin(
        "/v1/models/flow/promote",
        Some("guess"),
        r#"{"version": "v1"}"#,
    );
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let missing = admin(
        "/v1/models/flow/promote",
        Some("adm1n-token"),
        r#"{"version": "v9"}"#,
    );
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(missing.body.contains("v9"), "{}", missing.body);
    let rollback = admin("/v1/models/flow/rollback", Some("adm1n-token"), "{}");
    assert_eq!(rollback.status, 422, "{}", rollback.body);
    assert!(
        rollback.body.contains("no previous champion"),
        "{}",
        rollback.body
    );

    // It is a verdict the trainer accepts (the same decoder reads the feedback topic).
    let payload = serde_json::to_vec(verdict).unwrap();
    threatflow::learning::verdict::Feedback::decode(Some(&payload), "flow").unwrap();
}
