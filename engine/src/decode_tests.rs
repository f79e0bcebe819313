//! Unit tests of the decoder: every format, every bad-input class, and a property test that
//! arbitrary bytes never panic and always get exactly one reason.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::generate::{encode_json, BadInput, EventGenerator};

const LIMIT: usize = 64 * 1024;

fn decoder(kind: SchemaKind, format: InputFormat) -> Decoder {
    let ids = HashMap::from([
        (1, SchemaKind::Prompt),
        (2, SchemaKind::Flow),
        (3, SchemaKind::Email),
        (4, SchemaKind::Alert),
        (5, SchemaKind::Address),
    ]);
    Decoder::new(kind, format, LIMIT, ids)
}

fn schema_id(kind: SchemaKind) -> u32 {
    match kind {
        SchemaKind::Prompt => 1,
        SchemaKind::Flow => 2,
        SchemaKind::Email => 3,
        SchemaKind::Alert => 4,
        SchemaKind::Address => 5,
    }
}

#[test]
fn every_kind_round_trips_through_json_raw_avro_and_confluent() {
    let mut generator = EventGenerator::new(11);
    for kind in SchemaKind::ALL {
        for _ in 0..20 {
            let event = generator.event(kind);
            let json = encode_json(&event);
            let avro = encode_input_avro(&event).unwrap();
            let framed = confluent_frame(schema_id(kind), &avro);
            assert_eq!(
                decoder(kind, InputFormat::Json)
                    .decode(Some(&json))
                    .unwrap(),
                event
            );
            assert_eq!(
                decoder(kind, InputFormat::Avro)
                    .decode(Some(&avro))
                    .unwrap(),
                event,
                "{kind:?}"
            );
            assert_eq!(
                decoder(kind, InputFormat::Confluent)
                    .decode(Some(&framed))
                    .unwrap(),
                event
            );
            for payload in [&json, &avro, &framed] {
                assert_eq!(
                    decoder(kind, InputFormat::Auto)
                        .decode(Some(payload))
                        .unwrap(),
                    event,
                    "auto {kind:?}"
                );
            }
        }
    }
}

#[test]
fn every_bad_input_class_gets_its_reason_for_every_kind() {
    let mut generator = EventGenerator::new(12);
    for kind in SchemaKind::ALL {
        for class in BadInput::ALL {
            let payload = generator.bad_payload(kind, class, LIMIT);
            let failure = decoder(kind, InputFormat::Auto)
                .decode(Some(&payload))
                .unwrap_err();
            assert_eq!(
                failure.reason,
                class.expected_reason(),
                "{kind:?} {class:?}: {}",
                failure.detail
            );
        }
    }
}

#[test]
fn tombstones_and_empty_values_are_undecodable() {
    let decoder = decoder(SchemaKind::Prompt, InputFormat::Auto);
    assert_eq!(
        decoder.decode(None).unwrap_err().reason,
        DeadLetterReason::Undecodable
    );
    assert_eq!(
        decoder.decode(Some(b"")).unwrap_err().reason,
        DeadLetterReason::Undecodable
    );
}

#[test]
fn confluent_id_of_another_schema_is_wrong_schema() {
    let mut generator = EventGenerator::new(13);
    let prompt = encode_input_avro(&generator.event(SchemaKind::Prompt)).unwrap();
    let framed = confluent_frame(schema_id(SchemaKind::Prompt), &prompt);
    let failure = decoder(SchemaKind::Flow, InputFormat::Confluent)
        .decode(Some(&framed))
        .unwrap_err();
    assert_eq!(failure.reason, DeadLetterReason::WrongSchema);
    let unmapped = confluent_frame(77, &prompt);
    let failure = decoder(SchemaKind::Prompt, InputFormat::Confluent)
        .decode(Some(&unmapped))
        .unwrap_err();
    assert_eq!(failure.reason, DeadLetterReason::UnknownSchemaId);
}

