//! Alert features: one fixed-order row of numbers per alert, the same at training and
//! scoring time. Every column is documented in [`FEATURES`]; the manifest stores the list and
//! the model is refused at load if it differs.
//!
//! Entity history comes from [`crate::operators::alert::history::EntityHistory`] and counts
//! only alerts seen *before* this one, so a row never sees its own label's future.
//! Prevalences (how common a rule or technique was in training) are learned at training
//! time and stored in the manifest; a rule or technique never seen in training has
//! prevalence 0.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::events::{AlertEvent, ALERT_SEVERITIES};
use crate::operators::alert::attack::catalogue;
use crate::operators::alert::history::HistoryFacts;
use crate::operators::alert::intel::IntelMatches;

/// SIEM sources with their own column; anything else is `source_other`.
pub const SOURCES: [&str; 4] = ["splunk", "elastic", "sentinel", "qradar"];

/// A documented feature column.
#[derive(Debug, Clone, Copy)]
pub struct FeatureDoc {
    /// Column name.
    pub name: &'static str,
    /// What it measures.
    pub doc: &'static str,
}

/// The columns besides the 14 tactic columns (`tactic_TA0043` … `tactic_TA0040`, 1 when the
/// alert maps to that tactic), which follow `severity_level` and the source columns.
pub const FEATURES: [FeatureDoc; 29] = [
    FeatureDoc { name: "severity_level", doc: "SIEM severity: informational 0, low 1, medium 2, high 3, critical 4; unknown → missing" },
    FeatureDoc { name: "source_splunk", doc: "1 if raised by Splunk" },
    FeatureDoc { name: "source_elastic", doc: "1 if raised by Elastic" },
    FeatureDoc { name: "source_sentinel", doc: "1 if raised by Microsoft Sentinel" },
    FeatureDoc { name: "source_qradar", doc: "1 if raised by QRadar" },
    FeatureDoc { name: "source_other", doc: "1 if raised by any other SIEM" },
    FeatureDoc { name: "kill_chain_stage", doc: "latest tactic's position in the ATT&CK matrix, 0 (reconnaissance) … 13 (impact); missing without tactics" },
    FeatureDoc { name: "technique_count", doc: "ATT&CK techniques the rule maps to" },
    FeatureDoc { name: "technique_prevalence", doc: "mean share of training alerts carrying each of the alert's techniques (0 if unseen)" },
    FeatureDoc { name: "rule_prevalence", doc: "share of training alerts raised by this rule id (0 if unseen): noisy rules are common" },
    FeatureDoc { name: "hour_of_day", doc: "UTC hour of last_seen" },
    FeatureDoc { name: "weekday", doc: "day of week of last_seen, Monday 0 … Sunday 6 (UTC)" },
    FeatureDoc { name: "off_hours", doc: "1 outside the manifest's business hours (UTC) or at weekends" },
    FeatureDoc { name: "duration_minutes_log", doc: "ln(1 + minutes between first_seen and last_seen)" },
    FeatureDoc { name: "event_count_log", doc: "ln(1 + raw events aggregated)" },
    FeatureDoc { name: "events_per_minute", doc: "event_count / max(1, duration in minutes)" },
    FeatureDoc { name: "ioc_count", doc: "indicators of compromise matched" },
    FeatureDoc { name: "asset_count", doc: "assets affected" },
    FeatureDoc { name: "asset_criticality", doc: "highest criticality of the affected assets, 0–1" },
    FeatureDoc { name: "user_count", doc: "user accounts involved" },
    FeatureDoc { name: "host_count", doc: "hosts involved" },
    FeatureDoc { name: "public_network_count", doc: "distinct /16 networks among the alert's public (non-private, non-loopback) IPv4 addresses" },
    FeatureDoc { name: "entity_alerts_24h", doc: "most alerts seen for any of the alert's users or hosts in the 24 h before it (keyed state)" },
    FeatureDoc { name: "entity_alerts_15m", doc: "most alerts for any of its entities in the 15 min before it: bursts" },
    FeatureDoc { name: "entity_same_rule_24h", doc: "most alerts of the same rule for any of its entities in the prior 24 h: recurring benign triggers" },
    FeatureDoc { name: "entity_distinct_tactics_24h", doc: "most distinct tactics seen for any of its entities in the prior 24 h (this alert's included): kill-chain progression" },
    FeatureDoc { name: "entity_max_stage_24h", doc: "latest kill-chain stage seen for any of its entities in the prior 24 h; missing without history" },
    FeatureDoc { name: "intel_ip_hits", doc: "alert IPs inside a threat-intelligence indicator network (snapshot, configured files, intel topic)" },
    FeatureDoc { name: "intel_max_confidence", doc: "highest confidence (0–1) of the alert's threat-intelligence hits; 0 without one" },
];

