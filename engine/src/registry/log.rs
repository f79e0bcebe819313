//! The registry log: which version is each operator's `champion` and `challenger`, and the
//! history of every change, as records on one compacted, single-partition Kafka topic.
//!
//! Every record has a unique key (`<operator>/<at_ms>/<random>`), so compaction never removes
//! history: the topic *is* the audit trail (who, when, why, with the version's metrics).
//! The current aliases are the fold of all records in offset order ([`RegistryState`]); one
//! partition gives every pod the same order. Pods read the topic from the start at boot and
//! then follow it ([`RegistryLog::follow`]), so a promotion reaches the fleet in the time of a
//! fetch, without a shared database. Appends wait for `acks=all`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;

/// How long a read or an append may wait on the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(15);
/// Nothing more for this long after the end offset: the read is complete (some brokers report
/// a high watermark inside the last record batch).
const READ_IDLE: Duration = Duration::from_millis(200);

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A version was pushed to the artifact store.
    Register,
    /// `version` becomes the champion (scores the stream).
    Promote,
    /// The previous champion comes back (`version`).
    Rollback,
    /// `version` becomes the challenger (shadow-scored).
    Challenge,
    /// No challenger any more.
    ClearChallenger,
    /// A retrained version failed the quality gate (`reason`, figures in `metrics`); it is
    /// never pushed nor scored live.
    Reject,
}

/// One registry record (JSON value on the topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryRecord {
    /// Operator.
    pub operator: String,
    /// What changed.
    pub action: Action,
    /// The version it concerns (none for `clear_challenger`).
    #[serde(default)]
    pub version: Option<String>,
    /// The alias's version before the change.
    #[serde(default)]
    pub previous: Option<String>,
    /// Who (user or pod).
    pub by: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// When, epoch ms.
    pub at_ms: i64,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// The version's manifest metrics.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

impl RegistryRecord {
    /// A record of `action` on `operator` by `by` now.
    pub fn now(
        operator: &str,
        action: Action,
        version: Option<&str>,
        by: &str,
        reason: &str,
    ) -> Self {
        let now = std::time::SystemTime::now();
        Self {
            operator: operator.to_owned(),
            action,
            version: version.map(str::to_owned),
            previous: None,
            by: by.to_owned(),
            at: crate::model_cli::rfc3339_utc(now),
            at_ms: now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as i64),
            reason: reason.to_owned(),
            metrics: serde_json::Value::Null,
        }
    }

    /// With these metrics.
    pub fn with_metrics(mut self, metrics: serde_json::Value) -> Self {
        self.metrics = metrics;
        self
    }
}

/// One operator's aliases and history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperatorAliases {
    /// The version scoring the stream.
    pub champion: Option<String>,
    /// The version shadow-scored.
    pub challenger: Option<String>,
    /// Every registered version, in registration order.
    pub versions: Vec<String>,
    /// Every record, in log order.
    pub history: Vec<RegistryRecord>,
}

impl OperatorAliases {
    /// The champion a rollback returns to: the last champion before the current one that
    /// differs from it.
    pub fn rollback_target(&self) -> Option<String> {
        let champions: Vec<&str> = self
            .history
            .iter()
            .filter(|record| matches!(record.action, Action::Promote | Action::Rollback))
            .filter_map(|record| record.version.as_deref())
            .collect();
        let current = self.champion.as_deref()?;
        champions
            .iter()
            .rev()
            .skip(1)
            .find(|version| **version != current)
            .map(|version| (*version).to_owned())
    }
}

/// The fold of the registry log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegistryState {
    /// By operator.
    pub operators: BTreeMap<String, OperatorAliases>,
}

