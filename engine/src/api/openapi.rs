//! The OpenAPI 3.0 document served at `/v1/openapi.json`.
//!
//! `openapi.json` beside this file holds the hand-written parts (paths, answers, errors). The
//! per-operator paths `/v1/score/<operator>` and the input event schemas are generated here
//! from the bundled Avro schemas — the same schemas the stream decodes with — so the document
//! cannot drift from what the decoder accepts. The scored record's schema comes from
//! `schemas/scored.avsc` the same way.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::events::{SchemaKind, SCORED_SCHEMA_TEXT};

/// The hand-written template.
const TEMPLATE: &str = include_str!("openapi.json");

/// The templated score path, replaced by one path per operator.
const SCORE_TEMPLATE_PATH: &str = "/v1/score/{operator}";

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// The document for an engine whose bindings are `bound` (operator, topic): each score
/// path's `topic` parameter lists the topics that operator is bound to here.
pub fn document_for(bound: &[(&str, String)]) -> Value {
    let mut document = document().clone();
    for (operator, topic) in bound {
        let parameters =
            &mut document["paths"][format!("/v1/score/{operator}")]["post"]["parameters"];
        let Some(parameters) = parameters.as_array_mut() else {
            continue;
        };
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "topic") {
            let schema = &mut parameter["schema"];
            if !schema["enum"].is_array() {
                schema["enum"] = json!([]);
            }
            if let Some(topics) = schema["enum"].as_array_mut() {
                topics.push(json!(topic));
            }
        }
    }
    document
}

