//! The behaviour-score feed: per-user scores read from another topic (for example the alert
//! operator's `entity_topic`), fused into email user risk.
//!
//! A background thread assigns itself every partition of `behaviour_topic` from the
//! beginning (no consumer group offsets: each pod needs every user's latest score, and the
//! records are a changelog keyed by entity) and keeps, per user key, the newest score and its
//! event time in a concurrent map the operator reads. Records are scored envelopes in JSON,
//! Avro or Confluent-framed Avro (whatever `output.format` the producing engine uses); the
//! user is the `entity` label when `entity_type` is `user`, else the record key (`user:<name>`
//! → `<name>`), normalised by [`user_key`]; records of other entity types (hosts) and records
//! without the configured score field are skipped and counted. The thread stops when the
//! feed is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;

use crate::config::KafkaConfig;
use crate::events::bundled_schemas;
use crate::operators::email::user_key::user_key;
use crate::runtime::topic_feed::{assign_all_from_beginning, side_input_consumer};
use crate::scored::Scored;

/// Newest behaviour score per user: (score, event time ms).
pub type BehaviourScores = Arc<DashMap<String, (f64, i64)>>;

/// A running feed.
pub struct BehaviourFeed {
    /// The scores.
    pub scores: BehaviourScores,
    /// Records skipped (undecodable, other entity types, no score).
    pub skipped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for BehaviourFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BehaviourFeed")
            .field("users", &self.scores.len())
            .finish()
    }
}

impl Drop for BehaviourFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The user and score carried by one behaviour record, if it is a user's.
pub fn parse_record(
    decoder: &ScoredDecoder,
    key: Option<&[u8]>,
    payload: &[u8],
    field: &str,
) -> Option<(String, f64, i64)> {
    let scored = decoder.decode(payload)?;
    let score = *scored.scores.get(field)?;
    if !score.is_finite() {
        return None;
    }
    let user = match (
        scored.labels.get("entity_type"),
        scored.labels.get("entity"),
    ) {
        (Some(kind), Some(entity)) if kind == "user" => user_key(entity)?,
        (Some(_), Some(_)) => return None,
        _ => {
            let key = std::str::from_utf8(key?).ok()?;
            if key.contains(':') && !key.to_ascii_lowercase().starts_with("user:") {
                return None;
            }
            user_key(key)?
        }
    };
    let time = scored.event_time_ms.unwrap_or(scored.scored_at_ms);
    Some((user, score.clamp(0.0, 1.0), time))
}

/// Decodes scored envelopes in any output format; the Avro reader is built once.
pub struct ScoredDecoder {
    reader: apache_avro::reader::datum::GenericDatumReader<'static>,
}

impl ScoredDecoder {
    /// The decoder for the bundled `scored` schema.
    pub fn new() -> Result<Self, String> {
        let reader =
            apache_avro::reader::datum::GenericDatumReader::builder(&bundled_schemas().scored)
                .build()
                .map_err(|e| e.to_string())?;
        Ok(Self { reader })
    }

    fn decode(&self, payload: &[u8]) -> Option<Scored> {
        if payload.first() == Some(&b'{') {
            return serde_json::from_slice(payload).ok();
        }
        let read = |mut datum: &[u8]| {
            self.reader
                .read_value(&mut datum)
                .ok()
                .and_then(|value| apache_avro::from_value::<Scored>(&value).ok())
        };
        // Confluent frame (magic 0 + 4-byte id) first, then a bare datum.
        if payload.len() > 5 && payload[0] == 0 {
            if let Some(scored) = read(&payload[5..]) {
                return Some(scored);
            }
        }
        read(payload)
    }
}

