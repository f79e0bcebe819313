//! The operator trait every stream operator implements, what an operator starts per binding
//! ([`BindingRuntime`]), and the operator table ([`table`]).
//!
//! An operator is a spec in [`table::OPERATORS`]: its name, the schemas it accepts, and a
//! `start` function that loads its model into a shared [`ModelSlot`](crate::runtime::ModelSlot)
//! and returns a [`BindingRuntime`]: the slot, the partition-state type if it keeps keyed
//! state, and a factory of per-worker scorers ([`Operator`]). A scorer is plain synchronous
//! code owned by one worker thread (`&mut self`): the pipeline hands it batches of decoded,
//! validated events of the schema it accepts, in offset order per partition, together with
//! the keyed state of their partitions, and emits what it returns.
//!
//! Contract of [`Operator::score_batch`]: it returns exactly one [`Outcome`] per input event,
//! in input order. An event it cannot score *because of the event* is an
//! [`Outcome::Rejected`] (dead-lettered with reason `operator_rejected`), never a panic and
//! never a silent drop. A failure of the engine's own machinery (model not loaded, ONNX
//! Runtime error) is an `Err` for the whole batch: it is retried and never dead-lettered.

pub mod address;
pub mod alert;
pub mod command_args;
pub mod email;
pub mod explain_mode;
pub mod fault;
pub mod flow;
pub mod passthrough;
pub mod prompt;

pub mod table;
#[cfg(test)]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::events::InputEvent;
use crate::runtime::{ModelHandle, PartitionStates, StateFactory};
use crate::scored::{Scored, SourceCoordinates};

pub use table::{OperatorKind, OperatorSpec};

/// A decoded event with the coordinates and stable id it was read under.
#[derive(Debug, Clone)]
pub struct SourcedEvent {
    /// Where it was read.
    pub source: SourceCoordinates,
    /// Stable id (producer's id or derived from the coordinates).
    pub event_id: String,
    /// The event.
    pub event: InputEvent,
}

impl SourcedEvent {
    /// The scored envelope of this event: its id, coordinates and event time, with
    /// `operator`, `model_version` and `scored_at_ms`; scores, labels, explanation and
    /// thresholds empty (fill them with [`Scored::with_scores`] and friends).
    pub fn scored(&self, operator: &str, model_version: &str, scored_at_ms: i64) -> Scored {
        Scored {
            event_id: self.event_id.clone(),
            source: self.source.clone(),
            operator: operator.to_owned(),
            model_version: model_version.to_owned(),
            scores: Default::default(),
            labels: Default::default(),
            explanation: Vec::new(),
            thresholds_crossed: Vec::new(),
            event_time_ms: self.event.event_time_ms(),
            scored_at_ms,
        }
    }

    /// `event` as read at `offset` of partition 0 of `topic`, with the derived id (for
    /// tests, benchmarks and offline scoring, where there is no broker record).
    pub fn at_offset(topic: &str, offset: i64, event: InputEvent) -> Self {
        let source = SourceCoordinates {
            topic: topic.to_owned(),
            partition: 0,
            offset,
            timestamp_ms: None,
        };
        Self {
            event_id: source.derived_event_id(),
            source,
            event,
        }
    }
}

/// The model version directory an operator loads at start: `<model_dir>/<operator>/<version>`,
/// or the newest version there when `version` is empty.
pub fn model_version_dir(
    model_dir: &Path,
    operator: &str,
    version: &str,
) -> Result<PathBuf, OperatorError> {
    let operator_dir = model_dir.join(operator);
    if !version.is_empty() {
        return Ok(operator_dir.join(version));
    }
    crate::ml::artifact::newest_version(&operator_dir).ok_or_else(|| {
        OperatorError::Config(format!(
            "no {operator} model under {} (train one with `threatflow train {operator}`)",
            operator_dir.display()
        ))
    })
}

/// Loads `operator`'s model `version` (the newest when empty) under `<model_dir>/<operator>`
/// into a slot with `loader`, and returns a binding whose workers are made by `worker` over
/// that slot — the `start` of every operator with one model version directory.
pub fn start_with_model<L: crate::runtime::ModelLoader + Clone, W: Operator + 'static>(
    context: &OperatorContext<'_>,
    operator: &'static str,
    version: &str,
    loader: L,
    worker: impl Fn(Arc<crate::runtime::ModelSlot<L>>) -> W + Send + Sync + 'static,
) -> Result<BindingRuntime, OperatorError> {
    let directory = context.version_dir(operator, version)?;
    start_over_slot(operator, loader, &directory, worker)
}

