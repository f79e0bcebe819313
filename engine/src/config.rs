//! Engine configuration: a TOML file, then environment overrides, then validation.
//!
//! Overrides: a variable `THREATFLOW_<SECTION>__<KEY>` sets `section.key` (path segments
//! separated by a double underscore, matched lower-case), e.g. `THREATFLOW_KAFKA__BROKERS`
//! or `THREATFLOW_PIPELINE__BATCH_SIZE=1000`. Below `kafka.options`, `kafka.consumer_options`
//! and `kafka.producer_options` the key's single underscores become dots, so
//! `THREATFLOW_KAFKA__OPTIONS__SASL_PASSWORD` sets librdkafka's `sasl.password` — secrets can
//! come from a Kubernetes secret instead of the file. Values parse as TOML scalars where they
//! can (numbers, booleans) and as strings otherwise. Variables without `__` (such as
//! `THREATFLOW_CONFIG`) are not overrides.
//!
//! Guarantee: [`EngineConfig::load`] returns a config that passed [`EngineConfig::validate`];
//! unknown keys anywhere (file or environment) are errors, never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::api::config::{ApiConfig, HttpConfig};
pub use kafka::{is_secret_option, KafkaConfig};

mod kafka;
pub mod reference;
use crate::events::SchemaKind;
use crate::operators::OperatorKind;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "THREATFLOW_";

/// Sections whose keys are librdkafka properties (dotted names).
const LIBRDKAFKA_SECTIONS: [&str; 3] = ["options", "consumer_options", "producer_options"];

/// Errors of loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path of the file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The TOML is malformed, or a key is unknown or of the wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// One or more semantic checks failed; each message names the key.
    #[error("invalid config:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// The whole engine configuration.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Connection to the Kafka cluster.
    pub kafka: KafkaConfig,
    /// Input topics and the operator each is bound to; at least one.
    pub bindings: Vec<TopicBinding>,
    /// Output encoding and shared output topics.
    #[serde(default)]
    pub output: OutputConfig,
    /// Batching, backpressure and shutdown timing.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Where state and models live on disk.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Per-operator settings (`[operators.flow]`, ...): one section per operator, parsed and
    /// validated by the operator itself (see [`crate::operators::table`]).
    #[serde(default)]
    pub operators: OperatorSections,
    /// The health / readiness / metrics endpoint.
    #[serde(default)]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Confluent schema-registry ids mapped to the bundled schemas (id → schema name), used
    /// to decode Confluent-framed Avro until a registry client lands.
    #[serde(default)]
    pub schema_ids: BTreeMap<String, SchemaKind>,
    /// The model registry: artifact store, alias log, shadow scoring.
    #[serde(default)]
    pub registry: crate::registry::RegistryConfig,
    /// The input drift watch.
    #[serde(default)]
    pub drift: crate::drift::tap::DriftConfig,
    /// Roles this process plays besides scoring (`trainer`).
    #[serde(default)]
    pub lifecycle: crate::learning::LifecycleConfig,
    /// Analyst verdict intake and the training buffer.
    #[serde(default)]
    pub feedback: crate::learning::FeedbackConfig,
    /// Retraining schedule, quality gate and promotion.
    #[serde(default)]
    pub trainer: crate::learning::TrainerConfig,
}

/// `[operators.<name>]`: each operator's own settings, kept as TOML until the operator named
/// `<name>` parses them into its typed config (unknown names and keys are errors at load).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperatorSections(pub BTreeMap<String, toml::Value>);

impl OperatorSections {
    /// The section `name` as `T` (its defaults when absent). The error names the section.
    pub fn section<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, String> {
        match self.0.get(name) {
            None => Ok(T::default()),
            Some(value) => value
                .clone()
                .try_into()
                .map_err(|error| format!("operators.{name}: {error}")),
        }
    }