impl BehaviourFeed {
    /// Starts reading `topic` with the engine's Kafka settings.
    pub fn start(kafka: &KafkaConfig, topic: &str, field: &str) -> Result<Self, String> {
        let consumer = side_input_consumer(kafka, "behaviour-feed")?;
        let decoder = ScoredDecoder::new()?;
        let scores: BehaviourScores = Arc::new(DashMap::new());
        let skipped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (topic, field) = (topic.to_owned(), field.to_owned());
        let thread = {
            let (scores, skipped, stop) = (scores.clone(), skipped.clone(), stop.clone());
            std::thread::Builder::new()
                .name("threatflow-behaviour".into())
                .spawn(move || {
                    run(
                        &consumer, &decoder, &topic, &field, &scores, &skipped, &stop,
                    )
                })
                .map_err(|e| e.to_string())?
        };
        Ok(Self {
            scores,
            skipped,
            stop,
            thread: Some(thread),
        })
    }

    /// The newest score of `user` not older than `max_age_ms` before `at_ms`.
    pub fn score(&self, user: &str, at_ms: i64, max_age_ms: i64) -> Option<f64> {
        self.scores
            .get(user)
            .filter(|entry| entry.1 >= at_ms.saturating_sub(max_age_ms))
            .map(|entry| entry.0)
    }
}

fn run(
    consumer: &BaseConsumer,
    decoder: &ScoredDecoder,
    topic: &str,
    field: &str,
    scores: &DashMap<String, (f64, i64)>,
    skipped: &AtomicU64,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) && !assign_all_from_beginning(consumer, topic) {
        tracing::warn!(topic, "behaviour topic not available yet; retrying");
        std::thread::sleep(Duration::from_secs(2));
    }
    while !stop.load(Ordering::Relaxed) {
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(message) = result else {
            continue;
        };
        match message
            .payload()
            .and_then(|payload| parse_record(decoder, message.key(), payload, field))
        {
            Some((user, score, time)) => {
                let mut entry = scores.entry(user).or_insert((score, time));
                if time >= entry.1 {
                    *entry = (score, time);
                }
            }
            None => {
                skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scored::SourceCoordinates;
    use std::collections::BTreeMap;

    fn record(entity_type: &str, entity: &str, score: f64) -> Scored {
        Scored {
            event_id: "a".into(),
            source: SourceCoordinates {
                topic: "alerts".into(),
                partition: 0,
                offset: 1,
                timestamp_ms: None,
            },
            operator: "alert".into(),
            model_version: "v1".into(),
            scores: BTreeMap::from([("behaviour_score".into(), score)]),
            labels: BTreeMap::from([
                ("entity_type".into(), entity_type.into()),
                ("entity".into(), entity.into()),
            ]),
            explanation: vec![],
            thresholds_crossed: vec![],
            event_time_ms: Some(1000),
            scored_at_ms: 2000,
        }
    }

    #[test]
    fn user_records_parse_in_json_and_avro_and_hosts_are_skipped() {
        let decoder = ScoredDecoder::new().unwrap();
        let parse_record = |key, payload: &[u8], field| parse_record(&decoder, key, payload, field);
        let json = serde_json::to_vec(&record("user", "Phillip.Allen", 0.7)).unwrap();
        assert_eq!(
            parse_record(Some(b"user:phillip.allen"), &json, "behaviour_score"),
            Some(("phillip-allen".into(), 0.7, 1000))
        );
        let encoder = crate::encode::OutputEncoder::new(&crate::config::OutputConfig {
            format: crate::config::OutputFormat::Avro,
            ..Default::default()
        })
        .unwrap();
        let avro = encoder.encode_scored(&record("user", "bob", 1.5)).unwrap();
        assert_eq!(
            parse_record(None, &avro, "behaviour_score"),
            Some(("bob".into(), 1.0, 1000))
        );
        let host = serde_json::to_vec(&record("host", "web-1", 0.9)).unwrap();
        assert_eq!(parse_record(None, &host, "behaviour_score"), None);
        assert_eq!(parse_record(None, &json, "other_field"), None);
        assert_eq!(parse_record(None, b"\x01garbage", "behaviour_score"), None);
    }
}
