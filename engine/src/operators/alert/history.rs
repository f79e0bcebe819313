//! Keyed entity history for alerts: per user and per host, the alerts of the last 24 h
//! (event time), from which the entity features and per-entity behaviour scores come.
//!
//! Keys are `user:<name>` and `host:<name>`, lower-cased and trimmed. Each entity keeps a
//! time-ordered queue of compact sightings (time, rule hash, tactic bitmask, kill-chain stage,
//! final risk); an out-of-order alert is inserted at its place. Entries older than the
//! window behind the entity's newest sighting are dropped on every insert, and
//! [`EntityHistory::expire`] removes entities idle for a window behind the watermark (the
//! newest event time seen), so memory follows the active entities, not the stream's length.
//! An entity keeps at most [`MAX_SIGHTINGS`] sightings (the oldest go first), so one noisy
//! scanner cannot grow without bound.
//!
//! Scope: one history per input partition — the pipeline's keyed partition state
//! ([`crate::runtime::PartitionState`]): checkpointed to the binding's changelog, restored
//! where the partition goes, dropped on revoke. Each entity records the input offset after
//! the last alert it folded, so a re-delivered alert is scored again but not recorded twice.
//! Key the alerts topic by entity (or repartition) for exact per-entity counts across pods.
//! The partition's incident groups ([`crate::operators::alert::incidents`]) live in the same
//! state, as `incident:<id>` entries.

use std::any::Any;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::operators::alert::incidents::{IncidentBook, INCIDENT_PREFIX};
use crate::runtime::{PartitionState, StateChange};

use crate::events::AlertEvent;
use crate::operators::alert::attack::catalogue;
use crate::operators::alert::features::kill_chain_stage;

/// Sightings kept per entity at most.
pub const MAX_SIGHTINGS: usize = 4096;

/// The window of the 24 h features.
pub const WINDOW_MS: i64 = 24 * 3_600_000;
/// The window of the burst feature.
pub const BURST_MS: i64 = 15 * 60_000;

/// What the history says about an alert's entities before it (also the context a verdict's
/// alert carries into the training buffer, see [`crate::learning::ContextBuilder`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryFacts {
    /// Most alerts for one of its entities in the prior 24 h.
    pub alerts_24h: u32,
    /// Most alerts for one of its entities in the prior 15 min.
    pub alerts_15m: u32,
    /// Most alerts of the same rule for one of its entities in the prior 24 h.
    pub same_rule_24h: u32,
    /// Most distinct tactics for one of its entities in the prior 24 h plus this alert.
    pub distinct_tactics_24h: u32,
    /// Latest kill-chain stage for one of its entities in the prior 24 h.
    pub max_stage_24h: Option<usize>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Sighting {
    time_ms: i64,
    rule: u64,
    tactics: u16,
    stage: Option<u8>,
    risk: f64,
}

/// Behaviour summary of one entity after an alert, for the per-entity output.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySummary {
    /// `user:<name>` or `host:<name>`.
    pub key: String,
    /// Alerts in the window.
    pub alerts_24h: usize,
    /// Highest final risk in the window, 0–100.
    pub max_risk_24h: f64,
    /// Mean final risk in the window, 0–100.
    pub mean_risk_24h: f64,
}

/// The history; see the module doc.
#[derive(Debug, Default)]
pub struct EntityHistory {
    entities: HashMap<String, VecDeque<Sighting>>,
    /// Last behaviour score published per entity (the operator's change detection).
    published: HashMap<String, f64>,
    /// Per entity, the input offset after the last alert recorded for it.
    next_offsets: HashMap<String, i64>,
    watermark_ms: i64,
    /// Entities changed or removed since the last checkpoint.
    changed: HashSet<String>,
    watermark_changed: bool,
    /// The partition's correlation groups.
    pub incidents: IncidentBook,
}

/// The changelog key of the partition-wide facts (entity keys always hold a `:`).
pub const META_KEY: &str = "@partition";

/// One entity as written to the changelog.
#[derive(Debug, Serialize, Deserialize)]
struct EntityEntry {
    sightings: VecDeque<Sighting>,
    published: Option<f64>,
    next_offset: i64,
}

