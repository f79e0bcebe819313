//! Dead-letter records (`schemas/dead_letter.avsc`): input the engine could not score, with its
//! coordinates and a reason code, so nothing is lost and it can be replayed.
//!
//! Guarantee: a dead letter always fits the output limit ([`DeadLetter::encode_within`] cuts
//! the carried value and flags it), so a bad input can never block its partition behind a
//! record the producer or broker refuses.

use serde::{Deserialize, Serialize};

use crate::scored::SourceCoordinates;

/// Why a record was dead-lettered; the label of `threatflow_dead_letters_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The input is larger than `pipeline.max_message_bytes`, or an output it produced is
    /// larger than `pipeline.max_output_bytes` or was refused by the broker as too large.
    Oversized,
    /// Not valid JSON or Avro (invalid UTF-8, too deeply nested), empty, or a tombstone.
    Undecodable,
    /// Confluent schema id not mapped in `[schema_ids]`.
    UnknownSchemaId,
    /// Decodable, but of another schema than the topic's.
    WrongSchema,
    /// A required field is absent or null.
    MissingField,
    /// NaN, infinity (JSON `NaN`/`Infinity` literals, numbers beyond f64) or out of range.
    InvalidValue,
    /// The operator refused the event because of the event itself; never used for engine or
    /// model failures (those leave the input uncommitted).
    OperatorRejected,
    /// A verdict on the feedback topic about an event that cannot be located (no coordinates,
    /// past the end of the input topic, or an input that was never scored).
    UnknownEvent,
}

impl DeadLetterReason {
    /// Every reason, in schema symbol order.
    pub const ALL: [DeadLetterReason; 8] = [
        Self::Oversized,
        Self::Undecodable,
        Self::UnknownSchemaId,
        Self::WrongSchema,
        Self::MissingField,
        Self::InvalidValue,
        Self::OperatorRejected,
        Self::UnknownEvent,
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
            Self::UnknownEvent => "unknown_event",
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
    /// Decoder or operator message: the field and what was expected, never an input value.
    pub detail: String,
    /// Operator the topic is bound to.
    pub operator: String,
    /// Input key, unchanged (base64 in JSON output).
    #[serde(with = "base64_bytes")]
    pub original_key: Option<Vec<u8>>,
    /// Input value (base64 in JSON output): whole, or its first bytes when
    /// `value_truncated`.
    #[serde(with = "base64_bytes")]
    pub original_value: Option<Vec<u8>>,
    /// When it was rejected, epoch ms.
    pub failed_at_ms: i64,
    /// Size of the input value in bytes, whether or not `original_value` carries it whole.
    #[serde(default)]
    pub original_size: Option<i64>,
    /// `original_value` holds only the first bytes of the input (cut to fit the output limit).
    #[serde(default)]
    pub value_truncated: bool,
}

impl DeadLetter {
    /// Encodes with `encode`, cutting `original_value` (then `original_key`) until the result
    /// is at most `limit` bytes, and flags the cut. A dead letter that cannot fit even
    /// without key and value (a limit below its envelope) is an error of the caller's config.
    pub fn encode_within<E>(
        mut self,
        limit: usize,
        encode: impl Fn(&DeadLetter) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let mut encoded = encode(&self)?;
        if encoded.len() <= limit {
            return Ok(encoded);
        }
        // What the record costs without the value tells how many encoded bytes each value
        // byte takes (1 in Avro, 4/3 in JSON's base64), so the cut lands just under the limit.
        let envelope_len = {
            let mut without_value = self.clone();
            without_value.original_value = None;
            encode(&without_value)?.len()
        };
        while encoded.len() > limit {
            let overflow = encoded.len() - limit;
            let value_len = self.original_value.as_ref().map_or(0, Vec::len);
            if value_len > 0 {
                let encoded_value_len = encoded.len().saturating_sub(envelope_len).max(1);
                let cut = (overflow * value_len).div_ceil(encoded_value_len) + 4;
                if let Some(value) = self.original_value.as_mut() {
                    value.truncate(value_len.saturating_sub(cut));
                }
                self.value_truncated = true;
            } else if self.original_key.take().is_some() {
                self.value_truncated = true;
            } else {
                return Ok(encoded);
            }
            encoded = encode(&self)?;
        }
        Ok(encoded)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter(value_len: usize) -> DeadLetter {
        DeadLetter {
            event_id: "t-0-1".to_owned(),
            source: SourceCoordinates {
                topic: "t".to_owned(),
                partition: 0,
                offset: 1,
                timestamp_ms: None,
            },
            reason: DeadLetterReason::Undecodable,
            detail: "not valid JSON".to_owned(),
            operator: "flow".to_owned(),
            original_key: Some(b"key".to_vec()),
            original_value: Some(vec![0xAB; value_len]),
            failed_at_ms: 1,
            original_size: Some(value_len as i64),
            value_truncated: false,
        }
    }

    #[test]
    fn a_dead_letter_that_fits_is_carried_whole() {
        let encoded = dead_letter(1000)
            .encode_within(10_000, serde_json::to_vec)
            .unwrap();
        let decoded: DeadLetter = serde_json::from_slice(&encoded).unwrap();
        assert!(!decoded.value_truncated);
        assert_eq!(decoded.original_value.unwrap().len(), 1000);
    }

    #[test]
    fn a_large_value_is_cut_to_fit_and_flagged() {
        for (value_len, limit) in [
            (900_000, 1_000_000),
            (1_000_000, 1_000_000),
            (50_000, 4_096),
        ] {
            let encoded = dead_letter(value_len)
                .encode_within(limit, serde_json::to_vec)
                .unwrap();
            assert!(encoded.len() <= limit, "{} > {limit}", encoded.len());
            let decoded: DeadLetter = serde_json::from_slice(&encoded).unwrap();
            assert!(decoded.value_truncated);
            assert_eq!(decoded.original_size, Some(value_len as i64));
            let kept = decoded.original_value.unwrap();
            assert!(!kept.is_empty() && kept.len() < value_len);
            // Cut close to the limit, not far below it.
            assert!(
                encoded.len() > limit * 9 / 10,
                "{} of {limit}",
                encoded.len()
            );
        }
    }
}
