//! The demo's topics and engine config: five streams bound to their operators (passthrough
//! where no model is installed), created on the embedded mock cluster or on a real broker.
//!
//! Shared by `threatflow demo`, `demo --serve`, the chaos tool and `threatflow-loadtest`, so
//! every load figure runs the same bindings the README's first command runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;

use crate::config::{
    EngineConfig, HttpConfig, InputFormat, KafkaConfig, LogConfig, OperatorSections, OutputConfig,
    PipelineConfig, StorageConfig, TopicBinding,
};
use crate::events::SchemaKind;
use crate::ml::artifact::newest_version;
use crate::operators::table::OPERATORS;
use crate::operators::OperatorKind;

/// Partitions of every demo topic.
const DEMO_PARTITIONS: i32 = 3;
/// Input size limit of the demo: small enough that its oversized samples still fit the
/// broker's default 1 MB record limit, so they reach the engine and get dead-lettered.
pub const DEMO_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One demo stream: its schema and topic names.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Schema of the input topic.
    pub kind: SchemaKind,
    /// Input topic.
    pub input: String,
    /// Scored output topic.
    pub output: String,
}

/// The demo's topics. On the embedded broker they carry the production names; on an
/// external one every run gets its own suffix, so runs never read each other's records.
#[derive(Debug, Clone)]
pub struct DemoTopics {
    /// Prompt, flow, email, alert and address streams, in that order.
    pub streams: Vec<Stream>,
    /// Dead-letter topic.
    pub dead_letter: String,
    /// Per-entity behaviour records of the alert operator (fused into email user risk).
    pub entities: String,
    /// Per-user risk records of the email operator.
    pub email_users: String,
}

impl DemoTopics {
    /// The demo's topic names with `suffix` appended (empty: the production names).
    pub fn with_suffix(suffix: &str) -> Self {
        let streams = [
            (SchemaKind::Prompt, "prompts"),
            (SchemaKind::Flow, "flows"),
            (SchemaKind::Email, "emails"),
            (SchemaKind::Alert, "alerts"),
            (SchemaKind::Address, "addresses"),
        ]
        .into_iter()
        .map(|(kind, name)| Stream {
            kind,
            input: format!("{name}{suffix}"),
            output: format!("scored.{name}{suffix}"),
        })
        .collect();
        Self {
            streams,
            dead_letter: format!("threatflow.dlq{suffix}"),
            entities: format!("scored.entities{suffix}"),
            email_users: format!("scored.email-users{suffix}"),
        }
    }

    /// Every topic: inputs, outputs, dead letters, entity and user records.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.streams
            .iter()
            .flat_map(|stream| [stream.input.as_str(), stream.output.as_str()])
            .chain([
                self.dead_letter.as_str(),
                self.entities.as_str(),
                self.email_users.as_str(),
            ])
    }

    /// Input topics with their schema.
    pub fn inputs(&self) -> impl Iterator<Item = (SchemaKind, &str)> {
        self.streams
            .iter()
            .map(|stream| (stream.kind, stream.input.as_str()))
    }

    /// Scored output topics and the dead-letter topic.
    pub fn outputs(&self) -> impl Iterator<Item = &str> {
        self.streams
            .iter()
            .map(|stream| stream.output.as_str())
            .chain([self.dead_letter.as_str()])
    }
}

/// The engine config the demo runs: every stream bound to its operator.
pub fn demo_config(brokers: &str, group_id: &str, topics: &DemoTopics) -> EngineConfig {
    let model_dir = demo_model_dir();
    let has_model = |operator: &str| {
        model_dir
            .as_ref()
            .is_some_and(|root| newest_version(&root.join(operator)).is_some())
    };
    // The first operator of the table that scores the stream and has a model; else
    // passthrough.
    let operator_for = |kind: SchemaKind| {
        OPERATORS
            .iter()
            .find(|spec| {
                spec.model.is_some_and(|model| has_model(model.dir)) && (spec.accepts)(kind)
            })
            .and_then(|spec| OperatorKind::named(spec.name))
            .or_else(|| OperatorKind::named("passthrough"))
            .expect("passthrough is in the operator table")
    };
    let mut prompt = crate::operators::prompt::PromptOperatorConfig::default();
    if !crate::operators::prompt::l2::resolve_library("").exists() {
        // A machine without scripts/setup.sh's ONNX Runtime still runs the demo: rules only.
        tracing::warn!("no onnx runtime library found; the demo scores prompts with rules only");
        prompt.l2.enabled = false;
    }
    let alert = crate::operators::alert::AlertOperatorConfig {
        entity_topic: topics.entities.clone(),
        ..Default::default()
    };
    let email = crate::operators::email::EmailOperatorConfig {
        behaviour_topic: topics.entities.clone(),
        user_topic: topics.email_users.clone(),
        ..Default::default()
    };
    let mut operators = OperatorSections::default();
    for result in [
        operators.set("prompt", &prompt),
        operators.set("alert", &alert),
        operators.set("email", &email),
    ] {
        result.expect("operator defaults serialise to TOML");
    }
    EngineConfig {
        kafka: KafkaConfig {
            brokers: brokers.to_owned(),
            group_id: group_id.to_owned(),
            options: BTreeMap::new(),
            consumer_options: BTreeMap::new(),
            producer_options: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            group_instance_id: String::new(),
        },
        bindings: topics
            .streams
            .iter()
            .map(|stream| TopicBinding {
                topic: stream.input.clone(),
                schema: stream.kind,
                operator: operator_for(stream.kind),
                workers: None,
                input_format: InputFormat::Auto,
                output_topic: stream.output.clone(),
                privacy: Default::default(),
            })
            .collect(),
        output: OutputConfig {
            dead_letter_topic: topics.dead_letter.clone(),
            ..OutputConfig::default()
        },
        pipeline: PipelineConfig {
            max_message_bytes: DEMO_MAX_MESSAGE_BYTES,
            ..PipelineConfig::default()
        },
        storage: StorageConfig {
            model_dir: model_dir.unwrap_or_else(|| StorageConfig::default().model_dir),
            ..StorageConfig::default()
        },
        operators,
        http: HttpConfig {
            bind: String::new(),
            ..HttpConfig::default()
        },
        log: LogConfig::default(),
        schema_ids: BTreeMap::new(),
        // Each run has its own registry log: the local models become its champions.
        registry: crate::registry::RegistryConfig {
            topic: format!("{group_id}.registry"),
            ..Default::default()
        },
        drift: crate::drift::tap::DriftConfig {
            topic: format!("{group_id}.drift"),
            ..Default::default()
        },
        lifecycle: Default::default(),
        feedback: Default::default(),
        trainer: Default::default(),
    }
}

