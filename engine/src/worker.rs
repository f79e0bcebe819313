//! The worker of one binding: decode, score, emit — and the rules that keep a bad input from
//! costing more than one dead letter, and an engine failure from costing any.
//!
//! Guarantees:
//! - every input of a batch ends as its outputs, or as exactly one dead letter that fits
//!   `pipeline.max_output_bytes` (its value cut and flagged if needed), or — when the
//!   operator reports an engine failure ([`OperatorError`]) — as nothing at all: the batch
//!   is retried [`SCORE_ATTEMPTS`] times and then left uncommitted while the engine fails
//!   ([`Health::fail`]), stops and exits non-zero. Infrastructure never makes a dead letter;
//! - a scored output too large for `pipeline.max_output_bytes` turns its input into a dead
//!   letter (`oversized`) before anything is enqueued, so the producer never holds a record
//!   it cannot send;
//! - a panic in the operator is caught at the thread's edge ([`spawn`]) and fails the engine:
//!   the batch being scored has no outputs, so its offsets are never committed;
//! - dead letters are counted per reason and topic and logged through the rate-limited
//!   [`DeadLetterLog`], never with payload or detail;
//! - for a stateful operator the worker owns its partitions' keyed state: it restores a
//!   partition's state (changelog or local cache) before the partition's first batch, marks
//!   the partition state-pending before scoring (its offsets are then held back), makes the
//!   state durable every `pipeline.state_checkpoint_ms`, on revoke and on exit, and drops the
//!   state of revoked partitions. A checkpoint or restore that fails fails the engine: state
//!   that cannot be made durable must not let offsets be committed.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::error::KafkaError;

use crate::config::TopicBinding;
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::dead_letter_log::DeadLetterLog;
use crate::decode::{DecodeFailure, Decoder};
use crate::emit::{DeliveryToken, Emitter, RefusalHandler, Replacement};
use crate::encode::OutputEncoder;
use crate::health::Health;
use crate::offsets::OffsetTracker;
use crate::offsets::TopicPartition;
use crate::operators::{ExtraRecord, Operator, OperatorError, Outcome, SourcedEvent};
use crate::runtime::changelog::ChangelogWriter;
use crate::runtime::PartitionStates;
use crate::scored::{now_ms, Scored, SourceCoordinates};
use crate::source::{RawRecord, WorkerMessage};
use crate::telemetry;

/// Attempts at scoring a batch whose operator reports an engine failure, before the engine
/// gives up on it (a transient ONNX Runtime hiccup passes; a broken model or runtime does not).
pub const SCORE_ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each further one.
const SCORE_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Bytes kept free below `max_output_bytes` for the record's key and Kafka's framing.
const OUTPUT_FRAMING_BYTES: usize = 512;

/// Everything a worker thread needs.
pub struct Worker {
    /// The binding it serves.
    pub binding: TopicBinding,
    /// This worker's index among the binding's workers.
    pub lane: usize,
    /// This worker's scorer (owned by this thread; the model is the binding's, shared).
    pub operator: Box<dyn Operator>,
    /// Keyed state of this worker's partitions (empty for a stateless operator).
    pub states: PartitionStates,
    /// Where the keyed state is made durable (stateful operators on a broker).
    pub changelog: Option<ChangelogWriter>,
    /// `pipeline.state_checkpoint_ms`.
    pub state_checkpoint: Duration,
    /// Input decoder.
    pub decoder: Decoder,
    /// Output encoder.
    pub encoder: OutputEncoder,
    /// Shared producer.
    pub emitter: Arc<Emitter>,
    /// Shared offset tracker.
    pub tracker: Arc<OffsetTracker>,
    /// `output.dead_letter_topic`.
    pub dead_letter_topic: String,
    /// `pipeline.tick_ms`.
    pub tick: Duration,
    /// `pipeline.max_output_bytes`.
    pub max_output_bytes: usize,
    /// Engine health (fatal failures).
    pub health: Arc<Health>,
    /// Rate-limited dead-letter log.
    pub dead_letters: Arc<DeadLetterLog>,
    /// The binding's shadow tap (offered every scored batch; scores only with a challenger).
    pub shadow: Option<Arc<crate::registry::shadow::ShadowTap>>,
    /// The binding's drift watch (offered every scored batch).
    pub drift: Option<Arc<crate::drift::tap::DriftTap>>,
}

