//! Alert correlation into incidents: alerts that share an entity (a user or a host) within a
//! window are one group; a group that progresses along the ATT&CK kill chain — alerts of at
//! least `incident_min_tactics` distinct tactics — is an incident, published on the incidents
//! topic and updated (same id) as alerts join.
//!
//! - Entities: the alert's users and hosts and, by default, its IP addresses (`ip:<addr>`;
//!   loopback and unspecified addresses excepted) — `incident_entities` picks the kinds.
//! - Joining: an alert of final risk below `incident_min_risk` is not correlated; one at or
//!   above it joins the most recently active open group that holds one of its
//!   entities and whose last alert is at most `incident_window_ms` before it (event time);
//!   otherwise it opens a group. Its entities then point at that group.
//! - No merging: an alert that bridges two open groups joins the newer one; the groups stay
//!   apart. Merging them was measured on the validation stream and chained the intrusions of
//!   a shared server into one group of 266 alerts from 53 intrusions.
//! - Risk: `100 · (1 − (1 − m/100) · (1 − 0.8 · p))` with `m` the highest member risk and
//!   `p = min(1, (tactics − 1) / 3)` the kill-chain progression: it grows with both and
//!   stays in 0–100.
//! - Bounds: a group keeps its first `incident_max_alerts` members (later ones are counted);
//!   groups idle for `incident_window_ms` of event time are closed and dropped.
//! - State: groups are entries `incident:<id>` of the alert operator's partition state (so
//!   they follow the partition, restored from the changelog); a re-delivered alert (same
//!   event id) changes nothing.
//!
//! Correlation sees one partition: key alerts by the entity you correlate on (the user, or
//! the asset's owner), or give a tenant's alerts one partition.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::events::AlertEvent;
use crate::operators::alert::attack::catalogue;
use crate::operators::SourcedEvent;
use crate::scored::{Contribution, Scored};

/// Changelog key prefix of incident entries.
pub const INCIDENT_PREFIX: &str = "incident:";

/// Correlation settings (from `[operators.alert]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrelationSettings {
    /// Most event time between a group's last alert and a joining one, ms.
    pub window_ms: i64,
    /// Members kept per group.
    pub max_alerts: usize,
    /// Distinct tactics that make a group an incident.
    pub min_tactics: usize,
    /// Alerts below this final risk are not correlated (noise would chain unrelated
    /// activity of busy users and hosts into false incidents).
    pub min_risk: f64,
    /// Entity kinds that join alerts.
    pub entities: EntityKinds,
}

/// Entity kinds correlation joins alerts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityKinds {
    /// User accounts (`user:`).
    pub users: bool,
    /// Hosts (`host:`).
    pub hosts: bool,
    /// IP addresses (`ip:`).
    pub ips: bool,
}

impl EntityKinds {
    /// Every kind.
    pub const ALL: Self = Self {
        users: true,
        hosts: true,
        ips: true,
    };

    /// The kinds named in `names` (`user`, `host`, `ip`); an unknown name is an error.
    pub fn parse(names: &[String]) -> Result<Self, String> {
        let mut kinds = Self {
            users: false,
            hosts: false,
            ips: false,
        };
        for name in names {
            match name.trim() {
                "user" => kinds.users = true,
                "host" => kinds.hosts = true,
                "ip" => kinds.ips = true,
                other => return Err(format!("unknown entity kind {other:?} (user, host, ip)")),
            }
        }
        Ok(kinds)
    }
}

/// The keys correlation joins `alert` on: its entity keys (`user:`, `host:`, from
/// [`crate::operators::alert::history::entity_keys`]) of the kinds in `kinds`, and its IP
/// addresses as `ip:<addr>` when `kinds.ips` (loopback and unspecified ones excepted: they
/// name no machine).
pub fn correlation_keys(
    alert: &AlertEvent,
    entity_keys: &[String],
    kinds: EntityKinds,
) -> Vec<String> {
    let mut keys: Vec<String> = entity_keys
        .iter()
        .filter(|key| {
            (kinds.users && key.starts_with("user:")) || (kinds.hosts && key.starts_with("host:"))
        })
        .cloned()
        .collect();
    if kinds.ips {
        keys.extend(
            alert
                .ips
                .iter()
                .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
                .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
                .map(|ip| format!("ip:{ip}")),
        );
    }
    keys.sort();
    keys.dedup();
    keys
}

