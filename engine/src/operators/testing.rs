//! Test harness: an operator started as the pipeline starts it (binding runtime, one worker,
//! the worker's partition states), without Kafka.

use std::time::SystemTime;

use crate::operators::{
    BindingRuntime, ExtraRecord, Operator, OperatorContext, OperatorError, OperatorKind, Outcome,
    SourcedEvent,
};
use crate::runtime::PartitionStates;

/// A started operator with one worker.
pub struct Started {
    /// What the binding shares.
    pub runtime: BindingRuntime,
    /// The worker's scorer.
    pub worker: Box<dyn Operator>,
    /// The worker's partition states.
    pub state: PartitionStates,
}

/// Starts operator `name` with `context`.
pub fn start(name: &str, context: &OperatorContext<'_>) -> Result<Started, OperatorError> {
    let kind = OperatorKind::named(name).expect("operator in the table");
    let runtime = (kind.spec().start)(context)?;
    let worker = (runtime.new_worker)();
    let state = PartitionStates::new(runtime.state);
    Ok(Started {
        runtime,
        worker,
        state,
    })
}

impl Started {
    /// Scores a batch.
    pub fn score_batch(&mut self, events: &[SourcedEvent]) -> Result<Vec<Outcome>, OperatorError> {
        self.worker.score_batch(events, &mut self.state)
    }

    /// Runs the timer hook.
    pub fn tick(&mut self, now: SystemTime) -> Vec<ExtraRecord> {
        self.worker.tick(now, &mut self.state)
    }

    /// The model version in the slot.
    pub fn model_version(&self) -> String {
        self.runtime
            .model
            .as_ref()
            .map(|model| model.version())
            .unwrap_or_default()
    }

    /// The `/models` entry's manifest summary.
    pub fn model_info(&self) -> Option<serde_json::Value> {
        self.runtime
            .model
            .as_ref()
            .map(|model| model.describe()["model"].clone())
    }
}
