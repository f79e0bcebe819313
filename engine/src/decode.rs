//! Decoding of input records: JSON, raw Avro and Confluent-framed Avro into typed events.
//!
//! Guarantee: [`Decoder::decode`] never panics on any input and classifies every failure into
//! exactly one [`DeadLetterReason`], checked in this order: oversized, undecodable (empty,
//! not JSON, not Avro, trailing bytes), unknown_schema_id, wrong_schema (a Confluent id of
//! another schema, or a JSON shape of another type), missing_field, invalid_value (NaN,
//! infinity, out of range — in JSON also `NaN`/`Infinity` literals and numbers beyond f64).
//! A JSON `null` for a required field is `missing_field`. Failure details name the field (its
//! path) and what the schema expected, never a value from the input
//! ([`describe_without_values`]); the pipeline logs the reason code, never the detail or
//! payload. JSON nesting is bounded by serde_json's recursion limit (128), so deep nesting is
//! `undecodable`, not a stack overflow.
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

/// Floor of apache-avro's per-allocation limit (see [`Decoder::new`]).
const MIN_AVRO_ALLOCATION_BYTES: usize = 1024 * 1024;

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
        // A datum's declared string/bytes length can never legitimately exceed the record:
        // cap what apache-avro allocates for one (its default is 512 MiB, which a 10-byte
        // record claiming a huge string could make every worker allocate). Process-wide and
        // set once: the first decoder's limit holds (every binding shares max_message_bytes).
        apache_avro::util::max_allocation_bytes(max_message_bytes.max(MIN_AVRO_ALLOCATION_BYTES));
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
        // A raw Avro datum may also start with byte 0 (a null first union field, an empty
        // first string), so an unmapped id is only blamed once raw decoding has failed too,
        // and only where Confluent framing is in use at all (`[schema_ids]` maps some id):
        // otherwise raw Avro of another schema would be reported as an unknown schema id.
        decode_avro(self.schema, payload).map_err(|failure| {
            if looks_confluent && !self.schema_ids.is_empty() {
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
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        classify_json_error(payload, &schema_field_path(error.path()), error.inner())
    })?;
    // Trailing bytes after the object, as `serde_json::from_slice` checks them.
    deserializer
        .end()
        .map_err(|error| classify_json_error(payload, "", &error))?;
    Ok(value)
}

/// The path of a failure for a detail: field names the bundled schemas define are kept; any
/// other key (it comes from the input, and could be anything) is shown as `?`.
fn schema_field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let known = schema_field_names();
    let mut described = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => described.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !described.is_empty() {
                    described.push('.');
                }
                described.push_str(if known.contains(key.as_str()) {
                    key
                } else {
                    "?"
                });
            }
            Segment::Unknown => described.push_str(".?"),
        }
    }
    described
}

/// Every field name of every bundled input schema (nested records included).
fn schema_field_names() -> &'static std::collections::HashSet<String> {
    static NAMES: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        fn collect(value: &serde_json::Value, names: &mut std::collections::HashSet<String>) {
            match value {
                serde_json::Value::Object(object) => {
                    if let Some(serde_json::Value::Array(fields)) = object.get("fields") {
                        for field in fields {
                            if let Some(name) = field.get("name").and_then(|name| name.as_str()) {
                                names.insert(name.to_owned());
                            }
                        }
                    }
                    object.values().for_each(|nested| collect(nested, names));
                }
                serde_json::Value::Array(items) => {
                    items.iter().for_each(|item| collect(item, names))
                }
                _ => {}
            }
        }
        let mut names = std::collections::HashSet::new();
        for kind in SchemaKind::ALL {
            if let Ok(schema) = serde_json::to_value(kind.avro_schema()) {
                collect(&schema, &mut names);
            }
        }
        names
    })
}

/// Maps a JSON failure to its reason code and a detail that names the field and what was
/// expected, never a value from the input (details end up in dead letters that are read by
/// people who may not see the payload).
fn classify_json_error(payload: &[u8], field: &str, inner: &serde_json::Error) -> DecodeFailure {
    let mut failure = classify_json_error_uncapped(payload, field, inner);
    if failure.detail.chars().count() > MAX_DETAIL_CHARS {
        failure.detail = failure.detail.chars().take(MAX_DETAIL_CHARS).collect();
        failure.detail.push('…');
    }
    failure
}

