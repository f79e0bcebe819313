//! Reading what the engine wrote: every record of some topics from the beginning, with an
//! assigned consumer (no group join), and the paths of the Python test tools.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{repository, unique_name};

/// One record as read.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its topic.
    pub topic: String,
    /// Key bytes (empty without a key).
    pub key: Vec<u8>,
    /// Value bytes (empty for a tombstone).
    pub payload: Vec<u8>,
    /// Kafka timestamp, epoch ms.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// The value as JSON (panics with the value when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&self.payload)))
    }

    /// Key and value as text, tab-separated (for scans of what left the engine).
    pub fn text(&self) -> String {
        format!(
            "{}\t{}",
            String::from_utf8_lossy(&self.key),
            String::from_utf8_lossy(&self.payload)
        )
    }
}

/// When [`read_records`] stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// When the predicate holds or this long passed.
    Timeout(Duration),
    /// When no record came for this long.
    Idle(Duration),
}

/// Every record of partitions `0..partitions` of `topics`, from the beginning, until `until`
/// or `enough(&records)`.
pub fn read_records(
    bootstrap: &str,
    topics: &[&str],
    partitions: u32,
    until: Until,
    enough: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader consumer");
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        for partition in 0..partitions as i32 {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("assignment");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let started = Instant::now();
    let mut last = Instant::now();
    let mut records = Vec::new();
    loop {
        let done = match until {
            Until::Timeout(timeout) => started.elapsed() >= timeout,
            Until::Idle(idle) => last.elapsed() >= idle,
        };
        if done || enough(&records) {
            return records;
        }
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            records.push(Record {
                topic: message.topic().to_owned(),
                key: message.key().unwrap_or_default().to_vec(),
                payload: message.payload().unwrap_or_default().to_vec(),
                timestamp_ms: match message.timestamp() {
                    Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
                    Timestamp::NotAvailable => None,
                },
            });
            last = Instant::now();
        }
    }
}

/// A Python test tool installed by `scripts/setup.sh` into `.tools/apitest` (`name` under its
/// `bin/`), or the path in `env_var` (`scripts/test.sh` exports them).
pub fn test_tool(env_var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join(".tools/apitest/bin").join(name));
    assert!(
        path.exists(),
        "{} missing: run scripts/setup.sh (or set {env_var})",
        path.display()
    );
    path
}
