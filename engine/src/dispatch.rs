//! Batching per input topic and hand-off to the topic's workers — without ever blocking the
//! poll thread.
//!
//! A binding has one or more workers (*lanes*); partition `p` always goes to lane
//! `p mod lanes`, so a partition's records stay in offset order on one worker (and its keyed
//! state lives there). Records are collected per lane into a batch that is dispatched when it
//! holds the topic's current batch limit or its linger time has passed. Dispatch is a `try_send` on the
//! worker's bounded queue: a batch the queue cannot take waits in the topic's *backlog*, and
//! [`Dispatcher::is_blocked`] tells the poll loop to pause the topic's partitions (Kafka
//! `pause`/`resume`) until the backlog drains. So backpressure never blocks `poll`, and
//! rebalance callbacks and `max.poll.interval.ms` are never starved by a slow operator.
//!
//! Memory stays bounded: a paused partition is not fetched, so a backlog holds at most what
//! was fetched before the pause (about one batch plus librdkafka's fetched messages).
//! On revoke, undispatched records of the revoked partitions are discarded
//! ([`Dispatcher::discard`]): they were never committed, so the next owner reads them again.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::health::Health;
use crate::offsets::TopicPartition;
use crate::source::{RawRecord, WorkerMessage};
use crate::sync::lock;

/// Pause between attempts to enqueue a checkpoint request on a full worker queue.
const CHECKPOINT_RETRY_PAUSE: Duration = Duration::from_millis(2);

/// A topic's lane: the worker partition `p` goes to is lane `p mod lanes`.
type LaneKey = (String, usize);

/// One lane's batching state.
#[derive(Debug)]
struct TopicQueue {
    /// The batch being filled.
    filling: Vec<RawRecord>,
    /// When the first record of `filling` arrived.
    started: Option<Instant>,
    /// Full batches the worker's queue could not take yet, oldest first.
    backlog: VecDeque<Vec<RawRecord>>,
    /// Current batch limit (the flow control lowers it with the in-flight budget).
    batch_limit: usize,
}

/// Batches records per lane and hands them to the lane's worker over a bounded channel.
/// Shared by the poll loop and the rebalance callbacks.
pub struct Dispatcher {
    workers: Mutex<Option<HashMap<String, Vec<SyncSender<WorkerMessage>>>>>,
    lanes: HashMap<String, usize>,
    topics: Mutex<HashMap<LaneKey, TopicQueue>>,
    batch_size: usize,
    linger: Duration,
    health: Arc<Health>,
}

impl Dispatcher {
    /// A dispatcher over the workers' channels: per input topic, one sender per lane.
    pub fn new(
        workers: HashMap<String, Vec<SyncSender<WorkerMessage>>>,
        batch_size: usize,
        linger: Duration,
        health: Arc<Health>,
    ) -> Self {
        Self {
            lanes: workers
                .iter()
                .map(|(topic, senders)| (topic.clone(), senders.len().max(1)))
                .collect(),
            workers: Mutex::new(Some(workers)),
            topics: Mutex::new(HashMap::new()),
            batch_size,
            linger,
            health,
        }
    }

    /// Adds a record; dispatches its topic's batch when full. Never blocks.
    pub fn add(&self, record: RawRecord) {
        let partition = &record.tracked.partition;
        let lanes = self.lanes.get(&partition.topic).copied().unwrap_or(1);
        let lane = partition.partition.rem_euclid(lanes as i32) as usize;
        let key = (partition.topic.clone(), lane);
        let mut topics = lock(&self.topics);
        let queue = topics.entry(key.clone()).or_insert_with(|| TopicQueue {
            filling: Vec::new(),
            started: None,
            backlog: VecDeque::new(),
            batch_limit: self.batch_size,
        });
        queue.started.get_or_insert_with(Instant::now);
        queue.filling.push(record);
        if queue.filling.len() >= queue.batch_limit {
            queue.started = None;
            let batch = std::mem::take(&mut queue.filling);
            queue.backlog.push_back(batch);
            self.drain_backlog(&key, queue);
        }
    }

