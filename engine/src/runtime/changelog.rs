//! Durable partition state in Kafka: a compacted changelog topic per stateful binding, with
//! the local sled store as a cache — the way Kafka Streams makes state follow its partition.
//!
//! Layout: topic `<kafka.group_id>-<input topic>-<operator>-changelog` (created at start if
//! missing: as many partitions as the input topic, `cleanup.policy=compact`). Changelog
//! partition `p` holds the entries of input partition `p`, keyed by entity; a removed entity
//! is a tombstone. Values are the operator's encoded entries, each recording the input offset
//! it reflects.
//!
//! Protocol (see also [`crate::offsets::OffsetTracker::mark_state_pending`]):
//! 1. A worker that folds inputs of partition `p` marks `p` *state-pending* from the first
//!    such input's offset: its committable offset stops there.
//! 2. Every `pipeline.state_checkpoint_ms`, on revoke and on shutdown the worker writes the
//!    changed entries of its partitions ([`ChangelogWriter::checkpoint`]) and waits for the
//!    broker's acknowledgement of every one (`acks=all`); only then is `p` cleared, so an
//!    input's offset is committed only after its effect on state is in the changelog.
//! 3. After the acknowledgement the whole partition state is also written to the local sled
//!    cache together with the changelog position it matches.
//! 4. Restore (first batch of a newly assigned partition): if the cache's position equals the
//!    changelog's end offset the cache is current and used; otherwise the changelog partition
//!    is read from its start to its end. Entries record their input offsets, so re-delivered
//!    inputs are scored but not folded again.
//!
//! What a crash can cost: a `kill -9` loses the folds since the last acknowledged checkpoint
//! (at most `state_checkpoint_ms` of input); their offsets were not committed, so those inputs
//! are re-read and folded once. A checkpoint cut half-way leaves some entries written: those
//! entries skip the re-delivered inputs they already reflect, the others fold them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::{ClientConfig, ClientContext, Offset};
use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::runtime::state::{PartitionState, PartitionStates, StateChange};
use crate::runtime::StateView;
use crate::state::CheckpointStore;
use crate::sync::lock;

/// Longest wait for a checkpoint's acknowledgements before it counts as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a restore waits for the changelog without progress.
const RESTORE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A restore that read up to the end offset stops after this long without a new record.
const RESTORE_IDLE: Duration = Duration::from_millis(200);
/// Broker metadata and topic-creation timeout.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors of the changelog.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    /// A Kafka client call failed.
    #[error("changelog {topic}: {source}")]
    Kafka {
        /// Changelog topic.
        topic: String,
        /// Cause.
        source: rdkafka::error::KafkaError,
    },
    /// The changelog could not be made durable or read back.
    #[error("changelog {topic}: {message}")]
    Failed {
        /// Changelog topic.
        topic: String,
        /// What went wrong.
        message: String,
    },
    /// The local cache failed.
    #[error("state cache: {0}")]
    Cache(#[from] crate::state::StateError),
}

/// The changelog topic of a binding.
pub fn changelog_topic(group_id: &str, input_topic: &str, operator: &str) -> String {
    format!("{group_id}-{input_topic}-{operator}-changelog")
}

/// What the local cache keeps per partition.
#[derive(Debug, Serialize, Deserialize)]
struct CachedPartition {
    /// The changelog end offset this snapshot matches.
    changelog_end: i64,
    /// Every entry (JSON text).
    entries: Vec<(String, String)>,
}

/// What one binding's workers share: the topic, client settings and the local cache.
pub struct Changelog {
    topic: String,
    producer_config: ClientConfig,
    consumer_config: ClientConfig,
    cache: CheckpointStore,
}