/// Index of the first tactic column.
const TACTIC_OFFSET: usize = 6;

/// Column names in row order.
pub fn feature_names() -> Vec<String> {
    let tactics = catalogue()
        .tactics
        .iter()
        .map(|tactic| format!("tactic_{}", tactic.id));
    FEATURES[..TACTIC_OFFSET]
        .iter()
        .map(|feature| feature.name.to_owned())
        .chain(tactics)
        .chain(
            FEATURES[TACTIC_OFFSET..]
                .iter()
                .map(|feature| feature.name.to_owned()),
        )
        .collect()
}

/// Row width.
pub fn width() -> usize {
    FEATURES.len() + catalogue().tactics.len()
}

/// The docs of every column, for the manifest.
pub fn feature_docs() -> BTreeMap<String, String> {
    let mut docs: BTreeMap<String, String> = FEATURES
        .iter()
        .map(|feature| (feature.name.to_owned(), feature.doc.to_owned()))
        .collect();
    for tactic in &catalogue().tactics {
        docs.insert(
            format!("tactic_{}", tactic.id),
            format!("1 if the alert maps to {} ({})", tactic.name, tactic.id),
        );
    }
    docs
}

/// What training learned about the alert population, stored in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prevalence {
    /// Rule id → share of training alerts.
    pub rules: BTreeMap<String, f64>,
    /// Technique id → share of training alerts.
    pub techniques: BTreeMap<String, f64>,
}

impl Prevalence {
    /// Counts the shares over `alerts`.
    pub fn learn<'a>(alerts: impl Iterator<Item = &'a AlertEvent>) -> Self {
        let mut rules: BTreeMap<String, f64> = BTreeMap::new();
        let mut techniques: BTreeMap<String, f64> = BTreeMap::new();
        let mut total = 0.0;
        for alert in alerts {
            total += 1.0;
            *rules.entry(alert.rule_id.clone()).or_default() += 1.0;
            for technique in alert.techniques.iter().collect::<BTreeSet<_>>() {
                *techniques.entry(technique.clone()).or_default() += 1.0;
            }
        }
        if total > 0.0 {
            for share in rules.values_mut().chain(techniques.values_mut()) {
                *share /= total;
            }
        }
        Self { rules, techniques }
    }
}

/// Business hours, UTC, weekdays: `[start_hour, end_hour)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// First business hour.
    pub start_hour: u32,
    /// First hour after business.
    pub end_hour: u32,
}

