//! Decoding of input records: JSON, raw Avro and Confluent-framed Avro into typed events.
//!
//! Guarantee: [`Decoder::decode`] never panics on any input and classifies every failure into
//! exactly one [`DeadLetterReason`], checked in this order: oversized, undecodable (empty,
//! not JSON, not Avro, trailing bytes), unknown_schema_id, wrong_schema (a Confluent id of
//! another schema, or a JSON shape of another type), missing_field, invalid_value (NaN,
//! infinity, out of range). Failure details may quote a field name but are meant for the
//! dead-letter record only; the pipeline logs the reason code, never the detail or payload.
//!
//! Schema evolution is not handled yet: a Confluent id maps to one bundled schema, which is
//! used as both writer and reader schema.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use serde::de::DeserializeOwned;

use crate::config::InputFormat;
use crate::dead_letter::DeadLetterReason;
use crate::events::{
    AddressEvent, AlertEvent, EmailEvent, FlowEvent, InputEvent, PromptEvent, SchemaKind,
};

/// First byte of the Confluent wire format.
pub const CONFLUENT_MAGIC: u8 = 0;
/// Magic byte plus the 4-byte schema id.
pub const CONFLUENT_HEADER_LEN: usize = 5;

/// Why a record could not be decoded, for its dead-letter record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure {
    /// Reason code.
    pub reason: DeadLetterReason,
    /// Human-readable detail for the dead-letter record (not for logs).
    pub detail: String,
}

impl DecodeFailure {
    fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Decoder for one input binding: its schema, format and the Confluent id map.
#[derive(Debug, Clone)]
pub struct Decoder {
    schema: SchemaKind,
    format: InputFormat,
    max_message_bytes: usize,
    schema_ids: HashMap<u32, SchemaKind>,
}

impl Decoder {
    /// A decoder for records of `schema` in `format`; `schema_ids` maps Confluent ids.
    pub fn new(
        schema: SchemaKind,
        format: InputFormat,
        max_message_bytes: usize,
        schema_ids: HashMap<u32, SchemaKind>,
    ) -> Self {
        Self {
            schema,
            format,
            max_message_bytes,
            schema_ids,
        }
    }

    /// Decodes and validates one record value.
    pub fn decode(&self, payload: Option<&[u8]>) -> Result<InputEvent, DecodeFailure> {
        let Some(payload) = payload else {
            return Err(DecodeFailure::new(
                DeadLetterReason::Undecodable,
                "record has no value (tombstone)",
            ));
        };
        if payload.len() > self.max_message_bytes {
            return Err(DecodeFailure::new(
                DeadLetterReason::Oversized,
                format!(
                    "value of {} bytes exceeds the limit of {} bytes",
                    payload.len(),
                    self.max_message_bytes
                ),
            ));
        }
        if payload.is_empty() {
            return Err(DecodeFailure::new(
                DeadLetterReason::Undecodable,
                "record value is empty",
            ));
        }
        let event = match self.format {
            InputFormat::Json => self.decode_json(payload)?,
            InputFormat::Avro => decode_avro(self.schema, payload)?,
            InputFormat::Confluent => self.decode_confluent(payload)?,
            InputFormat::Auto => self.decode_auto(payload)?,
        };
        event.validate().map_err(|error| {
            DecodeFailure::new(DeadLetterReason::InvalidValue, error.to_string())
        })?;
        Ok(event)
    }

    fn decode_auto(&self, payload: &[u8]) -> Result<InputEvent, DecodeFailure> {
        let first_non_space = payload.iter().find(|byte| !byte.is_ascii_whitespace());
        if first_non_space == Some(&b'{') {
            return self.decode_json(payload);
        }
        let looks_confluent =
            payload[0] == CONFLUENT_MAGIC && payload.len() >= CONFLUENT_HEADER_LEN;
        if looks_confluent && self.schema_ids.contains_key(&confluent_schema_id(payload)) {
            return self.decode_confluent(payload);
        }
        // A raw Avro datum may also start with byte 0 (a null first union field), so an
        // unmapped id is only blamed once raw decoding has failed too.
        decode_avro(self.schema, payload).map_err(|failure| {
            if looks_confluent {
                DecodeFailure::new(
                    DeadLetterReason::UnknownSchemaId,
                    format!(
                        "neither raw Avro nor a mapped Confluent schema id ({} is not in [schema_ids])",
                        confluent_schema_id(payload)
                    ),
                )
            } else {
                failure
            }
        })
    }

    fn decode_confluent(&self, payload: &[u8]) -> Result<InputEvent, DecodeFailure> {
        if payload.len() < CONFLUENT_HEADER_LEN || payload[0] != CONFLUENT_MAGIC {
            return Err(DecodeFailure::new(
                DeadLetterReason::Undecodable,
                "not in the Confluent wire format (magic byte 0 + 4-byte schema id)",
            ));
        }
        let id = confluent_schema_id(payload);
        let Some(&kind) = self.schema_ids.get(&id) else {
            return Err(DecodeFailure::new(
                DeadLetterReason::UnknownSchemaId,
                format!("schema id {id} is not mapped in [schema_ids]"),
            ));
        };
        if kind != self.schema {
            return Err(DecodeFailure::new(
                DeadLetterReason::WrongSchema,
                format!(
                    "schema id {id} is a {} schema, the topic carries {} records",
                    kind.name(),
                    self.schema.name()
                ),
            ));
        }
        decode_avro(self.schema, &payload[CONFLUENT_HEADER_LEN..])
    }

