//! Analyst verdicts (`schemas/feedback.avsc`): decoding, validation, and what a verdict says
//! about the event (its label) and about the engine's decision (for live precision).
//!
//! A verdict is accepted as JSON or as a raw Avro datum of the bundled schema, like every
//! input. Anything else — undecodable, a field missing, another operator than the topic's, no
//! way to locate the scored event — is refused with a dead-letter reason and a detail that
//! never quotes the payload.

use serde::{Deserialize, Serialize};

use crate::dead_letter::DeadLetterReason;
use crate::decode::describe_without_values;

/// The analyst's judgement of the engine's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The engine alerted and it was a threat.
    TruePositive,
    /// The engine alerted and it was benign.
    FalsePositive,
    /// The engine stayed quiet and it was benign.
    TrueNegative,
    /// The engine stayed quiet and it was a threat.
    FalseNegative,
    /// A threat, whatever the engine decided.
    Suspicious,
    /// Benign, whatever the engine decided.
    Benign,
}

impl Verdict {
    /// Whether the event is a threat (the training label).
    pub fn is_threat(self) -> bool {
        matches!(
            self,
            Self::TruePositive | Self::FalseNegative | Self::Suspicious
        )
    }

    /// What the engine decided, when the verdict says (`None` for `suspicious` / `benign`).
    pub fn engine_alerted(self) -> Option<bool> {
        match self {
            Self::TruePositive | Self::FalsePositive => Some(true),
            Self::TrueNegative | Self::FalseNegative => Some(false),
            Self::Suspicious | Self::Benign => None,
        }
    }
}

/// Where the scored event's input was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackSource {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
}

/// One verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The scored event's id.
    pub event_id: String,
    /// The operator that scored it.
    pub operator: String,
    /// The model version shown to the analyst.
    #[serde(default)]
    pub model_version: Option<String>,
    /// The judgement.
    pub verdict: Verdict,
    /// A corrected class (attack name or category, disposition).
    #[serde(default)]
    pub label: Option<String>,
    /// Who.
    #[serde(default)]
    pub analyst: Option<String>,
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
    /// When, epoch ms.
    pub timestamp_ms: i64,
    /// The scored event's input coordinates.
    #[serde(default)]
    pub source: Option<FeedbackSource>,
    /// For alerts: the risk the alert deserved.
    #[serde(default)]
    pub corrected_risk: Option<f64>,
}

/// Why a verdict was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Dead-letter reason code.
    pub reason: DeadLetterReason,
    /// What is wrong (never payload text).
    pub detail: String,
}

impl Refusal {
    /// A refusal for `reason` with `detail`.
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl Feedback {
    /// Decodes a verdict read from the feedback topic of `operator`.
    pub fn decode(payload: Option<&[u8]>, operator: &str) -> Result<Self, Refusal> {
        let Some(payload) = payload.filter(|bytes| !bytes.is_empty()) else {
            return Err(Refusal::new(
                DeadLetterReason::Undecodable,
                "verdict has no value",
            ));
        };
        let looks_json = payload
            .iter()
            .find(|byte| !byte.is_ascii_whitespace())
            .is_some_and(|&byte| byte == b'{');
        let feedback: Feedback = if looks_json {
            let mut deserializer = serde_json::Deserializer::from_slice(payload);
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let reason = if error.inner().to_string().starts_with("missing field") {
                    DeadLetterReason::MissingField
                } else {
                    DeadLetterReason::Undecodable
                };
                Refusal::new(
                    reason,
                    format!(
                        "not a valid JSON verdict at {}: {}",
                        error.path(),
                        describe_without_values(&error.inner().to_string())
                    ),
                )
            })?
        } else {
            decode_avro(payload)?
        };
        feedback.validate(operator)?;
        Ok(feedback)
    }

    fn validate(&self, operator: &str) -> Result<(), Refusal> {
        if self.event_id.trim().is_empty() {
            return Err(Refusal::new(
                DeadLetterReason::MissingField,
                "event_id is empty",
            ));
        }
        if self.operator != operator {
            return Err(Refusal::new(
                DeadLetterReason::InvalidValue,
                format!("verdict names another operator than this topic's ({operator})"),
            ));
        }
        if let Some(risk) = self.corrected_risk {
            if !(0.0..=100.0).contains(&risk) {
                return Err(Refusal::new(
                    DeadLetterReason::InvalidValue,
                    "corrected_risk must be within 0..=100",
                ));
            }
        }
        if let Some(source) = &self.source {
            if source.partition < 0 || source.offset < 0 {
                return Err(Refusal::new(
                    DeadLetterReason::InvalidValue,
                    "source partition and offset must not be negative",
                ));
            }
        }
        Ok(())
    }

    /// Where the scored event's input is: the verdict's `source`, else what a derived event
    /// id (`<topic>-<partition>-<offset>`) names when its topic is one of `topics`.
    pub fn coordinates(&self, topics: &[String]) -> Option<FeedbackSource> {
        if let Some(source) = &self.source {
            return Some(source.clone());
        }
        let (rest, offset) = self.event_id.rsplit_once('-')?;
        let (topic, partition) = rest.rsplit_once('-')?;
        let source = FeedbackSource {
            topic: topic.to_owned(),
            partition: partition.parse().ok()?,
            offset: offset.parse().ok()?,
        };
        (topics.contains(&source.topic) && source.partition >= 0 && source.offset >= 0)
            .then_some(source)
    }
}