/// The partition-wide facts as written to the changelog.
#[derive(Debug, Serialize, Deserialize)]
struct MetaEntry {
    watermark_ms: i64,
}

fn rule_hash(rule_id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    rule_id.hash(&mut hasher);
    hasher.finish()
}

fn tactic_mask(tactics: &[String]) -> u16 {
    let catalogue = catalogue();
    tactics
        .iter()
        .filter_map(|tactic| catalogue.tactic_stage(tactic.trim()))
        .fold(0, |mask, stage| mask | (1 << stage))
}

/// The entity keys of an alert.
pub fn entity_keys(alert: &AlertEvent) -> Vec<String> {
    let mut keys: Vec<String> = alert
        .users
        .iter()
        .map(|user| format!("user:{}", user.trim().to_lowercase()))
        .chain(
            alert
                .hosts
                .iter()
                .map(|host| format!("host:{}", host.trim().to_lowercase())),
        )
        .filter(|key| !key.ends_with(':'))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl EntityHistory {
    /// Facts about `alert`'s entities from sightings strictly before its `last_seen_ms`.
    pub fn facts(&self, alert: &AlertEvent) -> HistoryFacts {
        let time_ms = alert.last_seen_ms;
        let rule = rule_hash(&alert.rule_id);
        let own_tactics = tactic_mask(&alert.tactics);
        let mut facts = HistoryFacts {
            distinct_tactics_24h: own_tactics.count_ones(),
            ..HistoryFacts::default()
        };
        for key in entity_keys(alert) {
            let Some(sightings) = self.entities.get(&key) else {
                continue;
            };
            let (mut day, mut burst, mut same_rule, mut tactics) = (0, 0, 0, own_tactics);
            for sighting in sightings
                .iter()
                .filter(|s| s.time_ms < time_ms && s.time_ms >= time_ms - WINDOW_MS)
            {
                day += 1;
                burst += u32::from(sighting.time_ms >= time_ms - BURST_MS);
                same_rule += u32::from(sighting.rule == rule);
                tactics |= sighting.tactics;
                if let Some(stage) = sighting.stage {
                    let stage = usize::from(stage);
                    facts.max_stage_24h = Some(facts.max_stage_24h.map_or(stage, |s| s.max(stage)));
                }
            }
            facts.alerts_24h = facts.alerts_24h.max(day);
            facts.alerts_15m = facts.alerts_15m.max(burst);
            facts.same_rule_24h = facts.same_rule_24h.max(same_rule);
            facts.distinct_tactics_24h = facts.distinct_tactics_24h.max(tactics.count_ones());
        }
        facts
    }

    /// Records `alert` with its final risk (offline: no input offsets).
    pub fn record(&mut self, alert: &AlertEvent, risk: f64) {
        self.record_at(alert, risk, -1);
    }

    /// Records `alert`, read at input `offset`, with its final risk, in every entity that
    /// does not reflect that offset yet (all of them, for a negative offset).
    pub fn record_at(&mut self, alert: &AlertEvent, risk: f64, offset: i64) {
        let sighting = Sighting {
            time_ms: alert.last_seen_ms,
            rule: rule_hash(&alert.rule_id),
            tactics: tactic_mask(&alert.tactics),
            stage: kill_chain_stage(&alert.tactics).and_then(|s| u8::try_from(s).ok()),
            risk,
        };
        if alert.last_seen_ms > self.watermark_ms {
            self.watermark_ms = alert.last_seen_ms;
            self.watermark_changed = true;
        }
        for key in entity_keys(alert) {
            if offset >= 0 {
                let next = self.next_offsets.entry(key.clone()).or_insert(0);
                if offset < *next {
                    continue;
                }
                *next = offset + 1;
            }
            self.changed.insert(key.clone());
            let sightings = self.entities.entry(key).or_default();
            let position = sightings.partition_point(|s| s.time_ms <= sighting.time_ms);
            sightings.insert(position, sighting);
            let newest = sightings.back().map_or(sighting.time_ms, |s| s.time_ms);
            while sightings
                .front()
                .is_some_and(|s| s.time_ms < newest - WINDOW_MS)
                || sightings.len() > MAX_SIGHTINGS
            {
                sightings.pop_front();
            }
        }
    }

    /// Each of `alert`'s entities' behaviour over the window ending at the alert (computed
    /// only when asked: the per-entity output needs it, scoring does not).
    pub fn summaries(&self, alert: &AlertEvent) -> Vec<EntitySummary> {
        entity_keys(alert)
            .into_iter()
            .map(|key| {
                let risks: Vec<f64> = self
                    .entities
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter(|s| s.time_ms > alert.last_seen_ms - WINDOW_MS)
                    .map(|s| s.risk)
                    .collect();
                EntitySummary {
                    key,
                    alerts_24h: risks.len(),
                    max_risk_24h: risks.iter().copied().fold(0.0, f64::max),
                    mean_risk_24h: risks.iter().sum::<f64>() / risks.len().max(1) as f64,
                }
            })
            .collect()
    }

    /// The newest event time seen, ms.
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    /// Drops entities whose newest sighting is a window behind the watermark; returns how
    /// many were dropped.
    pub fn expire(&mut self) -> usize {
        let before = self.entities.len();
        let horizon = self.watermark_ms - WINDOW_MS;
        let changed = &mut self.changed;
        self.entities.retain(|key, sightings| {
            let keep = sightings.back().is_some_and(|s| s.time_ms >= horizon);
            if !keep {
                changed.insert(key.clone());
            }
            keep
        });
        let entities = &self.entities;
        self.published.retain(|key, _| entities.contains_key(key));
        self.next_offsets
            .retain(|key, _| entities.contains_key(key));
        before - self.entities.len()
    }

    /// The behaviour score last published for `key`, if any.
    pub fn published(&self, key: &str) -> Option<f64> {
        self.published.get(key).copied()
    }

    /// Remembers that `score` was published for `key`.
    pub fn mark_published(&mut self, key: &str, score: f64) {
        self.published.insert(key.to_owned(), score);
        self.changed.insert(key.to_owned());
    }

    fn entry(&self, key: &str) -> Option<Vec<u8>> {
        let sightings = self.entities.get(key)?;
        serde_json::to_vec(&EntityEntry {
            sightings: sightings.clone(),
            published: self.published.get(key).copied(),
            next_offset: self.next_offsets.get(key).copied().unwrap_or(0),
        })
        .ok()
    }

    fn meta(&self) -> Vec<u8> {
        serde_json::to_vec(&MetaEntry {
            watermark_ms: self.watermark_ms,
        })
        .unwrap_or_default()
    }

    /// Entities held.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Whether no entity is held.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }
}

impl PartitionState for EntityHistory {
    fn take_changes(&mut self) -> Vec<StateChange> {
        let mut changes: Vec<StateChange> = std::mem::take(&mut self.changed)
            .into_iter()
            .map(|key| {
                let value = self.entry(&key);
                (key, value)
            })
            .collect();
        if std::mem::take(&mut self.watermark_changed) {
            changes.push((META_KEY.to_owned(), Some(self.meta())));
        }
        for id in std::mem::take(&mut self.incidents.changed) {
            let value = self.incidents.entry(&id);
            changes.push((format!("{INCIDENT_PREFIX}{id}"), value));
        }
        changes
    }

    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries: Vec<(String, Vec<u8>)> = self
            .entities
            .keys()
            .filter_map(|key| Some((key.clone(), self.entry(key)?)))
            .collect();
        entries.push((META_KEY.to_owned(), self.meta()));
        entries.extend(self.incidents.entries());
        entries
    }

    fn restore_entry(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), String> {
        if let Some(id) = key.strip_prefix(INCIDENT_PREFIX) {
            return self.incidents.restore(id, value);
        }
        let Some(value) = value else {
            self.entities.remove(key);
            self.published.remove(key);
            self.next_offsets.remove(key);
            return Ok(());
        };
        if key == META_KEY {
            let meta: MetaEntry = serde_json::from_slice(value).map_err(|e| e.to_string())?;
            self.watermark_ms = self.watermark_ms.max(meta.watermark_ms);
            return Ok(());
        }
        let entry: EntityEntry = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        if let Some(newest) = entry.sightings.back() {
            self.watermark_ms = self.watermark_ms.max(newest.time_ms);
        }
        match entry.published {
            Some(published) => self.published.insert(key.to_owned(), published),
            None => self.published.remove(key),
        };
        self.next_offsets.insert(key.to_owned(), entry.next_offset);
        self.entities.insert(key.to_owned(), entry.sightings);
        Ok(())
    }

    fn entities(&self) -> usize {
        self.entities.len()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(user: &str, host: &str, rule: &str, tactic: &str, time_ms: i64) -> AlertEvent {
        AlertEvent {
            event_id: None,
            alert_id: "x".to_owned(),
            severity: "low".to_owned(),
            siem_source: "splunk".to_owned(),
            rule_id: rule.to_owned(),
            rule_name: String::new(),
            tactics: vec![tactic.to_owned()],
            techniques: Vec::new(),
            users: vec![user.to_owned()],
            hosts: vec![host.to_owned()],
            ips: Vec::new(),
            ioc_count: 0,
            asset_count: 1,
            asset_criticality: 0.1,
            event_count: 1,
            first_seen_ms: time_ms,
            last_seen_ms: time_ms,
        }
    }

    const MINUTE: i64 = 60_000;

    #[test]
    fn counts_prior_alerts_per_entity_in_the_windows() {
        let mut history = EntityHistory::default();
        let start = 1_000 * WINDOW_MS;
        history.record(&alert("Ana", "ws-1", "R1", "TA0007", start), 10.0);
        history.record(
            &alert("ana", "ws-2", "R1", "TA0006", start + 60 * MINUTE),
            50.0,
        );
        history.record(
            &alert("bob", "ws-1", "R2", "TA0008", start + 110 * MINUTE),
            30.0,
        );
        let probe = alert(" ANA ", "ws-9", "R1", "TA0010", start + 120 * MINUTE);
        let facts = history.facts(&probe);
        assert_eq!(facts.alerts_24h, 2);
        assert_eq!(facts.alerts_15m, 0);
        assert_eq!(facts.same_rule_24h, 2);
        // TA0007, TA0006 before, TA0010 now.
        assert_eq!(facts.distinct_tactics_24h, 3);
        assert_eq!(facts.max_stage_24h, Some(8));
        let host_probe = alert("carl", "ws-1", "R3", "TA0002", start + 115 * MINUTE);
        let host_facts = history.facts(&host_probe);
        assert_eq!(host_facts.alerts_24h, 2);
        assert_eq!(host_facts.alerts_15m, 1);
        // A day later nothing is in the window.
        let later = alert(
            "ana",
            "ws-2",
            "R1",
            "TA0007",
            start + WINDOW_MS + 61 * MINUTE,
        );
        assert_eq!(history.facts(&later).alerts_24h, 0);
    }

    #[test]
    fn out_of_order_alerts_are_placed_by_event_time_and_idle_entities_expire() {
        let mut history = EntityHistory::default();
        let start = 1_000 * WINDOW_MS;
        history.record(
            &alert("ana", "h", "R1", "TA0007", start + 30 * MINUTE),
            10.0,
        );
        let earlier = alert("ana", "h", "R1", "TA0007", start);
        history.record(&earlier, 80.0);
        let summaries = history.summaries(&earlier);
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[1].key, "user:ana");
        assert_eq!(summaries[1].alerts_24h, 2);
        assert_eq!(summaries[1].max_risk_24h, 80.0);
        assert_eq!(summaries[1].mean_risk_24h, 45.0);
        // Only the earlier alert precedes a probe between them.
        let probe = alert("ana", "h", "R1", "TA0007", start + 10 * MINUTE);
        assert_eq!(history.facts(&probe).alerts_24h, 1);
        history.record(
            &alert("zed", "z", "R1", "TA0007", start + 3 * WINDOW_MS),
            1.0,
        );
        assert_eq!(history.len(), 4);
        assert_eq!(history.expire(), 2);
        assert_eq!(history.len(), 2);
    }

    #[test]
    fn one_entity_is_bounded() {
        let mut history = EntityHistory::default();
        for index in 0..(MAX_SIGHTINGS as i64 + 100) {
            history.record(&alert("scanner", "", "R", "TA0007", index), 1.0);
        }
        let facts = history.facts(&alert("scanner", "", "R", "TA0007", 1_000_000));
        assert_eq!(facts.alerts_24h as usize, MAX_SIGHTINGS);
    }
}