impl Default for BusinessHours {
    fn default() -> Self {
        Self {
            start_hour: 8,
            end_hour: 18,
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

impl BusinessHours {
    /// UTC hour, Monday-based weekday and whether `time_ms` is off hours.
    pub fn classify(&self, time_ms: i64) -> (u32, u32, bool) {
        let hour = u32::try_from((time_ms / HOUR_MS).rem_euclid(24)).unwrap_or(0);
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        let weekday = u32::try_from((time_ms.div_euclid(DAY_MS) + 3).rem_euclid(7)).unwrap_or(0);
        let off = weekday >= 5 || hour < self.start_hour || hour >= self.end_hour;
        (hour, weekday, off)
    }
}

/// Severity name → level; unknown names are `None` (a missing value, not an error).
pub fn severity_level(severity: &str) -> Option<usize> {
    let lower = severity.trim().to_ascii_lowercase();
    ALERT_SEVERITIES
        .iter()
        .position(|known| *known == lower)
        .or(match lower.as_str() {
            "info" => Some(0),
            "moderate" => Some(2),
            "severe" => Some(3),
            _ => None,
        })
}

/// Kill-chain stage of the latest tactic of `tactics`.
pub fn kill_chain_stage(tactics: &[String]) -> Option<usize> {
    let catalogue = catalogue();
    tactics
        .iter()
        .filter_map(|tactic| catalogue.tactic_stage(tactic.trim()))
        .max()
}

/// Distinct /16 networks among the public IPv4 addresses of `ips`; unparsable entries are
/// ignored (IPv6 and host names are not networks this feature can compare).
pub fn public_network_count(ips: &[String]) -> usize {
    ips.iter()
        .filter_map(|ip| ip.trim().parse::<std::net::Ipv4Addr>().ok())
        .filter(|ip| {
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast())
        })
        .map(|ip| {
            let octets = ip.octets();
            (octets[0], octets[1])
        })
        .collect::<BTreeSet<_>>()
        .len()
}

/// Encodes alerts into rows.
#[derive(Debug, Clone)]
pub struct FeatureEncoder {
    prevalence: Prevalence,
    hours: BusinessHours,
}

impl FeatureEncoder {
    /// An encoder with the learned prevalences and the business hours.
    pub fn new(prevalence: Prevalence, hours: BusinessHours) -> Self {
        Self { prevalence, hours }
    }

    /// Appends the row of `alert` to `row`, given its prior entity history and what the
    /// threat-intelligence stage matched.
    pub fn encode_into(
        &self,
        alert: &AlertEvent,
        history: &HistoryFacts,
        intel: &IntelMatches,
        row: &mut Vec<f64>,
    ) {
        let start = row.len();
        let count = |value: usize| value as f64;
        row.push(severity_level(&alert.severity).map_or(f64::NAN, count));
        let source = alert.siem_source.trim().to_ascii_lowercase();
        let known_source = SOURCES.iter().position(|name| *name == source);
        for index in 0..SOURCES.len() {
            row.push(f64::from(u8::from(known_source == Some(index))));
        }
        row.push(f64::from(u8::from(known_source.is_none())));
        let catalogue = catalogue();
        for tactic in &catalogue.tactics {
            let present = alert.tactics.iter().any(|t| t.trim() == tactic.id);
            row.push(f64::from(u8::from(present)));
        }
        row.push(kill_chain_stage(&alert.tactics).map_or(f64::NAN, count));
        row.push(count(alert.techniques.len()));
        let technique_shares: Vec<f64> = alert
            .techniques
            .iter()
            .map(|t| self.prevalence.techniques.get(t).copied().unwrap_or(0.0))
            .collect();
        row.push(if technique_shares.is_empty() {
            0.0
        } else {
            technique_shares.iter().sum::<f64>() / technique_shares.len() as f64
        });
        row.push(
            self.prevalence
                .rules
                .get(&alert.rule_id)
                .copied()
                .unwrap_or(0.0),
        );
        let (hour, weekday, off_hours) = self.hours.classify(alert.last_seen_ms);
        row.push(f64::from(hour));
        row.push(f64::from(weekday));
        row.push(f64::from(u8::from(off_hours)));
        let minutes = (alert.last_seen_ms - alert.first_seen_ms).max(0) as f64 / 60_000.0;
        row.push(minutes.ln_1p());
        let events = f64::from(alert.event_count.max(0));
        row.push(events.ln_1p());
        row.push(events / minutes.max(1.0));
        row.push(f64::from(alert.ioc_count.max(0)));
        row.push(f64::from(alert.asset_count.max(0)));
        row.push(alert.asset_criticality);
        row.push(count(alert.users.len()));
        row.push(count(alert.hosts.len()));
        row.push(count(public_network_count(&alert.ips)));
        row.push(f64::from(history.alerts_24h));
        row.push(f64::from(history.alerts_15m));
        row.push(f64::from(history.same_rule_24h));
        row.push(f64::from(history.distinct_tactics_24h));
        row.push(history.max_stage_24h.map_or(f64::NAN, count));
        row.push(count(intel.ip_hits));
        row.push(intel.max_confidence);
        debug_assert_eq!(row.len() - start, width());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> AlertEvent {
        AlertEvent {
            event_id: None,
            alert_id: "a-1".to_owned(),
            severity: "High".to_owned(),
            siem_source: "Sentinel".to_owned(),
            rule_id: "SEN-0001".to_owned(),
            rule_name: String::new(),
            tactics: vec!["TA0006".to_owned(), "TA0001".to_owned()],
            techniques: vec!["T1110".to_owned()],
            users: vec!["ana.chen".to_owned()],
            hosts: vec!["dc-001".to_owned()],
            ips: vec![
                "10.0.0.1".to_owned(),
                "81.2.3.4".to_owned(),
                "81.2.9.9".to_owned(),
                "52.1.1.1".to_owned(),
                "not-an-ip".to_owned(),
            ],
            ioc_count: 2,
            asset_count: 1,
            asset_criticality: 0.9,
            event_count: 30,
            first_seen_ms: 1_788_220_800_000 + 19 * HOUR_MS,
            last_seen_ms: 1_788_220_800_000 + 19 * HOUR_MS + 10 * 60_000,
        }
    }

    #[test]
    fn names_docs_and_rows_line_up() {
        let names = feature_names();
        assert_eq!(names.len(), width());
        assert_eq!(feature_docs().len(), width());
        assert_eq!(names[TACTIC_OFFSET], "tactic_TA0043");
        let encoder = FeatureEncoder::new(Prevalence::default(), BusinessHours::default());
        let mut row = Vec::new();
        encoder.encode_into(
            &alert(),
            &HistoryFacts::default(),
            &IntelMatches::default(),
            &mut row,
        );
        assert_eq!(row.len(), width());
        let value = |name: &str| row[names.iter().position(|n| n == name).unwrap_or(0)];
        assert_eq!(value("severity_level"), 3.0);
        assert_eq!(value("source_sentinel"), 1.0);
        assert_eq!(value("source_other"), 0.0);
        assert_eq!(value("tactic_TA0006"), 1.0);
        assert_eq!(value("tactic_TA0002"), 0.0);
        assert_eq!(value("kill_chain_stage"), 7.0);
        assert_eq!(value("hour_of_day"), 19.0);
        assert_eq!(value("weekday"), 1.0);
        assert_eq!(value("off_hours"), 1.0);
        assert_eq!(value("events_per_minute"), 3.0);
        assert_eq!(value("public_network_count"), 2.0);
        assert_eq!(value("rule_prevalence"), 0.0);
        assert!(value("entity_max_stage_24h").is_nan());
        assert_eq!(
            (value("intel_ip_hits"), value("intel_max_confidence")),
            (0.0, 0.0)
        );
        // What the intel stage matched is the last two columns.
        let hits = IntelMatches {
            ip_hits: 2,
            host_hits: 1,
            max_confidence: 0.85,
            hits: Vec::new(),
        };
        let mut with_intel = Vec::new();
        encoder.encode_into(&alert(), &HistoryFacts::default(), &hits, &mut with_intel);
        let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&with_intel[..width() - 2]), bits(&row[..width() - 2]));
        assert_eq!(&with_intel[width() - 2..], [2.0, 0.85]);
    }

    #[test]
    fn unknown_values_become_missing_or_other_never_errors() {
        let mut odd = alert();
        odd.severity = "urgent!".to_owned();
        odd.siem_source = "homegrown".to_owned();
        odd.tactics = vec!["TA9999".to_owned()];
        let encoder = FeatureEncoder::new(Prevalence::default(), BusinessHours::default());
        let mut row = Vec::new();
        encoder.encode_into(
            &odd,
            &HistoryFacts::default(),
            &IntelMatches::default(),
            &mut row,
        );
        assert!(row[0].is_nan());
        assert_eq!(row[5], 1.0);
        assert!(row[TACTIC_OFFSET..TACTIC_OFFSET + 14]
            .iter()
            .all(|&v| v == 0.0));
        assert_eq!(severity_level(" CRITICAL "), Some(4));
        assert_eq!(severity_level("info"), Some(0));
    }

    #[test]
    fn prevalence_counts_shares_once_per_alert() {
        let mut second = alert();
        second.rule_id = "SPL-0002".to_owned();
        second.techniques = vec!["T1110".to_owned(), "T1110".to_owned()];
        let alerts = [alert(), second];
        let prevalence = Prevalence::learn(alerts.iter());
        assert_eq!(prevalence.rules["SEN-0001"], 0.5);
        assert_eq!(prevalence.techniques["T1110"], 1.0);
    }
}
