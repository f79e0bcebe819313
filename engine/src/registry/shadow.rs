//! Shadow scoring: a binding's challenger scores a sample of live traffic off the output path
//! and is compared with the champion.
//!
//! A [`ShadowTap`] belongs to one binding. Its workers offer every scored batch
//! ([`ShadowTap::offer`]); while a challenger is set, the sampled events (a deterministic
//! `registry.shadow_fraction` of input offsets) and the champion's scored events go over a
//! bounded channel to the binding's shadow thread, which scores them with the challenger and
//! records agreement: verdict agreement rate, distribution of the main score's absolute
//! difference, and the champion × challenger class confusion — as metrics, on `/models`, and
//! optionally the challenger's scored events on `registry.shadow_topic`.
//!
//! Guarantees: outputs carry only the champion's verdict; a worker never waits for the
//! shadow (a full channel drops the sample and counts it); a challenger that fails to score
//! is counted and logged, never fails the engine. The challenger's keyed state (alert entity
//! history, email windows) is its own, folded from the sampled events only, so for stateful
//! operators the comparison covers the stateless part of the score exactly and the history
//! features approximately.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

use crate::operators::table::ShadowKeys;
use crate::operators::{Operator, OperatorError, Outcome, SourcedEvent, WorkerFactory};
use crate::runtime::{ModelHandle, PartitionStates, StateFactory};
use crate::scored::Scored;
use crate::sync::lock;
use crate::telemetry;

/// A loaded challenger: its model and a factory of scorers over it.
pub struct Challenger {
    /// Version.
    pub version: String,
    /// Its model slot (not the binding's).
    pub model: Arc<dyn ModelHandle>,
    /// Makes a scorer over `model`.
    pub new_worker: WorkerFactory,
}

/// Loads a challenger from a version directory (made by the operator's `start`).
pub type ShadowFactory = Arc<dyn Fn(&Path) -> Result<Challenger, OperatorError> + Send + Sync>;

/// Batches waiting for the shadow thread; beyond this, samples are dropped.
const CHANNEL_BATCHES: usize = 64;

struct ShadowBatch {
    challenger: Arc<Challenger>,
    events: Vec<SourcedEvent>,
    champion: Vec<Scored>,
}

/// Agreement figures since the challenger was set.
#[derive(Debug, Default)]
struct ShadowStats {
    challenger: Option<String>,
    compared: u64,
    verdict_agreements: u64,
    failures: u64,
    dropped: u64,
    score_diff: Option<hdrhistogram::Histogram<u64>>,
    score_diff_sum: f64,
    confusion: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Score differences are recorded in millionths.
const DIFF_SCALE: f64 = 1_000_000.0;

impl ShadowStats {
    fn reset(&mut self, challenger: Option<String>) {
        *self = Self {
            challenger,
            score_diff: hdrhistogram::Histogram::new(3).ok(),
            ..Self::default()
        };
    }

    fn describe(&self) -> serde_json::Value {
        let quantile = |q: f64| {
            self.score_diff
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(q) as f64 / DIFF_SCALE)
        };
        serde_json::json!({
            "challenger": self.challenger,
            "compared": self.compared,
            "verdict_agreement": (self.compared > 0)
                .then(|| self.verdict_agreements as f64 / self.compared as f64),
            "score_abs_diff": {
                "mean": (self.compared > 0).then(|| self.score_diff_sum / self.compared as f64),
                "p50": quantile(0.5),
                "p90": quantile(0.9),
                "p99": quantile(0.99),
                "max": quantile(1.0),
            },
            "confusion": self.confusion,
            "failures": self.failures,
            "dropped": self.dropped,
        })
    }
}

/// One binding's shadow scoring.
pub struct ShadowTap {
    operator: &'static str,
    keys: ShadowKeys,
    fraction: f64,
    factory: ShadowFactory,
    challenger: ArcSwapOption<Challenger>,
    sender: SyncSender<ShadowBatch>,
    stats: Mutex<ShadowStats>,
}

impl std::fmt::Debug for ShadowTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowTap")
            .field("operator", &self.operator)
            .field("fraction", &self.fraction)
            .finish()
    }
}