    /// Dispatches every batch whose linger time has passed (all of them when `force`), and
    /// whatever backlog the workers' queues can take now. Never blocks.
    pub fn flush(&self, force: bool) {
        let mut topics = lock(&self.topics);
        for (key, queue) in topics.iter_mut() {
            let due = !queue.filling.is_empty()
                && (force
                    || queue
                        .started
                        .is_some_and(|start| start.elapsed() >= self.linger));
            if due {
                queue.started = None;
                let batch = std::mem::take(&mut queue.filling);
                queue.backlog.push_back(batch);
            }
            if !queue.backlog.is_empty() {
                self.drain_backlog(key, queue);
            }
        }
    }

    /// Whether `topic` has batches its worker could not take yet (its partitions should be
    /// paused).
    pub fn is_blocked(&self, topic: &str) -> bool {
        lock(&self.topics)
            .iter()
            .any(|((lane_topic, _), queue)| lane_topic == topic && !queue.backlog.is_empty())
    }

    /// Records of `topic` read but not handed to its workers yet.
    pub fn undispatched(&self, topic: &str) -> usize {
        lock(&self.topics)
            .iter()
            .filter(|((lane_topic, _), _)| lane_topic == topic)
            .map(|(_, queue)| {
                queue.filling.len() + queue.backlog.iter().map(Vec::len).sum::<usize>()
            })
            .sum()
    }

    /// Sets the batch limit of each of `topic`'s lanes (at most `pipeline.batch_size`, at
    /// least 1).
    pub fn set_batch_limit(&self, topic: &str, limit: usize) {
        let lanes = self.lanes.get(topic).copied().unwrap_or(1);
        let limit = limit.div_ceil(lanes).clamp(1, self.batch_size);
        let mut topics = lock(&self.topics);
        for ((lane_topic, _), queue) in topics.iter_mut() {
            if lane_topic == topic {
                queue.batch_limit = limit;
            }
        }
    }

    /// When the oldest filling batch's linger time runs out, if any batch is filling.
    pub fn next_linger_deadline(&self) -> Option<Instant> {
        lock(&self.topics)
            .values()
            .filter_map(|queue| queue.started)
            .min()
            .map(|started| started + self.linger)
    }

    /// Drops the undispatched records of `partitions` and returns, per partition, the first
    /// dropped offset (the caller untracks from there).
    pub fn discard(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let mut first_dropped: HashMap<TopicPartition, i64> = HashMap::new();
        let mut topics = lock(&self.topics);
        for queue in topics.values_mut() {
            let mut keep = |record: &RawRecord| {
                let partition = &record.tracked.partition;
                if !partitions.contains(partition) {
                    return true;
                }
                let first = first_dropped.entry(partition.clone()).or_insert(i64::MAX);
                *first = (*first).min(record.tracked.offset);
                false
            };
            queue.filling.retain(&mut keep);
            for batch in queue.backlog.iter_mut() {
                batch.retain(&mut keep);
            }
            queue.backlog.retain(|batch| !batch.is_empty());
            if queue.filling.is_empty() {
                queue.started = None;
            }
        }
        first_dropped.into_iter().collect()
    }