/// Starts `worker` on its own thread. A panic inside it is caught here and fails the engine.
pub fn spawn(worker: Worker, queue: Receiver<WorkerMessage>) -> std::io::Result<JoinHandle<()>> {
    let topic = worker.binding.topic.clone();
    let health = worker.health.clone();
    std::thread::Builder::new()
        .name(format!("threatflow-{topic}-{}", worker.lane))
        .spawn(move || {
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| worker.run(queue))) {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                health.fail(format!("the worker of topic {topic} panicked: {message}"));
            }
        })
}

impl Worker {
    fn run(mut self, queue: Receiver<WorkerMessage>) {
        let mut next_tick = Instant::now() + self.tick;
        let mut next_checkpoint = Instant::now() + self.state_checkpoint;
        loop {
            let wake = next_tick.min(next_checkpoint);
            let wait = wake.saturating_duration_since(Instant::now());
            match queue.recv_timeout(wait) {
                Ok(WorkerMessage::Batch(records)) => self.process(records),
                Ok(WorkerMessage::Checkpoint { revoked, reply }) => {
                    self.checkpoint();
                    self.drop_state(&revoked);
                    let _ = reply.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_tick {
                for extra in self.operator.tick(SystemTime::now(), &mut self.states) {
                    self.emit_untracked(&extra.topic, &extra.key, &extra.scored);
                }
                next_tick = Instant::now() + self.tick;
            }
            if Instant::now() >= next_checkpoint {
                self.checkpoint();
                next_checkpoint = Instant::now() + self.state_checkpoint;
            }
        }
        self.checkpoint();
    }

    /// Makes every held partition's state durable, then lets its offsets be committed.
    fn checkpoint(&mut self) {
        let Some(changelog) = &self.changelog else {
            return;
        };
        if self.health.has_failed() {
            // Whatever was folded since the last checkpoint stays uncommitted and is re-read.
            return;
        }
        match changelog.checkpoint(&mut self.states) {
            Ok(_) => {
                for partition in self.states.partitions() {
                    self.tracker
                        .mark_state_durable(&TopicPartition::new(&self.binding.topic, partition));
                }
                metrics::gauge!(telemetry::STATE_ENTITIES, "topic" => self.binding.topic.clone(), "worker" => self.lane.to_string())
                    .set(self.states.entities() as f64);
            }
            Err(error) => self.health.fail(format!(
                "keyed state of topic {} cannot be made durable: {error}",
                self.binding.topic
            )),
        }
    }

    fn scores_only(&self) -> bool {
        self.binding.privacy == crate::privacy::Privacy::ScoresOnly
    }

    /// Drops the state of `revoked` partitions this worker holds (after [`Self::checkpoint`]).
    fn drop_state(&mut self, revoked: &[TopicPartition]) {
        for partition in revoked {
            if partition.topic == self.binding.topic
                && self.states.remove(partition.partition).is_some()
            {
                if let Some(view) = self.changelog.as_ref().and_then(|c| c.view()) {
                    view.drop_partition(partition.partition);
                }
                self.health
                    .set_state_held(&self.binding.topic, partition.partition, false);
                tracing::info!(topic = %partition.topic, partition = partition.partition, "partition state dropped (revoked)");
            }
        }
    }

    /// Restores the state of every partition of `records` this worker does not hold yet, and
    /// marks those partitions state-pending from their first offset in the batch. `false`
    /// when a restore failed (the engine is then failed).
    fn prepare_state(&mut self, records: &[RawRecord]) -> bool {
        if !self.states.is_stateful() {
            return true;
        }
        let mut first_offsets: Vec<(i32, i64)> = Vec::new();
        for record in records {
            let partition = record.tracked.partition.partition;
            if !first_offsets.iter().any(|(p, _)| *p == partition) {
                first_offsets.push((partition, record.tracked.offset));
            }
        }
        for &(partition, first_offset) in &first_offsets {
            if !self.states.holds(partition) {
                let Some(mut state) = self.states.empty() else {
                    return true;
                };
                if let Some(changelog) = &self.changelog {
                    let started = Instant::now();
                    match changelog.changelog().restore(partition, state.as_mut()) {
                        Ok((source, entries)) => {
                            metrics::counter!(telemetry::STATE_RESTORES, "topic" => self.binding.topic.clone(), "source" => source)
                                .increment(1);
                            if let Some(view) = changelog.view() {
                                view.replace(partition, state.snapshot());
                            }
                            tracing::info!(
                                topic = %self.binding.topic,
                                partition,
                                source,
                                entries,
                                entities = state.entities(),
                                restore_ms = started.elapsed().as_millis() as u64,
                                "partition state restored"
                            );
                        }
                        Err(error) => {
                            self.health.fail(format!(
                                "cannot restore the state of {} partition {partition}: {error}",
                                self.binding.topic
                            ));
                            return false;
                        }
                    }
                }
                self.states.insert(partition, state);
                self.health
                    .set_state_held(&self.binding.topic, partition, true);
            }
            if self.changelog.is_some() {
                self.tracker.mark_state_pending(
                    &TopicPartition::new(&self.binding.topic, partition),
                    first_offset,
                );
            }
        }
        true
    }

    fn process(&mut self, records: Vec<RawRecord>) {
        if self.health.has_failed() {
            // The engine is going down; whatever is queued stays uncommitted.
            return;
        }
        let operator_name = self.binding.operator.name();
        // One trace span per batch with a child per stage (exported when `log.otlp_endpoint`
        // is set): counts, topic, partitions and model version, never payloads.
        let mut partitions: Vec<i32> = records
            .iter()
            .map(|record| record.tracked.partition.partition)
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        let batch_span = tracing::info_span!(
            "batch",
            topic = %self.binding.topic,
            operator = operator_name,
            worker = self.lane as i64,
            records = records.len() as i64,
            partitions = ?partitions,
            scored = tracing::field::Empty,
            dead_letters = tracing::field::Empty,
            model_version = tracing::field::Empty,
        )
        .entered();
        let decode_span = tracing::info_span!(
            "decode",
            records = records.len() as i64,
            failures = tracing::field::Empty
        )
        .entered();
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
        decode_span.record("failures", (records.len() - events.len()) as i64);
        drop(decode_span);
        if !self.prepare_state(&records) {
            return;
        }
        let score_span = tracing::info_span!("score", events = events.len() as i64).entered();
        let score_start = Instant::now();
        let Some(outcomes) = self.score_with_retries(&events) else {
            return;
        };
        if let Some(version) = outcomes.iter().find_map(|outcome| match outcome {
            Outcome::Scored { scored, .. } => Some(scored.model_version.as_str()),
            Outcome::Rejected { .. } => None,
        }) {
            batch_span.record("model_version", version);
        }
        drop(score_span);
        let emit_span = tracing::info_span!("emit", dead_letters = tracing::field::Empty).entered();
        let mut dead_lettered = 0usize;
        let mut outcomes = outcomes.into_iter();
        let mut scored_events = events.iter();
        let emit_start = Instant::now();
        let scored_count = events.len();
        let mut missing_outcomes = false;
        for (record, failure) in records.iter().zip(failures) {
            if let Some(failure) = failure {
                dead_lettered += 1;
                self.emit_dead_letter(record, failure);
                continue;
            }
            // Outcomes and decoded events pair up one to one, in order.
            let event = scored_events.next().map(|sourced| &sourced.event);
            match outcomes.next() {
                Some(Outcome::Scored { scored, extra }) => {
                    self.emit_scored(record, event, &scored, &extra)
                }
                Some(Outcome::Rejected { detail }) => {
                    dead_lettered += 1;
                    self.emit_dead_letter(
                        record,
                        DecodeFailure {
                            reason: DeadLetterReason::OperatorRejected,
                            detail,
                        },
                    )
                }
                None => missing_outcomes = true,
            }
        }
        if missing_outcomes || outcomes.next().is_some() {
            // A bug in the operator, not a property of the inputs: fail loudly, commit nothing
            // past the first input without an outcome.
            self.health.fail(format!(
                "operator {operator_name} broke the one-outcome-per-event contract"
            ));
        }
        emit_span.record("dead_letters", dead_lettered as i64);
        drop(emit_span);
        batch_span.record("scored", scored_count as i64);
        batch_span.record("dead_letters", dead_lettered as i64);
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

    /// Scores `events`, retrying an engine failure; `None` when it persists (the engine is
    /// then failed and the batch stays uncommitted) or the engine is stopping meanwhile.
    fn score_with_retries(&mut self, events: &[SourcedEvent]) -> Option<Vec<Outcome>> {
        if events.is_empty() {
            return Some(Vec::new());
        }
        let mut pause = SCORE_RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            let error: OperatorError = match self.operator.score_batch(events, &mut self.states) {
                Ok(mut outcomes) => {
                    let scores_only = self.scores_only();
                    if scores_only {
                        crate::privacy::sanitize_outcomes(events, &mut outcomes);
                    }
                    self.health.console.offer(
                        crate::console::feed::FeedKeys::of(self.binding.operator.spec()),
                        scores_only,
                        events,
                        &outcomes,
                    );
                    if let Some(shadow) = &self.shadow {
                        shadow.offer(events, &outcomes);
                    }
                    if let Some(drift) = &self.drift {
                        drift.offer(events, &outcomes);
                    }
                    return Some(outcomes);
                }
                Err(error) => error,
            };
            metrics::counter!(telemetry::SCORING_FAILURES, "operator" => self.binding.operator.name())
                .increment(1);
            let stopping = self
                .health
                .stopping
                .load(std::sync::atomic::Ordering::Relaxed);
            if attempt >= SCORE_ATTEMPTS || stopping || self.health.has_failed() {
                self.health.fail(format!(
                    "operator {} failed to score a batch of topic {} ({attempt} attempts): {error}",
                    self.binding.operator.name(),
                    self.binding.topic
                ));
                return None;
            }
            tracing::warn!(
                operator = self.binding.operator.name(),
                attempt,
                %error,
                "scoring failed; retrying the batch (nothing is dead-lettered)"
            );
            std::thread::sleep(pause);
            pause *= 2;
            attempt += 1;
        }
    }

    fn emit_scored(
        &self,
        record: &RawRecord,
        event: Option<&crate::events::InputEvent>,
        scored: &Scored,
        extra: &[ExtraRecord],
    ) {
        let mut outputs: Vec<(&str, Vec<u8>, Vec<u8>)> = Vec::with_capacity(1 + extra.len());
        let key = match &record.key {
            // The input's key often names the entity (a user, an address): a scores-only
            // binding keys its output by the key's pseudonym (same partitioning, no name).
            Some(key) if self.scores_only() => {
                crate::privacy::pseudonym(&String::from_utf8_lossy(key)).into_bytes()
            }
            Some(key) => key.clone(),
            None => scored.event_id.clone().into_bytes(),
        };
        let main = if self.encoder.is_ocsf() {
            // Only events that cross a threshold become findings.
            let main_score = self
                .binding
                .operator
                .spec()
                .model
                .map_or("", |m| m.shadow.score);
            crate::ocsf::finding(scored, event, main_score, self.scores_only()).map(|finding| {
                serde_json::to_vec(&finding).map_err(crate::encode::EncodeError::from)
            })
        } else {
            Some(self.encoder.encode_scored(scored))
        };
        match main {
            None => {}
            Some(Ok(payload)) => outputs.push((&self.binding.output_topic, key, payload)),
            Some(Err(error)) => {
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
            let encoded =
                if self.encoder.is_ocsf() && crate::ocsf::is_incident(&extra_record.scored) {
                    crate::ocsf::incident_finding(&extra_record.scored, self.scores_only())
                        .map(|finding| {
                            serde_json::to_vec(&finding).map_err(crate::encode::EncodeError::from)
                        })
                        .unwrap_or_else(|| self.encoder.encode_scored(&extra_record.scored))
                } else {
                    self.encoder.encode_scored(&extra_record.scored)
                };
            match encoded {
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
        if let Some((topic, key, payload)) = outputs
            .iter()
            .find(|(_, key, payload)| key.len() + payload.len() > self.max_output_bytes)
        {
            return self.emit_dead_letter(
                record,
                DecodeFailure {
                    reason: DeadLetterReason::Oversized,
                    detail: format!(
                        "output record for topic {topic} is {} bytes, over pipeline.max_output_bytes ({})",
                        key.len() + payload.len(),
                        self.max_output_bytes
                    ),
                },
            );
        }
        self.tracker
            .set_output_count(&record.tracked, outputs.len());
        for (topic, key, payload) in outputs {
            self.emitter
                .send(topic, Some(&key), &payload, token(record));
        }
    }

    fn emit_dead_letter(&self, record: &RawRecord, failure: DecodeFailure) {
        let source = coordinates(record);
        let value_len = record.payload.as_ref().map_or(0, Vec::len);
        self.dead_letters.record(
            &source.topic,
            source.partition,
            source.offset,
            failure.reason.code(),
            value_len,
        );
        let reason_code = failure.reason.code();
        let dead_letter = DeadLetter {
            event_id: source.derived_event_id(),
            source,
            reason: failure.reason,
            detail: failure.detail,
            operator: self.binding.operator.name().to_owned(),
            // A scores-only binding's dead letters locate the input, never carry it.
            original_key: record.key.clone().filter(|_| !self.scores_only()),
            original_value: record.payload.clone().filter(|_| !self.scores_only()),
            failed_at_ms: now_ms(),
            original_size: record.payload.as_ref().map(|value| value.len() as i64),
            value_truncated: false,
        };
        let key = dead_letter.event_id.clone().into_bytes();
        let limit = self
            .max_output_bytes
            .saturating_sub(key.len() + OUTPUT_FRAMING_BYTES);
        match dead_letter.encode_within(limit, |letter| self.encoder.encode_dead_letter(letter)) {
            Ok(payload) => {
                self.tracker.set_output_count(&record.tracked, 1);
                let token = DeliveryToken {
                    dead_letter_reason: Some(reason_code),
                    ..token(record)
                };
                self.emitter
                    .send(&self.dead_letter_topic, Some(&key), &payload, token);
            }
            Err(error) => {
                // Cannot happen for a schema-conformant record; leaving the input uncommitted
                // (rather than skipping it) keeps the no-loss promise and makes the bug loud.
                self.health
                    .fail(format!("a dead letter does not encode: {error}"));
            }
        }
    }

    fn emit_untracked(&self, topic: &str, key: &str, scored: &Scored) {
        match self.encoder.encode_scored(scored) {
            Ok(payload) if payload.len() + key.len() > self.max_output_bytes => {
                tracing::error!(
                    topic,
                    bytes = payload.len(),
                    "timer record over pipeline.max_output_bytes; skipped"
                )
            }
            Ok(payload) => self.emitter.send(
                topic,
                Some(key.as_bytes()),
                &payload,
                DeliveryToken {
                    input: None,
                    attempts: 0,
                    dead_letter_reason: None,
                },
            ),
            Err(error) => tracing::error!(%error, topic, "timer record does not encode; skipped"),
        }
    }
}

fn token(record: &RawRecord) -> DeliveryToken {
    DeliveryToken {
        input: Some(record.tracked.clone()),
        attempts: 0,
        dead_letter_reason: None,
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

/// What happens to outputs the broker refuses for good (see [`crate::emit`]): a record too
/// large for the broker becomes a dead letter for its input (without its payload); an
/// unwritable topic — or a dead letter that cannot be written — stops the input's binding.
pub struct OutputRefusals {
    encoder: OutputEncoder,
    dead_letter_topic: String,
    /// Input topic → operator name, for the dead letter.
    operators: std::collections::HashMap<String, &'static str>,
    health: Arc<Health>,
    dead_letters: Arc<DeadLetterLog>,
}

impl OutputRefusals {
    /// A handler for the engine of `config`.
    pub fn new(
        config: &crate::config::EngineConfig,
        health: Arc<Health>,
        dead_letters: Arc<DeadLetterLog>,
    ) -> Result<Self, crate::encode::EncodeError> {
        Ok(Self {
            encoder: OutputEncoder::new(&config.output)?,
            dead_letter_topic: config.output.dead_letter_topic.clone(),
            operators: config
                .bindings
                .iter()
                .map(|binding| (binding.topic.clone(), binding.operator.name()))
                .collect(),
            health,
            dead_letters,
        })
    }
}

impl RefusalHandler for OutputRefusals {
    fn record_refused(
        &self,
        topic: &str,
        token: &DeliveryToken,
        error: &KafkaError,
    ) -> Option<Replacement> {
        let Some(input) = &token.input else {
            tracing::error!(topic, %error, "timer record refused by the broker; skipped");
            return None;
        };
        let source = SourceCoordinates {
            topic: input.partition.topic.clone(),
            partition: input.partition.partition,
            offset: input.offset,
            timestamp_ms: None,
        };
        let reason = DeadLetterReason::Oversized;
        self.dead_letters.record(
            &source.topic,
            source.partition,
            source.offset,
            reason.code(),
            0,
        );
        let dead_letter = DeadLetter {
            event_id: source.derived_event_id(),
            operator: self
                .operators
                .get(&source.topic)
                .copied()
                .unwrap_or("unknown")
                .to_owned(),
            source,
            reason,
            detail: format!("output record for topic {topic} refused by the broker: {error}"),
            original_key: None,
            original_value: None,
            failed_at_ms: now_ms(),
            original_size: None,
            value_truncated: false,
        };
        match self.encoder.encode_dead_letter(&dead_letter) {
            Ok(payload) => Some(Replacement {
                reason: reason.code(),
                topic: self.dead_letter_topic.clone(),
                key: dead_letter.event_id.into_bytes(),
                payload,
            }),
            Err(encode_error) => {
                self.health
                    .fail(format!("a dead letter does not encode: {encode_error}"));
                None
            }
        }
    }

    fn topic_unwritable(&self, topic: &str, token: &DeliveryToken, error: &KafkaError) {
        match &token.input {
            Some(input) => self.health.stop_binding(
                &input.partition.topic,
                format!("cannot write to topic {topic}: {error}"),
            ),
            None => tracing::error!(topic, %error, "timer record cannot be written; skipped"),
        }
    }
}
