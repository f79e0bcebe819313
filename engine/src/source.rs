//! The source: the Kafka consumer, its rebalance handling, and batching per input topic.
//!
//! Guarantees (with [`crate::offsets`] and [`crate::emit`]):
//! - offsets are *stored* only for inputs whose outputs are all acknowledged
//!   (`enable.auto.offset.store=false`, forced), and what was stored is committed every
//!   `pipeline.commit_interval_ms` (librdkafka's auto-commit is off);
//! - on revoke, pending batches are dispatched, in-flight inputs of the revoked partitions are
//!   given `pipeline.revoke_drain_ms` to finish, operators checkpoint, and the final offsets
//!   are committed synchronously before the partitions go. What did not finish in time is
//!   re-read by the next owner (at-least-once: duplicates, never loss);
//! - the consumer is polled from one plain thread, so the rebalance callbacks (which run inside
//!   `poll`) may block without starving an async runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::{ClientContext, Offset};

use crate::offsets::{OffsetTracker, TopicPartition, TrackedInput};
use crate::telemetry;

/// An input record copied out of librdkafka's buffer, with its tracking handle.
#[derive(Debug)]
pub struct RawRecord {
    /// Tracking handle (partition, offset, generation).
    pub tracked: TrackedInput,
    /// Kafka timestamp, epoch ms.
    pub timestamp_ms: Option<i64>,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value (`None` for a tombstone).
    pub payload: Option<Vec<u8>>,
}

/// What the source sends to an operator worker.
#[derive(Debug)]
pub enum WorkerMessage {
    /// Records to decode, score and emit, in offset order per partition.
    Batch(Vec<RawRecord>),
    /// Persist keyed state now and reply when done (revoke).
    Checkpoint(std::sync::mpsc::Sender<()>),
}

/// Readiness facts, updated by the source and read by `/ready`.
#[derive(Debug, Default)]
pub struct Health {
    /// Operators started (models loaded).
    pub operators_started: AtomicBool,
    /// The consumer received its first assignment (possibly empty) from the group.
    pub assignment_received: AtomicBool,
    /// Partitions currently assigned.
    pub assigned_partitions: AtomicUsize,
    /// At least one broker connection is up (from librdkafka statistics).
    pub broker_up: AtomicBool,
    /// The engine is shutting down.
    pub stopping: AtomicBool,
    /// What each binding's operator loaded, by input topic (served on `/models`).
    pub models: std::sync::Mutex<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl Health {
    /// Ready to take traffic: models loaded, group joined, a broker reachable, not stopping.
    pub fn is_ready(&self) -> bool {
        self.operators_started.load(Ordering::Relaxed)
            && self.assignment_received.load(Ordering::Relaxed)
            && self.broker_up.load(Ordering::Relaxed)
            && !self.stopping.load(Ordering::Relaxed)
    }
}

/// A batch being filled for one topic.
#[derive(Debug, Default)]
struct PendingBatch {
    records: Vec<RawRecord>,
    started: Option<Instant>,
}

/// Batches records per topic and hands them to the topic's worker over a bounded channel.
/// Shared by the poll loop and the rebalance callback (which flushes before draining).
pub struct Dispatcher {
    workers: Mutex<Option<HashMap<String, SyncSender<WorkerMessage>>>>,
    pending: Mutex<HashMap<String, PendingBatch>>,
    batch_size: usize,
    linger: Duration,
}

impl Dispatcher {
    /// A dispatcher over the workers' channels, keyed by input topic.
    pub fn new(
        workers: HashMap<String, SyncSender<WorkerMessage>>,
        batch_size: usize,
        linger: Duration,
    ) -> Self {
        Self {
            workers: Mutex::new(Some(workers)),
            pending: Mutex::new(HashMap::new()),
            batch_size,
            linger,
        }
    }

    /// Adds a record; dispatches its topic's batch when full (blocking while the worker's
    /// queue is full: that is the backpressure).
    pub fn add(&self, record: RawRecord) {
        let topic = record.tracked.partition.topic.clone();
        let full_batch = {
            let mut pending = lock(&self.pending);
            let batch = pending.entry(topic.clone()).or_default();
            batch.started.get_or_insert_with(Instant::now);
            batch.records.push(record);
            if batch.records.len() >= self.batch_size {
                batch.started = None;
                Some(std::mem::take(&mut batch.records))
            } else {
                None
            }
        };
        if let Some(records) = full_batch {
            self.dispatch(&topic, WorkerMessage::Batch(records));
        }
    }

    /// Dispatches every batch whose linger time has passed (all of them when `force`).
    pub fn flush(&self, force: bool) {
        let due: Vec<(String, Vec<RawRecord>)> = {
            let mut pending = lock(&self.pending);
            pending
                .iter_mut()
                .filter(|(_, batch)| {
                    !batch.records.is_empty()
                        && (force
                            || batch
                                .started
                                .is_some_and(|start| start.elapsed() >= self.linger))
                })
                .map(|(topic, batch)| {
                    batch.started = None;
                    (topic.clone(), std::mem::take(&mut batch.records))
                })
                .collect()
        };
        for (topic, records) in due {
            self.dispatch(&topic, WorkerMessage::Batch(records));
        }
    }

    /// When the oldest pending batch's linger time runs out, if any batch is pending.
    pub fn next_linger_deadline(&self) -> Option<Instant> {
        lock(&self.pending)
            .values()
            .filter_map(|batch| batch.started)
            .min()
            .map(|started| started + self.linger)
    }

