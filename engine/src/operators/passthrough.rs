//! The passthrough operator: wraps each valid event in the scored envelope with no scores.
//!
//! It exists to check and measure the streaming core on its own (the core's end-to-end and
//! load tests run it) and to forward a topic whose real operator is not deployed yet. Its
//! output says so: label `verdict = "unscored"` and model version `none`.
//!
//! It is also the smallest example of an operator: a [`SPEC`] line for the operator table,
//! a `start` that returns what the binding's workers share (here nothing), and a scorer.

use crate::events::SchemaKind;
use crate::operators::table::{DefaultWorkers, OperatorSpec};
use crate::operators::{
    BindingRuntime, Operator, OperatorContext, OperatorError, Outcome, SourcedEvent,
};
use crate::runtime::PartitionStates;
use crate::scored::now_ms;

/// The operator-table entry.
pub const SPEC: OperatorSpec = OperatorSpec {
    name: "passthrough",
    summary: "scores nothing; wraps each valid event in the envelope (pipeline checks, load tests)",
    accepts: |_: SchemaKind| true,
    default_workers: DefaultWorkers::PerCore,
    model: None,
    stateful: false,
    check_config: |_| Ok(Vec::new()),
    config_schema: None,
    start,
    commands: &[],
};

fn start(_context: &OperatorContext<'_>) -> Result<BindingRuntime, OperatorError> {
    Ok(BindingRuntime::stateless(|| Box::new(PassthroughOperator)))
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct PassthroughOperator;

impl Operator for PassthroughOperator {
    fn name(&self) -> &'static str {
        "passthrough"
    }

    fn score_batch(
        &mut self,
        events: &[SourcedEvent],
        _state: &mut PartitionStates,
    ) -> Result<Vec<Outcome>, OperatorError> {
        Ok(unscored(self.name(), events))
    }
}

/// Each event in the envelope, unscored (`verdict = "unscored"`, model version `none`).
pub fn unscored(operator: &'static str, events: &[SourcedEvent]) -> Vec<Outcome> {
    {
        let scored_at_ms = now_ms();
        events
            .iter()
            .map(|sourced| Outcome::Scored {
                scored: Box::new(
                    sourced
                        .scored(operator, "none", scored_at_ms)
                        .with_labels([("verdict".to_owned(), "unscored".to_owned())].into()),
                ),
                extra: Vec::new(),
            })
            .collect()
    }
}