impl Changelog {
    /// Opens the changelog of `input_topic`'s `operator`: creates the topic if missing (as
    /// many partitions as the input) and opens the local cache under `storage.state_dir`.
    pub fn open(
        config: &EngineConfig,
        input_topic: &str,
        operator: &str,
    ) -> Result<Arc<Self>, ChangelogError> {
        let topic = changelog_topic(&config.kafka.group_id, input_topic, operator);
        let base = crate::pipeline::base_client_config(config);
        let mut producer_config = base.clone();
        producer_config
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("enable.idempotence", "false")
            .set(
                "message.timeout.ms",
                (ACK_TIMEOUT.as_millis() as u64).to_string(),
            );
        for (name, value) in &config.kafka.producer_options {
            producer_config.set(name, value);
        }
        let mut consumer_config = base.clone();
        consumer_config
            .set(
                "group.id",
                format!("{}-changelog-restore", config.kafka.group_id),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50");
        ensure_topic(&base, &topic, input_topic)?;
        let cache = CheckpointStore::open(&config.storage.state_dir, operator, input_topic)?;
        Ok(Arc::new(Self {
            topic,
            producer_config,
            consumer_config,
            cache,
        }))
    }

    /// The changelog topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// A writer for one worker (its own producer, so its flush waits for its records only).
    /// With `view`, every acknowledged checkpoint is also published there (scoring API).
    pub fn writer(
        self: &Arc<Self>,
        view: Option<Arc<StateView>>,
    ) -> Result<ChangelogWriter, ChangelogError> {
        let producer: ThreadedProducer<AckCounter> = self
            .producer_config
            .create_with_context(AckCounter::default())
            .map_err(|source| self.kafka_error(source))?;
        Ok(ChangelogWriter {
            changelog: self.clone(),
            producer,
            view,
        })
    }

    fn kafka_error(&self, source: rdkafka::error::KafkaError) -> ChangelogError {
        ChangelogError::Kafka {
            topic: self.topic.clone(),
            source,
        }
    }

    fn failed(&self, message: String) -> ChangelogError {
        ChangelogError::Failed {
            topic: self.topic.clone(),
            message,
        }
    }

    /// Rebuilds `partition`'s state into `state`: from the cache when it matches the
    /// changelog's end, else from the changelog. Returns where it came from and the entries
    /// applied.
    pub fn restore(
        &self,
        partition: i32,
        state: &mut dyn PartitionState,
    ) -> Result<(&'static str, usize), ChangelogError> {
        let consumer: BaseConsumer = self
            .consumer_config
            .create()
            .map_err(|source| self.kafka_error(source))?;
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, partition, ADMIN_TIMEOUT)
            .map_err(|source| self.kafka_error(source))?;
        let cached = self
            .cache
            .load::<CachedPartition>(partition)
            .unwrap_or_else(|error| {
                // Only an optimisation (or a snapshot of an older release): the changelog is
                // the truth.
                tracing::warn!(%error, partition, "state cache entry unusable; restoring from the changelog");
                None
            });
        if let Some(cached) = cached {
            if cached.changelog_end == high {
                for (key, value) in &cached.entries {
                    state
                        .restore_entry(key, Some(value.as_bytes()))
                        .map_err(|message| self.failed(format!("cached entry {key}: {message}")))?;
                }
                return Ok(("cache", cached.entries.len()));
            }
        }
        if high <= low {
            return Ok(("empty", 0));
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&self.topic, partition, Offset::Offset(low))
            .map_err(|source| self.kafka_error(source))?;
        consumer
            .assign(&list)
            .map_err(|source| self.kafka_error(source))?;
        let mut applied = 0;
        let mut reached_end = false;
        let mut last_progress = Instant::now();
        loop {
            match consumer.poll(RESTORE_IDLE) {
                Some(Ok(message)) => {
                    last_progress = Instant::now();
                    if let Some(key) = message.key().and_then(|key| std::str::from_utf8(key).ok()) {
                        state
                            .restore_entry(key, message.payload())
                            .map_err(|error| self.failed(format!("entry {key}: {error}")))?;
                        applied += 1;
                    }
                    reached_end |= message.offset() + 1 >= high;
                }
                Some(Err(error)) => return Err(self.kafka_error(error)),
                // At the end offset read at the start, and nothing more arrives: done. (Some
                // brokers report a high watermark inside the last record batch, so the end is
                // "nothing more to read", not only "offset reached".)
                None if reached_end => break,
                None if last_progress.elapsed() > RESTORE_STALL_TIMEOUT => {
                    return Err(self.failed(format!(
                        "restore of partition {partition} stalled below offset {high}"
                    )));
                }
                None => {}
            }
        }
        Ok(("changelog", applied))
    }
}

/// Creates the changelog topic if it does not exist, with the input topic's partition count.
fn ensure_topic(base: &ClientConfig, topic: &str, input_topic: &str) -> Result<(), ChangelogError> {
    let kafka_error = |source| ChangelogError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    if partition_count(base, topic).map_err(kafka_error)? > 0 {
        return Ok(());
    }
    let input_partitions = partition_count(base, input_topic)
        .map_err(kafka_error)?
        .max(1);
    create_compacted_topic(base, topic, input_partitions).map_err(|message| {
        ChangelogError::Failed {
            topic: topic.to_owned(),
            message,
        }
    })
}

/// Partitions of `topic` (0 when it does not exist), from one metadata request.
pub fn partition_count(
    base: &ClientConfig,
    topic: &str,
) -> Result<usize, rdkafka::error::KafkaError> {
    let consumer: BaseConsumer = base.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), ADMIN_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// Creates `topic` compacted with `partitions` partitions (an existing one is left as it is).
