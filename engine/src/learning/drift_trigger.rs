//! Retrain on drift (`trainer.retrain_on_drift`): the trainer reads the drift topic and, when
//! an operator it retrains is reported drifted, lowers that operator's bar for its next
//! retraining from `trainer.min_new_rows` to `trainer.drift_min_new_rows` new verdict rows —
//! at once, not at the hourly check.
//!
//! Retraining needs labelled rows of the changed stream: without new verdicts a retraining
//! would relearn the data the champion learned, so drift alone never retrains. Every drifted
//! record counts (kinds `feature`, `score`, `calibration_health`, `precision_drop`). The
//! topic is read from its end with an assigned consumer (no group): drift reported while no
//! trainer ran is not replayed — the next window reports it again if it persists.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::EngineConfig;

/// Reads drift records as they come.
pub struct DriftTrigger {
    consumer: BaseConsumer,
}

/// What one drifted record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftSignal {
    /// The operator it is about.
    pub operator: String,
    /// `<kind> <feature>` (e.g. `feature src_bytes`), for logs and `/models`.
    pub reason: String,
}

impl DriftTrigger {
    /// Assigns every partition of the drift topic at its end.
    pub fn open(config: &EngineConfig) -> Result<Self, String> {
        let consumer = crate::pipeline::assigned_consumer(config, "trainer-drift")
            .map_err(|error| error.to_string())?;
        let topic = &config.drift.topic;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|error| error.to_string())?;
        let mut list = TopicPartitionList::new();
        for partition in metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions())
        {
            list.add_partition_offset(topic, partition.id(), Offset::End)
                .map_err(|error| error.to_string())?;
        }
        if list.count() == 0 {
            return Err(format!(
                "drift topic {topic} has no partitions (the engine creates it at start)"
            ));
        }
        consumer.assign(&list).map_err(|error| error.to_string())?;
        Ok(Self { consumer })
    }

    /// The drifted records that arrived since the last call (does not wait).
    pub fn poll(&self) -> Vec<DriftSignal> {
        let mut signals = Vec::new();
        while let Some(message) = self.consumer.poll(Duration::ZERO) {
            match message {
                Ok(message) => signals.extend(message.payload().and_then(signal)),
                Err(error) => {
                    tracing::warn!(%error, "drift topic read failed; retrying");
                    break;
                }
            }
        }
        signals
    }
}

/// A drifted record's signal (`None`: not drifted, or not a drift record).
pub fn signal(payload: &[u8]) -> Option<DriftSignal> {
    let record: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if record["drifted"] != true {
        return None;
    }
    Some(DriftSignal {
        operator: record["operator"].as_str()?.to_owned(),
        reason: format!(
            "{} {}",
            record["kind"].as_str().unwrap_or("feature"),
            record["feature"].as_str().unwrap_or("?")
        ),
    })
}

/// Per operator, what drifted (up to five `<kind> <feature>`) since its bar was lowered, until
/// its next retraining starts.
pub type PendingDrift = BTreeMap<&'static str, Vec<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_drifted_records_signal() {
        let record = |drifted: bool| {
            serde_json::to_vec(&serde_json::json!({
                "operator": "flow", "kind": "feature", "feature": "src_bytes",
                "drifted": drifted, "p_value": 1e-9,
            }))
            .unwrap()
        };
        assert_eq!(
            signal(&record(true)),
            Some(DriftSignal {
                operator: "flow".into(),
                reason: "feature src_bytes".into()
            })
        );
        assert_eq!(signal(&record(false)), None);
        assert_eq!(signal(b"not json"), None);
    }
}
