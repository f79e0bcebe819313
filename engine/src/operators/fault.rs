//! The fault operator: a passthrough that fails on purpose, for reliability tests of the
//! pipeline (what a panicking or failing operator costs). Not for production topics.
//!
//! `[operators.fault]` chooses the fault: after `after_events` events it either panics
//! (`mode = "panic"`, a bug in an operator) or reports an engine failure for every batch
//! (`mode = "error"`, like a model runtime that broke), or takes `delay_ms` per batch before
//! scoring (`mode = "slow"`, an overloaded model: timeouts and admission control). Before
//! that it scores like the passthrough operator (label `verdict = "unscored"`).

use serde::{Deserialize, Serialize};

use crate::events::SchemaKind;
use crate::operators::passthrough::unscored;
use crate::operators::table::{
    check_section, settings, DefaultWorkers, OperatorConfig, OperatorSpec,
};
use crate::operators::{
    BindingRuntime, Operator, OperatorContext, OperatorError, Outcome, SourcedEvent,
};
use crate::runtime::PartitionStates;

/// The operator-table entry.
pub const SPEC: OperatorSpec = OperatorSpec {
    name: "fault",
    summary: "reliability tests only: a passthrough that panics or fails after N events",
    accepts: |_: SchemaKind| true,
    // One worker, so `after_events` counts the whole binding's events.
    default_workers: DefaultWorkers::One,
    model: None,
    stateful: false,
    check_config: |sections| check_section::<FaultOperatorConfig>(sections, "fault"),
    config_schema: Some(|generator| generator.subschema_for::<FaultOperatorConfig>()),
    start,
    commands: &[],
};

impl OperatorConfig for FaultOperatorConfig {}

fn start(context: &OperatorContext<'_>) -> Result<BindingRuntime, OperatorError> {
    let config: FaultOperatorConfig = settings(context, "fault")?;
    Ok(BindingRuntime::stateless(move || {
        Box::new(FaultOperator {
            config: config.clone(),
            seen: 0,
        })
    }))
}

/// How the fault operator fails.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Panic inside `score_batch`.
    #[default]
    Panic,
    /// Return an engine failure (`OperatorError::Scoring`) for every batch.
    Error,
    /// Sleep `delay_ms` per batch, then score.
    Slow,
}

/// `[operators.fault]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultOperatorConfig {
    /// Which fault.
    #[serde(default)]
    pub mode: FaultMode,
    /// Events scored normally before the fault starts.
    #[serde(default)]
    pub after_events: u64,
    /// Milliseconds a batch takes in `slow` mode.
    #[serde(default)]
    pub delay_ms: u64,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct FaultOperator {
    config: FaultOperatorConfig,
    seen: u64,
}

impl Operator for FaultOperator {
    fn name(&self) -> &'static str {
        "fault"
    }

    fn score_batch(
        &mut self,
        events: &[SourcedEvent],
        _state: &mut PartitionStates,
    ) -> Result<Vec<Outcome>, OperatorError> {
        if self.seen + events.len() as u64 > self.config.after_events {
            match self.config.mode {
                FaultMode::Panic => panic!("fault operator: injected panic"),
                FaultMode::Error => {
                    return Err(OperatorError::scoring(
                        "fault operator: injected engine failure",
                    ))
                }
                FaultMode::Slow => {
                    std::thread::sleep(std::time::Duration::from_millis(self.config.delay_ms))
                }
            }
        }
        self.seen += events.len() as u64;
        Ok(unscored(self.name(), events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{InputEvent, PromptEvent};

    fn events(count: i64) -> Vec<SourcedEvent> {
        (0..count)
            .map(|offset| {
                let prompt: PromptEvent =
                    serde_json::from_value(serde_json::json!({"text": "hello"})).unwrap();
                SourcedEvent::at_offset("t", offset, InputEvent::Prompt(prompt))
            })
            .collect()
    }

    #[test]
    fn scores_until_the_threshold_then_fails_as_configured() {
        let mut operator = FaultOperator {
            config: FaultOperatorConfig {
                mode: FaultMode::Error,
                after_events: 3,
                delay_ms: 0,
            },
            seen: 0,
        };
        let mut state = PartitionStates::new(None);
        assert_eq!(
            operator.score_batch(&events(3), &mut state).unwrap().len(),
            3
        );
        assert!(matches!(
            operator.score_batch(&events(1), &mut state),
            Err(OperatorError::Scoring { .. })
        ));
        let mut panicking = FaultOperator::default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            panicking.score_batch(&events(1), &mut state)
        }));
        assert!(result.is_err());
    }
}
