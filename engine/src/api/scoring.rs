//! What the scoring API holds of each binding, and how it scores a request's events.
//!
//! A [`ScoringBinding`] is registered by the pipeline for every binding it starts. It shares
//! the stream's model slot through the binding's worker factory: an API scorer is made by the
//! same factory as the stream's workers, so it reads the same slot (a live swap reaches both)
//! and, for prompts, submits to the same batcher (one ONNX Runtime session, one queue; API
//! and stream sequences batch together). Scorers are pooled: one per request in flight at
//! most, so the pool is bounded by the API's admission limit.
//!
//! Stateful operators (alert entity history, email windows) score an API event against a
//! scratch state built from the binding's [`StateView`] — the entries the event reads, as of
//! the last checkpoint — and the scratch is dropped after the request: API events never fold
//! into the stream's state, and records an operator would emit besides the scored event
//! (per-entity updates) are not emitted. Events of one batch request see each other in the
//! order given, as consecutive stream events of one partition would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::decode::{DecodeFailure, Decoder};
use crate::events::{InputEvent, SchemaKind};
use crate::operators::{Operator, OperatorError, Outcome, SourcedEvent, StateReads, WorkerFactory};
use crate::runtime::{PartitionStates, StateFactory, StateView};
use crate::scored::{now_ms, SourceCoordinates};
use crate::sync::lock;

/// The partition number API events carry in their source coordinates (no Kafka partition).
pub const API_PARTITION: i32 = -1;

/// The offset API events are scored at: past any offset the state has recorded, so that a
/// stateful operator treats them as new input (not as re-deliveries it must not fold), as it
/// would the stream's next record. The answer carries the event's index in the request instead.
const API_OFFSET_BASE: i64 = 1 << 62;

/// A stateful binding's state as the API reads it.
pub struct ApiState {
    /// Makes the scratch state.
    pub factory: StateFactory,
    /// What one event reads.
    pub reads: StateReads,
    /// The durable state, published by the workers.
    pub view: Arc<StateView>,
}

/// One binding as the scoring API sees it.
pub struct ScoringBinding {
    /// Operator name.
    pub operator: &'static str,
    /// The binding's input topic.
    pub topic: String,
    /// The schema it accepts.
    pub schema: SchemaKind,
    decoder: Decoder,
    new_worker: Arc<WorkerFactory>,
    idle: Mutex<Vec<Box<dyn Operator>>>,
    state: Option<ApiState>,
    scores_only: bool,
}

impl ScoringBinding {
    /// The API side of a binding: JSON events of `schema`, scorers made by `new_worker`.
    pub fn new(
        operator: &'static str,
        topic: &str,
        schema: SchemaKind,
        max_message_bytes: usize,
        new_worker: Arc<WorkerFactory>,
        state: Option<ApiState>,
        privacy: crate::privacy::Privacy,
    ) -> Self {
        Self {
            operator,
            topic: topic.to_owned(),
            schema,
            decoder: Decoder::new(
                schema,
                crate::config::InputFormat::Json,
                max_message_bytes,
                Default::default(),
            ),
            new_worker,
            idle: Mutex::new(Vec::new()),
            state,
            scores_only: privacy == crate::privacy::Privacy::ScoresOnly,
        }
    }

    /// Decodes and validates one event given as JSON, exactly as the stream's decoder does
    /// for a JSON record (the failure's detail names the field, never the value).
    pub fn decode(&self, event: &serde_json::Value) -> Result<InputEvent, DecodeFailure> {
        let bytes = serde_json::to_vec(event).unwrap_or_default();
        self.decoder.decode(Some(&bytes))
    }

