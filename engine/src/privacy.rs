//! The scores-only privacy mode of a binding (`privacy = "scores-only"`): raw content stays
//! where it was, only scores leave.
//!
//! For such a binding:
//! - scored records and the operator's extra records keep ids, coordinates, scores, numeric
//!   feature values and feature/rule names; every label that names an entity (user, account,
//!   address, domain, host) or repeats a string of the input is replaced by a keyed
//!   pseudonym ([`pseudonym`]), and so are extra records' entity keys — the same entity
//!   always gets the same pseudonym, so per-entity risk still adds up;
//! - dead letters carry the input's coordinates, reason and size, not its key or value;
//! - the console keeps no input and shows pseudonyms; the scoring API answers sanitized
//!   records the same way.
//!
//! Pseudonyms are HMAC-style SHA-256 digests keyed by `output.pseudonym_key` (set it per
//! deployment from a secret: without a key, a dictionary of likely user names would reverse
//! them).

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::InputEvent;
use crate::operators::{Outcome, SourcedEvent};
use crate::scored::Scored;

/// What of its input a binding's outputs may carry.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Privacy {
    /// Outputs may name entities; dead letters carry the input; the console shows it.
    #[default]
    Full,
    /// Only ids, scores, labels without input content and feature names leave.
    ScoresOnly,
}

/// Labels whose values name an entity, pseudonymised whatever their value.
const ENTITY_LABELS: [&str; 9] = [
    "entities",
    "user",
    "account",
    "address",
    "domain",
    "host",
    "entity",
    "sender",
    "recipient",
];

/// Input strings shorter than this are not searched for in labels (they would match
/// ordinary words such as `tcp` or `low`).
const MIN_INPUT_STRING: usize = 5;

static KEY: OnceLock<String> = OnceLock::new();

/// Sets the pseudonym key once per process (`output.pseudonym_key`); later calls are ignored.
pub fn set_key(key: &str) {
    let _ = KEY.set(key.to_owned());
}

/// The pseudonym of `value`: `anon-` and 16 hex digits of SHA-256(key, value).
pub fn pseudonym(value: &str) -> String {
    let key = KEY.get().map_or("", String::as_str);
    let mut digest = Sha256::new();
    digest.update((key.len() as u64).to_be_bytes());
    digest.update(key.as_bytes());
    digest.update(value.as_bytes());
    let hash = digest.finalize();
    let hex: String = hash[..8].iter().map(|byte| format!("{byte:02x}")).collect();
    format!("anon-{hex}")
}

/// Every string of the input worth searching for (lower-cased).
fn input_strings(event: &InputEvent) -> HashSet<String> {
    fn walk(value: &serde_json::Value, out: &mut HashSet<String>) {
        match value {
            serde_json::Value::String(text) => {
                let text = text.trim().to_lowercase();
                if text.chars().count() >= MIN_INPUT_STRING {
                    out.insert(text);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            serde_json::Value::Object(fields) => fields.values().for_each(|field| walk(field, out)),
            _ => {}
        }
    }
    let mut strings = HashSet::new();
    walk(&event.to_json_value(), &mut strings);
    strings
}

/// Whether `label` (lower-cased) repeats input content: equal to an input string, contained
/// in one (a local part, a host name), or containing one.
fn repeats_input(label: &str, strings: &HashSet<String>) -> bool {
    let label = label.trim().to_lowercase();
    if label.chars().count() < MIN_INPUT_STRING {
        return false;
    }
    strings
        .iter()
        .any(|text| text == &label || text.contains(&label) || label.contains(text.as_str()))
}

/// Removes input content from one record (see the module doc).
pub fn sanitize(scored: &mut Scored, strings: &HashSet<String>) {
    for (key, value) in scored.labels.iter_mut() {
        if ENTITY_LABELS.contains(&key.as_str()) || repeats_input(value, strings) {
            *value = pseudonym(value);
        }
    }
    for contribution in &mut scored.explanation {
        if let Some(detail) = &contribution.detail {
            if repeats_input(detail, strings) {
                contribution.detail = Some(pseudonym(detail));
            }
        }
    }
}

/// Sanitizes every scored record and extra record of a batch, and pseudonymises the extra
/// records' entity keys.
pub fn sanitize_outcomes(events: &[SourcedEvent], outcomes: &mut [Outcome]) {
    for (event, outcome) in events.iter().zip(outcomes.iter_mut()) {
        let Outcome::Scored { scored, extra } = outcome else {
            continue;
        };
        let strings = input_strings(&event.event);
        sanitize(scored, &strings);
        for record in extra {
            record.key = pseudonym(&record.key);
            sanitize(&mut record.scored, &strings);
            // Alert entity records are `<event id>:<entity key>`.
            if record
                .scored
                .event_id
                .starts_with(&format!("{}:", event.event_id))
            {
                record.scored.event_id = format!("{}:{}", event.event_id, record.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::AlertEvent;
    use crate::operators::ExtraRecord;
    use std::collections::BTreeMap;

    fn alert() -> SourcedEvent {
        let event: AlertEvent = serde_json::from_value(serde_json::json!({
            "alert_id": "al-1", "severity": "high", "siem_source": "splunk", "rule_id": "R1",
            "users": ["Alice.Smith"], "hosts": ["ws-finance-07"], "ips": ["10.1.2.3"],
            "ioc_count": 1, "asset_count": 1, "asset_criticality": 0.5, "event_count": 3,
            "first_seen_ms": 1, "last_seen_ms": 2
        }))
        .unwrap();
        SourcedEvent::at_offset("alerts", 4, InputEvent::Alert(Box::new(event)))
    }

    #[test]
    fn entities_and_input_strings_leave_only_as_pseudonyms() {
        let event = alert();
        let mut scored = event.scored("alert", "v1", 0).with_labels(BTreeMap::from([
            ("risk_level".to_owned(), "high".to_owned()),
            ("user".to_owned(), "bob".to_owned()),
            ("top_host".to_owned(), "ws-finance-07".to_owned()),
        ]));
        scored.scores.insert("risk".to_owned(), 71.0);
        let entity = ExtraRecord {
            topic: "entities".to_owned(),
            key: "user:alice.smith".to_owned(),
            scored: Scored {
                event_id: format!("{}:user:alice.smith", event.event_id),
                ..scored.clone()
            },
        };
        let mut outcomes = vec![Outcome::Scored {
            scored: Box::new(scored),
            extra: vec![entity],
        }];
        sanitize_outcomes(std::slice::from_ref(&event), &mut outcomes);
        let Outcome::Scored { scored, extra } = &outcomes[0] else {
            unreachable!()
        };
        assert_eq!(scored.labels["risk_level"], "high", "plain labels stay");
        assert_eq!(scored.labels["user"], pseudonym("bob"));
        assert_eq!(scored.labels["top_host"], pseudonym("ws-finance-07"));
        assert_eq!(scored.scores["risk"], 71.0);
        assert_eq!(extra[0].key, pseudonym("user:alice.smith"));
        let rendered = serde_json::to_string(&(scored, &extra[0].scored, &extra[0].key)).unwrap();
        for secret in ["alice", "ws-finance", "bob"] {
            assert!(
                !rendered.to_lowercase().contains(secret),
                "{secret} in {rendered}"
            );
        }
    }

    #[test]
    fn pseudonyms_are_stable_and_distinct() {
        assert_eq!(pseudonym("alice"), pseudonym("alice"));
        assert_ne!(pseudonym("alice"), pseudonym("alicf"));
        assert!(pseudonym("x").starts_with("anon-"));
    }
}
