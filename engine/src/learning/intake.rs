//! Verdict intake: one verdict from a feedback topic into the training buffer.
//!
//! Each verdict is decoded and checked ([`super::verdict`]), located at its input's
//! coordinates ([`super::join`]), decoded with its binding's decoder, and decided again with
//! the model version that scored it (the verdict's `model_version`, else the champion) so the
//! live precision knows whether the engine alerted. Then the input and the label go to the
//! buffer. A verdict that cannot be located becomes a dead letter (`unknown_event`); one
//! whose input has left the topic is counted and feeds live precision only. A broker or
//! store that does not answer is an [`IntakeError`]: the verdict is retried, never dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::buffer::{is_holdout, Inserted, TrainingBuffer, TrainingRow};
use super::context::PriorInputs;
use super::join::{InputReader, Lookup};
use super::precision::{LivePrecision, PrecisionDrop};
use super::verdict::{Feedback, Refusal};
use super::{LearningSpec, Scorable, VersionScorer};
use crate::config::EngineConfig;
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::decode::Decoder;
use crate::registry::store::ArtifactStore;
use crate::scored::SourceCoordinates;
use crate::telemetry;

/// A failure to retry later (the verdict stays uncommitted).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IntakeError(pub String);

fn transient(error: impl std::fmt::Display) -> IntakeError {
    IntakeError(error.to_string())
}

/// What became of one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Joined and in the buffer.
    Buffered,
    /// Joined, replacing the buffered verdict on the same event (an analyst's later verdict,
    /// or a verdict read again after a restart or rebalance).
    Replaced,
    /// An earlier verdict than the one buffered for the event.
    Stale,
    /// Its input left the topic: live precision only.
    Expired,
    /// A dead letter.
    Refused,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Buffered => "buffered",
            Self::Replaced => "replaced",
            Self::Stale => "stale",
            Self::Expired => "expired",
            Self::Refused => "refused",
        }
    }
}

/// One operator's inputs: its bound topics and their decoders.
#[derive(Clone)]
pub struct OperatorInputs {
    /// Operator.
    pub operator: &'static str,
    /// Its model directory in the store.
    pub model_dir: &'static str,
    /// How it learns (`None`: its verdicts are only buffered for export and live precision).
    pub learning: Option<LearningSpec>,
    /// Input topic → decoder.
    pub decoders: BTreeMap<String, Decoder>,
}

/// A verdict record as read from Kafka.
pub struct VerdictRecord<'a> {
    /// Where it was read.
    pub source: SourceCoordinates,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its value.
    pub payload: Option<&'a [u8]>,
}

/// The intake's working parts.
pub struct Intake {
    config: EngineConfig,
    reader: InputReader,
    prior: PriorInputs,
    store: ArtifactStore,
    cache_dir: PathBuf,
    producer: ThreadedProducer<DefaultProducerContext>,
    encoder: crate::encode::OutputEncoder,
    buffer: Arc<TrainingBuffer>,
    /// Live precision per operator and version.
    pub precision: LivePrecision,
    scorers: HashMap<(String, String), Box<dyn VersionScorer>>,
}

impl Intake {
    /// The intake for `config`, writing into `buffer`.
    pub fn new(config: &EngineConfig, buffer: Arc<TrainingBuffer>) -> Result<Self, IntakeError> {
        let feedback = &config.feedback;
        Ok(Self {
            reader: InputReader::new(config).map_err(transient)?,
            prior: PriorInputs::new(feedback.context_lookback_records),
            store: ArtifactStore::open(&config.registry, &config.storage.model_dir)
                .map_err(transient)?,
            cache_dir: config.registry.cache_dir(&config.storage.state_dir),
            producer: crate::pipeline::producer_client_config(config)
                .create()
                .map_err(transient)?,
            encoder: crate::encode::OutputEncoder::new(&config.output).map_err(transient)?,
            buffer,
            precision: LivePrecision::new(
                feedback.precision_window,
                feedback.precision_min_verdicts,
                feedback.precision_alarm,
            ),
            scorers: HashMap::new(),
            config: config.clone(),
        })
    }

    /// Takes one verdict of `inputs.operator` (`champion`: its current champion).
    pub fn take(
        &mut self,
        inputs: &OperatorInputs,
        champion: Option<&str>,
        record: &VerdictRecord<'_>,
    ) -> Result<Outcome, IntakeError> {
        let outcome = self.process(inputs, champion, record)?;
        metrics::counter!(telemetry::FEEDBACK_VERDICTS, "operator" => inputs.operator, "outcome" => outcome.label())
            .increment(1);
        Ok(outcome)
    }