/// Loads `directory` into a slot with `loader` and returns a binding whose workers are made
/// by `worker` over that slot, with a challenger loader (a fresh slot from `loader`, the same
/// `worker`) for shadow scoring.
pub fn start_over_slot<L: crate::runtime::ModelLoader + Clone, W: Operator + 'static>(
    operator: &'static str,
    loader: L,
    directory: &Path,
    worker: impl Fn(Arc<crate::runtime::ModelSlot<L>>) -> W + Send + Sync + 'static,
) -> Result<BindingRuntime, OperatorError> {
    let slot = crate::runtime::ModelSlot::load(operator, loader.clone(), directory)?;
    let worker = Arc::new(worker);
    let shadow_worker = worker.clone();
    Ok(
        BindingRuntime::with_model(slot.clone(), move || Box::new(worker(slot.clone())))
            .with_shadow(Arc::new(move |directory: &Path| {
                let slot = crate::runtime::ModelSlot::load(operator, loader.clone(), directory)?;
                let worker = shadow_worker.clone();
                Ok(crate::registry::shadow::Challenger {
                    version: crate::runtime::ModelHandle::version(&*slot),
                    model: slot.clone(),
                    new_worker: Box::new(move || Box::new(worker(slot.clone()))),
                })
            })),
    )
}

/// An output record besides the scored event, to a topic of the operator's choice (for
/// example a per-user risk update).
#[derive(Debug, Clone)]
pub struct ExtraRecord {
    /// Destination topic.
    pub topic: String,
    /// Record key (the entity), used for partitioning.
    pub key: String,
    /// Payload, encoded like scored events.
    pub scored: Scored,
}

/// What an operator made of one event.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Scored: the event for the binding's output topic, plus any extra records.
    Scored {
        /// The scored event.
        scored: Box<Scored>,
        /// Additional records produced by this input.
        extra: Vec<ExtraRecord>,
    },
    /// The operator cannot score this event; `detail` must not quote payload text.
    Rejected {
        /// Why, for the dead-letter record.
        detail: String,
    },
}

/// A boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of starting or running an operator; each keeps its cause as `source()`.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// A model version failed to load or verify.
    #[error("model {}: {source}", directory.display())]
    Model {
        /// The version directory.
        directory: PathBuf,
        /// Why.
        #[source]
        source: crate::ml::artifact::ModelError,
    },
    /// The operator's settings are invalid, or do not fit the model.
    #[error("{0}")]
    Config(String),
    /// Something else the operator needs failed to load or start (a rule file, ONNX Runtime,
    /// a behaviour feed).
    #[error("{what}: {source}")]
    Resource {
        /// What it is.
        what: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Scoring failed for a reason that is not the input's (inference runtime error, missing
    /// partition state): the batch is retried, never dead-lettered.
    #[error("scoring failed: {what}")]
    Scoring {
        /// What failed.
        what: String,
        /// The cause, if another error.
        #[source]
        source: Option<BoxError>,
    },
}

impl OperatorError {
    /// Maps a [`ModelError`](crate::ml::artifact::ModelError) of loading `directory`.
    pub fn model_at(directory: &Path) -> impl FnOnce(crate::ml::artifact::ModelError) -> Self + '_ {
        move |source| Self::Model {
            directory: directory.to_owned(),
            source,
        }
    }

    /// A [`Self::Resource`] error.
    pub fn resource(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Resource {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A [`Self::Scoring`] error without another error as its cause.
    pub fn scoring(what: impl Into<String>) -> Self {
        Self::Scoring {
            what: what.into(),
            source: None,
        }
    }
}

/// What an operator gets at start.
#[derive(Debug, Clone)]
pub struct OperatorContext<'a> {
    /// `storage.model_dir`.
    pub model_dir: &'a Path,
    /// The `[operators.*]` sections (each operator reads its own, see
    /// [`table::settings`]).
    pub operators: &'a crate::config::OperatorSections,
    /// The input topic the operator is bound to (keyed state is stored per topic).
    pub input_topic: &'a str,
    /// The engine's Kafka settings, for operators that read another topic (behaviour feeds);
    /// `None` offline (tests, eval).
    pub kafka: Option<&'a crate::config::KafkaConfig>,
    /// The version directory to load, chosen by the registry (its champion, verified in the
    /// local cache); `None`: the operator's configured or newest version under `model_dir`.
    pub pinned_version_dir: Option<&'a Path>,
}

