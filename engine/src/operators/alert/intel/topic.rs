//! Live threat intelligence: a compacted Kafka topic (`[operators.alert] intel_topic`) of
//! indicator records that every pod reads whole, so an indicator an intel team publishes
//! reaches every engine process within about a second, without a rebuild or a restart.
//!
//! Records are JSON, keyed by the indicator's key (`network:198.51.100.0/24`; a record
//! without a key is keyed by its content):
//! `{"kind": "network", "value": "198.51.100.7", "confidence": 0.9, "source": "SOC intel",
//! "label": "…", "valid_from": "2026-12-07T08:00:00Z", "valid_until": …, "last_seen": …}`
//! (`kind`: network / ip / cidr, domain, url, md5, sha1, sha256; times RFC 3339 or Unix
//! s/ms; confidence defaults to 0.7, source to the topic name). A tombstone (null value) or
//! `"revoked": true` removes the key. The latest record per key wins over the snapshot and
//! the configured files. Invalid records are counted (`threatflow_intel_updates_total
//! {outcome="invalid"}`) and logged without their content, never fatal.
//!
//! Guarantee: lookups read an immutable [`IntelSet`] through an [`arc_swap::ArcSwap`]; the
//! follower builds each new set aside and swaps it in whole.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rdkafka::message::Message;
use serde::Deserialize;
use serde_json::Value;

use super::{kind_named, parse_time_ms, Indicator, IntelSet};
use crate::config::KafkaConfig;
use crate::runtime::topic_feed::{assign_all_from_beginning, side_input_consumer};
use crate::telemetry::{INTEL_INDICATORS, INTEL_UPDATES};

/// The intel set the alert scorers read; the follower swaps it.
pub type IntelHandle = Arc<ArcSwap<IntelSet>>;

/// How often, at most, a new set is built while records keep arriving.
const REBUILD_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize)]
struct TopicRecord {
    kind: String,
    value: String,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    valid_from: Option<Value>,
    #[serde(default)]
    valid_until: Option<Value>,
    #[serde(default)]
    last_seen: Option<Value>,
    #[serde(default)]
    revoked: bool,
}

fn time_of(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::String(text) => parse_time_ms(text),
        Value::Number(number) => parse_time_ms(&number.to_string()),
        _ => None,
    }
}

/// One topic record as (key, indicator or removal). `topic` is the default source.
pub fn parse_record(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    topic: &str,
) -> Result<(String, Option<Indicator>), String> {
    let key = key.map(|key| String::from_utf8_lossy(key).into_owned());
    let Some(payload) = payload else {
        return key
            .map(|key| (key, None))
            .ok_or_else(|| "a tombstone without a key".to_owned());
    };
    let record: TopicRecord = serde_json::from_slice(payload)
        .map_err(|error| format!("not an indicator record: {error}"))?;
    let kind = kind_named(&record.kind).ok_or("unknown kind")?;
    let mut indicator = Indicator::new(
        kind,
        &record.value,
        record
            .confidence
            .map_or(0.7, |c| if c > 1.0 { c / 100.0 } else { c }),
        record.source.as_deref().unwrap_or(topic),
    )
    .ok_or("the value is not a valid indicator of its kind")?;
    indicator.label = record.label.unwrap_or_default();
    indicator.valid_from_ms = time_of(record.valid_from.as_ref());
    indicator.valid_until_ms = time_of(record.valid_until.as_ref());
    indicator.last_seen_ms = time_of(record.last_seen.as_ref());
    let key = key.unwrap_or_else(|| indicator.key());
    Ok((key, (!record.revoked).then_some(indicator)))
}

/// A running follower; dropping it stops the thread.
pub struct IntelFollower {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for IntelFollower {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IntelFollower")
            .finish_non_exhaustive()
    }
}