fn classify_json_error_uncapped(
    payload: &[u8],
    field: &str,
    inner: &serde_json::Error,
) -> DecodeFailure {
    use serde_json::error::Category;
    let message = inner.to_string();
    let field_prefix = if field.is_empty() {
        String::new()
    } else {
        format!("field {field}: ")
    };
    match inner.classify() {
        Category::Data if message.starts_with("missing field") => DecodeFailure::new(
            DeadLetterReason::MissingField,
            // serde names the schema's field here (e.g. "missing field `text`"), not input.
            format!("{field_prefix}{}", strip_position(&message)),
        ),
        Category::Data if message.starts_with("invalid type: null") => DecodeFailure::new(
            DeadLetterReason::MissingField,
            format!(
                "{field_prefix}required value is null ({})",
                expected_part(&message)
            ),
        ),
        Category::Data => DecodeFailure::new(
            DeadLetterReason::WrongSchema,
            format!("{field_prefix}{}", describe_without_values(&message)),
        ),
        Category::Syntax if message.starts_with("number out of range") => DecodeFailure::new(
            DeadLetterReason::InvalidValue,
            format!("{field_prefix}number out of range (not a finite double)"),
        ),
        Category::Syntax if non_finite_literal_at(payload, inner.line(), inner.column()) => {
            DecodeFailure::new(
                DeadLetterReason::InvalidValue,
                format!("{field_prefix}NaN and Infinity are not valid JSON numbers"),
            )
        }
        Category::Syntax | Category::Eof | Category::Io => DecodeFailure::new(
            DeadLetterReason::Undecodable,
            format!("not valid JSON: {}", describe_without_values(&message)),
        ),
    }
}

/// Whether the JSON syntax error at (`line`, `column`) (1-based, as serde_json counts them)
/// sits on a `NaN` / `Infinity` literal, which some producers (Python's `json.dumps`) write.
fn non_finite_literal_at(payload: &[u8], line: usize, column: usize) -> bool {
    let line_start = if line <= 1 {
        Some(0)
    } else {
        payload
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(line - 2)
            .map(|(index, _)| index + 1)
    };
    let Some(line_start) = line_start else {
        return false;
    };
    let position = line_start + column.saturating_sub(1);
    let first = position.saturating_sub(2);
    (first..=position.min(payload.len())).any(|start| {
        let rest = &payload[start..];
        [b"NaN".as_slice(), b"Infinity", b"-Infinity", b"+Infinity"]
            .iter()
            .any(|literal| rest.starts_with(literal))
    })
}

/// serde's "…, expected X" part (the schema's words), or the whole message without values.
fn expected_part(message: &str) -> String {
    match message.find("expected ") {
        Some(index) => strip_position(&message[index..]),
        None => describe_without_values(message),
    }
}

/// Drops serde_json's " at line L column C" suffix (positions are in the coordinates anyway).
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Longest detail kept from a decoder's message.
const MAX_DETAIL_CHARS: usize = 200;

/// A decoder message with every quoted or bracketed value removed: serde and Avro quote the
/// offending value (`invalid type: string "password=…", expected i64`), which must not reach
/// a dead letter's detail or a log line. What follows "expected" comes from the schema and is
/// kept.
pub fn describe_without_values(message: &str) -> String {
    let message = strip_position(message);
    let (observed, expected) = match message.find(", expected ") {
        Some(index) => message.split_at(index),
        None => (message.as_str(), ""),
    };
    let mut cleaned = String::with_capacity(observed.len());
    let mut closing: Option<char> = None;
    for character in observed.chars() {
        match closing {
            Some(close) if character == close => closing = None,
            Some(_) => {}
            None => match character {
                '"' => closing = Some('"'),
                '`' => closing = Some('`'),
                '\'' => closing = Some('\''),
                '(' => closing = Some(')'),
                '[' => closing = Some(']'),
                '{' => closing = Some('}'),
                _ => cleaned.push(character),
            },
        }
    }
    let mut described: String = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    described = described.replace(" ,", ",").replace(" :", ":");
    described.push_str(expected);
    if described.chars().count() > MAX_DETAIL_CHARS {
        described = described.chars().take(MAX_DETAIL_CHARS).collect();
        described.push('…');
    }
    described
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

/// Decodes a raw Avro datum of `kind`'s bundled schema (no validation; see [`Decoder::decode`]).
pub fn decode_avro(kind: SchemaKind, datum: &[u8]) -> Result<InputEvent, DecodeFailure> {
    let reader = avro_reader(kind)?;
    let mut cursor = datum;
    let undecodable = |error: apache_avro::Error| {
        DecodeFailure::new(
            DeadLetterReason::Undecodable,
            format!(
                "not a valid Avro {} datum: {}",
                kind.name(),
                describe_without_values(&error.to_string())
            ),
        )
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