#[test]
fn json_of_another_schema_is_rejected() {
    let mut generator = EventGenerator::new(14);
    let alert = encode_json(&generator.event(SchemaKind::Alert));
    let failure = decoder(SchemaKind::Flow, InputFormat::Json)
        .decode(Some(&alert))
        .unwrap_err();
    assert_eq!(
        failure.reason,
        DeadLetterReason::MissingField,
        "{}",
        failure.detail
    );
}

#[test]
fn json_format_refuses_avro_and_avro_format_refuses_json() {
    let mut generator = EventGenerator::new(15);
    let event = generator.event(SchemaKind::Flow);
    let avro = encode_input_avro(&event).unwrap();
    let json = encode_json(&event);
    assert_eq!(
        decoder(SchemaKind::Flow, InputFormat::Json)
            .decode(Some(&avro))
            .unwrap_err()
            .reason,
        DeadLetterReason::Undecodable
    );
    assert!(decoder(SchemaKind::Flow, InputFormat::Avro)
        .decode(Some(&json))
        .is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), kind_index in 0usize..4) {
        let kind = SchemaKind::ALL[kind_index];
        for format in [InputFormat::Auto, InputFormat::Json, InputFormat::Avro, InputFormat::Confluent] {
            let _ = decoder(kind, format).decode(Some(&bytes));
        }
    }

    #[test]
    fn truncated_avro_is_never_accepted_as_a_different_event(cut in 1usize..200, seed in any::<u64>()) {
        let mut generator = EventGenerator::new(seed);
        let event = generator.event(SchemaKind::Alert);
        let avro = encode_input_avro(&event).unwrap();
        let cut = cut.min(avro.len() - 1);
        if let Ok(decoded) = decoder(SchemaKind::Alert, InputFormat::Avro).decode(Some(&avro[..cut])) {
            prop_assert_eq!(decoded, event);
        }
    }
}

/// A flow event as a JSON object, to be edited field by field.
fn flow_json_object(seed: u64) -> serde_json::Map<String, serde_json::Value> {
    let mut generator = EventGenerator::new(seed);
    let json = encode_json(&generator.event(SchemaKind::Flow));
    match serde_json::from_slice(&json).unwrap() {
        serde_json::Value::Object(object) => object,
        other => panic!("flow json is not an object: {other}"),
    }
}

