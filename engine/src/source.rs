//! The source: the Kafka consumer, its rebalance handling, and batching per input topic.
//!
//! Guarantees (with [`crate::offsets`] and [`crate::emit`]):
//! - offsets are *stored* only for inputs whose outputs are all acknowledged
//!   (`enable.auto.offset.store=false`, forced), and what was stored is committed every
//!   `pipeline.commit_interval_ms` (librdkafka's auto-commit is off);
//! - on revoke, records of the revoked partitions not yet handed to a worker are dropped, the
//!   workers' in-flight inputs of those partitions get `pipeline.revoke_drain_ms` to finish,
//!   operators checkpoint, and the final offsets are committed synchronously before the
//!   partitions go. What did not finish in time is re-read by the next owner (at-least-once:
//!   duplicates, never loss);
//! - the consumer is polled from one plain thread that never blocks on a worker (see
//!   [`crate::dispatch`]): backpressure pauses partitions, so rebalance callbacks and
//!   `max.poll.interval.ms` are never starved.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::{ClientContext, Offset};

pub use crate::health::Health;

use crate::dispatch::Dispatcher;
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
    /// Make keyed state durable now, drop the state of the `revoked` partitions, and reply
    /// when done (revoke).
    Checkpoint {
        /// Partitions leaving this process.
        revoked: Vec<TopicPartition>,
        /// Answered when done.
        reply: std::sync::mpsc::Sender<()>,
    },
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
    /// Bumped after every rebalance, so the flow control re-applies pauses to new
    /// assignments.
    pub assignment_epoch: AtomicU64,
    /// Set when the engine's own shutdown drain is over: the revoke of the final
    /// unsubscribe/close then only commits, it does not drain (and wait) a second time.
    pub shutdown_drained: AtomicBool,
}

impl SourceContext {
    /// The context of a fresh consumer.
    pub fn new(
        tracker: Arc<OffsetTracker>,
        dispatcher: Arc<Dispatcher>,
        health: Arc<Health>,
        revoke_drain: Duration,
    ) -> Self {
        Self {
            tracker,
            dispatcher,
            health,
            revoke_drain,
            assignment_epoch: AtomicU64::new(0),
            shutdown_drained: AtomicBool::new(false),
        }
    }
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
        if self.shutdown_drained.load(Ordering::Acquire) {
            // The shutdown already drained within its grace period; just commit and go.
            store_committable(consumer, &self.tracker);
            commit(consumer, CommitMode::Sync, "revoke");
            self.tracker.revoke(&partitions);
            return;
        }
        tracing::info!(
            partitions = partitions.len(),
            "partitions revoked; draining"
        );
        // Records not yet handed to a worker are dropped (the next owner reads them again);
        // only what workers already have is drained.
        for (partition, first_offset) in self.dispatcher.discard(&partitions) {
            self.tracker.untrack_from(&partition, first_offset);
        }
        let started = Instant::now();
        let left = self.tracker.wait_drained(&partitions, self.revoke_drain);
        if left > 0 {
            tracing::warn!(
                in_flight = left,
                "revoke drain timed out; next owner re-reads them"
            );
        }
        let checkpoint_time = self.revoke_drain.saturating_sub(started.elapsed());
        self.dispatcher.checkpoint(&partitions, checkpoint_time);
        store_committable(consumer, &self.tracker);
        commit(consumer, CommitMode::Sync, "revoke");
        self.tracker.revoke(&partitions);
        // librdkafka keeps the pause flag of a revoked partition: if it comes back to us in
        // the next assignment it would stay paused while the flow control believes it is not.
        if let Err(error) = consumer.resume(revoked) {
            tracing::debug!(%error, "resuming revoked partitions failed");
        }
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
        self.assignment_epoch.fetch_add(1, Ordering::AcqRel);
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
