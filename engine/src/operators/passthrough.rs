//! The passthrough operator: wraps each valid event in the scored envelope with no scores.
//!
//! It exists to check and measure the streaming core on its own (the core's end-to-end and
//! load tests run it) and to forward a topic whose real operator is not deployed yet. Its
//! output says so: label `verdict = "unscored"` and model version `none`.

use crate::operators::{Operator, OperatorError, Outcome, SourcedEvent};
use crate::scored::{now_ms, Scored};

/// See the module doc.
#[derive(Debug, Default)]
pub struct PassthroughOperator;

impl Operator for PassthroughOperator {
    fn name(&self) -> &'static str {
        "passthrough"
    }

    fn model_version(&self) -> String {
        "none".to_owned()
    }

    fn score_batch(&mut self, events: &[SourcedEvent]) -> Result<Vec<Outcome>, OperatorError> {
        let scored_at_ms = now_ms();
        Ok(events
            .iter()
            .map(|sourced| Outcome::Scored {
                scored: Box::new(Scored {
                    event_id: sourced.event_id.clone(),
                    source: sourced.source.clone(),
                    operator: self.name().to_owned(),
                    model_version: self.model_version(),
                    scores: Default::default(),
                    labels: [("verdict".to_owned(), "unscored".to_owned())].into(),
                    explanation: Vec::new(),
                    thresholds_crossed: Vec::new(),
                    event_time_ms: sourced.event.event_time_ms(),
                    scored_at_ms,
                }),
                extra: Vec::new(),
            })
            .collect())
    }
}
