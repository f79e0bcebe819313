//! The pipeline loop, written once for every operator: source → decode → operator → emit.
//!
//! Threads: one *source* thread polls the consumer and batches records per input topic; one
//! *worker* thread per binding owns that binding's operator (plain `&mut self` code), decodes,
//! scores and emits; librdkafka's producer thread reports deliveries into the offset tracker.
//! Bounded channels between source and workers and librdkafka's bounded producer queue make
//! a slow stage slow the source down instead of growing memory.
//!
//! Delivery guarantee: **at-least-once**. An input's offset is stored only after every record
//! it produced (scored event, extra records, or its dead-letter record) has been acknowledged
//! by the broker, in offset order per partition (see [`crate::offsets`]). Caveats: after a
//! crash, inputs read since the last commit are processed again (same `event_id`, so
//! downstream can de-duplicate); keyed state is as good as the operator's checkpoint.
//!
//! Shutdown (cancel of the token, e.g. SIGTERM): stop polling, dispatch pending batches,
//! let workers drain and checkpoint, flush the producer, store and synchronously commit the
//! final offsets, leave the group — all within `pipeline.shutdown_grace_ms`. Whatever did not
//! make it is simply not committed and is re-read on restart.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::config::{EngineConfig, TopicBinding};
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::decode::{DecodeFailure, Decoder};
use crate::emit::{DeliveryToken, Emitter};
use crate::encode::OutputEncoder;
use crate::events::SchemaKind;
use crate::offsets::{OffsetTracker, TopicPartition};
use crate::operators::{Operator, OperatorContext, Outcome, SourcedEvent};
use crate::scored::{now_ms, SourceCoordinates};
use crate::source::{
    commit, store_committable, Dispatcher, Health, RawRecord, SourceContext, WorkerMessage,
};
use crate::telemetry;

/// How long one consumer poll may block; bounds the reaction time to shutdown and linger.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// How often stored offsets are refreshed from the tracker (committed every commit interval).
const STORE_INTERVAL: Duration = Duration::from_millis(100);
/// Headroom over `max_message_bytes` for the producer's own limit: a dead letter carries the
/// input's bytes plus its envelope.
const PRODUCER_ENVELOPE_HEADROOM: usize = 64 * 1024;

