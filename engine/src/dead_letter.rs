//! Dead-letter records (`schemas/dead_letter.avsc`): input the engine could not score, kept
//! whole with its coordinates and a reason code, so nothing is lost and it can be replayed.

use serde::{Deserialize, Serialize};

use crate::scored::SourceCoordinates;

/// Why a record was dead-lettered; the label of `threatflow_dead_letters_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// Larger than `pipeline.max_message_bytes`.
    Oversized,
    /// Not valid JSON or Avro, empty, or a tombstone.
    Undecodable,
    /// Confluent schema id not mapped in `[schema_ids]`.
    UnknownSchemaId,
    /// Decodable, but of another schema than the topic's.
    WrongSchema,
    /// A required field is absent or null.
    MissingField,
    /// NaN, infinity or an out-of-range value.
    InvalidValue,
    /// The operator refused the event.
    OperatorRejected,
}

impl DeadLetterReason {
    /// Every reason, in schema symbol order.
    pub const ALL: [DeadLetterReason; 7] = [
        Self::Oversized,
        Self::Undecodable,
        Self::UnknownSchemaId,
        Self::WrongSchema,
        Self::MissingField,
        Self::InvalidValue,
        Self::OperatorRejected,
    ];

    /// The reason code as written in records, metrics and logs.
    pub fn code(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::Undecodable => "undecodable",
            Self::UnknownSchemaId => "unknown_schema_id",
            Self::WrongSchema => "wrong_schema",
            Self::MissingField => "missing_field",
            Self::InvalidValue => "invalid_value",
            Self::OperatorRejected => "operator_rejected",
        }
    }
}

/// One dead-letter record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `<topic>-<partition>-<offset>` of the input.
    pub event_id: String,
    /// Coordinates of the input.
    pub source: SourceCoordinates,
    /// Reason code.
    pub reason: DeadLetterReason,
    /// Decoder or operator message.
    pub detail: String,
    /// Operator the topic is bound to.
    pub operator: String,
    /// Input key, unchanged (base64 in JSON output).
    #[serde(with = "base64_bytes")]
    pub original_key: Option<Vec<u8>>,
    /// Input value, unchanged (base64 in JSON output).
    #[serde(with = "base64_bytes")]
    pub original_value: Option<Vec<u8>>,
    /// When it was rejected, epoch ms.
    pub failed_at_ms: i64,
}

/// Optional bytes as standard base64 in human-readable formats (JSON), raw otherwise.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            None => serializer.serialize_none(),
            Some(bytes) if serializer.is_human_readable() => {
                serializer.serialize_some(&base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Some(bytes) => serializer.serialize_some(&serde_bytes::Bytes::new(bytes)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        if deserializer.is_human_readable() {
            let text: Option<String> = Option::deserialize(deserializer)?;
            text.map(|text| {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        } else {
            let bytes: Option<serde_bytes::ByteBuf> = Option::deserialize(deserializer)?;
            Ok(bytes.map(serde_bytes::ByteBuf::into_vec))
        }
    }
}
