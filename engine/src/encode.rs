//! Encoding of output records (scored events and dead letters) in the configured format.
//!
//! Guarantee: JSON output is one object per record with the field names of the Avro schemas;
//! Avro output is a datum of the bundled `scored` / `dead_letter` schema, optionally in the
//! Confluent frame with the configured id. Writers are built once per encoder.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::config::{OutputConfig, OutputFormat};
use crate::dead_letter::DeadLetter;
use crate::decode::confluent_frame;
use crate::events::bundled_schemas;
use crate::scored::{Scored, SourceCoordinates};

/// Errors of encoding an output record. They indicate a bug (an output that does not fit its
/// own schema), so the pipeline dead-letters the input with the message rather than losing it.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// JSON serialization failed.
    #[error("json encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// Avro serialization failed.
    #[error("avro encoding failed: {0}")]
    Avro(#[from] apache_avro::Error),
}

/// Encodes output records in one format.
pub struct OutputEncoder {
    format: OutputFormat,
    scored_writer: GenericDatumWriter<'static>,
    dead_letter_writer: GenericDatumWriter<'static>,
    scored_id: u32,
    dead_letter_id: u32,
}

impl OutputEncoder {
    /// Builds the encoder for `config` (validated: Confluent ids present when needed).
    pub fn new(config: &OutputConfig) -> Result<Self, EncodeError> {
        let schemas = bundled_schemas();
        Ok(Self {
            format: config.format,
            scored_writer: GenericDatumWriter::builder(&schemas.scored).build()?,
            dead_letter_writer: GenericDatumWriter::builder(&schemas.dead_letter).build()?,
            scored_id: config.confluent_ids.get("scored").copied().unwrap_or(0),
            dead_letter_id: config
                .confluent_ids
                .get("dead_letter")
                .copied()
                .unwrap_or(0),
        })
    }

    /// Whether the binding's own output is an OCSF finding ([`crate::ocsf`]).
    pub fn is_ocsf(&self) -> bool {
        self.format == OutputFormat::Ocsf
    }

    /// Encodes a scored event (JSON in OCSF mode: for extra records).
    pub fn encode_scored(&self, scored: &Scored) -> Result<Vec<u8>, EncodeError> {
        match self.format {
            OutputFormat::Json | OutputFormat::Ocsf => Ok(serde_json::to_vec(scored)?),
            OutputFormat::Avro => Ok(self.scored_writer.write_ser_to_vec(scored)?),
            OutputFormat::Confluent => Ok(confluent_frame(
                self.scored_id,
                &self.scored_writer.write_ser_to_vec(scored)?,
            )),
        }
    }

    /// Encodes a dead-letter record.
    pub fn encode_dead_letter(&self, dead_letter: &DeadLetter) -> Result<Vec<u8>, EncodeError> {
        match self.format {
            OutputFormat::Json | OutputFormat::Ocsf => Ok(serde_json::to_vec(dead_letter)?),
            OutputFormat::Avro => Ok(self
                .dead_letter_writer
                .write_value_to_vec(dead_letter_value(dead_letter))?),
            OutputFormat::Confluent => Ok(confluent_frame(
                self.dead_letter_id,
                &self
                    .dead_letter_writer
                    .write_value_to_vec(dead_letter_value(dead_letter))?,
            )),
        }
    }
}

/// Optional value as an Avro `["null", T]` union.
fn nullable(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(value) => Value::Union(1, Box::new(value)),
    }
}

fn source_value(source: &SourceCoordinates) -> Value {
    Value::Record(vec![
        ("topic".into(), Value::String(source.topic.clone())),
        ("partition".into(), Value::Int(source.partition)),
        ("offset".into(), Value::Long(source.offset)),
        (
            "timestamp_ms".into(),
            nullable(source.timestamp_ms.map(Value::Long)),
        ),
    ])
}

/// The dead letter as an Avro value. Written by hand because its bytes fields must be Avro
/// bytes while serde renders them as base64 for JSON.
fn dead_letter_value(dead_letter: &DeadLetter) -> Value {
    let reason_index = crate::dead_letter::DeadLetterReason::ALL
        .iter()
        .position(|reason| *reason == dead_letter.reason)
        .unwrap_or(0);
    let bytes = |bytes: &Option<Vec<u8>>| nullable(bytes.clone().map(Value::Bytes));
    Value::Record(vec![
        (
            "event_id".into(),
            Value::String(dead_letter.event_id.clone()),
        ),
        ("source".into(), source_value(&dead_letter.source)),
        (
            "reason".into(),
            Value::Enum(
                u32::try_from(reason_index).unwrap_or(0),
                dead_letter.reason.code().to_owned(),
            ),
        ),
        ("detail".into(), Value::String(dead_letter.detail.clone())),
        (
            "operator".into(),
            Value::String(dead_letter.operator.clone()),
        ),
        ("original_key".into(), bytes(&dead_letter.original_key)),
        ("original_value".into(), bytes(&dead_letter.original_value)),
        ("failed_at_ms".into(), Value::Long(dead_letter.failed_at_ms)),
        (
            "original_size".into(),
            nullable(dead_letter.original_size.map(Value::Long)),
        ),
        (
            "value_truncated".into(),
            Value::Boolean(dead_letter.value_truncated),
        ),
    ])
}