impl ShadowTap {
    /// A tap for a binding of `operator`, with its shadow thread started. `state` is the
    /// operator's partition-state type; `shadow_topic` (non-empty) receives the challenger's
    /// scored events through `producer`.
    pub fn start(
        operator: &'static str,
        keys: ShadowKeys,
        fraction: f64,
        factory: ShadowFactory,
        state: Option<StateFactory>,
        shadow_output: Option<(String, ThreadedProducer<DefaultProducerContext>)>,
    ) -> std::io::Result<Arc<Self>> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(CHANNEL_BATCHES);
        let tap = Arc::new(Self {
            operator,
            keys,
            fraction,
            factory,
            challenger: ArcSwapOption::empty(),
            sender,
            stats: Mutex::new(ShadowStats::default()),
        });
        let weak = Arc::downgrade(&tap);
        std::thread::Builder::new()
            .name(format!("threatflow-shadow-{operator}"))
            .spawn(move || shadow_thread(weak, receiver, state, shadow_output))?;
        Ok(tap)
    }

    /// Loads `version_dir` as the challenger (on the caller's thread) and starts comparing;
    /// the figures start from zero.
    pub fn set_challenger(&self, version_dir: &Path) -> Result<String, OperatorError> {
        let challenger = (self.factory)(version_dir)?;
        let version = challenger.version.clone();
        lock(&self.stats).reset(Some(version.clone()));
        self.challenger.store(Some(Arc::new(challenger)));
        tracing::info!(operator = self.operator, challenger = %version, fraction = self.fraction, "shadow scoring started");
        Ok(version)
    }

    /// Stops shadow scoring.
    pub fn clear(&self) {
        if self.challenger.swap(None).is_some() {
            tracing::info!(operator = self.operator, "shadow scoring stopped");
        }
        lock(&self.stats).reset(None);
    }

    /// The challenger's version, if one is set.
    pub fn challenger_version(&self) -> Option<String> {
        self.challenger.load().as_ref().map(|c| c.version.clone())
    }

    /// Whether the event at `partition`/`offset` is in the sample (the same on every pod).
    fn sampled(&self, partition: i32, offset: i64) -> bool {
        let mixed =
            (offset as u64 ^ ((partition as u64) << 48)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((mixed >> 11) as f64 / (1u64 << 53) as f64) < self.fraction
    }

    /// Offers a scored batch (called by the binding's workers after scoring; never blocks).
    pub fn offer(&self, events: &[SourcedEvent], outcomes: &[Outcome]) {
        let Some(challenger) = self.challenger.load_full() else {
            return;
        };
        let mut sampled = Vec::new();
        let mut champion = Vec::new();
        for (event, outcome) in events.iter().zip(outcomes) {
            if let Outcome::Scored { scored, .. } = outcome {
                if self.sampled(event.source.partition, event.source.offset) {
                    sampled.push(event.clone());
                    champion.push((**scored).clone());
                }
            }
        }
        if sampled.is_empty() {
            return;
        }
        let count = sampled.len() as u64;
        let batch = ShadowBatch {
            challenger,
            events: sampled,
            champion,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(batch)
        {
            lock(&self.stats).dropped += count;
            metrics::counter!(telemetry::SHADOW_DROPPED, "operator" => self.operator)
                .increment(count);
        }
    }

    /// `/models`' `shadow` entry.
    pub fn describe(&self) -> serde_json::Value {
        let mut description = lock(&self.stats).describe();
        description["fraction"] = self.fraction.into();
        description
    }

    fn compare(&self, challenger: &str, champion: &Scored, shadow: &Scored) {
        let label = |scored: &Scored, key: &str| {
            scored
                .labels
                .get(key)
                .cloned()
                .unwrap_or_else(|| "none".to_owned())
        };
        let agrees = label(champion, self.keys.verdict) == label(shadow, self.keys.verdict);
        let score = |scored: &Scored| scored.scores.get(self.keys.score).copied();
        let diff = match (score(champion), score(shadow)) {
            (Some(a), Some(b)) if a.is_finite() && b.is_finite() => Some((a - b).abs()),
            _ => None,
        };
        let mut stats = lock(&self.stats);
        if stats.challenger.as_deref() != Some(challenger) {
            return; // the challenger changed while this batch was scored
        }
        stats.compared += 1;
        stats.verdict_agreements += u64::from(agrees);
        if let Some(diff) = diff {
            stats.score_diff_sum += diff;
            if let Some(histogram) = stats.score_diff.as_mut() {
                let _ = histogram.record((diff * DIFF_SCALE).round() as u64);
            }
            metrics::histogram!(telemetry::SHADOW_SCORE_DIFF, "operator" => self.operator)
                .record(diff);
        }
        *stats
            .confusion
            .entry(label(champion, self.keys.class))
            .or_default()
            .entry(label(shadow, self.keys.class))
            .or_default() += 1;
        let ratio = stats.verdict_agreements as f64 / stats.compared as f64;
        drop(stats);
        metrics::counter!(telemetry::SHADOW_EVENTS, "operator" => self.operator, "verdict" => if agrees { "agree" } else { "disagree" })
            .increment(1);
        metrics::gauge!(telemetry::SHADOW_AGREEMENT, "operator" => self.operator).set(ratio);
    }
}

/// Scores sampled batches with the challenger until the tap is dropped.
fn shadow_thread(
    tap: std::sync::Weak<ShadowTap>,
    batches: Receiver<ShadowBatch>,
    state: Option<StateFactory>,
    shadow_output: Option<(String, ThreadedProducer<DefaultProducerContext>)>,
) {
    let mut current: Option<(Arc<Challenger>, Box<dyn Operator>, PartitionStates)> = None;
    while let Ok(batch) = batches.recv() {
        let Some(tap) = tap.upgrade() else { return };
        let same = current
            .as_ref()
            .is_some_and(|(challenger, _, _)| Arc::ptr_eq(challenger, &batch.challenger));
        if !same {
            current = Some((
                batch.challenger.clone(),
                (batch.challenger.new_worker)(),
                PartitionStates::new(state),
            ));
        }
        let Some((challenger, scorer, states)) = current.as_mut() else {
            continue;
        };
        for event in &batch.events {
            let partition = event.source.partition;
            if !states.holds(partition) {
                if let Some(empty) = states.empty() {
                    states.insert(partition, empty);
                }
            }
        }
        match scorer.score_batch(&batch.events, states) {
            Ok(outcomes) => {
                for (champion, outcome) in batch.champion.iter().zip(&outcomes) {
                    if let Outcome::Scored { scored, .. } = outcome {
                        tap.compare(&challenger.version, champion, scored);
                        if let Some((topic, producer)) = &shadow_output {
                            if let Ok(payload) = serde_json::to_vec(scored) {
                                let _ = producer.send(
                                    BaseRecord::to(topic)
                                        .key(&scored.event_id)
                                        .payload(&payload),
                                );
                            }
                        }
                    }
                }
            }
            Err(error) => {
                lock(&tap.stats).failures += 1;
                tracing::warn!(operator = tap.operator, challenger = %challenger.version, %error, "challenger failed to score a shadow batch");
            }
        }
    }
}

#[cfg(test)]
#[path = "shadow_tests.rs"]
mod tests;