impl<'a> OperatorContext<'a> {
    /// The context of the operator bound to `input_topic` in the engine of `config`. With
    /// `with_feeds` it gets the Kafka settings to read other topics (behaviour feeds); without,
    /// it consumes nothing (`config check`).
    pub fn for_binding(
        config: &'a crate::config::EngineConfig,
        input_topic: &'a str,
        with_feeds: bool,
    ) -> Self {
        Self {
            model_dir: &config.storage.model_dir,
            operators: &config.operators,
            input_topic,
            kafka: with_feeds.then_some(&config.kafka),
            pinned_version_dir: None,
        }
    }

    /// The version directory `operator` loads: the pinned one, else `version` (the newest
    /// when empty) under `<model_dir>/<operator>`.
    pub fn version_dir(&self, operator: &str, version: &str) -> Result<PathBuf, OperatorError> {
        match self.pinned_version_dir {
            Some(directory) => Ok(directory.to_owned()),
            None => model_version_dir(self.model_dir, operator, version),
        }
    }
}

/// One worker's scorer of a binding: plain synchronous code owned by one worker thread
/// (`&mut self`, no locks). The binding's model is shared through its model slot and read
/// once per batch; keyed state belongs to the pipeline and is handed in per call.
pub trait Operator: Send {
    /// Operator name, as in config and in the scored envelope.
    fn name(&self) -> &'static str;

    /// Scores a batch; one outcome per event, in order. `Err` means the engine could not
    /// score (ONNX Runtime or another infrastructure failure): nothing of the batch is
    /// emitted, the pipeline retries it and, if the failure persists, stops the engine with
    /// the batch uncommitted. Never use it for a property of one event. `state` holds the
    /// keyed state of every partition of the batch (empty for a stateless operator).
    fn score_batch(
        &mut self,
        events: &[SourcedEvent],
        state: &mut PartitionStates,
    ) -> Result<Vec<Outcome>, OperatorError>;

    /// Called every `pipeline.tick_ms`; may emit records not tied to one input (timers).
    fn tick(&mut self, _now: SystemTime, _state: &mut PartitionStates) -> Vec<ExtraRecord> {
        Vec::new()
    }
}

/// Makes one worker's scorer.
pub type WorkerFactory = Box<dyn Fn() -> Box<dyn Operator> + Send + Sync>;

/// What an operator starts for one binding: shared by all the binding's workers.
pub struct BindingRuntime {
    /// The model slot (`None` for operators without a model).
    pub model: Option<Arc<dyn ModelHandle>>,
    /// The partition state type (`None` for a stateless operator).
    pub state: Option<StateFactory>,
    /// What one event reads of that state (the scoring API's scratch state).
    pub state_reads: Option<StateReads>,
    /// Makes one worker's scorer.
    pub new_worker: WorkerFactory,
    /// Loads a challenger for shadow scoring (`None`: the operator has no model).
    pub shadow: Option<crate::registry::shadow::ShadowFactory>,
}

impl BindingRuntime {
    /// A stateless binding without a model whose workers are made by `new_worker`.
    pub fn stateless(new_worker: impl Fn() -> Box<dyn Operator> + Send + Sync + 'static) -> Self {
        Self {
            model: None,
            state: None,
            state_reads: None,
            new_worker: Box::new(new_worker),
            shadow: None,
        }
    }

    /// A binding with `model`, whose workers are made by `new_worker`.
    pub fn with_model(
        model: Arc<dyn ModelHandle>,
        new_worker: impl Fn() -> Box<dyn Operator> + Send + Sync + 'static,
    ) -> Self {
        Self {
            model: Some(model),
            state: None,
            state_reads: None,
            new_worker: Box::new(new_worker),
            shadow: None,
        }
    }

    /// Adds a challenger loader for shadow scoring.
    pub fn with_shadow(mut self, factory: crate::registry::shadow::ShadowFactory) -> Self {
        self.shadow = Some(factory);
        self
    }

    /// Adds keyed partition state made by `factory`, of which one event reads `reads`.
    pub fn with_state(mut self, factory: StateFactory, reads: StateReads) -> Self {
        self.state = Some(factory);
        self.state_reads = Some(reads);
        self
    }
}

/// What scoring one event reads of a stateful operator's partition state: the scoring API
/// restores exactly these entries into a scratch state ([`crate::runtime::StateView`]).
#[derive(Debug, Clone, Copy)]
pub struct StateReads {
    /// The entity entries the event's features read (its user, its hosts).
    pub entity_keys: fn(&InputEvent) -> Vec<String>,
    /// Partition-wide entries (event-time watermark), merged over the held partitions.
    pub meta_keys: &'static [&'static str],
}