impl Drop for IntelFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl IntelFollower {
    /// Starts following `topic`: records override `base`, and every new set is stored in
    /// `handle`.
    pub fn start(
        kafka: &KafkaConfig,
        topic: &str,
        base: Arc<IntelSet>,
        handle: IntelHandle,
    ) -> Result<Self, String> {
        let consumer = side_input_consumer(kafka, "intel")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, topic) = (stop.clone(), topic.to_owned());
            std::thread::Builder::new()
                .name("threatflow-intel".into())
                .spawn(move || follow(&consumer, &topic, &base, &handle, &stop))
                .map_err(|error| error.to_string())?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

fn follow(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    base: &IntelSet,
    handle: &IntelHandle,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) && !assign_all_from_beginning(consumer, topic) {
        tracing::warn!(topic, "intel topic not available yet; retrying");
        std::thread::sleep(Duration::from_secs(2));
    }
    let mut overlay: HashMap<String, Option<Indicator>> = HashMap::new();
    let (mut dirty, mut last_build) = (false, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                match parse_record(message.key(), message.payload(), topic) {
                    Ok((key, indicator)) => {
                        let outcome = if indicator.is_some() {
                            "applied"
                        } else {
                            "removed"
                        };
                        metrics::counter!(INTEL_UPDATES, "topic" => topic.to_owned(), "outcome" => outcome)
                            .increment(1);
                        overlay.insert(key, indicator);
                        dirty = true;
                    }
                    Err(reason) => {
                        metrics::counter!(INTEL_UPDATES, "topic" => topic.to_owned(), "outcome" => "invalid")
                            .increment(1);
                        tracing::warn!(
                            topic,
                            partition = message.partition(),
                            offset = message.offset(),
                            reason,
                            "intel record skipped"
                        );
                    }
                }
                if dirty && last_build.elapsed() >= REBUILD_EVERY {
                    swap_in(base, &overlay, handle, topic);
                    (dirty, last_build) = (false, Instant::now());
                }
            }
            Some(Err(error)) => tracing::warn!(topic, %error, "intel topic read failed; retrying"),
            None if dirty => {
                swap_in(base, &overlay, handle, topic);
                (dirty, last_build) = (false, Instant::now());
            }
            None => {}
        }
    }
}

fn swap_in(
    base: &IntelSet,
    overlay: &HashMap<String, Option<Indicator>>,
    handle: &IntelHandle,
    topic: &str,
) {
    let set = base.with_updates(overlay);
    metrics::gauge!(INTEL_INDICATORS, "topic" => topic.to_owned()).set(set.len() as f64);
    tracing::info!(topic, indicators = set.len(), "intel updated");
    handle.store(Arc::new(set));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_into_updates_and_removals() {
        let (key, indicator) = parse_record(
            None,
            Some(br#"{"kind": "ip", "value": "198.51.100.7", "confidence": 90, "valid_until": 1800000000}"#),
            "intel",
        )
        .unwrap();
        let indicator = indicator.unwrap();
        assert_eq!(key, "network:198.51.100.7/32");
        assert_eq!(
            (indicator.confidence, indicator.source.as_str()),
            (0.9, "intel")
        );
        assert_eq!(indicator.valid_until_ms, Some(1_800_000_000_000));
        let (key, removed) = parse_record(Some(b"domain:c2.example"), None, "intel").unwrap();
        assert_eq!((key.as_str(), removed), ("domain:c2.example", None));
        let (_, revoked) = parse_record(
            Some(b"k"),
            Some(br#"{"kind": "domain", "value": "c2.example", "revoked": true}"#),
            "intel",
        )
        .unwrap();
        assert!(revoked.is_none());
        for bad in [
            &br#"{"kind": "galaxy", "value": "x"}"#[..],
            b"not json",
            br#"{"kind": "md5", "value": "zz"}"#,
        ] {
            assert!(parse_record(None, Some(bad), "intel").is_err());
        }
        assert!(parse_record(None, None, "intel").is_err());
    }
}