    fn decode_json(&self, payload: &[u8]) -> Result<InputEvent, DecodeFailure> {
        match self.schema {
            SchemaKind::Prompt => json_as::<PromptEvent>(payload).map(InputEvent::Prompt),
            SchemaKind::Flow => {
                json_as::<FlowEvent>(payload).map(|event| InputEvent::Flow(Box::new(event)))
            }
            SchemaKind::Email => {
                json_as::<EmailEvent>(payload).map(|event| InputEvent::Email(Box::new(event)))
            }
            SchemaKind::Alert => {
                json_as::<AlertEvent>(payload).map(|event| InputEvent::Alert(Box::new(event)))
            }
            SchemaKind::Address => json_as::<AddressEvent>(payload).map(InputEvent::Address),
        }
    }
}

/// Reads the big-endian schema id of a Confluent-framed value (caller checked the length).
fn confluent_schema_id(payload: &[u8]) -> u32 {
    u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]])
}

fn json_as<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeFailure> {
    serde_json::from_slice(payload).map_err(|error| {
        use serde_json::error::Category;
        let reason = match error.classify() {
            Category::Data if error.to_string().starts_with("missing field") => {
                DeadLetterReason::MissingField
            }
            Category::Data => DeadLetterReason::WrongSchema,
            Category::Syntax | Category::Eof | Category::Io => DeadLetterReason::Undecodable,
        };
        DecodeFailure::new(reason, error.to_string())
    })
}

/// A datum reader per input schema, built once (resolving a schema's names is not free).
fn avro_reader(kind: SchemaKind) -> Result<&'static GenericDatumReader<'static>, DecodeFailure> {
    static READERS: OnceLock<Vec<(SchemaKind, GenericDatumReader<'static>)>> = OnceLock::new();
    let readers = READERS.get_or_init(|| {
        SchemaKind::ALL
            .iter()
            .filter_map(|&kind| {
                GenericDatumReader::builder(kind.avro_schema())
                    .build()
                    .ok()
                    .map(|reader| (kind, reader))
            })
            .collect()
    });
    readers
        .iter()
        .find(|(reader_kind, _)| *reader_kind == kind)
        .map(|(_, reader)| reader)
        .ok_or_else(|| {
            DecodeFailure::new(
                DeadLetterReason::Undecodable,
                format!("no Avro reader for the {} schema", kind.name()),
            )
        })
}

fn decode_avro(kind: SchemaKind, datum: &[u8]) -> Result<InputEvent, DecodeFailure> {
    let reader = avro_reader(kind)?;
    let mut cursor = datum;
    let undecodable = |error: apache_avro::Error| {
        DecodeFailure::new(DeadLetterReason::Undecodable, error.to_string())
    };
    let event = match kind {
        SchemaKind::Prompt => {
            InputEvent::Prompt(reader.read_deser(&mut cursor).map_err(undecodable)?)
        }
        SchemaKind::Flow => InputEvent::Flow(Box::new(
            reader.read_deser(&mut cursor).map_err(undecodable)?,
        )),
        SchemaKind::Email => InputEvent::Email(Box::new(
            reader.read_deser(&mut cursor).map_err(undecodable)?,
        )),
        SchemaKind::Alert => InputEvent::Alert(Box::new(
            reader.read_deser(&mut cursor).map_err(undecodable)?,
        )),
        SchemaKind::Address => {
            InputEvent::Address(reader.read_deser(&mut cursor).map_err(undecodable)?)
        }
    };
    if !cursor.is_empty() {
        // A datum of another schema can decode as a prefix of this one; leftover bytes
        // betray it.
        return Err(DecodeFailure::new(
            DeadLetterReason::WrongSchema,
            format!(
                "{} bytes left after decoding a {} record",
                cursor.len(),
                kind.name()
            ),
        ));
    }
    Ok(event)
}

/// Encodes an input event as a raw Avro datum of its bundled schema (used by generators,
/// tests and the demo to produce Avro input).
pub fn encode_input_avro(event: &InputEvent) -> Result<Vec<u8>, apache_avro::Error> {
    let schema = event.kind().avro_schema();
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema).build()?;
    match event {
        InputEvent::Prompt(prompt) => writer.write_ser_to_vec(prompt),
        InputEvent::Flow(flow) => writer.write_ser_to_vec(flow.as_ref()),
        InputEvent::Email(email) => writer.write_ser_to_vec(email.as_ref()),
        InputEvent::Alert(alert) => writer.write_ser_to_vec(alert.as_ref()),
        InputEvent::Address(address) => writer.write_ser_to_vec(address),
    }
}

/// Prefixes an Avro datum with the Confluent header for `schema_id`.
pub fn confluent_frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(CONFLUENT_HEADER_LEN + datum.len());
    framed.push(CONFLUENT_MAGIC);
    framed.extend_from_slice(&schema_id.to_be_bytes());
    framed.extend_from_slice(datum);
    framed
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
