//! With `output.format = "ocsf"`, analysts' verdicts go back to the SIEM as findings: each
//! verdict on `<feedback.topic_prefix><operator>` is re-emitted on that operator's output
//! topic as an OCSF Update or Close finding with the same `finding_info.uid`
//! ([`crate::ocsf::verdict_finding`]), so the SIEM's finding follows the analyst (a false
//! positive closes as Suppressed).
//!
//! One thread per engine, its own consumer group (`<kafka.group_id>.ocsf-verdicts`); offsets
//! are committed only after the findings they produced were acknowledged (at least once).
//! A verdict that does not decode is skipped here (the trainer dead-letters it).

use std::collections::HashMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio_util::sync::CancellationToken;

use crate::config::{EngineConfig, OutputFormat};
use crate::learning::verdict::Feedback;

/// How often produced findings are flushed and their verdicts' offsets committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the relay when the output format is OCSF; `None` otherwise.
pub fn start(
    config: &EngineConfig,
    shutdown: CancellationToken,
) -> Result<Option<JoinHandle<()>>, rdkafka::error::KafkaError> {
    if config.output.format != OutputFormat::Ocsf {
        return Ok(None);
    }
    // Feedback topic → (operator, the operator's first output topic).
    let mut routes: HashMap<String, (String, String)> = HashMap::new();
    for binding in &config.bindings {
        let operator = binding.operator.name();
        routes
            .entry(format!("{}{operator}", config.feedback.topic_prefix))
            .or_insert_with(|| (operator.to_owned(), binding.output_topic.clone()));
    }
    let mut consumer_config = crate::pipeline::base_client_config(config);
    consumer_config
        .set(
            "group.id",
            format!("{}.ocsf-verdicts", config.kafka.group_id),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = consumer_config.create()?;
    let topics: Vec<&str> = routes.keys().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        crate::pipeline::producer_client_config(config).create()?;
    let handle = std::thread::Builder::new()
        .name("threatflow-ocsf-verdicts".into())
        .spawn(move || relay(&consumer, &producer, &routes, &shutdown))
        .map_err(|error| {
            rdkafka::error::KafkaError::ClientCreation(format!("ocsf verdict relay: {error}"))
        })?;
    Ok(Some(handle))
}

fn relay(
    consumer: &BaseConsumer,
    producer: &ThreadedProducer<DefaultProducerContext>,
    routes: &HashMap<String, (String, String)>,
    shutdown: &CancellationToken,
) {
    let mut last_commit = Instant::now();
    let mut pending = false;
    while !shutdown.is_cancelled() {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            if let Some((operator, output)) = routes.get(message.topic()) {
                match Feedback::decode(message.payload(), operator) {
                    Ok(feedback) => {
                        let finding = crate::ocsf::verdict_finding(&feedback).to_string();
                        let mut record = BaseRecord::to(output)
                            .key(feedback.event_id.as_str())
                            .payload(finding.as_str());
                        while let Err((error, returned)) = producer.send(record) {
                            tracing::warn!(%error, "OCSF verdict finding not queued; retrying");
                            std::thread::sleep(Duration::from_millis(50));
                            record = returned;
                        }
                        pending = true;
                    }
                    Err(refusal) => tracing::debug!(
                        reason = refusal.reason.code(),
                        "verdict skipped by the OCSF relay"
                    ),
                }
            }
            let _ = consumer.store_offset_from_message(&message);
        }
        if pending && last_commit.elapsed() >= COMMIT_INTERVAL {
            match producer.flush(Duration::from_secs(10)) {
                Ok(()) => {
                    let _ = consumer.commit_consumer_state(CommitMode::Async);
                    pending = false;
                }
                Err(error) => tracing::warn!(%error, "OCSF verdict findings not acknowledged yet"),
            }
            last_commit = Instant::now();
        }
    }
    if producer.flush(Duration::from_secs(10)).is_ok() {
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
    }
}