    /// Sets section `name` to `value`.
    pub fn set<T: Serialize>(&mut self, name: &str, value: &T) -> Result<(), String> {
        let value =
            toml::Value::try_from(value).map_err(|error| format!("operators.{name}: {error}"))?;
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    /// The section names present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Environment overrides below `operators.<name>` were read as numbers or booleans where
    /// they could be; one that makes its operator's section fail to parse but parses as the
    /// string it was (`THREATFLOW_OPERATORS__EMAIL__USER_TOPIC=42`) becomes that string.
    fn retype_overrides(&mut self, typed_overrides: &[(Vec<String>, String)]) {
        for (path, raw) in typed_overrides {
            let [section, name, key @ ..] = path.as_slice() else {
                continue;
            };
            let Some(spec) = crate::operators::table::find(name) else {
                continue;
            };
            if section != "operators" || key.is_empty() || (spec.check_config)(self).is_ok() {
                continue;
            }
            let mut retyped = self.clone();
            if let Some(toml::Value::Table(table)) = retyped.0.get_mut(name) {
                set_path(table, key, toml::Value::String(raw.clone()));
            }
            if (spec.check_config)(&retyped).is_ok() {
                *self = retyped;
            }
        }
    }
}

/// Input encoding accepted on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// JSON if the value starts with `{`, Confluent Avro if it starts with magic byte 0 and
    /// a mapped schema id, raw Avro with the bundled schema otherwise.
    Auto,
    /// JSON object.
    Json,
    /// Avro binary datum written with the bundled schema, no framing.
    Avro,
    /// Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro datum.
    Confluent,
}

/// Output encoding of scored and dead-letter records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// JSON object (bytes fields as base64).
    Json,
    /// Avro binary datum, no framing.
    Avro,
    /// Confluent wire format with the ids in `output.confluent_ids`.
    Confluent,
    /// OCSF Detection Findings (JSON) for events that cross a threshold; extra records and
    /// dead letters as JSON ([`crate::ocsf`]).
    Ocsf,
}

/// One input topic bound to one operator.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicBinding {
    /// Input topic name.
    pub topic: String,
    /// Schema of the topic's records: prompt, flow, email, alert or address.
    pub schema: SchemaKind,
    /// Operator that scores the records.
    pub operator: OperatorKind,
    /// Accepted input encoding.
    #[serde(default = "default_input_format")]
    pub input_format: InputFormat,
    /// Topic the scored events go to.
    pub output_topic: String,
    /// Worker threads scoring this topic; its partitions are spread over them (a partition
    /// stays on one). Absent: one per core for CPU-bound operators, one for the prompt
    /// operator (whose ONNX Runtime session is already multi-threaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// `full` (default) or `scores-only`: outputs, dead letters, the console and the API
    /// carry no input content of this topic ([`crate::privacy`]).
    #[serde(default)]
    pub privacy: crate::privacy::Privacy,
}

impl TopicBinding {
    /// Worker threads for this binding.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| self.operator.default_workers())
            .max(1)
    }
}

fn default_input_format() -> InputFormat {
    InputFormat::Auto
}

/// Output settings shared by all bindings.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Encoding of output records.
    #[serde(default = "default_output_format")]
    pub format: OutputFormat,
    /// Topic of dead-letter records.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// Schema ids written in Confluent framing, by schema name (`scored`, `dead_letter`);
    /// required when `format = "confluent"`.
    #[serde(default)]
    pub confluent_ids: BTreeMap<String, u32>,
    /// Key of the pseudonyms scores-only bindings write instead of entity names (a secret:
    /// set it from the environment, `THREATFLOW_OUTPUT__PSEUDONYM_KEY`).
    #[serde(default)]
    pub pseudonym_key: String,
}

fn default_output_format() -> OutputFormat {
    OutputFormat::Json
}

fn default_dead_letter_topic() -> String {
    "threatflow.dlq".to_owned()
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            format: default_output_format(),
            dead_letter_topic: default_dead_letter_topic(),
            confluent_ids: BTreeMap::new(),
            pseudonym_key: String::new(),
        }
    }
}

