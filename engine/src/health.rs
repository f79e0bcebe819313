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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sync::lock;

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
    /// What each binding's operator loaded, by input topic (served on `/models`).
    pub models: Mutex<BTreeMap<String, serde_json::Value>>,
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