/// One member alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The SIEM's alert id.
    pub alert_id: String,
    /// threatflow's event id (stable per input record).
    pub event_id: String,
    /// Event time (last_seen_ms), ms.
    pub time_ms: i64,
    /// Final risk, 0–100.
    pub risk: f64,
}

/// A tactic's first appearance in a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TacticStep {
    /// `TA0001` ...
    pub tactic: String,
    /// Kill-chain stage (0 reconnaissance … 13 impact).
    pub stage: usize,
    /// First alert time with it, ms.
    pub first_ms: i64,
}

/// A group of correlated alerts (an incident once it progressed far enough).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id: `inc-` and the first member's event id.
    pub id: String,
    /// First member's time, ms.
    pub first_seen_ms: i64,
    /// Latest member's time, ms.
    pub last_seen_ms: i64,
    /// Entity keys of its members.
    pub entities: BTreeSet<String>,
    /// Kept members, in arrival order.
    pub members: Vec<Member>,
    /// Members seen, kept or not.
    pub alert_count: usize,
    /// Tactics in order of first appearance.
    pub tactics: Vec<TacticStep>,
    /// Highest member risk.
    pub max_member_risk: f64,
}

impl Incident {
    /// Kill-chain progression, 0–1.
    pub fn progression(&self) -> f64 {
        ((self.tactics.len() as f64 - 1.0) / 3.0).clamp(0.0, 1.0)
    }

    /// Incident risk, 0–100 (see the module doc).
    pub fn risk(&self) -> f64 {
        let member = (self.max_member_risk / 100.0).clamp(0.0, 1.0);
        100.0 * (1.0 - (1.0 - member) * (1.0 - 0.8 * self.progression()))
    }

    /// Whether it is an incident under `settings`.
    pub fn declared(&self, settings: &CorrelationSettings) -> bool {
        self.tactics.len() >= settings.min_tactics
    }

    /// "initial access → execution → lateral movement within 40 min, 3 entities" — tactic
    /// names and counts only, so it is safe in scores-only mode (the `entities` label names
    /// them, and is pseudonymised there).
    pub fn narrative(&self) -> String {
        let names: Vec<String> = self
            .tactics
            .iter()
            .map(|step| {
                catalogue()
                    .tactics
                    .get(step.stage)
                    .map_or(step.tactic.clone(), |tactic| tactic.name.to_lowercase())
            })
            .collect();
        let minutes = (self.last_seen_ms - self.first_seen_ms).max(0) / 60_000;
        format!(
            "{} within {minutes} min, {} entities, {} alerts",
            names.join(" → "),
            self.entities.len(),
            self.alert_count
        )
    }
}

/// What observing one alert did: the group it joined (or opened), to publish when declared.
/// The group itself stays in the book ([`IncidentBook::get`]): scoring does not copy it.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The group's id.
    pub id: String,
    /// Whether it is an incident (enough tactics).
    pub declared: bool,
    /// Whether this alert changed it (false for a re-delivered alert).
    pub changed: bool,
    /// Whether this alert made it an incident (its first publication; later ones are
    /// updates).
    pub first_declared: bool,
}

/// The open correlation group of an alert's entities as it was before the alert: rule facts
/// (`group_alerts` — its kept members before the alert —, `group_tactics`,
/// `group_is_incident`), so a rule can raise an alert that continues an incident.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupFacts {
    /// Alerts in the group.
    pub alerts: usize,
    /// Its distinct tactics.
    pub tactics: usize,
    /// Whether it is already an incident.
    pub incident: bool,
}

/// The groups of one partition.
#[derive(Debug, Default)]
pub struct IncidentBook {
    incidents: HashMap<String, Incident>,
    by_entity: HashMap<String, String>,
    /// Ids changed or removed since the last checkpoint.
    pub(crate) changed: HashSet<String>,
}