impl RegistryState {
    /// Applies one record (log order).
    pub fn apply(&mut self, record: RegistryRecord) {
        let aliases = self.operators.entry(record.operator.clone()).or_default();
        let version = record.version.clone();
        match record.action {
            Action::Register => {
                if let Some(version) = &version {
                    if !aliases.versions.contains(version) {
                        aliases.versions.push(version.clone());
                    }
                }
            }
            Action::Promote | Action::Rollback => {
                if version.is_some() {
                    if aliases.challenger == version {
                        aliases.challenger = None;
                    }
                    aliases.champion = version;
                }
            }
            Action::Challenge => aliases.challenger = version,
            Action::ClearChallenger => aliases.challenger = None,
            Action::Reject => {}
        }
        aliases.history.push(record);
    }

    /// The aliases of `operator` (empty when it has none).
    pub fn of(&self, operator: &str) -> OperatorAliases {
        self.operators.get(operator).cloned().unwrap_or_default()
    }
}

/// Errors of the registry log.
#[derive(Debug, thiserror::Error)]
#[error("registry topic {topic}: {message}")]
pub struct LogError {
    /// Topic.
    pub topic: String,
    /// What failed.
    pub message: String,
}

/// The registry topic of a config.
#[derive(Clone)]
pub struct RegistryLog {
    topic: String,
    base: ClientConfig,
}

impl RegistryLog {
    /// The registry log of `config` (`registry.topic`), created compacted with one partition
    /// if missing.
    pub fn open(config: &EngineConfig) -> Result<Self, LogError> {
        let log = Self {
            topic: config.registry.topic.clone(),
            base: crate::pipeline::base_client_config(config),
        };
        crate::runtime::changelog::create_compacted_topic(&log.base, &log.topic, 1)
            .map_err(|message| log.error(message))?;
        Ok(log)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn error(&self, message: impl std::fmt::Display) -> LogError {
        LogError {
            topic: self.topic.clone(),
            message: message.to_string(),
        }
    }

    fn consumer(&self) -> Result<BaseConsumer, LogError> {
        let mut config = self.base.clone();
        // Assigned, never subscribed: no group membership, nothing committed.
        config
            .set("group.id", "threatflow-registry-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50");
        config.create().map_err(|error| self.error(error))
    }

    /// Reads the whole log: the folded state and the offset to follow from.
    pub fn read_all(&self) -> Result<(RegistryState, i64), LogError> {
        let consumer = self.consumer()?;
        let started = Instant::now();
        let (low, high) = loop {
            match consumer.fetch_watermarks(&self.topic, 0, BROKER_TIMEOUT) {
                Ok(watermarks) => break watermarks,
                // A topic created a moment ago may not be in the metadata yet.
                Err(error) if started.elapsed() < BROKER_TIMEOUT => {
                    tracing::debug!(%error, "registry topic not readable yet");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(error) => return Err(self.error(error)),
            }
        };
        let mut state = RegistryState::default();
        if high <= low {
            return Ok((state, high.max(0)));
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&self.topic, 0, Offset::Offset(low))
            .map_err(|error| self.error(error))?;
        consumer.assign(&list).map_err(|error| self.error(error))?;
        let mut next = low;
        let mut last_progress = Instant::now();
        loop {
            match consumer.poll(READ_IDLE) {
                Some(Ok(message)) => {
                    last_progress = Instant::now();
                    next = message.offset() + 1;
                    if let Some(record) = decode(&message) {
                        state.apply(record);
                    }
                }
                Some(Err(error)) => return Err(self.error(error)),
                None if next >= high => break,
                None if last_progress.elapsed() > BROKER_TIMEOUT => {
                    return Err(self.error(format!("read stalled below offset {high}")));
                }
                None => {}
            }
        }
        Ok((state, next))
    }

    /// Appends `record` and waits for the broker's acknowledgement (`acks=all`).
    pub fn append(&self, record: &RegistryRecord) -> Result<(), LogError> {
        let mut config = self.base.clone();
        config
            .set("acks", "all")
            .set("message.timeout.ms", BROKER_TIMEOUT.as_millis().to_string());
        let producer: ThreadedProducer<DefaultProducerContext> =
            config.create().map_err(|error| self.error(error))?;
        let key = format!(
            "{}/{}/{:08x}",
            record.operator,
            record.at_ms,
            rand::random::<u32>()
        );
        let payload = serde_json::to_vec(record).map_err(|error| self.error(error))?;
        producer
            .send(
                BaseRecord::to(&self.topic)
                    .key(&key)
                    .payload(&payload)
                    .partition(0),
            )
            .map_err(|(error, _)| self.error(error))?;
        producer
            .flush(BROKER_TIMEOUT)
            .map_err(|error| self.error(format!("append not acknowledged: {error}")))?;
        if producer.in_flight_count() > 0 {
            return Err(self.error("append not acknowledged"));
        }
        Ok(())
    }

    /// Follows the log from `offset` on a thread of its own, calling `on_record` for every
    /// record, until `stop` is cancelled. A broker error is logged and retried (the consumer
    /// reconnects on its own).
    pub fn follow(
        &self,
        offset: i64,
        stop: CancellationToken,
        mut on_record: impl FnMut(RegistryRecord) + Send + 'static,
    ) -> Result<std::thread::JoinHandle<()>, LogError> {
        let consumer = self.consumer()?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&self.topic, 0, Offset::Offset(offset))
            .map_err(|error| self.error(error))?;
        consumer.assign(&list).map_err(|error| self.error(error))?;
        let topic = self.topic.clone();
        std::thread::Builder::new()
            .name("threatflow-registry".into())
            .spawn(move || {
                while !stop.is_cancelled() {
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(message)) => {
                            if let Some(record) = decode(&message) {
                                on_record(record);
                            }
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%error, topic, "registry log read failed; retrying");
                            std::thread::sleep(Duration::from_millis(500));
                        }
                        None => {}
                    }
                }
            })
            .map_err(|error| self.error(error))
    }
}