/// Batching, backpressure and timing of the pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most input records handed to an operator at once.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest wait for a batch to fill before it is scored anyway, milliseconds.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Batches that may queue in front of each operator before the source stops reading
    /// (backpressure: memory stays bounded at about capacity × batch_size records).
    #[serde(default = "default_channel_capacity")]
    pub channel_capacity: usize,
    /// Largest accepted record value in bytes; larger ones are dead-lettered as oversized.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Largest output record (key + value) in bytes. Dead letters are cut to fit it (their
    /// carried value is truncated and flagged); a scored output above it dead-letters its
    /// input as oversized. Keep it at or below the output topics' `max.message.bytes`
    /// (Kafka's default is 1,048,588).
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: usize,
    /// Most input a binding keeps in flight (read, not yet fully acknowledged), as time at
    /// its consumed rate, milliseconds: its partitions pause beyond that. This bounds what a
    /// crash re-processes to about this much input (plus one commit interval).
    #[serde(default = "default_max_inflight_ms")]
    pub max_inflight_ms: u64,
    /// Floor of the in-flight budget in records, whatever the rate (start-up, slow topics).
    #[serde(default = "default_min_inflight_events")]
    pub min_inflight_events: usize,
    /// Total time of a shutdown after SIGTERM/SIGINT or a fatal failure — drain, flush,
    /// commit and leaving the group — milliseconds. Keep it below the pod's
    /// terminationGracePeriodSeconds (Kubernetes' default is 30 s).
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Time allowed to finish in-flight records of revoked partitions before their offsets
    /// are committed on a rebalance, milliseconds.
    #[serde(default = "default_revoke_drain_ms")]
    pub revoke_drain_ms: u64,
    /// How often stored offsets are committed, milliseconds. This bounds what a crash
    /// re-processes: about one interval of input plus what was in flight.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Interval of the operators' `tick` hook, milliseconds.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// How often keyed state (email windows, alert entity history) is checkpointed to its
    /// changelog topic, milliseconds (also on revoke and shutdown). An input's offset is
    /// committed only once its effect on state is checkpointed, so this also delays the
    /// commits of stateful bindings and bounds what a crash re-folds.
    #[serde(default = "default_state_checkpoint_ms")]
    pub state_checkpoint_ms: u64,
}

fn default_batch_size() -> usize {
    500
}
fn default_linger_ms() -> u64 {
    20
}
fn default_channel_capacity() -> usize {
    8
}
fn default_max_message_bytes() -> usize {
    1024 * 1024
}
fn default_max_output_bytes() -> usize {
    1_000_000
}
fn default_max_inflight_ms() -> u64 {
    1_000
}
fn default_min_inflight_events() -> usize {
    100
}
fn default_shutdown_grace_ms() -> u64 {
    20_000
}
fn default_revoke_drain_ms() -> u64 {
    10_000
}
fn default_commit_interval_ms() -> u64 {
    250
}
fn default_tick_ms() -> u64 {
    1_000
}
fn default_state_checkpoint_ms() -> u64 {
    1_000
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: default_batch_size(),
            linger_ms: default_linger_ms(),
            channel_capacity: default_channel_capacity(),
            max_message_bytes: default_max_message_bytes(),
            max_output_bytes: default_max_output_bytes(),
            max_inflight_ms: default_max_inflight_ms(),
            min_inflight_events: default_min_inflight_events(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            revoke_drain_ms: default_revoke_drain_ms(),
            commit_interval_ms: default_commit_interval_ms(),
            tick_ms: default_tick_ms(),
            state_checkpoint_ms: default_state_checkpoint_ms(),
        }
    }
}

/// Directories on disk.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Keyed state checkpoints (created if missing).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Model artifacts, `<model_dir>/<operator>/<version>/manifest.json`.
    #[serde(default = "default_model_dir")]
    pub model_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("./state")
}
fn default_model_dir() -> PathBuf {
    PathBuf::from("./models")
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            model_dir: default_model_dir(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging settings; the filter comes from `RUST_LOG` (default `info`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// OTLP/HTTP collector (`http://collector:4318`): traces of every batch are exported there
    /// (spans `batch` > `decode`, `score`, `emit`; counts, topic, partitions, model version as
    /// attributes, never payloads). Empty: no traces.
    #[serde(default)]
    pub otlp_endpoint: String,
}

fn default_log_format() -> LogFormat {
    LogFormat::Text
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            otlp_endpoint: String::new(),
        }
    }
}

