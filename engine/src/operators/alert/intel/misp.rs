//! MISP: feed event files (`{"Event": {...}}`, as a MISP feed's `<uuid>.json`), REST search
//! exports (`{"response": [{"Event": ...}]}`) and lists of events.
//!
//! Attributes (and the attributes of the event's objects) of the types below become
//! indicators; other types (filenames, e-mail subjects, …) and deleted attributes are
//! skipped. Composite types keep their indicator half (`ip-dst|port` → the address,
//! `filename|sha256` → the hash, `domain|ip` → both). Confidence follows the event's
//! `threat_level_id` — 1 high 0.9, 2 medium 0.75, 3 low 0.6, 4 undefined 0.5 — halved for
//! attributes not flagged `to_ids` (context, not detection). The source is the creating
//! organisation (`Orgc.name`), else `default_source`; `last_seen` / `timestamp` give the last
//! sighting. MISP has no expiry: decay old feeds by snapshot versions or the intel topic.

use serde_json::Value;

use super::{parse_time_ms, Indicator, IndicatorKind, LoadReport};

/// Reads MISP JSON: one event, a list of events, or a REST search response.
pub fn parse(text: &str, default_source: &str) -> Result<LoadReport, String> {
    let document: Value =
        serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let events: Vec<&Value> = match &document {
        Value::Object(map) if map.contains_key("Event") => vec![&map["Event"]],
        // A bare event, as pymisp's `MISPEvent.to_json()` writes it.
        Value::Object(map) if map.contains_key("Attribute") || map.contains_key("Object") => {
            vec![&document]
        }
        Value::Object(map) if map.contains_key("response") => map["response"]
            .as_array()
            .map(|items| items.iter().filter_map(|item| item.get("Event")).collect())
            .unwrap_or_default(),
        Value::Array(items) => items
            .iter()
            .map(|item| item.get("Event").unwrap_or(item))
            .collect(),
        _ => return Err("not MISP JSON (no \"Event\")".to_owned()),
    };
    let mut report = LoadReport::default();
    for event in events {
        read_event(event, default_source, &mut report);
    }
    Ok(report)
}

fn read_event(event: &Value, default_source: &str, report: &mut LoadReport) {
    let source = event
        .get("Orgc")
        .and_then(|org| org.get("name"))
        .and_then(Value::as_str)
        .unwrap_or(default_source);
    let threat_level = event
        .get("threat_level_id")
        .and_then(|level| {
            level
                .as_str()
                .and_then(|text| text.parse::<u8>().ok())
                .or_else(|| level.as_u64().map(|level| level as u8))
        })
        .unwrap_or(4);
    let confidence = match threat_level {
        1 => 0.9,
        2 => 0.75,
        3 => 0.6,
        _ => 0.5,
    };
    let label = event
        .get("info")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut attributes: Vec<&Value> = event
        .get("Attribute")
        .and_then(Value::as_array)
        .map(|list| list.iter().collect())
        .unwrap_or_default();
    for object in event
        .get("Object")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        attributes.extend(
            object
                .get("Attribute")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    for attribute in attributes {
        let deleted = attribute.get("deleted").and_then(Value::as_bool) == Some(true);
        let (Some(kind), Some(value)) = (
            attribute.get("type").and_then(Value::as_str),
            attribute.get("value").and_then(Value::as_str),
        ) else {
            report.skipped += 1;
            continue;
        };
        let values = indicator_values(kind, value);
        if deleted || values.is_empty() {
            report.skipped += 1;
            continue;
        }
        let to_ids = attribute
            .get("to_ids")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let last_seen = attribute
            .get("last_seen")
            .and_then(Value::as_str)
            .and_then(parse_time_ms)
            .or_else(|| {
                attribute
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(parse_time_ms)
            });
        let first_seen = attribute
            .get("first_seen")
            .and_then(Value::as_str)
            .and_then(parse_time_ms);
        for (kind, value) in values {
            let scaled = if to_ids { confidence } else { confidence / 2.0 };
            match Indicator::new(kind, value, scaled, source) {
                Some(mut indicator) => {
                    indicator.last_seen_ms = last_seen;
                    indicator.valid_from_ms = first_seen;
                    indicator.label = label.to_owned();
                    report.indicators.push(indicator);
                }
                None => report.skipped += 1,
            }
        }
    }
}

/// The indicator values of a MISP attribute of `kind`.
fn indicator_values<'a>(kind: &str, value: &'a str) -> Vec<(IndicatorKind, &'a str)> {
    let (first, second) = value.split_once('|').unwrap_or((value, ""));
    match kind {
        "ip-src" | "ip-dst" | "ip-src|port" | "ip-dst|port" => {
            vec![(IndicatorKind::Network, first)]
        }
        "domain" | "hostname" | "hostname|port" => vec![(IndicatorKind::Domain, first)],
        "domain|ip" => vec![
            (IndicatorKind::Domain, first),
            (IndicatorKind::Network, second),
        ],
        "url" => vec![(IndicatorKind::Url, value)],
        "md5" => vec![(IndicatorKind::Md5, value)],
        "sha1" => vec![(IndicatorKind::Sha1, value)],
        "sha256" => vec![(IndicatorKind::Sha256, value)],
        "filename|md5" => vec![(IndicatorKind::Md5, second)],
        "filename|sha1" => vec![(IndicatorKind::Sha1, second)],
        "filename|sha256" => vec![(IndicatorKind::Sha256, second)],
        _ => Vec::new(),
    }
}
