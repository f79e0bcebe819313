//! The console's memory of recent events: what the analyst console lists, opens and plots.
//!
//! Every worker offers its scored batches ([`ConsoleFeed::offer`]). The feed keeps every
//! event that crossed a threshold and one in [`SAMPLE_EVERY`] of the others (so the live
//! view also shows normal traffic), at most [`MAX_PER_BATCH`] per batch (the newest), in one
//! ring of [`CAPACITY`] events over all streams; and per entity (a user, a host) the risk
//! points the operators publish (alert entity behaviour, email user risk), the newest
//! [`POINTS_PER_ENTITY`] of at most [`MAX_ENTITIES`] entities. Cost on the scoring path: one
//! uncontended lock and a clone of the kept events per batch.
//!
//! With `privacy = "scores-only"` on a binding, its events are kept without their input and
//! their entities are pseudonymised ([`crate::privacy`]): the console can show nothing of the
//! raw content because the feed never holds it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::events::InputEvent;
use crate::operators::{Outcome, SourcedEvent};
use crate::scored::Scored;
use crate::sync::lock;

/// Events held over all streams.
pub const CAPACITY: usize = 2_000;
/// One in this many events below every threshold is kept.
pub const SAMPLE_EVERY: u64 = 25;
/// Most events kept from one batch.
pub const MAX_PER_BATCH: usize = 64;
/// Risk points kept per entity.
pub const POINTS_PER_ENTITY: usize = 200;
/// Entities followed at most (the least recently updated go first).
pub const MAX_ENTITIES: usize = 5_000;

/// One kept event.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Position in the feed (increasing; the live view polls `after` it).
    pub seq: u64,
    /// The scored record as emitted.
    pub scored: Scored,
    /// The input, unless the binding is scores-only (turned into JSON only when an analyst
    /// opens the event: the scoring path pays a clone, not a serialization).
    pub input: Option<InputEvent>,
    /// The main entity (user, host, account), pseudonymised when scores-only.
    pub entity: Option<String>,
    /// The operator's main score.
    pub score: Option<f64>,
    /// The operator's verdict label.
    pub verdict: String,
    /// Whether it crossed a threshold.
    pub flagged: bool,
}

impl FeedEvent {
    /// The live view's line for this event.
    pub fn summary(&self) -> Value {
        json!({
            "seq": self.seq,
            "event_id": self.scored.event_id,
            "operator": self.scored.operator,
            "topic": self.scored.source.topic,
            "partition": self.scored.source.partition,
            "offset": self.scored.source.offset,
            "time_ms": self.scored.event_time_ms.unwrap_or(self.scored.scored_at_ms),
            "score": self.score,
            "verdict": self.verdict,
            "flagged": self.flagged,
            "thresholds_crossed": self.scored.thresholds_crossed,
            "entity": self.entity,
            "model_version": self.scored.model_version,
        })
    }
}

/// One risk point of an entity.
#[derive(Debug, Clone)]
pub struct EntityPoint {
    /// When (event time of the record, else when it was scored), epoch ms.
    pub time_ms: i64,
    /// Operator that published it.
    pub operator: String,
    /// The record's scores (risk and the window statistics behind it).
    pub scores: std::collections::BTreeMap<String, f64>,
    /// The event that moved it.
    pub event_id: String,
}

/// Which score and verdict label an operator's events are listed by.
#[derive(Debug, Clone, Copy)]
pub struct FeedKeys {
    /// Main score key.
    pub score: &'static str,
    /// Verdict label key.
    pub verdict: &'static str,
}

impl FeedKeys {
    /// The keys of `spec`'s events: its shadow keys (main score and verdict), or
    /// `verdict` alone for operators without a model.
    pub fn of(spec: &crate::operators::OperatorSpec) -> Self {
        match spec.model {
            Some(model) => Self {
                score: model.shadow.score,
                verdict: model.shadow.verdict,
            },
            None => Self {
                score: "",
                verdict: "verdict",
            },
        }
    }
}

#[derive(Default)]
struct Inner {
    events: VecDeque<Arc<FeedEvent>>,
    entities: HashMap<String, VecDeque<EntityPoint>>,
    /// Entity → last update sequence (for eviction).
    touched: HashMap<String, u64>,
}

/// See the module doc.
#[derive(Default)]
pub struct ConsoleFeed {
    inner: Mutex<Inner>,
    seq: AtomicU64,
    unflagged: AtomicU64,
}

impl std::fmt::Debug for ConsoleFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleFeed")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .finish()
    }
}