impl EngineConfig {
    /// Reads `path`, applies the process environment's overrides and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_with_env(&text, std::env::vars())
    }

    /// Parses `text`, applies overrides from `env` (name, value pairs) and validates.
    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut document: toml::Table =
            toml::from_str(text).map_err(|error| ConfigError::Parse(error.to_string()))?;
        whole_floats_as_integers(&mut document);
        // Overrides whose value was read as a number or boolean: if the key turns out to be a
        // string (`THREATFLOW_KAFKA__GROUP_ID=42`), the value is taken as the string it was.
        let mut typed_overrides: Vec<(Vec<String>, String)> = Vec::new();
        for (name, value) in env {
            if let Some(path) = apply_env_override(&mut document, &name, &value)? {
                typed_overrides.push((path, value));
            }
        }
        loop {
            let attempt: Result<EngineConfig, _> =
                serde_path_to_error::deserialize(toml::Value::Table(document.clone()));
            let error = match attempt {
                Ok(mut config) => {
                    config.operators.retype_overrides(&typed_overrides);
                    config
                        .kafka
                        .load_secret_files()
                        .map_err(ConfigError::Invalid)?;
                    config.validate()?;
                    return Ok(config);
                }
                Err(error) => error,
            };
            let failed_path = error.path().to_string();
            let retyped = typed_overrides
                .iter()
                .position(|(path, _)| path.join(".") == failed_path);
            let Some(index) = retyped else {
                let message = toml::Value::Table(document)
                    .try_into::<EngineConfig>()
                    .err()
                    .map_or_else(|| error.to_string(), |error| error.to_string());
                return Err(ConfigError::Parse(message));
            };
            let (path, raw) = typed_overrides.remove(index);
            set_path(&mut document, &path, toml::Value::String(raw));
        }
    }

    /// Checks what serde cannot: values in range, names unique, topics distinct, bindings
    /// compatible with their operators. Collects every problem, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.kafka.brokers.trim().is_empty() {
            problems.push("kafka.brokers must not be empty".to_owned());
        }
        if self.kafka.group_id.trim().is_empty() {
            problems.push("kafka.group_id must not be empty".to_owned());
        }
        if self.bindings.is_empty() {
            problems.push("bindings: at least one [[bindings]] entry is required".to_owned());
        }
        let mut seen_topics = std::collections::BTreeSet::new();
        for (index, binding) in self.bindings.iter().enumerate() {
            if binding.topic.is_empty() {
                problems.push(format!("bindings[{index}].topic must not be empty"));
            }
            if !seen_topics.insert(binding.topic.as_str()) {
                problems.push(format!(
                    "bindings[{index}].topic {:?} is bound twice",
                    binding.topic
                ));
            }
            if binding.output_topic.is_empty() {
                problems.push(format!("bindings[{index}].output_topic must not be empty"));
            }
            if binding.workers == Some(0) {
                problems.push(format!("bindings[{index}].workers must be at least 1"));
            }
            if !binding.operator.accepts(binding.schema) {
                problems.push(format!(
                    "bindings[{index}]: operator {} does not score {} records",
                    binding.operator.name(),
                    binding.schema.name()
                ));
            }
            if binding.input_format == InputFormat::Confluent && self.schema_ids.is_empty() {
                problems.push(format!(
                    "bindings[{index}].input_format = \"confluent\" needs [schema_ids]"
                ));
            }
        }
        for binding in &self.bindings {
            let output_topics = [
                binding.output_topic.as_str(),
                self.output.dead_letter_topic.as_str(),
            ];
            for other in &self.bindings {
                if output_topics.contains(&other.topic.as_str()) {
                    problems.push(format!(
                        "topic {:?} is both an input and an output (would loop)",
                        other.topic
                    ));
                }
            }
        }
        let (section_problems, operator_outputs) =
            crate::operators::table::check_sections(&self.operators);
        problems.extend(section_problems);
        for (name, topic) in operator_outputs {
            if !topic.is_empty() && self.bindings.iter().any(|binding| binding.topic == topic) {
                problems.push(format!("{name} {topic:?} is also an input (would loop)"));
            }
        }
        for id in self.schema_ids.keys() {
            if id.parse::<u32>().is_err() {
                problems.push(format!("schema_ids: key {id:?} is not a schema id number"));
            }
        }
        if self.output.format == OutputFormat::Confluent {
            for schema in ["scored", "dead_letter"] {
                if !self.output.confluent_ids.contains_key(schema) {
                    problems.push(format!(
                        "output.confluent_ids.{schema} is required when output.format = \"confluent\""
                    ));
                }
            }
        }
        let pipeline = &self.pipeline;
        if pipeline.batch_size == 0 || pipeline.batch_size > 100_000 {
            problems.push("pipeline.batch_size must be within 1..=100000".to_owned());
        }
        if pipeline.max_output_bytes < 16 * 1024 {
            problems.push("pipeline.max_output_bytes must be at least 16384".to_owned());
        }
        if pipeline.max_inflight_ms == 0 || pipeline.min_inflight_events == 0 {
            problems.push(
                "pipeline.max_inflight_ms and pipeline.min_inflight_events must be positive"
                    .to_owned(),
            );
        }
        if pipeline.channel_capacity == 0 {
            problems.push("pipeline.channel_capacity must be at least 1".to_owned());
        }
        if pipeline.max_message_bytes == 0 {
            problems.push("pipeline.max_message_bytes must be at least 1".to_owned());
        }
        if pipeline.commit_interval_ms == 0 {
            problems.push("pipeline.commit_interval_ms must be at least 1".to_owned());
        }
        if pipeline.state_checkpoint_ms == 0 {
            problems.push("pipeline.state_checkpoint_ms must be at least 1".to_owned());
        }
        if pipeline.tick_ms == 0 {
            problems.push("pipeline.tick_ms must be at least 1".to_owned());
        }
        problems.extend(self.http.problems());
        problems.extend(self.registry.problems());
        problems.extend(self.drift.problems());
        problems.extend(self.feedback.problems());
        problems.extend(self.trainer.problems());
        problems.extend(self.trainer.drift_problems(&self.drift));
        for (key, topic) in [
            ("registry.topic", &self.registry.topic),
            ("registry.shadow_topic", &self.registry.shadow_topic),
            ("drift.topic", &self.drift.topic),
        ] {
            if !topic.is_empty() && seen_topics.contains(topic.as_str()) {
                problems.push(format!("{key} {topic:?} is also an input (would loop)"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The effective configuration as TOML, with secret-looking librdkafka values masked.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        masked.kafka = self.kafka.masked();
        masked.http.mask_secrets();
        if !masked.output.pseudonym_key.is_empty() {
            masked.output.pseudonym_key = "********".to_owned();
        }
        kafka::mask_secret_options(&mut masked.registry.store_options);
        toml::to_string_pretty(&masked)
            .unwrap_or_else(|error| format!("# cannot render config: {error}\n"))
    }
}

/// Applies one environment variable to the parsed document if it is an override. Returns
/// the key's path when the value was read as a number or boolean (so it can be taken as a
/// string instead if the key is a string).
fn apply_env_override(
    document: &mut toml::Table,
    name: &str,
    value: &str,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(path) = name.strip_prefix(ENV_PREFIX) else {
        return Ok(None);
    };
    if !path.contains("__") {
        return Ok(None);
    }
    let segments: Vec<String> = path.split("__").map(str::to_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err(ConfigError::Parse(format!(
            "environment override {name} has an empty key segment"
        )));
    }
    let (last, parents) = segments
        .split_last()
        .ok_or_else(|| ConfigError::Parse(format!("environment override {name} names no key")))?;
    let mut table = document;
    for segment in parents {
        let entry = table
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| {
            ConfigError::Parse(format!(
                "environment override {name}: {segment} is not a table"
            ))
        })?;
    }
    let parent_is_librdkafka = parents
        .last()
        .is_some_and(|parent| LIBRDKAFKA_SECTIONS.contains(&parent.as_str()));
    if parent_is_librdkafka {
        // librdkafka values are strings, keys are dotted.
        table.insert(
            last.replace('_', "."),
            toml::Value::String(value.to_owned()),
        );
        return Ok(None);
    }
    let parsed = parse_scalar(value);
    let typed = !parsed.is_str();
    table.insert(last.clone(), parsed);
    Ok(typed.then_some(segments))
}

/// Sets the value at `path` (tables along it exist: an override created them).
fn set_path(document: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut table = document;
    for segment in parents {
        match table.get_mut(segment).and_then(toml::Value::as_table_mut) {
            Some(next) => table = next,
            None => return,
        }
    }
    table.insert(last.clone(), value);
}

/// Parses an environment value as a TOML scalar (integer, float, boolean), else a string.
/// Helm's `toToml` (the chart's ConfigMap) writes every number as a float (`batch_size =
/// 500.0`): whole floats become integers, which integer and float settings both accept.
fn whole_floats_as_integers(table: &mut toml::Table) {
    fn visit(value: &mut toml::Value) {
        match value {
            toml::Value::Float(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => {
                *value = toml::Value::Integer(*float as i64);
            }
            toml::Value::Table(table) => table.iter_mut().for_each(|(_, value)| visit(value)),
            toml::Value::Array(items) => items.iter_mut().for_each(visit),
            _ => {}
        }
    }
    table.iter_mut().for_each(|(_, value)| visit(value));
}

fn parse_scalar(value: &str) -> toml::Value {
    if let Ok(integer) = value.parse::<i64>() {
        return toml::Value::Integer(integer);
    }
    if let Ok(boolean) = value.parse::<bool>() {
        return toml::Value::Boolean(boolean);
    }
    if let Ok(float) = value.parse::<f64>() {
        if float.is_finite() {
            return toml::Value::Float(float);
        }
    }
    toml::Value::String(value.to_owned())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