    /// Asks the workers of `topics` to checkpoint and waits for them, up to `timeout`.
    pub fn checkpoint(&self, topics: &[String], timeout: Duration) {
        let mut replies = Vec::new();
        for topic in topics {
            let (reply, done) = std::sync::mpsc::channel();
            if self.dispatch(topic, WorkerMessage::Checkpoint(reply)) {
                replies.push(done);
            }
        }
        let deadline = Instant::now() + timeout;
        for done in replies {
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_err() {
                tracing::warn!("operator checkpoint did not finish in time");
            }
        }
    }

    /// Closes every worker channel, so workers finish what is queued and exit.
    pub fn close(&self) {
        lock(&self.workers).take();
    }

    fn dispatch(&self, topic: &str, message: WorkerMessage) -> bool {
        let sender = lock(&self.workers)
            .as_ref()
            .and_then(|workers| workers.get(topic).cloned());
        let Some(sender) = sender else {
            // Closed (shutting down) or unknown topic: records stay uncommitted, re-read later.
            if matches!(message, WorkerMessage::Batch(_)) {
                tracing::error!(topic, "no worker for topic; records stay uncommitted");
            }
            return false;
        };
        // Blocks while the worker's queue is full (backpressure). Fails only if the worker
        // died; its records then stay uncommitted and are re-read after restart.
        sender.send(message).is_ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Consumer context: rebalance handling, statistics into metrics and health.
pub struct SourceContext {
    /// Offsets of inputs in flight.
    pub tracker: Arc<OffsetTracker>,
    /// Pending batches and worker channels.
    pub dispatcher: Arc<Dispatcher>,
    /// Readiness facts.
    pub health: Arc<Health>,
    /// Time allowed for revoked partitions to drain.
    pub revoke_drain: Duration,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let broker_up = statistics
            .brokers
            .values()
            .any(|broker| broker.state == "UP");
        self.health.broker_up.store(broker_up, Ordering::Relaxed);
        for (topic, topic_stats) in &statistics.topics {
            for (partition, partition_stats) in &topic_stats.partitions {
                // -1 is librdkafka's "internal / unassigned" partition and unknown lag.
                if *partition < 0 || partition_stats.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(
                    telemetry::CONSUMER_LAG,
                    "topic" => topic.clone(),
                    "partition" => partition.to_string()
                )
                .set(partition_stats.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let partitions = partitions_of(revoked);
        tracing::info!(
            partitions = partitions.len(),
            "partitions revoked; draining"
        );
        self.dispatcher.flush(true);
        let left = self.tracker.wait_drained(&partitions, self.revoke_drain);
        if left > 0 {
            tracing::warn!(
                in_flight = left,
                "revoke drain timed out; next owner re-reads them"
            );
        }
        let mut topics: Vec<String> = partitions.iter().map(|tp| tp.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        self.dispatcher.checkpoint(&topics, self.revoke_drain);
        store_committable(consumer, &self.tracker);
        commit(consumer, CommitMode::Sync, "revoke");
        self.tracker.revoke(&partitions);
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let partitions = partitions_of(assigned);
                tracing::info!(partitions = partitions.len(), "partitions assigned");
                self.tracker.assign(&partitions);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
        }
        let assigned = consumer.assignment().map(|list| list.count()).unwrap_or(0);
        self.health
            .assigned_partitions
            .store(assigned, Ordering::Relaxed);
        self.health
            .assignment_received
            .store(true, Ordering::Relaxed);
        // A completed rebalance proves the group coordinator answered; statistics refine it.
        self.health.broker_up.store(true, Ordering::Relaxed);
        metrics::gauge!(telemetry::ASSIGNED_PARTITIONS).set(assigned as f64);
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|element| TopicPartition::new(element.topic(), element.partition()))
        .collect()
}

/// Stores (for the next commit) the offsets the tracker says are safe; returns whether any
/// offset moved.
pub fn store_committable<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tracker: &OffsetTracker,
) -> bool {
    let committable = tracker.take_committable();
    if committable.is_empty() {
        return false;
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in &committable {
        if let Err(error) = list.add_partition_offset(
            &partition.topic,
            partition.partition,
            Offset::Offset(*offset),
        ) {
            tracing::warn!(%error, "cannot build offset list");
        }
    }
    if let Err(error) = consumer.store_offsets(&list) {
        // Happens when a partition was revoked meanwhile; its next owner re-reads the tail.
        tracing::debug!(%error, "offset store refused");
    }
    true
}

/// Commits the stored offsets: synchronously on revoke and shutdown (the partitions are about
/// to go), asynchronously on the periodic schedule (a failure is simply retried by the next
/// commit, which carries the same or later offsets). "Nothing to commit" is not an error.
pub fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    mode: CommitMode,
    cause: &'static str,
) {
    match consumer.commit_consumer_state(mode) {
        Ok(()) => tracing::debug!(cause, "offsets committed"),
        Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        )) => {}
        Err(error) => {
            metrics::counter!(telemetry::COMMIT_ERRORS, "cause" => cause).increment(1);
            match mode {
                CommitMode::Sync => tracing::warn!(cause, %error, "offset commit failed"),
                CommitMode::Async => {
                    tracing::debug!(cause, %error, "offset commit failed; next one retries")
                }
            }
        }
    }
}