/// Decodes an Avro dead-letter datum back into its fields (for tests and replay tools).
pub fn decode_dead_letter_avro(datum: &[u8]) -> Result<HashMap<String, Value>, apache_avro::Error> {
    let reader =
        apache_avro::reader::datum::GenericDatumReader::builder(&bundled_schemas().dead_letter)
            .build()?;
    let mut cursor = datum;
    match reader.read_value(&mut cursor)? {
        Value::Record(fields) => Ok(fields.into_iter().collect()),
        _ => Ok(HashMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterReason;
    use std::collections::BTreeMap;

    fn scored() -> Scored {
        Scored {
            event_id: "flows-0-7".into(),
            source: SourceCoordinates {
                topic: "flows".into(),
                partition: 0,
                offset: 7,
                timestamp_ms: Some(1_700_000_000_000),
            },
            operator: "flow".into(),
            model_version: "v1".into(),
            scores: BTreeMap::from([("severity".into(), 7.5)]),
            labels: BTreeMap::from([("risk_level".into(), "HIGH".into())]),
            explanation: vec![crate::scored::Contribution {
                name: "serror_rate".into(),
                value: Some(1.0),
                contribution: 2.5,
                detail: None,
            }],
            thresholds_crossed: vec!["soc_tier1".into()],
            event_time_ms: None,
            scored_at_ms: 1_700_000_000_100,
        }
    }

    fn dead_letter() -> DeadLetter {
        DeadLetter {
            event_id: "flows-1-3".into(),
            source: SourceCoordinates {
                topic: "flows".into(),
                partition: 1,
                offset: 3,
                timestamp_ms: None,
            },
            reason: DeadLetterReason::InvalidValue,
            detail: "field duration is not a finite number".into(),
            operator: "flow".into(),
            original_key: None,
            original_value: Some(vec![0, 159, 255, 1]),
            original_size: Some(4),
            value_truncated: false,
            failed_at_ms: 5,
        }
    }

    fn encoder(format: OutputFormat) -> OutputEncoder {
        OutputEncoder::new(&OutputConfig {
            format,
            dead_letter_topic: "dlq".into(),
            confluent_ids: BTreeMap::from([("scored".into(), 42), ("dead_letter".into(), 43)]),
            pseudonym_key: String::new(),
        })
        .unwrap()
    }

    #[test]
    fn scored_round_trips_through_json_and_avro() {
        let original = scored();
        let json = encoder(OutputFormat::Json)
            .encode_scored(&original)
            .unwrap();
        assert_eq!(serde_json::from_slice::<Scored>(&json).unwrap(), original);

        let avro = encoder(OutputFormat::Avro)
            .encode_scored(&original)
            .unwrap();
        let reader =
            apache_avro::reader::datum::GenericDatumReader::builder(&bundled_schemas().scored)
                .build()
                .unwrap();
        let decoded: Scored = reader.read_deser(&mut avro.as_slice()).unwrap();
        assert_eq!(decoded, original);

        let framed = encoder(OutputFormat::Confluent)
            .encode_scored(&original)
            .unwrap();
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 42]);
        assert_eq!(&framed[5..], avro.as_slice());
    }

    #[test]
    fn dead_letter_keeps_original_bytes_in_both_formats() {
        let original = dead_letter();
        let json = encoder(OutputFormat::Json)
            .encode_dead_letter(&original)
            .unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"reason\":\"invalid_value\""), "{text}");
        assert_eq!(
            serde_json::from_slice::<DeadLetter>(&json).unwrap(),
            original
        );

        let avro = encoder(OutputFormat::Avro)
            .encode_dead_letter(&original)
            .unwrap();
        let fields = decode_dead_letter_avro(&avro).unwrap();
        assert_eq!(
            fields["original_value"],
            Value::Union(1, Box::new(Value::Bytes(vec![0, 159, 255, 1])))
        );
        assert_eq!(fields["reason"], Value::Enum(5, "invalid_value".into()));
    }
}