#[test]
fn null_for_a_required_field_is_missing_field() {
    let failure = decoder(SchemaKind::Prompt, InputFormat::Auto)
        .decode(Some(br#"{"text": null, "user": "u1"}"#))
        .unwrap_err();
    assert_eq!(
        failure.reason,
        DeadLetterReason::MissingField,
        "{}",
        failure.detail
    );
    assert!(failure.detail.contains("text"), "{}", failure.detail);
}

#[test]
fn non_finite_json_numbers_are_invalid_values() {
    for literal in ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"] {
        let mut object = flow_json_object(21);
        object.insert("duration".to_owned(), serde_json::json!(0));
        let text = serde_json::to_string(&object).unwrap().replacen(
            "\"duration\":0",
            &format!("\"duration\":{literal}"),
            1,
        );
        assert!(text.contains(literal));
        let failure = decoder(SchemaKind::Flow, InputFormat::Auto)
            .decode(Some(text.as_bytes()))
            .unwrap_err();
        assert_eq!(
            failure.reason,
            DeadLetterReason::InvalidValue,
            "{literal}: {}",
            failure.detail
        );
    }
}

#[test]
fn details_name_the_field_and_type_but_never_quote_input_values() {
    let secret = "password=hunter2-very-secret";
    let mut object = flow_json_object(22);
    object.insert("src_bytes".to_owned(), serde_json::json!(secret));
    let payload = serde_json::to_vec(&object).unwrap();
    let failure = decoder(SchemaKind::Flow, InputFormat::Json)
        .decode(Some(&payload))
        .unwrap_err();
    assert_eq!(failure.reason, DeadLetterReason::WrongSchema);
    assert!(failure.detail.contains("src_bytes"), "{}", failure.detail);
    assert!(failure.detail.contains("expected"), "{}", failure.detail);
    assert!(!failure.detail.contains("hunter2"), "{}", failure.detail);
    let truncated = &payload[..payload.len() - 10];
    let failure = decoder(SchemaKind::Flow, InputFormat::Json)
        .decode(Some(truncated))
        .unwrap_err();
    assert!(!failure.detail.contains("hunter2"), "{}", failure.detail);
}

#[test]
fn deep_nesting_is_undecodable_not_a_crash() {
    let depth = 30_000; // 60 kB: under the 64 KiB test limit
    let mut payload = "[".repeat(depth).into_bytes();
    payload.extend(std::iter::repeat_n(b']', depth));
    let failure = decoder(SchemaKind::Alert, InputFormat::Auto)
        .decode(Some(&payload))
        .unwrap_err();
    assert_eq!(failure.reason, DeadLetterReason::Undecodable);
    let mut object = "{\"text\":".to_owned();
    object.push_str(&"{\"a\":".repeat(depth / 3));
    let failure = decoder(SchemaKind::Prompt, InputFormat::Auto)
        .decode(Some(object.as_bytes()))
        .unwrap_err();
    // The text field holds a map: the schema is wrong before the depth matters.
    assert_eq!(failure.reason, DeadLetterReason::WrongSchema);
}

#[test]
fn raw_avro_of_another_schema_is_not_an_unknown_schema_id_without_confluent_ids() {
    let mut generator = EventGenerator::new(23);
    let plain = |kind| Decoder::new(kind, InputFormat::Auto, LIMIT, HashMap::new());
    let mut leading_zero_seen = false;
    for _ in 0..50 {
        let alert = encode_input_avro(&generator.event(SchemaKind::Alert)).unwrap();
        leading_zero_seen |= alert[0] == 0;
        for kind in [SchemaKind::Prompt, SchemaKind::Flow, SchemaKind::Address] {
            if let Err(failure) = plain(kind).decode(Some(&alert)) {
                assert_ne!(
                    failure.reason,
                    DeadLetterReason::UnknownSchemaId,
                    "{kind:?}"
                );
            }
        }
    }
    let invalid_utf8 = [0u8, 2, 0xff, 0xfe];
    let failure = plain(SchemaKind::Prompt)
        .decode(Some(&invalid_utf8))
        .unwrap_err();
    assert_eq!(
        failure.reason,
        DeadLetterReason::Undecodable,
        "{}",
        failure.detail
    );
    let _ = leading_zero_seen;
}

#[test]
fn describe_without_values_strips_quoted_and_bracketed_values() {
    assert_eq!(
        describe_without_values(
            r#"invalid type: string "password=x", expected i64 at line 1 column 9"#
        ),
        "invalid type: string, expected i64"
    );
    assert_eq!(
        describe_without_values("invalid value: integer `-5`, expected u16"),
        "invalid value: integer, expected u16"
    );
    assert_eq!(
        describe_without_values("Expected Value::String, got: Int(42) 'x' [1,2]"),
        "Expected Value::String, got: Int"
    );
    assert!(describe_without_values(&"a".repeat(1000)).chars().count() <= MAX_DETAIL_CHARS + 1);
}

#[test]
fn keys_the_schema_does_not_define_are_not_echoed_in_details() {
    let mut object = flow_json_object(24);
    object.insert("hunter2-secret-key".to_owned(), serde_json::json!(1));
    let text = serde_json::to_string(&object)
        .unwrap()
        .replace("\"hunter2-secret-key\":1", "\"hunter2-secret-key\":NaN");
    let failure = decoder(SchemaKind::Flow, InputFormat::Json)
        .decode(Some(text.as_bytes()))
        .unwrap_err();
    assert!(!failure.detail.contains("hunter2"), "{}", failure.detail);
    let mut object = flow_json_object(25);
    object.insert("duration".to_owned(), serde_json::json!("x"));
    let failure = decoder(SchemaKind::Flow, InputFormat::Json)
        .decode(Some(&serde_json::to_vec(&object).unwrap()))
        .unwrap_err();
    assert!(
        failure.detail.starts_with("field duration:"),
        "{}",
        failure.detail
    );
}