    fn process(
        &mut self,
        inputs: &OperatorInputs,
        champion: Option<&str>,
        record: &VerdictRecord<'_>,
    ) -> Result<Outcome, IntakeError> {
        let operator = inputs.operator;
        let feedback = match Feedback::decode(record.payload, operator) {
            Ok(feedback) => feedback,
            Err(refusal) => return self.refuse(operator, record, refusal),
        };
        let topics: Vec<String> = inputs.decoders.keys().cloned().collect();
        let Some(source) = feedback.coordinates(&topics) else {
            return self.refuse(
                operator,
                record,
                Refusal::new(
                    DeadLetterReason::UnknownEvent,
                    "no source coordinates, and event_id is not <topic>-<partition>-<offset> of a bound input topic",
                ),
            );
        };
        let Some(decoder) = inputs.decoders.get(&source.topic) else {
            return self.refuse(
                operator,
                record,
                Refusal::new(
                    DeadLetterReason::UnknownEvent,
                    format!("source topic is not an input of {operator}"),
                ),
            );
        };
        let version = feedback
            .model_version
            .clone()
            .or_else(|| champion.map(str::to_owned))
            .unwrap_or_default();
        let payload = match self.reader.read(&source).map_err(transient)? {
            Lookup::Found { payload, .. } => payload,
            Lookup::Expired => {
                // Kept for live precision when the verdict says what the engine decided.
                if feedback.verdict.engine_alerted() == Some(true) {
                    self.judge_precision(operator, &version, feedback.verdict.is_threat());
                }
                tracing::info!(operator, topic = %source.topic, partition = source.partition, offset = source.offset, "verdict's input has left the topic; counted for live precision only");
                return Ok(Outcome::Expired);
            }
            Lookup::Unknown(detail) => {
                return self.refuse(
                    operator,
                    record,
                    Refusal::new(DeadLetterReason::UnknownEvent, detail),
                )
            }
        };
        let event = match decoder.decode(payload.as_deref()) {
            Ok(event) => event,
            Err(failure) => {
                return self.refuse(
                    operator,
                    record,
                    Refusal::new(
                        DeadLetterReason::UnknownEvent,
                        format!(
                            "the input at the coordinates was never scored ({})",
                            failure.reason.code()
                        ),
                    ),
                )
            }
        };
        let derived = format!("{}-{}-{}", source.topic, source.partition, source.offset);
        if feedback.event_id != derived
            && event.producer_event_id() != Some(feedback.event_id.as_str())
        {
            return self.refuse(
                operator,
                record,
                Refusal::new(
                    DeadLetterReason::UnknownEvent,
                    "event_id does not match the input at the coordinates",
                ),
            );
        }
        let context = match inputs.learning.and_then(|learning| learning.context) {
            Some(build) => {
                let prior = self
                    .prior
                    .before(&self.reader, decoder, &source)
                    .map_err(transient)?;
                build(&prior, &event)
            }
            None => None,
        };
        let (version, decided) = match inputs.learning {
            Some(_) => {
                let scorable = Scorable {
                    event: &event,
                    context: context.as_ref(),
                };
                let (version, decision) = self.decide(inputs, &version, champion, scorable)?;
                (version, Some(decision.alerted))
            }
            None => (version, None),
        };
        if let Some(alerted) = feedback.verdict.engine_alerted().or(decided) {
            if alerted {
                self.judge_precision(operator, &version, feedback.verdict.is_threat());
            }
        }
        let input = crate::decode::encode_input_avro(&event).map_err(transient)?;
        let row = TrainingRow {
            holdout: is_holdout(&feedback.event_id, self.config.feedback.holdout_fraction),
            event_id: feedback.event_id,
            schema: event.kind(),
            input,
            threat: feedback.verdict.is_threat(),
            label: match inputs.learning.and_then(|learning| learning.class_of) {
                Some(class_of) => class_of(feedback.verdict, feedback.label.as_deref()),
                None => feedback.label,
            },
            corrected_risk: feedback.corrected_risk,
            verdict_ms: feedback.timestamp_ms,
            model_version: version,
            seq: 0,
            context,
        };
        let max_age_ms = (self.config.feedback.buffer_max_age_days * 86_400_000.0) as i64;
        let inserted = self
            .buffer
            .insert(
                operator,
                row,
                self.config.feedback.buffer_max_rows,
                max_age_ms,
                crate::scored::now_ms(),
            )
            .map_err(transient)?;
        Ok(match inserted {
            Inserted::Stale => Outcome::Stale,
            Inserted::New => Outcome::Buffered,
            Inserted::Replaced => Outcome::Replaced,
        })
    }

