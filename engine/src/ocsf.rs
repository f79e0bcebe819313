//! OCSF output (`output.format = "ocsf"`): scored events as OCSF 1.5.0 Detection Findings
//! (class 2004), so a SIEM ingests them without a custom parser.
//!
//! Per scored event that crosses at least one threshold, one finding:
//! - `activity_id` 1 (Create), `type_uid` 200401, `status_id` 1 (New);
//! - `finding_info`: `uid` = our `event_id` (the key of every later update), `title`
//!   (operator and verdict), `desc` (the top contributions in words), `types` (thresholds
//!   crossed), `data_sources` (input topic), `analytic` of type 4 "Learning (ML/DL)" named
//!   after the operator, with the model version;
//! - `severity_id` from our risk levels (`critical` 5, `high` 4, `medium` 3, `low` 2,
//!   `info` 1; operators without a level: from the main score), `confidence_score` and
//!   `risk_score` (main score on 0–100), `time` (event time, else scoring time);
//! - `metadata`: product `threatflow` and its version, OCSF version, `correlation_uid`;
//! - `observables` for the entities (user names, host names, IPs, email addresses) and one
//!   evidence with the input's Kafka coordinates;
//! - `unmapped.threatflow`: our scores, labels, explanation and thresholds, unchanged.
//!
//! Events below every threshold produce no finding (their inputs are still committed). Extra
//! records (entity and user risk) and dead letters stay JSON: other operators read them.
//! Incident records of the alert operator (threshold [`INCIDENT_THRESHOLD`]) become findings
//! too ([`incident_finding`]): Create when the incident is declared, Update (activity 2,
//! status In Progress) each time an alert joins it, all with the incident id as
//! `finding_info.uid`.
//! Analyst verdicts are re-emitted by [`crate::ocsf_verdicts`] as Update (activity 2) or
//! Close (activity 3) findings with the same `finding_info.uid`: a false positive closes
//! with status 3 (Suppressed). For a scores-only binding, observables carry pseudonyms.

use serde_json::{json, Value};

use crate::events::InputEvent;
use crate::learning::verdict::{Feedback, Verdict};
use crate::scored::Scored;

/// The OCSF schema version the findings follow (pinned by the validating test's
/// `py-ocsf-models` 0.10.0).
pub const OCSF_VERSION: &str = "1.5.0";
/// Detection Finding.
pub const CLASS_UID: i64 = 2004;
/// Findings.
const CATEGORY_UID: i64 = 2;
/// Analytic type "Learning (ML/DL)".
const ANALYTIC_LEARNING: i64 = 4;

/// OCSF observable type ids used here.
const OBSERVABLE_HOSTNAME: i64 = 1;
const OBSERVABLE_IP: i64 = 2;
const OBSERVABLE_USER_NAME: i64 = 4;
const OBSERVABLE_EMAIL: i64 = 5;

/// `(severity_id, caption)` of a risk level name.
fn severity_of_level(level: &str) -> Option<(i64, &'static str)> {
    match level.trim().to_ascii_lowercase().as_str() {
        "critical" => Some((5, "Critical")),
        "high" => Some((4, "High")),
        "medium" => Some((3, "Medium")),
        "low" => Some((2, "Low")),
        "info" | "informational" | "none" => Some((1, "Informational")),
        _ => None,
    }
}

/// The main score on 0–100 (scores in 0–1 are probabilities; alert risk is already 0–100).
fn percent(score: f64) -> i64 {
    let scaled = if score <= 1.0 { score * 100.0 } else { score };
    scaled.round().clamp(0.0, 100.0) as i64
}

fn severity(scored: &Scored, main_score: Option<f64>) -> (i64, &'static str) {
    ["risk_level", "severity"]
        .iter()
        .filter_map(|key| scored.labels.get(*key))
        .find_map(|level| severity_of_level(level))
        .unwrap_or_else(|| match main_score.map(percent) {
            Some(score) if score >= 90 => (4, "High"),
            Some(score) if score >= 70 => (3, "Medium"),
            Some(_) => (2, "Low"),
            None => (0, "Unknown"),
        })
}

fn analytic(operator: &str, version: &str) -> Value {
    json!({
        "name": format!("threatflow {operator}"),
        "uid": format!("threatflow.{operator}"),
        "type_id": ANALYTIC_LEARNING,
        "type": "Learning (ML/DL)",
        "version": version,
    })
}