/// Errors that stop the pipeline from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Creating or subscribing a Kafka client failed.
    #[error("kafka client error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An operator failed to start (for example its model did not load).
    #[error("operator {operator} failed to start: {message}")]
    OperatorStart {
        /// Operator name.
        operator: String,
        /// What failed.
        message: String,
    },
    /// Building the output encoder failed.
    #[error("output encoder: {0}")]
    Encoder(#[from] crate::encode::EncodeError),
    /// A thread could not be spawned.
    #[error("cannot spawn thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// librdkafka consumer settings: our defaults, then the user's options, then what the
/// delivery guarantee requires (which no option may override).
pub fn consumer_client_config(config: &EngineConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        // Bounds how long a fetch waits for data: brokers that do not answer a waiting fetch
        // as soon as data arrives (Tansu, librdkafka's mock) otherwise add up to librdkafka's
        // 500 ms default to every event's latency. Measured: p50 200 ms → 65 ms at 5k/s.
        .set("fetch.wait.max.ms", "50")
        .set("enable.partition.eof", "false");
    for (name, value) in config
        .kafka
        .options
        .iter()
        .chain(&config.kafka.consumer_options)
    {
        client.set(name, value);
    }
    if config
        .kafka
        .consumer_options
        .get("enable.auto.offset.store")
        .is_some_and(|v| v != "false")
    {
        tracing::warn!("enable.auto.offset.store is forced to false (at-least-once delivery)");
    }
    client.set("enable.auto.offset.store", "false");
    // The pipeline commits on its own schedule (`pipeline.commit_interval_ms`), right after
    // storing, so the crash window is one short interval rather than librdkafka's timer.
    client.set("enable.auto.commit", "false");
    client
}

/// librdkafka producer settings: our defaults, then the user's options.
pub fn producer_client_config(config: &EngineConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    let message_max_bytes =
        (config.pipeline.max_message_bytes + PRODUCER_ENVELOPE_HEADROOM).max(1_000_000);
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.max.bytes", message_max_bytes.to_string());
    for (name, value) in config
        .kafka
        .options
        .iter()
        .chain(&config.kafka.producer_options)
    {
        client.set(name, value);
    }
    client
}

/// Runs the engine until `shutdown` is cancelled, then shuts down gracefully. Blocking: call
/// it from a dedicated thread (or `spawn_blocking`).
pub fn run(
    config: &EngineConfig,
    shutdown: CancellationToken,
    health: Arc<Health>,
) -> Result<(), PipelineError> {
    let tracker = Arc::new(OffsetTracker::new());
    let emitter = Arc::new(Emitter::new(
        &producer_client_config(config),
        tracker.clone(),
    )?);
    let (worker_channels, workers) = start_workers(config, &tracker, &emitter, &health)?;
    health.operators_started.store(true, Ordering::Relaxed);

    let dispatcher = Arc::new(Dispatcher::new(
        worker_channels,
        config.pipeline.batch_size,
        Duration::from_millis(config.pipeline.linger_ms),
    ));
    let context = SourceContext {
        tracker: tracker.clone(),
        dispatcher: dispatcher.clone(),
        health: health.clone(),
        revoke_drain: Duration::from_millis(config.pipeline.revoke_drain_ms),
    };
    let consumer: BaseConsumer<SourceContext> =
        consumer_client_config(config).create_with_context(context)?;
    let topics: Vec<&str> = config
        .bindings
        .iter()
        .map(|binding| binding.topic.as_str())
        .collect();
    consumer.subscribe(&topics)?;
    tracing::info!(?topics, group = %config.kafka.group_id, "engine started");

    let commit_interval = Duration::from_millis(config.pipeline.commit_interval_ms);
    poll_until_cancelled(&consumer, &dispatcher, &tracker, commit_interval, &shutdown);

    let grace = Duration::from_millis(config.pipeline.shutdown_grace_ms);
    shut_down(
        &consumer,
        &dispatcher,
        &tracker,
        &emitter,
        workers,
        grace,
        &health,
    );
    Ok(())
}

fn poll_until_cancelled(
    consumer: &BaseConsumer<SourceContext>,
    dispatcher: &Dispatcher,
    tracker: &OffsetTracker,
    commit_interval: Duration,
    shutdown: &CancellationToken,
) {
    let mut consumed_by_topic: HashMap<String, u64> = HashMap::new();
    let mut last_store = Instant::now();
    let mut last_commit = Instant::now();
    let mut stored_since_commit = false;
    while !shutdown.is_cancelled() {
        // Wake up in time to dispatch a lingering batch, not a whole poll timeout later.
        let timeout = dispatcher
            .next_linger_deadline()
            .map_or(POLL_TIMEOUT, |deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(POLL_TIMEOUT)
            });
        match consumer.poll(timeout) {
            Some(Ok(message)) => {
                let partition = TopicPartition::new(message.topic(), message.partition());
                // Counted locally and published with the offsets: no allocation per message
                // once the topic is known.
                match consumed_by_topic.get_mut(message.topic()) {
                    Some(count) => *count += 1,
                    None => {
                        consumed_by_topic.insert(partition.topic.clone(), 1);
                    }
                }
                // A refused offset is a re-delivery behind what we already track (after a
                // seek); it was or will be processed in order, so skipping it loses nothing.
                if let Some(tracked) = tracker.track(&partition, message.offset()) {
                    let timestamp_ms = match message.timestamp() {
                        Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
                        Timestamp::NotAvailable => None,
                    };
                    dispatcher.add(RawRecord {
                        tracked,
                        timestamp_ms,
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                    });
                }
            }
            Some(Err(error)) => tracing::warn!(%error, "consumer error"),
            None => {}
        }
        dispatcher.flush(false);
        if last_store.elapsed() >= STORE_INTERVAL {
            stored_since_commit |= store_committable(consumer, tracker);
            if stored_since_commit && last_commit.elapsed() >= commit_interval {
                commit(consumer, CommitMode::Async, "periodic");
                stored_since_commit = false;
                last_commit = Instant::now();
            }
            publish_consumed(&mut consumed_by_topic);
            metrics::gauge!(telemetry::INFLIGHT_EVENTS).set(tracker.pending(&[]) as f64);
            last_store = Instant::now();
        }
    }
    publish_consumed(&mut consumed_by_topic);
}