    /// The decision of `version` (else the champion) on `event`, and the version used.
    fn decide(
        &mut self,
        inputs: &OperatorInputs,
        version: &str,
        champion: Option<&str>,
        event: Scorable<'_>,
    ) -> Result<(String, super::Decision), IntakeError> {
        let mut chosen = version.to_owned();
        if self.scorer(inputs, version).is_err() {
            // A version the store does not hold (mistyped by the analyst, removed): judge with
            // the champion rather than drop the verdict.
            chosen = champion.unwrap_or_default().to_owned();
        }
        let scorer = self.scorer(inputs, &chosen)?;
        let decision = scorer
            .decide(&[event])
            .pop()
            .ok_or_else(|| IntakeError("the model gave no decision".into()))?;
        Ok((chosen, decision))
    }

    /// The loaded version `version` of `inputs.operator` (fetched from the store once).
    pub fn scorer(
        &mut self,
        inputs: &OperatorInputs,
        version: &str,
    ) -> Result<&mut Box<dyn VersionScorer>, IntakeError> {
        let key = (inputs.operator.to_owned(), version.to_owned());
        if !self.scorers.contains_key(&key) {
            let directory = self
                .store
                .fetch(inputs.model_dir, version, &self.cache_dir)
                .map_err(transient)?;
            let learning = inputs
                .learning
                .ok_or_else(|| IntakeError(format!("{} has no loadable model", inputs.operator)))?;
            let scorer = (learning.load)(&directory).map_err(IntakeError)?;
            self.scorers.insert(key.clone(), scorer);
        }
        self.scorers
            .get_mut(&key)
            .ok_or_else(|| IntakeError("scorer cache".into()))
    }

    fn judge_precision(&mut self, operator: &str, version: &str, threat: bool) {
        if let Some(drop) = self.precision.record(operator, version, threat) {
            self.publish_precision_drop(&drop);
        }
    }

    fn publish_precision_drop(&self, drop: &PrecisionDrop) {
        tracing::warn!(operator = %drop.operator, version = %drop.model_version, precision = drop.precision, verdicts = drop.verdicts, "live precision below the alarm level");
        if !self.config.drift.enabled {
            return;
        }
        let now = crate::scored::now_ms();
        let report = crate::drift::tap::DriftReport {
            operator: drop.operator.clone(),
            topic: self.config.feedback.topic(&drop.operator),
            model_version: drop.model_version.clone(),
            kind: "precision_drop".to_owned(),
            feature: "precision".to_owned(),
            test: "precision".to_owned(),
            ks_statistic: drop.precision,
            p_value: 0.0,
            reference_size: (self.config.feedback.precision_alarm * 1000.0).round() as i64,
            window_size: drop.verdicts as i64,
            window_start_ms: now,
            window_end_ms: now,
            drifted: true,
            detected_at_ms: now,
        };
        let key = format!("{}/precision", drop.operator);
        report.send(&self.producer, &self.config.drift.topic, &key);
    }

    /// Writes a dead letter for `record` and waits for the broker (so the verdict's offset
    /// may be committed after).
    fn refuse(
        &self,
        operator: &str,
        record: &VerdictRecord<'_>,
        refusal: Refusal,
    ) -> Result<Outcome, IntakeError> {
        let source = &record.source;
        tracing::warn!(operator, topic = %source.topic, partition = source.partition, offset = source.offset, reason = refusal.reason.code(), detail = %refusal.detail, "verdict dead-lettered");
        metrics::counter!(telemetry::DEAD_LETTERS, "reason" => refusal.reason.code(), "topic" => source.topic.clone())
            .increment(1);
        let dead_letter = DeadLetter {
            event_id: source.derived_event_id(),
            source: source.clone(),
            reason: refusal.reason,
            detail: refusal.detail,
            operator: operator.to_owned(),
            original_key: record.key.map(<[u8]>::to_vec),
            original_value: record.payload.map(<[u8]>::to_vec),
            failed_at_ms: crate::scored::now_ms(),
            original_size: record.payload.map(|value| value.len() as i64),
            value_truncated: false,
        };
        let payload = dead_letter
            .encode_within(self.config.pipeline.max_output_bytes, |letter| {
                self.encoder.encode_dead_letter(letter)
            })
            .map_err(transient)?;
        let key = source.derived_event_id();
        self.producer
            .send(
                BaseRecord::to(&self.config.output.dead_letter_topic)
                    .key(&key)
                    .payload(&payload),
            )
            .map_err(|(error, _)| transient(error))?;
        self.flush()?;
        Ok(Outcome::Refused)
    }

    /// Waits until every dead letter and drift record sent is acknowledged.
    pub fn flush(&self) -> Result<(), IntakeError> {
        self.producer
            .flush(std::time::Duration::from_secs(15))
            .map_err(transient)
    }
}