impl IncidentBook {
    /// Records `alert` (entities `entities`, final `risk`, id `event_id`); returns its group.
    pub fn observe(
        &mut self,
        alert: &AlertEvent,
        entities: &[String],
        event_id: &str,
        risk: f64,
        settings: &CorrelationSettings,
    ) -> Option<Joined> {
        if entities.is_empty() || risk < settings.min_risk {
            return None;
        }
        let time = alert.last_seen_ms;
        let open = self
            .open_group(entities, time, settings)
            .map(|incident| incident.id.clone());
        let id = open.unwrap_or_else(|| format!("inc-{event_id}"));
        let incident = self
            .incidents
            .entry(id.clone())
            .or_insert_with(|| Incident {
                id: id.clone(),
                first_seen_ms: time,
                last_seen_ms: time,
                entities: BTreeSet::new(),
                members: Vec::new(),
                alert_count: 0,
                tactics: Vec::new(),
                max_member_risk: 0.0,
            });
        let was_declared = incident.declared(settings);
        let changed = !incident
            .members
            .iter()
            .any(|member| member.event_id == event_id);
        if changed {
            incident.alert_count += 1;
            if incident.members.len() < settings.max_alerts {
                incident.members.push(Member {
                    alert_id: alert.alert_id.clone(),
                    event_id: event_id.to_owned(),
                    time_ms: time,
                    risk,
                });
            }
            incident.first_seen_ms = incident.first_seen_ms.min(time);
            incident.last_seen_ms = incident.last_seen_ms.max(time);
            incident.max_member_risk = incident.max_member_risk.max(risk);
            incident.entities.extend(entities.iter().cloned());
            for tactic in &alert.tactics {
                if incident.tactics.iter().any(|step| &step.tactic == tactic) {
                    continue;
                }
                if let Some(stage) = catalogue().tactic_stage(tactic) {
                    incident.tactics.push(TacticStep {
                        tactic: tactic.clone(),
                        stage,
                        first_ms: time,
                    });
                }
            }
            for entity in entities {
                self.by_entity.insert(entity.clone(), id.clone());
            }
            self.changed.insert(id.clone());
        }
        let declared = self.incidents[&id].declared(settings);
        Some(Joined {
            id,
            declared,
            changed,
            first_declared: declared && !was_declared,
        })
    }

    /// The group an alert of `entities` at `time_ms` joins: the most recently active open
    /// one holding one of them within the window.
    fn open_group(
        &self,
        entities: &[String],
        time_ms: i64,
        settings: &CorrelationSettings,
    ) -> Option<&Incident> {
        entities
            .iter()
            .filter_map(|entity| self.by_entity.get(entity))
            .filter_map(|id| self.incidents.get(id))
            .filter(|incident| time_ms - incident.last_seen_ms <= settings.window_ms)
            .max_by_key(|incident| incident.last_seen_ms)
    }

    /// What is known of the group an alert of `entities` at `time_ms` would join, from its
    /// members strictly before `time_ms` (event time, as the entity history's facts): the
    /// rule facts `group_*`, all zero without one. A re-delivered alert, already a member,
    /// therefore sees what it saw the first time, and scores the same.
    pub fn group_facts(
        &self,
        entities: &[String],
        time_ms: i64,
        settings: &CorrelationSettings,
    ) -> GroupFacts {
        self.open_group(entities, time_ms, settings)
            .map_or_else(GroupFacts::default, |group| {
                let tactics = group
                    .tactics
                    .iter()
                    .filter(|step| step.first_ms < time_ms)
                    .count();
                GroupFacts {
                    alerts: group
                        .members
                        .iter()
                        .filter(|member| member.time_ms < time_ms)
                        .count(),
                    tactics,
                    incident: tactics >= settings.min_tactics,
                }
            })
    }

    /// Open group `id`.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Closes groups idle for `window_ms` before `now_ms` (event time).
    pub fn expire(&mut self, now_ms: i64, window_ms: i64) {
        let idle: Vec<String> = self
            .incidents
            .values()
            .filter(|incident| now_ms - incident.last_seen_ms > window_ms)
            .map(|incident| incident.id.clone())
            .collect();
        for id in idle {
            self.incidents.remove(&id);
            self.by_entity.retain(|_, incident| *incident != id);
            self.changed.insert(id);
        }
    }

