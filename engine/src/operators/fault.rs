//! The fault operator: a passthrough that fails on purpose, for reliability tests of the
//! pipeline (what a panicking or failing operator costs). Not for production topics.
//!
//! `[operators.fault]` chooses the fault: after `after_events` events it either panics
//! (`mode = "panic"`, a bug in an operator) or reports an engine failure for every batch
//! (`mode = "error"`, like a model runtime that broke). Before that it scores like the
//! passthrough operator (label `verdict = "unscored"`).

use serde::{Deserialize, Serialize};

use crate::operators::passthrough::PassthroughOperator;
use crate::operators::{Operator, OperatorContext, OperatorError, Outcome, SourcedEvent};

/// How the fault operator fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Panic inside `score_batch`.
    #[default]
    Panic,
    /// Return an engine failure (`OperatorError::Scoring`) for every batch.
    Error,
}

/// `[operators.fault]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultOperatorConfig {
    /// Which fault.
    #[serde(default)]
    pub mode: FaultMode,
    /// Events scored normally before the fault starts.
    #[serde(default)]
    pub after_events: u64,
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

    fn model_version(&self) -> String {
        "none".to_owned()
    }

    fn start(&mut self, context: &OperatorContext<'_>) -> Result<(), OperatorError> {
        self.config = context.operators.fault.clone();
        Ok(())
    }

    fn score_batch(&mut self, events: &[SourcedEvent]) -> Result<Vec<Outcome>, OperatorError> {
        if self.seen + events.len() as u64 > self.config.after_events {
            match self.config.mode {
                FaultMode::Panic => panic!("fault operator: injected panic"),
                FaultMode::Error => {
                    return Err(OperatorError::Scoring(
                        "fault operator: injected engine failure".to_owned(),
                    ))
                }
            }
        }
        self.seen += events.len() as u64;
        PassthroughOperator.score_batch(events)
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
            },
            seen: 0,
        };
        assert_eq!(operator.score_batch(&events(3)).unwrap().len(), 3);
        assert!(matches!(
            operator.score_batch(&events(1)),
            Err(OperatorError::Scoring(_))
        ));
        let mut panicking = FaultOperator::default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            panicking.score_batch(&events(1))
        }));
        assert!(result.is_err());
    }
}