impl ConsoleFeed {
    /// Keeps what the console needs of a scored batch (see the module doc).
    pub fn offer(
        &self,
        keys: FeedKeys,
        scores_only: bool,
        events: &[SourcedEvent],
        outcomes: &[Outcome],
    ) {
        let mut kept: Vec<(usize, bool)> = Vec::new();
        for (index, outcome) in outcomes.iter().enumerate() {
            if let Outcome::Scored { scored, .. } = outcome {
                let flagged = !scored.thresholds_crossed.is_empty();
                let sampled =
                    !flagged && self.unflagged.fetch_add(1, Ordering::Relaxed) % SAMPLE_EVERY == 0;
                if flagged || sampled {
                    kept.push((index, flagged));
                }
            }
        }
        let start = kept.len().saturating_sub(MAX_PER_BATCH);
        let mut new_events = Vec::with_capacity(kept.len() - start);
        for &(index, flagged) in &kept[start..] {
            let (Some(event), Outcome::Scored { scored, .. }) =
                (events.get(index), &outcomes[index])
            else {
                continue;
            };
            let entity = entity_of(&event.event, scored).map(|entity| {
                if scores_only {
                    crate::privacy::pseudonym(&entity)
                } else {
                    entity
                }
            });
            new_events.push(FeedEvent {
                seq: 0,
                scored: (**scored).clone(),
                input: (!scores_only).then(|| event.event.clone()),
                entity,
                score: scored.scores.get(keys.score).copied(),
                verdict: scored.labels.get(keys.verdict).cloned().unwrap_or_default(),
                flagged,
            });
        }
        let points: Vec<(String, EntityPoint)> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::Scored { extra, .. } => Some(extra),
                Outcome::Rejected { .. } => None,
            })
            .flatten()
            .map(|record| {
                let key = if scores_only {
                    crate::privacy::pseudonym(&record.key)
                } else {
                    record.key.clone()
                };
                let point = EntityPoint {
                    time_ms: record
                        .scored
                        .event_time_ms
                        .unwrap_or(record.scored.scored_at_ms),
                    operator: record.scored.operator.clone(),
                    scores: record.scored.scores.clone(),
                    event_id: record.scored.event_id.clone(),
                };
                (key, point)
            })
            .collect();
        if new_events.is_empty() && points.is_empty() {
            return;
        }
        let mut inner = lock(&self.inner);
        for mut event in new_events {
            event.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            inner.events.push_back(Arc::new(event));
            if inner.events.len() > CAPACITY {
                inner.events.pop_front();
            }
        }
        for (key, point) in points {
            let seq = self.seq.load(Ordering::Relaxed);
            let series = inner.entities.entry(key.clone()).or_default();
            series.push_back(point);
            if series.len() > POINTS_PER_ENTITY {
                series.pop_front();
            }
            inner.touched.insert(key, seq);
            if inner.entities.len() > MAX_ENTITIES {
                evict_stalest(&mut inner);
            }
        }
    }

    /// Kept events after `after`, newest first, that match `filter`; at most `limit`.
    pub fn list(
        &self,
        after: u64,
        limit: usize,
        filter: impl Fn(&FeedEvent) -> bool,
    ) -> Vec<Arc<FeedEvent>> {
        let inner = lock(&self.inner);
        inner
            .events
            .iter()
            .rev()
            .take_while(|event| event.seq > after)
            .filter(|event| filter(event))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The kept event with `event_id`, if still held.
    pub fn find(&self, event_id: &str) -> Option<Arc<FeedEvent>> {
        let inner = lock(&self.inner);
        inner
            .events
            .iter()
            .rev()
            .find(|event| event.scored.event_id == event_id)
            .cloned()
    }

    /// The risk points of `entity`, oldest first.
    pub fn entity(&self, entity: &str) -> Vec<EntityPoint> {
        let inner = lock(&self.inner);
        inner
            .entities
            .get(entity)
            .map(|series| series.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Entities with points, most recently updated first, with their latest point.
    pub fn entities(&self, limit: usize) -> Vec<(String, EntityPoint)> {
        let inner = lock(&self.inner);
        let mut keys: Vec<(&String, &u64)> = inner.touched.iter().collect();
        keys.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        keys.into_iter()
            .take(limit)
            .filter_map(|(key, _)| {
                let latest = inner.entities.get(key)?.back()?.clone();
                Some((key.clone(), latest))
            })
            .collect()
    }
}

fn evict_stalest(inner: &mut Inner) {
    if let Some(stalest) = inner
        .touched
        .iter()
        .min_by_key(|(_, seq)| **seq)
        .map(|(key, _)| key.clone())
    {
        inner.touched.remove(&stalest);
        inner.entities.remove(&stalest);
    }
}

/// The main entity of an event: the prompt's user, the alert's first user (else host), the
/// email's user (as the operator keyed it), the address's account (else the address).
fn entity_of(event: &InputEvent, scored: &Scored) -> Option<String> {
    match event {
        InputEvent::Prompt(prompt) => prompt.user.clone(),
        InputEvent::Alert(alert) => alert
            .users
            .first()
            .map(|user| format!("user:{}", user.trim().to_lowercase()))
            .or_else(|| {
                alert
                    .hosts
                    .first()
                    .map(|host| format!("host:{}", host.trim().to_lowercase()))
            }),
        InputEvent::Email(_) => scored.labels.get("user").cloned(),
        InputEvent::Address(address) => address.account.clone().or(Some(address.address.clone())),
        InputEvent::Flow(_) => None,
    }
}