/// The model root the demo uses: `THREATFLOW_STORAGE__MODEL_DIR` when set (the engine's own
/// override of `storage.model_dir`; in the container image, `/opt/threatflow/models`), else
/// `./models` when it holds a model (the README runs the demo from the repository root),
/// else the repository's `models/` this binary was built from. `None` when none has one;
/// streams without a model run `passthrough`.
pub fn demo_model_dir() -> Option<PathBuf> {
    let built_from = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"));
    let configured = std::env::var_os("THREATFLOW_STORAGE__MODEL_DIR").map(PathBuf::from);
    configured
        .into_iter()
        .chain([PathBuf::from("models"), built_from])
        .find(|root| {
            OPERATORS
                .iter()
                .filter_map(|spec| spec.model.map(|model| model.dir))
                .any(|operator| newest_version(&root.join(operator)).is_some())
        })
}

/// Partitions of every demo topic.
pub const DEMO_TOPIC_PARTITIONS: i32 = DEMO_PARTITIONS;

/// Creates the topics on an external cluster with the admin API.
pub fn create_external_topics(brokers: &str, topics: &DemoTopics) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .all()
        .map(|name| NewTopic::new(name, DEMO_PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let results =
        futures::executor::block_on(admin.create_topics(&new_topics, &AdminOptions::new()))?;
    for result in results {
        if let Err((topic, error)) = result {
            anyhow::bail!("cannot create topic {topic}: {error}");
        }
    }
    Ok(())
}

/// Creates on the mock cluster the topics the engine would create itself on a real broker
/// (the mock cluster has no CreateTopics): the stateful bindings' changelogs, the operators'
/// side outputs, the registry log
/// (one partition: one order of alias changes), the drift topic and the feedback topics.
pub fn create_engine_topics(
    cluster: &MockCluster<'_, DefaultProducerContext>,
    config: &EngineConfig,
) -> anyhow::Result<()> {
    // Idempotent: the demo's own topic list may hold one already (the entity topic), and
    // runs on one cluster (the load test's rounds) share the feedback topics.
    let create = |topic: &str, partitions: i32| match cluster.create_topic(topic, partitions, 1) {
        Ok(()) | Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
        Err(error) => Err(error),
    };
    for binding in &config.bindings {
        if binding.operator.spec().stateful {
            let changelog = crate::runtime::changelog::changelog_topic(
                &config.kafka.group_id,
                &binding.topic,
                binding.operator.name(),
            );
            create(&changelog, DEMO_PARTITIONS)?;
        }
        let feedback = format!(
            "{}{}",
            config.feedback.topic_prefix,
            binding.operator.name()
        );
        create(&feedback, 1)?;
        // Side outputs (incidents, entity behaviour), which the engine would create itself.
        let outputs = crate::pipeline::side_output_topics(config, binding.operator.spec())
            .map_err(|error| anyhow::anyhow!(error))?;
        for (_, topic) in outputs {
            create(&topic, DEMO_PARTITIONS)?;
        }
    }
    create(&config.registry.topic, 1)?;
    create(&config.drift.topic, 1)?;
    Ok(())
}

/// Queues one generated record, waiting while the producer's queue is full.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    send_stamped(producer, topic, key, payload, None)
}

/// Queues one record with this Kafka timestamp (epoch ms; `None`: the producer's clock).
pub fn send_stamped(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: &[u8],
    timestamp_ms: Option<i64>,
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).payload(payload).key(key);
    if let Some(timestamp_ms) = timestamp_ms {
        record = record.timestamp(timestamp_ms);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((error, _)) => anyhow::bail!("demo producer failed: {error}"),
        }
    }
}