/// Adds the locally counted consumed records to the metric and resets the counts.
fn publish_consumed(consumed_by_topic: &mut HashMap<String, u64>) {
    for (topic, count) in consumed_by_topic.iter_mut() {
        if *count > 0 {
            metrics::counter!(telemetry::EVENTS_CONSUMED, "topic" => topic.clone())
                .increment(*count);
            *count = 0;
        }
    }
}

fn shut_down(
    consumer: &BaseConsumer<SourceContext>,
    dispatcher: &Dispatcher,
    tracker: &OffsetTracker,
    emitter: &Emitter,
    workers: Vec<JoinHandle<()>>,
    grace: Duration,
    health: &Health,
) {
    let deadline = Instant::now() + grace;
    health.stopping.store(true, Ordering::Relaxed);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining"
    );
    dispatcher.flush(true);
    dispatcher.close();
    for worker in workers {
        // Workers exit once their queue is empty; a stuck operator is abandoned at the
        // deadline (its inputs stay uncommitted).
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if worker.is_finished() {
            let _ = worker.join();
        } else {
            tracing::warn!("operator worker did not finish within the grace period");
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(error) = emitter.flush(left) {
        tracing::warn!(%error, in_flight = emitter.in_flight(), "producer flush incomplete");
    }
    let pending = tracker.wait_drained(&[], deadline.saturating_duration_since(Instant::now()));
    store_committable(consumer, tracker);
    commit(consumer, CommitMode::Sync, "shutdown");
    consumer.unsubscribe();
    tracing::info!(uncommitted = pending, "shutdown complete");
}

/// Everything a worker thread needs.
struct Worker {
    binding: TopicBinding,
    operator: Box<dyn Operator>,
    decoder: Decoder,
    encoder: OutputEncoder,
    emitter: Arc<Emitter>,
    tracker: Arc<OffsetTracker>,
    dead_letter_topic: String,
    tick: Duration,
}

type WorkerChannels = HashMap<String, SyncSender<WorkerMessage>>;

fn start_workers(
    config: &EngineConfig,
    tracker: &Arc<OffsetTracker>,
    emitter: &Arc<Emitter>,
    health: &Health,
) -> Result<(WorkerChannels, Vec<JoinHandle<()>>), PipelineError> {
    let schema_ids: HashMap<u32, SchemaKind> = config
        .schema_ids
        .iter()
        .filter_map(|(id, kind)| id.parse().ok().map(|id| (id, *kind)))
        .collect();
    let mut channels = HashMap::new();
    let mut handles = Vec::new();
    for binding in &config.bindings {
        let mut operator = binding.operator.build();
        let context = OperatorContext {
            model_dir: &config.storage.model_dir,
            state_dir: &config.storage.state_dir,
            operators: &config.operators,
            input_topic: &binding.topic,
            kafka: Some(&config.kafka),
        };
        operator
            .start(&context)
            .map_err(|error| PipelineError::OperatorStart {
                operator: binding.operator.name().to_owned(),
                message: error.to_string(),
            })?;
        let loaded = serde_json::json!({
            "operator": operator.name(),
            "model_version": operator.model_version(),
            "model": operator.model_info(),
        });
        if let Ok(mut models) = health.models.lock() {
            models.insert(binding.topic.clone(), loaded);
        }
        let worker = Worker {
            binding: binding.clone(),
            operator,
            decoder: Decoder::new(
                binding.schema,
                binding.input_format,
                config.pipeline.max_message_bytes,
                schema_ids.clone(),
            ),
            encoder: OutputEncoder::new(&config.output)?,
            emitter: emitter.clone(),
            tracker: tracker.clone(),
            dead_letter_topic: config.output.dead_letter_topic.clone(),
            tick: Duration::from_millis(config.pipeline.tick_ms),
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(config.pipeline.channel_capacity);
        let handle = std::thread::Builder::new()
            .name(format!("threatflow-{}", binding.topic))
            .spawn(move || worker.run(receiver))?;
        channels.insert(binding.topic.clone(), sender);
        handles.push(handle);
    }
    Ok((channels, handles))
}

impl Worker {
    fn run(mut self, queue: Receiver<WorkerMessage>) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match queue.recv_timeout(wait) {
                Ok(WorkerMessage::Batch(records)) => self.process(records),
                Ok(WorkerMessage::Checkpoint(reply)) => {
                    self.checkpoint();
                    let _ = reply.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_tick {
                for extra in self.operator.tick(SystemTime::now()) {
                    self.emit_untracked(&extra.topic, &extra.key, &extra.scored);
                }
                next_tick = Instant::now() + self.tick;
            }
        }
        self.checkpoint();
    }

    fn checkpoint(&mut self) {
        if let Err(error) = self.operator.checkpoint() {
            tracing::error!(operator = self.operator.name(), %error, "operator checkpoint failed");
        }
    }

    fn process(&mut self, records: Vec<RawRecord>) {
        let operator_name = self.binding.operator.name();
        let decode_start = Instant::now();
        let mut events = Vec::with_capacity(records.len());
        let mut failures: Vec<Option<DecodeFailure>> = Vec::with_capacity(records.len());
        for record in &records {
            let source = coordinates(record);
            match self.decoder.decode(record.payload.as_deref()) {
                Ok(event) => {
                    let event_id = event
                        .producer_event_id()
                        .map(str::to_owned)
                        .unwrap_or_else(|| source.derived_event_id());
                    events.push(SourcedEvent {
                        source,
                        event_id,
                        event,
                    });
                    failures.push(None);
                }
                Err(failure) => failures.push(Some(failure)),
            }
        }
        let score_start = Instant::now();
        let mut outcomes = self.operator.score_batch(&events).into_iter();
        let emit_start = Instant::now();
        let scored_count = events.len();
        let mut missing_outcomes = false;
        for (record, failure) in records.iter().zip(failures) {
            if let Some(failure) = failure {
                self.emit_dead_letter(record, failure);
                continue;
            }
            match outcomes.next() {
                Some(Outcome::Scored { scored, extra }) => {
                    self.emit_scored(record, &scored, &extra)
                }
                Some(Outcome::Rejected { detail }) => self.emit_dead_letter(
                    record,
                    DecodeFailure {
                        reason: DeadLetterReason::OperatorRejected,
                        detail,
                    },
                ),
                None => {
                    missing_outcomes = true;
                    self.emit_dead_letter(
                        record,
                        DecodeFailure {
                            reason: DeadLetterReason::OperatorRejected,
                            detail: "operator returned fewer outcomes than events".to_owned(),
                        },
                    );
                }
            }
        }
        if missing_outcomes || outcomes.next().is_some() {
            tracing::error!(
                operator = operator_name,
                "operator broke the one-outcome-per-event contract"
            );
        }
        let done = Instant::now();
        metrics::counter!(telemetry::EVENTS_SCORED, "operator" => operator_name)
            .increment(scored_count as u64);
        metrics::histogram!(telemetry::BATCH_SIZE, "operator" => operator_name)
            .record(records.len() as f64);
        for (stage, seconds) in [
            ("decode", (score_start - decode_start).as_secs_f64()),
            ("score", (emit_start - score_start).as_secs_f64()),
            ("emit", (done - emit_start).as_secs_f64()),
        ] {
            metrics::histogram!(telemetry::BATCH_DURATION, "operator" => operator_name, "stage" => stage)
                .record(seconds);
        }
    }

    fn emit_scored(
        &self,
        record: &RawRecord,
        scored: &crate::scored::Scored,
        extra: &[crate::operators::ExtraRecord],
    ) {
        let mut outputs: Vec<(&str, Vec<u8>, Vec<u8>)> = Vec::with_capacity(1 + extra.len());
        let key = record
            .key
            .clone()
            .unwrap_or_else(|| scored.event_id.clone().into_bytes());
        match self.encoder.encode_scored(scored) {
            Ok(payload) => outputs.push((&self.binding.output_topic, key, payload)),
            Err(error) => {
                return self.emit_dead_letter(
                    record,
                    DecodeFailure {
                        reason: DeadLetterReason::OperatorRejected,
                        detail: format!("scored event does not encode: {error}"),
                    },
                );
            }
        }
        for extra_record in extra {
            match self.encoder.encode_scored(&extra_record.scored) {
                Ok(payload) => outputs.push((
                    &extra_record.topic,
                    extra_record.key.clone().into_bytes(),
                    payload,
                )),
                Err(error) => {
                    tracing::error!(%error, topic = %extra_record.topic, "extra record does not encode; skipped")
                }
            }
        }
        self.tracker
            .set_output_count(&record.tracked, outputs.len());
        for (topic, key, payload) in outputs {
            self.emitter
                .send(topic, Some(&key), &payload, self.token(record));
        }
    }

    fn emit_dead_letter(&self, record: &RawRecord, failure: DecodeFailure) {
        let source = coordinates(record);
        let topic = source.topic.clone();
        // The log line names the reason and the coordinates, never the payload or the detail
        // (which may quote field values).
        tracing::warn!(
            topic = %source.topic,
            partition = source.partition,
            offset = source.offset,
            reason = failure.reason.code(),
            bytes = record.payload.as_ref().map_or(0, Vec::len),
            "input dead-lettered"
        );
        metrics::counter!(
            telemetry::DEAD_LETTERS,
            "reason" => failure.reason.code(),
            "topic" => topic
        )
        .increment(1);
        // An oversized value is not copied: it would not fit the output limits either. Its
        // coordinates point at the original.
        let original_value = match failure.reason {
            DeadLetterReason::Oversized => None,
            _ => record.payload.clone(),
        };
        let dead_letter = DeadLetter {
            event_id: source.derived_event_id(),
            source,
            reason: failure.reason,
            detail: failure.detail,
            operator: self.binding.operator.name().to_owned(),
            original_key: record.key.clone(),
            original_value,
            failed_at_ms: now_ms(),
        };
        match self.encoder.encode_dead_letter(&dead_letter) {
            Ok(payload) => {
                self.tracker.set_output_count(&record.tracked, 1);
                let key = dead_letter.event_id.as_bytes();
                self.emitter.send(
                    &self.dead_letter_topic,
                    Some(key),
                    &payload,
                    self.token(record),
                );
            }
            Err(error) => {
                // Cannot happen for a schema-conformant record; leaving the input uncommitted
                // (rather than skipping it) keeps the no-loss promise and makes the bug loud.
                tracing::error!(%error, "dead letter does not encode; input left uncommitted");
            }
        }
    }

    fn emit_untracked(&self, topic: &str, key: &str, scored: &crate::scored::Scored) {
        match self.encoder.encode_scored(scored) {
            Ok(payload) => self.emitter.send(
                topic,
                Some(key.as_bytes()),
                &payload,
                DeliveryToken {
                    input: None,
                    attempts: 0,
                },
            ),
            Err(error) => tracing::error!(%error, topic, "timer record does not encode; skipped"),
        }
    }

    fn token(&self, record: &RawRecord) -> DeliveryToken {
        DeliveryToken {
            input: Some(record.tracked.clone()),
            attempts: 0,
        }
    }
}

fn coordinates(record: &RawRecord) -> SourceCoordinates {
    SourceCoordinates {
        topic: record.tracked.partition.topic.clone(),
        partition: record.tracked.partition.partition,
        offset: record.tracked.offset,
        timestamp_ms: record.timestamp_ms,
    }
}