    /// Scores `events` in order (blocking: call it off the async runtime). One outcome per
    /// event; `Err` is an engine failure (model not loaded, ONNX Runtime error), not the
    /// events' fault.
    pub fn score(
        &self,
        request_id: &str,
        events: Vec<InputEvent>,
    ) -> Result<Vec<Outcome>, OperatorError> {
        let received_ms = now_ms();
        let sourced: Vec<SourcedEvent> = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                let event_id = event
                    .producer_event_id()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("api-{request_id}-{index}"));
                SourcedEvent {
                    source: SourceCoordinates {
                        topic: self.topic.clone(),
                        partition: API_PARTITION,
                        offset: API_OFFSET_BASE + index as i64,
                        timestamp_ms: Some(received_ms),
                    },
                    event_id,
                    event,
                }
            })
            .collect();
        let mut states = PartitionStates::new(self.state.as_ref().map(|state| state.factory));
        if let Some(state) = &self.state {
            let keys: Vec<String> = sourced
                .iter()
                .flat_map(|event| (state.reads.entity_keys)(&event.event))
                .collect();
            states.insert(
                API_PARTITION,
                state
                    .view
                    .scratch(state.factory, &keys, state.reads.meta_keys),
            );
        }
        let pooled = lock(&self.idle).pop();
        let mut scorer = pooled.unwrap_or_else(|| (self.new_worker)());
        let outcomes = scorer.score_batch(&sourced, &mut states);
        lock(&self.idle).push(scorer);
        let mut outcomes = outcomes?;
        if self.scores_only {
            crate::privacy::sanitize_outcomes(&sourced, &mut outcomes);
        }
        for outcome in &mut outcomes {
            if let Outcome::Scored { scored, .. } = outcome {
                scored.source.offset -= API_OFFSET_BASE;
            }
        }
        Ok(outcomes)
    }
}

/// The bindings the API can score, by input topic (registered by the pipeline at start).
#[derive(Default)]
pub struct ScoringBindings {
    by_topic: Mutex<BTreeMap<String, Arc<ScoringBinding>>>,
}

impl std::fmt::Debug for ScoringBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(lock(&self.by_topic).keys()).finish()
    }
}

impl ScoringBindings {
    /// Registers a binding.
    pub fn register(&self, binding: ScoringBinding) {
        lock(&self.by_topic).insert(binding.topic.clone(), Arc::new(binding));
    }

    /// The binding of `operator`: the one on `topic` when given, else the first by topic name.
    pub fn find(&self, operator: &str, topic: Option<&str>) -> Option<Arc<ScoringBinding>> {
        lock(&self.by_topic)
            .values()
            .find(|binding| {
                binding.operator == operator && topic.is_none_or(|topic| binding.topic == topic)
            })
            .cloned()
    }

    /// `(operator, topic, schema)` of every registered binding.
    pub fn list(&self) -> Vec<(&'static str, String, SchemaKind)> {
        lock(&self.by_topic)
            .values()
            .map(|binding| (binding.operator, binding.topic.clone(), binding.schema))
            .collect()
    }
}

/// What became of one valid event of a request.
#[derive(Debug)]
pub enum EventResult {
    /// Scored: the record the stream would emit, as JSON.
    Scored(serde_json::Value),
    /// The operator cannot score this event (its `Rejected` detail).
    Rejected(String),
}

/// What became of a request.
#[derive(Debug)]
pub enum RequestOutcome {
    /// Some events do not decode or validate: nothing was scored (index, why).
    Invalid(Vec<(usize, DecodeFailure)>),
    /// Every event decoded: one result per event, in order.
    Scored(Vec<EventResult>),
}

/// Decodes every event; if all are valid, scores them in one batch. Validation is all or
/// nothing, like a schema check of the whole body. `Err`: the engine could not score (503).
pub fn score_request(
    binding: &ScoringBinding,
    request_id: &str,
    events: &[serde_json::Value],
) -> Result<RequestOutcome, OperatorError> {
    let mut valid = Vec::with_capacity(events.len());
    let mut invalid = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match binding.decode(event) {
            Ok(decoded) => valid.push(decoded),
            Err(failure) => invalid.push((index, failure)),
        }
    }
    if !invalid.is_empty() {
        return Ok(RequestOutcome::Invalid(invalid));
    }
    let outcomes = binding.score(request_id, valid)?;
    Ok(RequestOutcome::Scored(
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Scored { scored, .. } => EventResult::Scored(
                    serde_json::to_value(&*scored).unwrap_or(serde_json::Value::Null),
                ),
                Outcome::Rejected { detail } => EventResult::Rejected(detail),
            })
            .collect(),
    ))
}