fn metadata(event_id: &str) -> Value {
    json!({
        "product": {
            "name": "threatflow",
            "vendor_name": "threatflow",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "version": OCSF_VERSION,
        "correlation_uid": event_id,
    })
}

/// The entities of an input as OCSF observables `(name, type_id, value)`.
fn observables(event: &InputEvent) -> Vec<(&'static str, i64, String)> {
    let mut found = Vec::new();
    match event {
        InputEvent::Prompt(prompt) => {
            if let Some(user) = &prompt.user {
                found.push(("user", OBSERVABLE_USER_NAME, user.clone()));
            }
        }
        InputEvent::Alert(alert) => {
            found.extend(
                alert
                    .users
                    .iter()
                    .map(|u| ("user", OBSERVABLE_USER_NAME, u.clone())),
            );
            found.extend(
                alert
                    .hosts
                    .iter()
                    .map(|h| ("host", OBSERVABLE_HOSTNAME, h.clone())),
            );
            found.extend(alert.ips.iter().map(|ip| ("ip", OBSERVABLE_IP, ip.clone())));
        }
        InputEvent::Email(email) => {
            found.push(("sender", OBSERVABLE_EMAIL, email.from.clone()));
            found.extend(
                email
                    .to
                    .iter()
                    .map(|to| ("recipient", OBSERVABLE_EMAIL, to.clone())),
            );
        }
        InputEvent::Address(address) => {
            found.push(("address", OBSERVABLE_EMAIL, address.address.clone()));
            if let Some(account) = &address.account {
                found.push(("account", OBSERVABLE_USER_NAME, account.clone()));
            }
        }
        InputEvent::Flow(_) => {}
    }
    found.retain(|(_, _, value)| !value.trim().is_empty());
    found
}

/// The threshold an alert-operator incident record carries.
pub const INCIDENT_THRESHOLD: &str = "incident";

/// Whether `scored` is an incident record (see the module doc).
pub fn is_incident(scored: &Scored) -> bool {
    scored
        .thresholds_crossed
        .iter()
        .any(|t| t == INCIDENT_THRESHOLD)
}

/// The finding of an incident record: Create the first time, Update after.
pub fn incident_finding(scored: &Scored, scores_only: bool) -> Option<Value> {
    let mut finding = finding(scored, None, "risk", scores_only)?;
    let narrative = scored
        .explanation
        .first()
        .and_then(|c| c.detail.clone())
        .unwrap_or_default();
    finding["finding_info"]["title"] = json!(format!("threatflow incident: {narrative}"));
    if scored.labels.get("incident_update").map(String::as_str) == Some("true") {
        finding["activity_id"] = json!(2);
        finding["activity_name"] = json!("Update");
        finding["type_uid"] = json!(CLASS_UID * 100 + 2);
        finding["type_name"] = json!("Detection Finding: Update");
        finding["status_id"] = json!(2);
        finding["status"] = json!("In Progress");
    }
    Some(finding)
}

/// The finding of `scored` (see the module doc); `None` when it crossed no threshold.
/// `main_score` names the operator's main score; `scores_only` pseudonymises observables.
pub fn finding(
    scored: &Scored,
    event: Option<&InputEvent>,
    main_score: &str,
    scores_only: bool,
) -> Option<Value> {
    if scored.thresholds_crossed.is_empty() {
        return None;
    }
    let score = scored.scores.get(main_score).copied();
    let (severity_id, severity) = severity(scored, score);
    let verdict = ["verdict", "risk_level", "decision", "voted_anomaly"]
        .iter()
        .find_map(|key| scored.labels.get(*key))
        .map_or("flagged", String::as_str);
    let why: Vec<String> = scored
        .explanation
        .iter()
        .take(3)
        .map(|c| match c.value {
            Some(value) => format!("{} = {value} ({:+.3})", c.name, c.contribution),
            None => format!("{} ({:+.3})", c.name, c.contribution),
        })
        .collect();
    let observables: Vec<Value> = event
        .map(observables)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, type_id, value)| {
            let value = if scores_only {
                crate::privacy::pseudonym(&value)
            } else {
                value
            };
            json!({ "name": name, "type_id": type_id, "value": value })
        })
        .collect();
    let time = scored.event_time_ms.unwrap_or(scored.scored_at_ms);
    let mut finding = json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + 1,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "time": time,
        "finding_info": {
            "uid": scored.event_id,
            "title": format!("threatflow {}: {verdict}", scored.operator),
            "desc": if why.is_empty() { "no explanation".to_owned() } else { format!("Top contributions: {}", why.join("; ")) },
            "types": scored.thresholds_crossed,
            "data_sources": [scored.source.topic],
            "created_time": scored.scored_at_ms,
            "analytic": analytic(&scored.operator, &scored.model_version),
        },
        "metadata": metadata(&scored.event_id),
        "evidences": [{
            "name": "input record",
            "data": {
                "topic": scored.source.topic,
                "partition": scored.source.partition,
                "offset": scored.source.offset,
            },
        }],
        "unmapped": {
            "threatflow": {
                "operator": scored.operator,
                "model_version": scored.model_version,
                "scores": scored.scores,
                "labels": scored.labels,
                "explanation": scored.explanation,
                "thresholds_crossed": scored.thresholds_crossed,
            },
        },
    });
    if let Some(score) = score {
        finding["confidence_score"] = json!(percent(score));
        finding["risk_score"] = json!(percent(score));
    }
    if !observables.is_empty() {
        finding["observables"] = Value::Array(observables);
    }
    Some(finding)
}

