//! Side inputs read whole by every pod: a consumer outside the engine's group that assigns
//! itself every partition of a topic from the beginning and never commits — each pod needs
//! every record of a changelog-like topic (behaviour scores, threat intelligence), not a
//! share of them. Used by the email operator's behaviour feed and the alert operator's
//! intel topic.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// A consumer with the engine's connection settings (TLS, SASL, secrets included) for a
/// side input named `purpose`: its own group id (`<group_id>.<purpose>`, never joined) and
/// no offset commits.
pub fn side_input_consumer(kafka: &KafkaConfig, purpose: &str) -> Result<BaseConsumer, String> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", format!("{}.{purpose}", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "100");
    for (name, value) in kafka.options.iter().chain(&kafka.consumer_options) {
        if name != "group.instance.id" {
            client.set(name, value);
        }
    }
    client.create().map_err(|error| error.to_string())
}

/// Assigns every partition of `topic` from the beginning; false while the topic does not
/// exist or has no partitions yet (retry later).
pub fn assign_all_from_beginning(consumer: &BaseConsumer, topic: &str) -> bool {
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return false;
    };
    let Some(info) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return false;
    };
    if info.partitions().is_empty() || info.error().is_some() {
        return false;
    }
    let mut list = TopicPartitionList::new();
    for partition in info.partitions() {
        let _ = list.add_partition_offset(topic, partition.id(), Offset::Beginning);
    }
    consumer.assign(&list).is_ok()
}