    /// Open groups.
    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    /// The changelog value of group `id` (`None`: closed).
    pub fn entry(&self, id: &str) -> Option<Vec<u8>> {
        self.incidents
            .get(id)
            .and_then(|incident| serde_json::to_vec(incident).ok())
    }

    /// Every open group as changelog entries.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        self.incidents
            .keys()
            .filter_map(|id| Some((format!("{INCIDENT_PREFIX}{id}"), self.entry(id)?)))
            .collect()
    }

    /// Applies a changelog entry for group `id`.
    pub fn restore(&mut self, id: &str, value: Option<&[u8]>) -> Result<(), String> {
        self.by_entity.retain(|_, incident| incident != id);
        match value {
            None => {
                self.incidents.remove(id);
            }
            Some(value) => {
                let incident: Incident =
                    serde_json::from_slice(value).map_err(|error| error.to_string())?;
                for entity in &incident.entities {
                    // The most recently active group wins an entity, as when it was live.
                    let newer = self
                        .by_entity
                        .get(entity)
                        .and_then(|other| self.incidents.get(other))
                        .is_none_or(|other| other.last_seen_ms <= incident.last_seen_ms);
                    if newer {
                        self.by_entity.insert(entity.clone(), id.to_owned());
                    }
                }
                self.incidents.insert(id.to_owned(), incident);
            }
        }
        Ok(())
    }
}

/// Most entities, members and member events an incident record lists (the first ones; the
/// totals are the `alerts` and `entities` scores).
pub const INCIDENT_LIST_LIMIT: usize = 25;

/// The incident record published on the incidents topic for `incident`, as the alert
/// `sourced` (its latest member) left it; `update` marks a re-publication (label
/// `incident_update`, an OCSF Update finding in OCSF output).
pub fn record(
    incident: &Incident,
    sourced: &SourcedEvent,
    model_version: &str,
    scored_at_ms: i64,
    update: bool,
) -> Scored {
    // Lists are capped: an incident is re-published as it grows, and a record naming every
    // member made each update cost its size (a 300-alert group spent a fifth of the alert
    // operator's time writing member lists). The counts are in `scores`.
    let join = |items: Vec<&str>| items.join(",");
    let first =
        |items: &mut dyn Iterator<Item = &str>| join(items.take(INCIDENT_LIST_LIMIT).collect());
    let mut explanation = vec![Contribution {
        name: "narrative".to_owned(),
        value: Some(incident.progression()),
        contribution: incident.risk(),
        detail: Some(incident.narrative()),
    }];
    explanation.extend(incident.tactics.iter().map(|step| Contribution {
        name: format!("tactic:{}", step.tactic),
        value: Some(step.stage as f64),
        contribution: 0.0,
        detail: Some(format!(
            "first seen {} min into the incident",
            (step.first_ms - incident.first_seen_ms).max(0) / 60_000
        )),
    }));
    Scored {
        event_id: incident.id.clone(),
        source: sourced.source.clone(),
        operator: "alert".to_owned(),
        model_version: model_version.to_owned(),
        scores: [
            ("risk", incident.risk()),
            ("alerts", incident.alert_count as f64),
            ("tactics", incident.tactics.len() as f64),
            ("entities", incident.entities.len() as f64),
            ("progression", incident.progression()),
            ("max_member_risk", incident.max_member_risk),
            ("first_seen_ms", incident.first_seen_ms as f64),
            ("last_seen_ms", incident.last_seen_ms as f64),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect(),
        labels: [
            ("incident_id", incident.id.clone()),
            ("incident_update", update.to_string()),
            (
                "tactics",
                join(incident.tactics.iter().map(|s| s.tactic.as_str()).collect()),
            ),
            (
                "entities",
                first(&mut incident.entities.iter().map(String::as_str)),
            ),
            (
                "members",
                first(&mut incident.members.iter().map(|m| m.alert_id.as_str())),
            ),
            (
                "member_events",
                first(&mut incident.members.iter().map(|m| m.event_id.as_str())),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect(),
        explanation,
        thresholds_crossed: vec![crate::ocsf::INCIDENT_THRESHOLD.to_owned()],
        event_time_ms: Some(incident.last_seen_ms),
        scored_at_ms,
    }
}

#[cfg(test)]
#[path = "incidents_tests.rs"]
mod tests;