/// The Update or Close finding of an analyst's verdict (see the module doc).
pub fn verdict_finding(feedback: &Feedback) -> Value {
    let duplicate = feedback.label.as_deref() == Some("duplicate");
    let (activity_id, activity, status_id, status) = match feedback.verdict {
        Verdict::FalsePositive | Verdict::Benign | Verdict::TrueNegative => {
            (3, "Close", 3, "Suppressed")
        }
        Verdict::TruePositive if duplicate => (3, "Close", 3, "Suppressed"),
        Verdict::TruePositive | Verdict::Suspicious | Verdict::FalseNegative => {
            (2, "Update", 2, "In Progress")
        }
    };
    let verdict = serde_json::to_value(feedback.verdict).unwrap_or(Value::Null);
    let verdict_name = verdict.as_str().unwrap_or("verdict");
    json!({
        "activity_id": activity_id,
        "activity_name": activity,
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity}"),
        "severity_id": 0,
        "severity": "Unknown",
        "status_id": status_id,
        "status": status,
        "time": feedback.timestamp_ms,
        "comment": feedback.comment,
        "finding_info": {
            "uid": feedback.event_id,
            "title": format!("threatflow {}: analyst verdict {verdict_name}", feedback.operator),
            "modified_time": feedback.timestamp_ms,
            "analytic": analytic(&feedback.operator, feedback.model_version.as_deref().unwrap_or("unknown")),
        },
        "metadata": metadata(&feedback.event_id),
        "unmapped": {
            "threatflow": {
                "verdict": verdict,
                "label": feedback.label,
                "analyst": feedback.analyst,
                "operator": feedback.operator,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn scored(thresholds: &[&str]) -> Scored {
        let event = crate::operators::SourcedEvent::at_offset(
            "alerts",
            9,
            InputEvent::Prompt(serde_json::from_value(json!({"text": "x", "user": "u1"})).unwrap()),
        );
        event
            .scored("prompt", "v3", 1_000)
            .with_scores(BTreeMap::from([("attack_probability".to_owned(), 0.97)]))
            .with_labels(BTreeMap::from([
                ("verdict".to_owned(), "attack".to_owned()),
                ("severity".to_owned(), "high".to_owned()),
            ]))
            .with_thresholds(thresholds.iter().map(|t| (*t).to_owned()).collect())
    }

    #[test]
    fn a_crossing_event_becomes_a_create_finding_keyed_by_its_event_id() {
        let record = scored(&["attack"]);
        let event: InputEvent =
            InputEvent::Prompt(serde_json::from_value(json!({"text": "x", "user": "u1"})).unwrap());
        let finding = finding(&record, Some(&event), "attack_probability", false).unwrap();
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["type_uid"], 200401);
        assert_eq!(finding["finding_info"]["uid"], record.event_id.as_str());
        assert_eq!(finding["finding_info"]["analytic"]["type_id"], 4);
        assert_eq!(finding["finding_info"]["analytic"]["version"], "v3");
        assert_eq!(finding["severity_id"], 4);
        assert_eq!(finding["confidence_score"], 97);
        assert_eq!(finding["observables"][0]["value"], "u1");
        assert_eq!(
            finding["unmapped"]["threatflow"]["labels"]["verdict"],
            "attack"
        );
        let hidden = super::finding(&record, Some(&event), "attack_probability", true).unwrap();
        assert_eq!(
            hidden["observables"][0]["value"],
            crate::privacy::pseudonym("u1")
        );
        assert!(super::finding(&scored(&[]), Some(&event), "attack_probability", false).is_none());
    }

    #[test]
    fn a_false_positive_closes_the_finding_as_suppressed() {
        let feedback: Feedback = serde_json::from_value(json!({
            "event_id": "alerts-0-9", "operator": "prompt", "verdict": "false_positive",
            "timestamp_ms": 5
        }))
        .unwrap();
        let closed = verdict_finding(&feedback);
        assert_eq!(
            (closed["activity_id"].clone(), closed["status_id"].clone()),
            (json!(3), json!(3))
        );
        assert_eq!(closed["type_uid"], 200403);
        assert_eq!(closed["finding_info"]["uid"], "alerts-0-9");
        let confirmed = verdict_finding(&Feedback {
            verdict: Verdict::TruePositive,
            ..feedback
        });
        assert_eq!(
            (
                confirmed["activity_id"].clone(),
                confirmed["status_id"].clone()
            ),
            (json!(2), json!(2))
        );
    }
}
