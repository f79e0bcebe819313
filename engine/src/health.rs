//! Readiness and failure facts shared by the source, the workers, the emitter and `/ready`.
//!
//! Guarantee: the engine is never "ready" while it cannot make progress. Besides the start-up
//! facts (models loaded, group joined, a broker reachable), two failure states make `/ready`
//! answer 503 with the reason in its body:
//! - a **fatal failure** ([`Health::fail`]): a worker died or a model kept failing. The poll
//!   loop sees it, shuts down within `pipeline.shutdown_grace_ms` (committing only what was
//!   emitted and acknowledged) and the process exits non-zero, so the orchestrator restarts it;
//! - a **stopped binding** ([`Health::stop_binding`]): an output topic of that binding (or the
//!   dead-letter topic) cannot be written (authorization, invalid topic). The binding's
//!   partitions are paused; its inputs stay uncommitted and nothing is retried forever.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::runtime::ModelHandle;
use crate::sync::lock;

/// A binding's model slot as `/models` and the admin API see it.
#[derive(Clone)]
pub struct BoundModel {
    /// The slot (shared with the binding's workers).
    pub handle: Arc<dyn ModelHandle>,
    /// Where the operator's versions live: `<model_dir>/<operator>`.
    pub versions_dir: PathBuf,
    /// Its shadow tap (challenger scoring), when the registry is on.
    pub shadow: Option<Arc<crate::registry::shadow::ShadowTap>>,
    /// The registry, when on (for the aliases on `/models`).
    pub registry: Option<Arc<crate::registry::Registry>>,
    /// The binding's drift watch, when on.
    pub drift: Option<Arc<crate::drift::tap::DriftTap>>,
}

impl std::fmt::Debug for BoundModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundModel")
            .field("operator", &self.handle.operator())
            .field("versions_dir", &self.versions_dir)
            .finish()
    }
}

/// Readiness facts, updated by the pipeline and read by `/ready`.
#[derive(Debug, Default)]
pub struct Health {
    /// Operators started (models loaded).
    pub operators_started: AtomicBool,
    /// The consumer received its first assignment (possibly empty) from the group.
    pub assignment_received: AtomicBool,
    /// Partitions currently assigned.
    pub assigned_partitions: AtomicUsize,
    /// At least one broker connection is up (from librdkafka statistics).
    pub broker_up: AtomicBool,
    /// The engine is shutting down.
    pub stopping: AtomicBool,
    /// Each binding's model slot, by input topic (`/models` reads them live).
    pub models: Mutex<BTreeMap<String, BoundModel>>,
    /// Recent events for the analyst console.
    pub console: crate::console::feed::ConsoleFeed,
    /// What the scoring API can score, by input topic.
    pub scoring: crate::api::scoring::ScoringBindings,
    /// The trainer's state, when this process runs the trainer role.
    pub learning: Mutex<Option<Arc<crate::learning::trainer::LearningHealth>>>,
    /// Partitions whose keyed state this process holds, by input topic.
    state_partitions: Mutex<BTreeMap<String, BTreeSet<i32>>>,
    /// Set once by the first fatal failure; read by the poll loop and `/ready`.
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Input topic → why its binding stopped consuming.
    stopped_bindings: Mutex<BTreeMap<String, String>>,
    any_binding_stopped: AtomicBool,
}

impl Health {
    /// Ready to take traffic: models loaded, group joined, a broker reachable, not stopping,
    /// not failed, every binding consuming.
    pub fn is_ready(&self) -> bool {
        self.operators_started.load(Ordering::Relaxed)
            && self.assignment_received.load(Ordering::Relaxed)
            && self.broker_up.load(Ordering::Relaxed)
            && !self.stopping.load(Ordering::Relaxed)
            && !self.has_failed()
            && !self.any_binding_stopped.load(Ordering::Relaxed)
    }

    /// Records a fatal failure (the first one wins) and logs it; the engine then shuts down
    /// and exits non-zero.
    pub fn fail(&self, reason: String) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            tracing::error!(reason = %reason, "fatal engine failure; shutting down");
            *failure = Some(reason);
            self.failed.store(true, Ordering::Release);
        }
    }

    /// Whether a fatal failure was recorded.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The fatal failure, if any.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Stops the binding of `input_topic` (the first reason wins) and logs an error naming the
    /// topic that cannot be written.
    pub fn stop_binding(&self, input_topic: &str, reason: String) {
        let mut stopped = lock(&self.stopped_bindings);
        if !stopped.contains_key(input_topic) {
            tracing::error!(
                input_topic,
                reason = %reason,
                "binding stopped: an output topic cannot be written; its partitions are paused and uncommitted"
            );
            stopped.insert(input_topic.to_owned(), reason);
            self.any_binding_stopped.store(true, Ordering::Release);
        }
    }

    /// Records that this process holds (`true`) or dropped the keyed state of a partition.
    pub fn set_state_held(&self, topic: &str, partition: i32, held: bool) {
        let mut partitions = lock(&self.state_partitions);
        let topic_partitions = partitions.entry(topic.to_owned()).or_default();
        if held {
            topic_partitions.insert(partition);
        } else {
            topic_partitions.remove(&partition);
        }
    }

    /// Partitions whose keyed state this process holds, by input topic.
    pub fn state_partitions(&self) -> BTreeMap<String, BTreeSet<i32>> {
        lock(&self.state_partitions).clone()
    }

    /// `/models`: per input topic, the model currently scoring (and, where this process runs
    /// the trainer, its learning state; a trainer-only process lists just that).
    pub fn models_json(&self) -> serde_json::Value {
        let models = lock(&self.models);
        let learning = lock(&self.learning).clone();
        let mut listing: serde_json::Map<String, serde_json::Value> = models
            .iter()
            .map(|(topic, bound)| {
                let mut description = bound.handle.describe();
                if let Some(registry) = &bound.registry {
                    description["registry"] = registry.describe(bound.handle.operator());
                }
                if let Some(shadow) = &bound.shadow {
                    description["shadow"] = shadow.describe();
                }
                if let Some(drift) = &bound.drift {
                    description["drift"] = drift.describe();
                }
                (topic.clone(), description)
            })
            .collect();
        if let Some(learning) = learning {
            for (topic, operator) in &learning.topics {
                let entry = listing
                    .entry(topic.clone())
                    .or_insert_with(|| serde_json::json!({ "operator": operator }));
                if let Some(state) = learning.describe(operator) {
                    entry["learning"] = state;
                }
            }
        }
        serde_json::Value::Object(listing)
    }

    /// Input topics whose bindings are stopped, with the reason.
    pub fn stopped_bindings(&self) -> BTreeMap<String, String> {
        if !self.any_binding_stopped.load(Ordering::Acquire) {
            return BTreeMap::new();
        }
        lock(&self.stopped_bindings).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Health {
        let health = Health::default();
        health.operators_started.store(true, Ordering::Relaxed);
        health.assignment_received.store(true, Ordering::Relaxed);
        health.broker_up.store(true, Ordering::Relaxed);
        health
    }

    #[test]
    fn a_failure_or_a_stopped_binding_makes_the_engine_not_ready() {
        let health = started();
        assert!(health.is_ready());
        health.stop_binding(
            "flows",
            "topic scored.flows: authorization failed".to_owned(),
        );
        assert!(!health.is_ready());
        assert_eq!(health.stopped_bindings().len(), 1);
        let health = started();
        health.fail("worker flows panicked".to_owned());
        health.fail("second".to_owned());
        assert!(!health.is_ready());
        assert_eq!(health.failure().as_deref(), Some("worker flows panicked"));
    }
}
