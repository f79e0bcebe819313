//! Reads the input record a verdict is about, at its Kafka coordinates.
//!
//! The trainer never copies every input: the scored event carries its source coordinates, and
//! this reader seeks there with an assigned (group-less, never committing) consumer, so the
//! live consumer group is never disturbed. A record below the partition's low watermark, or
//! skipped by compaction, has left the topic: the verdict is [`Lookup::Expired`] (counted,
//! kept for live precision only). Coordinates where no record arrives (past the end), or of
//! a partition or topic that does not exist, name no event: [`Lookup::Unknown`] (a dead letter). A broker that does
//! not answer is an error: the verdict is retried, never dropped.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::verdict::FeedbackSource;
use crate::config::EngineConfig;

/// How long one lookup may wait on the broker.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Coordinates past the reported end: nothing there for this long names no record.
const PAST_END_IDLE: Duration = Duration::from_secs(2);

/// A record's offset and value.
pub type OffsetValue = (i64, Option<Vec<u8>>);

/// What was found at a verdict's coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The input record's value (and its Kafka timestamp).
    Found {
        /// Record value.
        payload: Option<Vec<u8>>,
        /// Kafka timestamp, epoch ms.
        timestamp_ms: Option<i64>,
    },
    /// The record has left the topic (retention, deletion, compaction).
    Expired,
    /// No such record: the coordinates are past the end or name no partition.
    Unknown(String),
}

/// Reads single records at coordinates.
pub struct InputReader {
    consumer: BaseConsumer,
}

impl InputReader {
    /// A reader on the engine's cluster.
    pub fn new(config: &EngineConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            consumer: crate::pipeline::assigned_consumer(config, "trainer-join")?,
        })
    }

    /// The record at `source`.
    pub fn read(&self, source: &FeedbackSource) -> Result<Lookup, KafkaError> {
        let FeedbackSource {
            topic,
            partition,
            offset,
        } = source;
        let (low, high) = match self
            .consumer
            .fetch_watermarks(topic, *partition, LOOKUP_TIMEOUT)
        {
            Ok(bounds) => bounds,
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownPartition | RDKafkaErrorCode::UnknownTopicOrPartition,
            )) => {
                return Ok(Lookup::Unknown(format!(
                    "{topic} has no partition {partition}"
                )))
            }
            Err(error) => return Err(error),
        };
        if *offset < low {
            return Ok(Lookup::Expired);
        }
        // The high watermark only hints: some brokers (Tansu) report a stale one, so a record
        // past it is still looked for, and the coordinates name nothing only when no record
        // arrives there for a while.
        let past_end = *offset >= high;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        self.consumer.assign(&list)?;
        let started = Instant::now();
        let found = loop {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) if message.offset() == *offset => {
                    break Lookup::Found {
                        payload: message.payload().map(<[u8]>::to_vec),
                        timestamp_ms: message.timestamp().to_millis(),
                    }
                }
                // Compaction or a transaction marker left a gap where the record was.
                Some(Ok(message)) if message.offset() > *offset => break Lookup::Expired,
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None if past_end && started.elapsed() > PAST_END_IDLE => {
                    break Lookup::Unknown(format!(
                        "no record at offset {offset} of {topic}/{partition} (end {high})"
                    ))
                }
                None if started.elapsed() > LOOKUP_TIMEOUT => {
                    return Err(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    ))
                }
                None => {}
            }
        };
        self.consumer.unassign()?;
        Ok(found)
    }

    /// The records of `topic`/`partition` from `start` (raised to the low watermark) up to,
    /// not including, `end`, as (offset, value). `end` must name a record that exists (the
    /// verdict's input, already found), so the read stops when it arrives, or at a later
    /// one after a compaction gap.
    pub fn range(
        &self,
        topic: &str,
        partition: i32,
        start: i64,
        end: i64,
    ) -> Result<Vec<OffsetValue>, KafkaError> {
        let (low, _) = self
            .consumer
            .fetch_watermarks(topic, partition, LOOKUP_TIMEOUT)?;
        let start = start.max(low);
        if start >= end {
            return Ok(Vec::new());
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(start))?;
        self.consumer.assign(&list)?;
        let mut records = Vec::new();
        let mut last_record = Instant::now();
        loop {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    last_record = Instant::now();
                    if message.offset() >= end {
                        break;
                    }
                    records.push((message.offset(), message.payload().map(<[u8]>::to_vec)));
                    if message.offset() == end - 1 {
                        break;
                    }
                }
                Some(Err(error)) => return Err(error),
                None if last_record.elapsed() > LOOKUP_TIMEOUT => {
                    return Err(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    ))
                }
                None => {}
            }
        }
        self.consumer.unassign()?;
        Ok(records)
    }

    /// The values of the latest `rows` records of `topic` (spread over its partitions). The
    /// partitions are read from `rows` before the reported end until nothing more arrives
    /// (the reported end may be stale), keeping the last ones.
    pub fn recent(&self, topic: &str, rows: usize) -> Result<Vec<Option<Vec<u8>>>, KafkaError> {
        let metadata = self.consumer.fetch_metadata(Some(topic), LOOKUP_TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let per_partition = (rows / partitions.len()).max(1);
        let mut list = TopicPartitionList::new();
        for &partition in &partitions {
            let (low, high) = self
                .consumer
                .fetch_watermarks(topic, partition, LOOKUP_TIMEOUT)?;
            let start = low.max(high - per_partition as i64);
            list.add_partition_offset(topic, partition, Offset::Offset(start))?;
        }
        self.consumer.assign(&list)?;
        let mut kept: std::collections::BTreeMap<i32, std::collections::VecDeque<Option<Vec<u8>>>> =
            std::collections::BTreeMap::new();
        let started = Instant::now();
        let mut last_record = Instant::now();
        while last_record.elapsed() < PAST_END_IDLE && started.elapsed() < LOOKUP_TIMEOUT * 3 {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    last_record = Instant::now();
                    let values = kept.entry(message.partition()).or_default();
                    values.push_back(message.payload().map(<[u8]>::to_vec));
                    if values.len() > per_partition {
                        values.pop_front();
                    }
                }
                Some(Err(error)) => return Err(error),
                None => {}
            }
        }
        self.consumer.unassign()?;
        Ok(kept.into_values().flatten().collect())
    }
}