fn decode(message: &rdkafka::message::BorrowedMessage<'_>) -> Option<RegistryRecord> {
    let payload = message.payload()?;
    match serde_json::from_slice(payload) {
        Ok(record) => Some(record),
        Err(error) => {
            tracing::warn!(%error, offset = message.offset(), "registry record unreadable; skipped");
            None
        }
    }
}

/// Who is acting: `$THREATFLOW_USER`, `$USER`, else `$HOSTNAME` (a pod's name).
pub fn actor() -> String {
    ["THREATFLOW_USER", "USER", "HOSTNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: Action, version: Option<&str>) -> RegistryRecord {
        RegistryRecord::now("flow", action, version, "test", "because")
    }

    #[test]
    fn fold_tracks_aliases_and_rollback_returns_to_the_previous_champion() {
        let mut state = RegistryState::default();
        state.apply(record(Action::Register, Some("v1")));
        state.apply(record(Action::Promote, Some("v1")));
        state.apply(record(Action::Register, Some("v2")));
        state.apply(record(Action::Challenge, Some("v2")));
        let flow = state.of("flow");
        assert_eq!(flow.champion.as_deref(), Some("v1"));
        assert_eq!(flow.challenger.as_deref(), Some("v2"));
        assert_eq!(flow.rollback_target(), None);
        state.apply(record(Action::Promote, Some("v2")));
        let flow = state.of("flow");
        assert_eq!(flow.champion.as_deref(), Some("v2"));
        assert_eq!(
            flow.challenger, None,
            "a promoted challenger stops being one"
        );
        assert_eq!(flow.rollback_target().as_deref(), Some("v1"));
        state.apply(record(Action::Rollback, Some("v1")));
        assert_eq!(state.of("flow").champion.as_deref(), Some("v1"));
        assert_eq!(state.of("flow").history.len(), 6);
        assert_eq!(state.of("flow").versions, ["v1", "v2"]);
        assert_eq!(state.of("alert"), OperatorAliases::default());
    }

    #[test]
    fn records_round_trip_as_json() {
        let original =
            record(Action::Promote, Some("v3")).with_metrics(serde_json::json!({"auc": 0.9}));
        let back: RegistryRecord =
            serde_json::from_slice(&serde_json::to_vec(&original).unwrap()).unwrap();
        assert_eq!(back, original);
    }
}
