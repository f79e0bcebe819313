//! Verdicts on SIEM alerts, joined on a real broker: the alert operator's features read its
//! entity history, so each buffered verdict must carry the history facts the live engine
//! had when it scored the alert — rebuilt by the intake from the input partition's earlier
//! records, never through the live group.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use threatflow::config::EngineConfig;
use threatflow::events::InputEvent;
use threatflow::generate::encode_json;
use threatflow::learning::buffer::TrainingBuffer;
use threatflow::learning::intake::{Intake, Outcome, VerdictRecord};
use threatflow::learning::trainer::learning_inputs;
use threatflow::operators::alert::synth::{generate, GeneratorConfig};
use threatflow::scored::SourceCoordinates;
use threatflow_e2e::{consume_scored, produce, Broker, OperatorEngine, TestTopics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_verdict_carries_the_entity_history_its_alert_was_scored_with(
) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 2)?;
    let engine = OperatorEngine::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &broker,
        &topics,
        ("alert", "alert"),
        "",
    )?;
    // Three days of alerts: entities recur, so the 24 h counts vary.
    let alerts = generate(&GeneratorConfig {
        seed: 77,
        count: 900,
        days: 3,
        ..GeneratorConfig::default()
    });
    let payloads: Vec<Vec<u8>> = alerts
        .iter()
        .map(|labeled| encode_json(&InputEvent::Alert(Box::new(labeled.alert.clone()))))
        .collect();
    produce(&broker.bootstrap, &topics.input, &payloads).await?;
    let records = consume_scored(
        &broker.bootstrap,
        &[&topics.output],
        2,
        Duration::from_secs(90),
        |records| records.get(&topics.output).map_or(0, Vec::len) >= payloads.len(),
    );
    let scored = records.get(&topics.output).cloned().unwrap_or_default();
    assert_eq!(scored.len(), payloads.len(), "{}", engine.logs());

    // The trainer's intake, beside the engine, on the engine's config.
    let config = EngineConfig::load(&engine.config_path())?;
    let work = tempfile::tempdir()?;
    let buffer = Arc::new(TrainingBuffer::open(work.path())?);
    let inputs = learning_inputs(&config)
        .remove("alert")
        .expect("the alert operator learns");
    let mut intake = Intake::new(&config, buffer.clone())?;
    let judged: Vec<_> = scored.iter().step_by(4).collect();
    let started = std::time::Instant::now();
    for (index, event) in judged.iter().enumerate() {
        let verdict = serde_json::to_vec(&serde_json::json!({
            "event_id": event.event_id,
            "operator": "alert",
            "model_version": event.model_version,
            "verdict": if index % 2 == 0 { "true_positive" } else { "benign" },
            "label": "T1059",
            "timestamp_ms": 1_800_000_000_000_i64 + index as i64,
            "source": {"topic": event.source.topic, "partition": event.source.partition, "offset": event.source.offset},
        }))?;
        let outcome = intake.take(
            &inputs,
            Some(&event.model_version),
            &VerdictRecord {
                source: SourceCoordinates {
                    topic: "feedback.alert".into(),
                    partition: 0,
                    offset: index as i64,
                    timestamp_ms: None,
                },
                key: None,
                payload: Some(&verdict),
            },
        )?;
        assert_eq!(outcome, Outcome::Buffered, "verdict {index}");
    }
    buffer.flush()?;
    eprintln!(
        "{} alert verdicts joined with their history in {:.1} s",
        judged.len(),
        started.elapsed().as_secs_f64()
    );

    let live: HashMap<&str, f64> = scored
        .iter()
        .map(|event| (event.event_id.as_str(), event.scores["entity_alerts_24h"]))
        .collect();
    let rows = buffer.rows("alert")?;
    assert_eq!(rows.len(), judged.len());
    let mut with_history = 0;
    for row in &rows {
        let context = row.context.as_ref().expect("alert rows carry their facts");
        let rebuilt = context["alerts_24h"].as_f64().unwrap();
        assert_eq!(
            rebuilt,
            live[row.event_id.as_str()],
            "{}: rebuilt {context} vs the live score",
            row.event_id
        );
        with_history += usize::from(rebuilt > 0.0);
        // The analyst's label is not a disposition: the verdict names it.
        let expected = if row.threat {
            "true_positive"
        } else {
            "benign"
        };
        assert_eq!(row.label.as_deref(), Some(expected));
    }
    assert!(
        with_history * 2 > rows.len(),
        "most judged alerts should have history: {with_history} of {}",
        rows.len()
    );
    Ok(())
}