fn build() -> Value {
    let mut document: Value = serde_json::from_str(TEMPLATE).expect("openapi.json is valid JSON");
    let template = document["paths"]
        .as_object_mut()
        .and_then(|paths| paths.remove(SCORE_TEMPLATE_PATH))
        .expect("openapi.json has the score path template");
    let schemas = document["components"]["schemas"]
        .as_object_mut()
        .expect("openapi.json has components.schemas");
    let scored: Value = serde_json::from_str(SCORED_SCHEMA_TEXT).expect("scored.avsc is JSON");
    schemas.insert("Scored".to_owned(), json_schema(&scored));
    let contribution = &scored["fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|field| field["name"] == "explanation"))
        .expect("scored.avsc has explanation")["type"]["items"];
    schemas.insert("Contribution".to_owned(), json_schema(contribution));
    schemas.remove("AnyEvent");
    schemas.remove("EventBatch");
    let mut score_paths = Map::new();
    for kind in SchemaKind::ALL {
        let name = kind.name();
        let event_schema = format!("{}Event", capitalized(name));
        let batch_schema = format!("{}Batch", capitalized(name));
        let avro: Value =
            serde_json::from_str(kind.avro_schema_text()).expect("bundled schemas are JSON");
        schemas.insert(event_schema.clone(), json_schema(&avro));
        schemas.insert(
            batch_schema.clone(),
            json!({
                "type": "object", "required": ["events"],
                "properties": {"events": {"type": "array", "minItems": 1,
                    "items": {"$ref": format!("#/components/schemas/{event_schema}")}}}
            }),
        );
        let mut path = template.clone();
        let operation = &mut path["post"];
        operation["operationId"] = json!(format!("score{}", capitalized(name)));
        operation["summary"] = json!(format!(
            "Score {name} events with the {name} operator bound in this engine (404 when none is)"
        ));
        if let Some(parameters) = operation["parameters"].as_array_mut() {
            parameters.retain(|parameter| parameter["name"] != "operator");
        }
        operation["requestBody"]["content"]["application/json"]["schema"] = json!({"oneOf": [
            {"$ref": format!("#/components/schemas/{event_schema}")},
            {"$ref": format!("#/components/schemas/{batch_schema}")}
        ]});
        score_paths.insert(format!("/v1/score/{name}"), path);
    }
    let paths = document["paths"].as_object_mut().expect("paths");
    paths.extend(score_paths);
    document
}

fn capitalized(name: &str) -> String {
    let mut characters = name.chars();
    characters
        .next()
        .map(|first| first.to_uppercase().chain(characters).collect())
        .unwrap_or_default()
}

/// The OpenAPI 3.0 schema of an Avro type: records become objects whose fields without a
/// default are required, `["null", T]` a nullable T, longs integers, maps objects with
/// typed values, enums string enums. Fields keep their Avro `doc` as description.
pub fn json_schema(avro: &Value) -> Value {
    match avro {
        Value::String(primitive) => primitive_schema(primitive),
        Value::Array(union) => {
            let nullable = union.iter().any(|member| member == "null");
            let others: Vec<&Value> = union.iter().filter(|member| *member != "null").collect();
            let mut schema = match others.as_slice() {
                [single] => json_schema(single),
                _ => {
                    json!({"oneOf": others.iter().map(|member| json_schema(member)).collect::<Vec<_>>()})
                }
            };
            if nullable {
                schema["nullable"] = json!(true);
            }
            schema
        }
        Value::Object(object) => match object.get("type").and_then(Value::as_str) {
            Some("record") => record_schema(object),
            Some("array") => json!({"type": "array", "items": json_schema(&object["items"])}),
            Some("map") => {
                json!({"type": "object", "additionalProperties": json_schema(&object["values"])})
            }
            Some("enum") => json!({"type": "string", "enum": object["symbols"]}),
            Some(_) => json_schema(&object["type"]),
            None => json!({}),
        },
        _ => json!({}),
    }
}

fn primitive_schema(primitive: &str) -> Value {
    match primitive {
        "string" => json!({"type": "string"}),
        "int" => json!({"type": "integer", "format": "int32"}),
        "long" => json!({"type": "integer", "format": "int64"}),
        "float" | "double" => json!({"type": "number"}),
        "boolean" => json!({"type": "boolean"}),
        "bytes" => json!({"type": "string"}),
        _ => json!({}),
    }
}

fn record_schema(record: &Map<String, Value>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in record["fields"].as_array().into_iter().flatten() {
        let Some(name) = field["name"].as_str() else {
            continue;
        };
        let mut schema = json_schema(&field["type"]);
        if let Some(doc) = field["doc"].as_str() {
            schema["description"] = json!(doc);
        }
        if field.get("default").is_none() {
            required.push(json!(name));
        }
        properties.insert(name.to_owned(), schema);
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    if let Some(doc) = record.get("doc").and_then(Value::as_str) {
        schema["description"] = json!(doc);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_has_a_score_path_with_its_event_schema() {
        let document = document();
        for kind in SchemaKind::ALL {
            let path = &document["paths"][format!("/v1/score/{}", kind.name())]["post"];
            assert!(path.is_object(), "{} path missing", kind.name());
            let event =
                &document["components"]["schemas"][format!("{}Event", capitalized(kind.name()))];
            assert_eq!(event["type"], "object");
        }
        assert!(document["paths"][SCORE_TEMPLATE_PATH].is_null());
        assert!(document["paths"]["/v1/scan/prompt"]["post"].is_object());
    }

    #[test]
    fn the_served_document_lists_the_bound_topics() {
        let document = document_for(&[
            ("flow", "flows-a".to_owned()),
            ("flow", "flows-b".to_owned()),
        ]);
        let parameter = &document["paths"]["/v1/score/flow"]["post"]["parameters"][0];
        assert_eq!(parameter["name"], "topic");
        assert_eq!(parameter["schema"]["enum"], json!(["flows-a", "flows-b"]));
        let unbound = &document["paths"]["/v1/score/alert"]["post"]["parameters"][0];
        assert!(unbound["schema"]["enum"].is_null());
    }

    #[test]
    fn avro_types_map_to_openapi_schemas() {
        let prompt = &document()["components"]["schemas"]["PromptEvent"];
        assert_eq!(prompt["required"], json!(["text"]));
        assert_eq!(prompt["properties"]["timestamp_ms"]["type"], "integer");
        assert_eq!(prompt["properties"]["timestamp_ms"]["nullable"], true);
        let scored = &document()["components"]["schemas"]["Scored"];
        assert_eq!(
            scored["properties"]["scores"]["additionalProperties"]["type"],
            "number"
        );
        assert_eq!(
            scored["properties"]["source"]["properties"]["partition"]["format"],
            "int32"
        );
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target.rsplit('/').next().unwrap();
            let kind = if target.contains("/responses/") {
                "responses"
            } else {
                "schemas"
            };
            assert!(
                document["components"][kind][name].is_object(),
                "unresolved $ref {target}"
            );
        }
    }
}