    /// Asks every worker of `revoked`'s topics to checkpoint its keyed state and drop the
    /// state of the revoked partitions, and waits for them, up to `timeout` in all. Workers
    /// answer after the batches queued before the request, so their folds are included.
    pub fn checkpoint(&self, revoked: &[TopicPartition], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut topics: Vec<&str> = revoked.iter().map(|tp| tp.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        let mut replies = Vec::new();
        for topic in topics {
            for sender in self.senders(topic) {
                let (reply, done) = std::sync::mpsc::channel();
                let mut message = WorkerMessage::Checkpoint {
                    revoked: revoked.to_vec(),
                    reply,
                };
                loop {
                    match sender.try_send(message) {
                        Ok(()) => {
                            replies.push(done);
                            break;
                        }
                        Err(TrySendError::Full(returned)) if Instant::now() < deadline => {
                            message = returned;
                            std::thread::sleep(CHECKPOINT_RETRY_PAUSE);
                        }
                        Err(_) => {
                            tracing::warn!(
                                topic,
                                "operator checkpoint could not be requested in time"
                            );
                            break;
                        }
                    }
                }
            }
        }
        for done in replies {
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_err() {
                tracing::warn!("operator checkpoint did not finish in time");
            }
        }
    }

    /// Closes every worker channel, so workers finish what is queued and exit. Undispatched
    /// records are dropped: they are uncommitted and read again after restart.
    pub fn close(&self) {
        lock(&self.workers).take();
        lock(&self.topics).clear();
    }

    fn senders(&self, topic: &str) -> Vec<SyncSender<WorkerMessage>> {
        lock(&self.workers)
            .as_ref()
            .and_then(|workers| workers.get(topic).cloned())
            .unwrap_or_default()
    }

    fn sender(&self, (topic, lane): &LaneKey) -> Option<SyncSender<WorkerMessage>> {
        lock(&self.workers)
            .as_ref()
            .and_then(|workers| workers.get(topic)?.get(*lane).cloned())
    }

    /// Hands the backlog's batches to the lane's worker while its queue takes them.
    fn drain_backlog(&self, key: &LaneKey, queue: &mut TopicQueue) {
        let topic = &key.0;
        let Some(sender) = self.sender(key) else {
            // Closed (shutting down): records stay uncommitted, re-read later.
            queue.backlog.clear();
            return;
        };
        while let Some(batch) = queue.backlog.pop_front() {
            match sender.try_send(WorkerMessage::Batch(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(WorkerMessage::Batch(batch))) => {
                    queue.backlog.push_front(batch);
                    return;
                }
                Err(TrySendError::Full(_)) => return,
                Err(TrySendError::Disconnected(_)) => {
                    // The worker thread is gone (it panicked): the engine cannot score this
                    // topic any more. Its records stay uncommitted.
                    self.health
                        .fail(format!("the worker of topic {topic} is gone"));
                    queue.backlog.clear();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsets::TrackedInput;

    /// A dispatcher for topic `t` over `sender` that never lingers (batches go when full).
    fn dispatcher_for_t(
        sender: SyncSender<WorkerMessage>,
        batch_size: usize,
        health: Arc<Health>,
    ) -> Dispatcher {
        Dispatcher::new(
            HashMap::from([("t".to_owned(), vec![sender])]),
            batch_size,
            Duration::from_secs(60),
            health,
        )
    }

    fn record(topic: &str, partition: i32, offset: i64) -> RawRecord {
        RawRecord {
            tracked: TrackedInput {
                partition: TopicPartition::new(topic, partition),
                offset,
                generation: 1,
            },
            timestamp_ms: None,
            key: None,
            payload: Some(b"{}".to_vec()),
        }
    }

    #[test]
    fn a_full_worker_queue_backlogs_instead_of_blocking_and_drains_later() {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let dispatcher = dispatcher_for_t(sender, 2, Arc::new(Health::default()));
        for offset in 0..6 {
            dispatcher.add(record("t", 0, offset));
        }
        // One batch in the channel, two in the backlog; add() returned every time.
        assert!(dispatcher.is_blocked("t"));
        assert_eq!(dispatcher.undispatched("t"), 4);
        let mut offsets = Vec::new();
        while offsets.len() < 6 {
            match receiver.try_recv() {
                Ok(WorkerMessage::Batch(batch)) => {
                    offsets.extend(batch.iter().map(|r| r.tracked.offset))
                }
                Ok(WorkerMessage::Checkpoint { .. }) => unreachable!(),
                Err(_) => dispatcher.flush(false),
            }
        }
        assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5], "order kept");
        assert!(!dispatcher.is_blocked("t"));
    }

    #[test]
    fn discard_drops_only_the_revoked_partitions_and_reports_their_first_offset() {
        let (sender, _receiver) = std::sync::mpsc::sync_channel(0);
        let dispatcher = dispatcher_for_t(sender, 2, Arc::new(Health::default()));
        for offset in 0..5 {
            dispatcher.add(record("t", 0, offset));
            dispatcher.add(record("t", 1, offset + 100));
        }
        let dropped = dispatcher.discard(&[TopicPartition::new("t", 1)]);
        assert_eq!(dropped, vec![(TopicPartition::new("t", 1), 100)]);
        assert_eq!(dispatcher.undispatched("t"), 5);
    }

    #[test]
    fn a_dead_worker_is_a_fatal_failure() {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        drop(receiver);
        let health = Arc::new(Health::default());
        let dispatcher = dispatcher_for_t(sender, 1, health.clone());
        dispatcher.add(record("t", 0, 0));
        assert!(health.has_failed());
    }
}
