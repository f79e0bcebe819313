//! The operator trait every stream operator implements, and the registry of operator kinds.
//!
//! An operator is plain synchronous code owned by one worker thread (`&mut self`, no locks):
//! the pipeline hands it batches of decoded, validated events of the schema it accepts, in
//! offset order per partition, and emits what it returns. Hooks other than `score_batch` have
//! no-op defaults, so a stateless operator implements two methods.
//!
//! Contract of [`Operator::score_batch`]: it returns exactly one [`Outcome`] per input event,
//! in input order. An event it cannot score *because of the event* is an
//! [`Outcome::Rejected`] (dead-lettered with reason `operator_rejected`), never a panic and
//! never a silent drop. A failure of the engine's own machinery (model not loaded, ONNX
//! Runtime error) is an `Err` for the whole batch: it is retried and never dead-lettered.

pub mod address;
pub mod alert;
pub mod email;
pub mod fault;
pub mod flow;
pub mod passthrough;
pub mod prompt;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::events::{InputEvent, SchemaKind};
use crate::scored::{Scored, SourceCoordinates};

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
        OperatorError::Model(format!(
            "no {operator} model under {} (train one with `threatflow train {operator}`)",
            operator_dir.display()
        ))
    })
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

/// Errors of operator lifecycle hooks.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Loading a model or its manifest failed.
    #[error("model load failed: {0}")]
    Model(String),
    /// Writing or reading a state checkpoint failed.
    #[error("checkpoint failed: {0}")]
    Checkpoint(String),
    /// Scoring failed for a reason that is not the input's (model not loaded, inference
    /// runtime error): the batch is retried, never dead-lettered.
    #[error("scoring failed: {0}")]
    Scoring(String),
    /// The hook is not supported by this operator.
    #[error("{0} is not supported by this operator")]
    Unsupported(&'static str),
}

/// What an operator gets at start.
#[derive(Debug, Clone)]
pub struct OperatorContext<'a> {
    /// `storage.model_dir`.
    pub model_dir: &'a Path,
    /// `storage.state_dir`, for keyed state checkpoints.
    pub state_dir: &'a Path,
    /// The `[operators]` config section.
    pub operators: &'a OperatorsConfig,
    /// The input topic the operator is bound to (keyed state is stored per topic).
    pub input_topic: &'a str,
    /// The engine's Kafka settings, for operators that read another topic (behaviour feeds);
    /// `None` offline (tests, eval).
    pub kafka: Option<&'a crate::config::KafkaConfig>,
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
            state_dir: &config.storage.state_dir,
            operators: &config.operators,
            input_topic,
            kafka: with_feeds.then_some(&config.kafka),
        }
    }
}

/// `[operators.*]`: per-operator settings, each with defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorsConfig {
    /// The network-flow operator.
    #[serde(default)]
    pub flow: flow::FlowOperatorConfig,
    /// The SIEM alert operator.
    #[serde(default)]
    pub alert: alert::AlertOperatorConfig,
    /// The sender-address fraud operator.
    #[serde(default)]
    pub address: address::AddressOperatorConfig,
    /// The insider-threat email operator.
    #[serde(default)]
    pub email: email::EmailOperatorConfig,
    /// The LLM prompt operator.
    #[serde(default)]
    pub prompt: prompt::PromptOperatorConfig,
    /// The fault operator (reliability tests only).
    #[serde(default)]
    pub fault: fault::FaultOperatorConfig,
}

/// One stream operator.
pub trait Operator: Send {
    /// Operator name, as in config and in the scored envelope.
    fn name(&self) -> &'static str;

    /// Version of the models in use, written into every scored event.
    fn model_version(&self) -> String;

    /// Scores a batch; one outcome per event, in order. `Err` means the engine could not
    /// score (model not loaded, ONNX Runtime or another infrastructure failure): nothing of the
    /// batch is emitted, the pipeline retries it and, if the failure persists, stops the
    /// engine with the batch uncommitted. Never use it for a property of one event.
    fn score_batch(&mut self, events: &[SourcedEvent]) -> Result<Vec<Outcome>, OperatorError>;

    /// Called once on the worker thread before the first batch: load models, restore state.
    fn start(&mut self, _context: &OperatorContext<'_>) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called every `pipeline.tick_ms`; may emit records not tied to one input (timers).
    fn tick(&mut self, _now: SystemTime) -> Vec<ExtraRecord> {
        Vec::new()
    }

    /// Called before offsets are committed on revoke and on shutdown: persist keyed state.
    fn checkpoint(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }

    /// What `/models` shows about the loaded models (manifest summary), if any.
    fn model_info(&self) -> Option<serde_json::Value> {
        None
    }

    /// Replaces the models with the version in `version_dir` without a restart.
    fn swap_model(&mut self, _version_dir: &Path) -> Result<(), OperatorError> {
        Err(OperatorError::Unsupported("model swap"))
    }
}

/// The operators the engine can run, as named in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    /// Scores nothing; wraps each valid event in the envelope. For pipeline checks, load
    /// tests and topics whose operator has not landed yet.
    Passthrough,
    /// Network flows: gradient-boosted severity with TreeSHAP explanations.
    Flow,
    /// SIEM alerts: disposition, anomaly flag and 0–100 risk blended with rules.
    Alert,
    /// Email addresses (address records, or the sender of emails): fraud risk and decision.
    Address,
    /// Emails: insider-threat anomaly ensemble per message and windowed risk per user.
    Email,
    /// LLM prompts: L1 rules and the L2 transformer classifier on normalized text.
    Prompt,
    /// Reliability tests only: a passthrough that panics or fails after N events.
    Fault,
}

impl OperatorKind {
    /// Name as in config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Passthrough => "passthrough",
            Self::Flow => "flow",
            Self::Alert => "alert",
            Self::Address => "address",
            Self::Email => "email",
            Self::Prompt => "prompt",
            Self::Fault => "fault",
        }
    }

    /// Whether this operator scores records of `schema`.
    pub fn accepts(self, schema: SchemaKind) -> bool {
        match self {
            Self::Passthrough | Self::Fault => true,
            Self::Flow => schema == SchemaKind::Flow,
            Self::Alert => schema == SchemaKind::Alert,
            Self::Address => matches!(schema, SchemaKind::Address | SchemaKind::Email),
            Self::Email => schema == SchemaKind::Email,
            Self::Prompt => schema == SchemaKind::Prompt,
        }
    }

    /// A fresh instance of the operator.
    pub fn build(self) -> Box<dyn Operator> {
        match self {
            Self::Passthrough => Box::new(passthrough::PassthroughOperator),
            Self::Flow => Box::new(flow::FlowOperator::default()),
            Self::Alert => Box::new(alert::AlertOperator::default()),
            Self::Address => Box::new(address::AddressOperator::default()),
            Self::Email => Box::new(email::EmailOperator::default()),
            Self::Prompt => Box::new(prompt::PromptOperator::default()),
            Self::Fault => Box::new(fault::FaultOperator::default()),
        }
    }
}