pub fn create_compacted_topic(
    base: &ClientConfig,
    topic: &str,
    partitions: usize,
) -> Result<(), String> {
    create_topic(base, topic, partitions, true)
}

/// Creates `topic` with `partitions` partitions, compacted or not (an existing one is left as
/// it is).
pub fn create_topic(
    base: &ClientConfig,
    topic: &str,
    partitions: usize,
    compacted: bool,
) -> Result<(), String> {
    // One metadata request first: a create request for an existing topic costs a broker
    // round trip and an error answer on every start.
    if partition_count(base, topic).map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = base.create().map_err(|e| e.to_string())?;
    let new_topic = NewTopic::new(
        topic,
        i32::try_from(partitions).unwrap_or(i32::MAX),
        TopicReplication::Fixed(-1),
    )
    .set(
        "cleanup.policy",
        if compacted { "compact" } else { "delete" },
    );
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .map_err(|e| e.to_string())?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions, compacted, "topic created"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// Delivery results of one writer's records.
#[derive(Default)]
struct AckCounter {
    acks: Mutex<AckState>,
}

#[derive(Default)]
struct AckState {
    /// Highest acknowledged offset per changelog partition.
    end_offsets: HashMap<i32, i64>,
    failures: Vec<String>,
}

impl ClientContext for AckCounter {}

impl ProducerContext for AckCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        let mut acks = lock(&self.acks);
        match result {
            Ok(message) => {
                let end = acks.end_offsets.entry(message.partition()).or_insert(-1);
                *end = (*end).max(message.offset());
            }
            Err((error, _)) => acks.failures.push(error.to_string()),
        }
    }
}

/// One worker's changelog producer.
pub struct ChangelogWriter {
    changelog: Arc<Changelog>,
    producer: ThreadedProducer<AckCounter>,
    view: Option<Arc<StateView>>,
}

impl ChangelogWriter {
    /// The shared changelog (restore).
    pub fn changelog(&self) -> &Changelog {
        &self.changelog
    }

    /// The scoring API's view of this binding's state, if published.
    pub fn view(&self) -> Option<&StateView> {
        self.view.as_deref()
    }

    /// Writes the changed entries of `states` and waits until the broker acknowledged all of
    /// them; then refreshes the local cache of each written partition. `Ok` = durable.
    pub fn checkpoint(&self, states: &mut PartitionStates) -> Result<usize, ChangelogError> {
        let mut written_partitions = Vec::new();
        let mut published: Vec<(i32, Vec<StateChange>)> = Vec::new();
        let mut records = 0;
        for (partition, state) in states.iter_dyn_mut() {
            let changes = state.take_changes();
            if changes.is_empty() {
                continue;
            }
            for (key, value) in &changes {
                let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&self.changelog.topic)
                    .partition(partition)
                    .key(key.as_str())
                    .headers(OwnedHeaders::new());
                if let Some(value) = value {
                    record = record.payload(value.as_slice());
                }
                self.send(record)?;
                records += 1;
            }
            written_partitions.push(partition);
            if self.view.is_some() {
                published.push((partition, changes));
            }
        }
        if records == 0 {
            return Ok(0);
        }
        self.producer
            .flush(ACK_TIMEOUT)
            .map_err(|source| self.changelog.kafka_error(source))?;
        let ends = {
            let mut acks = lock(&self.producer.context().acks);
            if let Some(failure) = acks.failures.first().cloned() {
                acks.failures.clear();
                return Err(self.changelog.failed(format!(
                    "a changelog record was not acknowledged: {failure}"
                )));
            }
            acks.end_offsets.clone()
        };
        if let Some(view) = &self.view {
            for (partition, changes) in &published {
                view.publish(*partition, changes);
            }
        }
        for (partition, state) in states.iter_dyn_mut() {
            if !written_partitions.contains(&partition) {
                continue;
            }
            let Some(end) = ends.get(&partition) else {
                continue;
            };
            let cached = CachedPartition {
                changelog_end: end + 1,
                entries: state
                    .snapshot()
                    .into_iter()
                    .map(|(key, value)| (key, String::from_utf8_lossy(&value).into_owned()))
                    .collect(),
            };
            // The cache is only an optimisation: a failed write costs a changelog restore.
            if let Err(error) = self.changelog.cache.save(partition, &cached) {
                tracing::warn!(%error, partition, "state cache write failed");
            }
        }
        metrics::counter!(crate::telemetry::STATE_CHANGELOG_RECORDS, "topic" => self.changelog.topic.clone())
            .increment(records as u64);
        Ok(records)
    }

    fn send(&self, mut record: BaseRecord<'_, str, [u8]>) -> Result<(), ChangelogError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    returned,
                )) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(self.changelog.kafka_error(error)),
            }
        }
    }
}