fn decode_avro(payload: &[u8]) -> Result<Feedback, Refusal> {
    let schema = &crate::events::bundled_schemas().feedback;
    let mut cursor = payload;
    let undecodable = |detail: String| {
        Refusal::new(
            DeadLetterReason::Undecodable,
            format!(
                "not a JSON verdict nor a valid Avro feedback datum: {}",
                describe_without_values(&detail)
            ),
        )
    };
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .map_err(|error| undecodable(error.to_string()))?;
    let feedback: Feedback = reader
        .read_deser(&mut cursor)
        .map_err(|error| undecodable(error.to_string()))?;
    if !cursor.is_empty() {
        return Err(undecodable(format!("{} bytes left over", cursor.len())));
    }
    Ok(feedback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_json() -> serde_json::Value {
        serde_json::json!({
            "event_id": "flows-2-17", "operator": "flow", "verdict": "false_negative",
            "timestamp_ms": 1_700_000_000_000_i64, "label": "neptune",
        })
    }

    #[test]
    fn json_and_avro_verdicts_decode_to_the_same_record() {
        let json = serde_json::to_vec(&verdict_json()).unwrap();
        let from_json = Feedback::decode(Some(&json), "flow").unwrap();
        assert!(from_json.verdict.is_threat());
        assert_eq!(from_json.verdict.engine_alerted(), Some(false));
        let schema = &crate::events::bundled_schemas().feedback;
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .unwrap();
        let datum = writer.write_ser_to_vec(&from_json).unwrap();
        assert_eq!(Feedback::decode(Some(&datum), "flow").unwrap(), from_json);
    }

    #[test]
    fn bad_verdicts_are_refused_with_a_reason_and_no_payload_text() {
        let refuse = |bytes: &[u8]| Feedback::decode(Some(bytes), "flow").unwrap_err();
        assert_eq!(refuse(b"{not json").reason, DeadLetterReason::Undecodable);
        let mut missing = verdict_json();
        missing.as_object_mut().unwrap().remove("verdict");
        let refusal = refuse(&serde_json::to_vec(&missing).unwrap());
        assert_eq!(refusal.reason, DeadLetterReason::MissingField);
        let mut wrong = verdict_json();
        wrong["operator"] = "alert".into();
        let refusal = refuse(&serde_json::to_vec(&wrong).unwrap());
        assert_eq!(refusal.reason, DeadLetterReason::InvalidValue);
        let mut secret = verdict_json();
        secret["verdict"] = "hunter2-password".into();
        let refusal = refuse(&serde_json::to_vec(&secret).unwrap());
        assert!(!refusal.detail.contains("hunter2"), "{}", refusal.detail);
        assert_eq!(
            Feedback::decode(None, "flow").unwrap_err().reason,
            DeadLetterReason::Undecodable
        );
    }

    #[test]
    fn coordinates_come_from_source_or_a_derived_event_id_of_a_bound_topic() {
        let topics = vec!["flows".to_owned(), "net-flows".to_owned()];
        let feedback: Feedback = serde_json::from_value(verdict_json()).unwrap();
        let found = feedback.coordinates(&topics).unwrap();
        assert_eq!(
            (found.topic.as_str(), found.partition, found.offset),
            ("flows", 2, 17)
        );
        let mut other = feedback.clone();
        other.event_id = "producer-id-7".into();
        assert_eq!(other.coordinates(&topics), None);
        other.source = Some(FeedbackSource {
            topic: "net-flows".into(),
            partition: 0,
            offset: 9,
        });
        assert_eq!(other.coordinates(&topics).unwrap().offset, 9);
    }
}
