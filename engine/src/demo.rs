//! `threatflow demo`: the whole engine on an embedded Kafka-protocol broker.
//!
//! It starts librdkafka's in-process mock cluster, creates the topics, runs the engine on it,
//! feeds a realistic mix of generated events (a share of them bad, every class of bad input),
//! reads every output topic back, and accounts for each produced event: scored or
//! dead-lettered, by source coordinates. The summary is honest by construction: it counts
//! what came out of the broker, not what the engine says it did.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, Timestamp};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{
    EngineConfig, HttpConfig, InputFormat, KafkaConfig, LogConfig, OperatorSections, OutputConfig,
    PipelineConfig, StorageConfig, TopicBinding,
};
use crate::dead_letter::DeadLetter;
use crate::events::SchemaKind;
use crate::generate::{encode_json, BadInput, EventGenerator};
use crate::ml::artifact::newest_version;
use crate::operators::table::OPERATORS;
use crate::operators::OperatorKind;
use crate::scored::Scored;
use crate::source::Health;

/// Partitions of every demo topic.
const DEMO_PARTITIONS: i32 = 3;
/// Input size limit of the demo: small enough that its oversized samples still fit the
/// broker's default 1 MB record limit, so they reach the engine and get dead-lettered.
const DEMO_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most produced events not yet seen in the outputs. The generator is closed-loop: it waits
/// for the engine instead of outrunning it, so measured latency is the pipeline's, and the
/// embedded broker — which keeps only 5 MB per partition and drops the oldest records beyond
/// that — never evicts inputs the engine has not read yet.
const MAX_IN_FLIGHT: u64 = 30_000;
/// How often the live progress line is refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long one read of the outputs may wait when there is nothing else to do.
const READ_WAIT: Duration = Duration::from_millis(100);
/// How long the generator reads outputs before producing again when its window is full.
const WINDOW_FULL_WAIT: Duration = Duration::from_millis(10);
/// How long the demo waits for the engine to join its consumer group.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the last input was produced, the demo keeps reading while outputs keep arriving; it
/// stops once every input is accounted for or no output came for this long (a slow or busy
/// machine makes outputs late, not lost: the final accounting tells the two apart).
const DRAIN_QUIET_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of one demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Events to produce (ignored when `duration` is set).
    pub events: u64,
    /// Produce for this long instead of a fixed count.
    pub duration: Option<Duration>,
    /// Events per second to produce at; unlimited when `None`.
    pub rate: Option<u64>,
    /// Share of events that are bad input, 0..=1.
    pub bad_ratio: f64,
    /// Generator seed.
    pub seed: u64,
    /// Print a progress line each second (on stderr).
    pub progress: bool,
    /// Run against this external cluster instead of the embedded broker (topics and group
    /// get a per-run suffix); this is the load test's mode.
    pub brokers: Option<String>,
}

/// Per input topic: what went in and what came out.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TopicSummary {
    /// Events produced to the topic.
    pub produced: u64,
    /// Distinct inputs with a scored output.
    pub scored: u64,
    /// Distinct inputs with a dead-letter output.
    pub dead_lettered: u64,
}

/// The demo's final accounting.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DemoSummary {
    /// Events produced.
    pub produced: u64,
    /// Distinct inputs scored.
    pub scored: u64,
    /// Distinct inputs dead-lettered.
    pub dead_lettered: u64,
    /// Produced events with no output whose offsets the engine committed: lost (0 when the
    /// engine kept its promise).
    pub lost: u64,
    /// Produced events with no output yet and not committed: late, not lost (the engine reads
    /// them again on its next start).
    pub not_yet_seen: u64,
    /// Output records beyond one per input (re-deliveries).
    pub duplicates: u64,
    /// Accounted events per second, first produce to last output.
    pub events_per_sec: f64,
    /// Median input-to-output latency, ms.
    pub latency_p50_ms: u64,
    /// 99th percentile input-to-output latency, ms.
    pub latency_p99_ms: u64,
    /// Seconds from first produce to last output.
    pub elapsed_secs: f64,
    /// Dead letters by reason code.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Per stream (prompt, flow, email, alert).
    pub topics: BTreeMap<String, TopicSummary>,
}

/// One demo stream: its schema and topic names.
#[derive(Debug, Clone)]
struct Stream {
    kind: SchemaKind,
    input: String,
    output: String,
}

/// The demo's topics. On the embedded broker they carry the production names; on an
/// external one every run gets its own suffix, so runs never read each other's records.
#[derive(Debug, Clone)]
pub struct DemoTopics {
    streams: Vec<Stream>,
    dead_letter: String,
    /// Per-entity behaviour records of the alert operator (fused into email user risk).
    entities: String,
    /// Per-user risk records of the email operator.
    email_users: String,
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
    let mut side_outputs = std::collections::BTreeSet::new();
    for binding in &config.bindings {
        if binding.operator.spec().stateful {
            let changelog = crate::runtime::changelog::changelog_topic(
                &config.kafka.group_id,
                &binding.topic,
                binding.operator.name(),
            );
            cluster.create_topic(&changelog, DEMO_PARTITIONS, 1)?;
        }
        let feedback = format!(
            "{}{}",
            config.feedback.topic_prefix,
            binding.operator.name()
        );
        cluster.create_topic(&feedback, 1, 1)?;
        // Side outputs (incidents, entity behaviour), which the engine would create itself.
        let outputs = crate::pipeline::side_output_topics(config, binding.operator.spec())
            .map_err(|error| anyhow::anyhow!(error))?;
        side_outputs.extend(outputs.into_iter().map(|(_, topic)| topic));
    }
    for topic in &side_outputs {
        // The demo's own topic list may hold it already (the entity topic).
        match cluster.create_topic(topic, DEMO_PARTITIONS, 1) {
            Ok(()) | Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    cluster.create_topic(&config.registry.topic, 1, 1)?;
    cluster.create_topic(&config.drift.topic, 1, 1)?;
    Ok(())
}

/// Queues one generated record, waiting while the producer's queue is full.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).payload(payload).key(key);
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

/// Runs the demo and returns its accounting.
pub fn run(options: &DemoOptions) -> anyhow::Result<DemoSummary> {
    // The mock cluster must outlive every client, so it is held until the end of `run`.
    let (cluster, brokers, topics, group) = match &options.brokers {
        None => {
            let cluster = MockCluster::new(1)?;
            let brokers = cluster.bootstrap_servers();
            let topics = DemoTopics::with_suffix("");
            for name in topics.all() {
                cluster.create_topic(name, DEMO_PARTITIONS, 1)?;
            }
            (Some(cluster), brokers, topics, "threatflow-demo".to_owned())
        }
        Some(brokers) => {
            let run_id = format!("{:08x}", rand::random::<u32>());
            let topics = DemoTopics::with_suffix(&format!(".demo-{run_id}"));
            create_external_topics(brokers, &topics)?;
            (
                None,
                brokers.clone(),
                topics,
                format!("threatflow-demo-{run_id}"),
            )
        }
    };

    let config = demo_config(&brokers, &group, &topics);
    config.validate()?;
    if let Some(cluster) = &cluster {
        create_engine_topics(cluster, &config)?;
    }
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::default());
    let engine = {
        let shutdown = shutdown.clone();
        let health = health.clone();
        let config = config.clone();
        std::thread::Builder::new()
            .name("threatflow-engine".into())
            .spawn(move || crate::pipeline::run(&config, shutdown, health))?
    };

    let mut reader = OutputReader::new(&brokers, &topics)?;
    // Measure the pipeline, not the group join: produce once the engine holds its partitions.
    let join_deadline = Instant::now() + JOIN_TIMEOUT;
    while !health.is_ready() && Instant::now() < join_deadline {
        if engine.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()?;
    let mut generator = EventGenerator::new(options.seed);
    let max_bytes = config.pipeline.max_message_bytes;
    let mut produced: BTreeMap<String, u64> = BTreeMap::new();
    let mut produced_total = 0u64;
    let started = Instant::now();
    let mut bad_budget = 0.0f64;
    let mut bad_index = 0usize;
    loop {
        let elapsed = started.elapsed();
        let done = match options.duration {
            Some(duration) => elapsed >= duration,
            None => produced_total >= options.events,
        };
        if done {
            break;
        }
        if produced_total.saturating_sub(reader.accounted()) >= MAX_IN_FLIGHT {
            reader.poll_some(WINDOW_FULL_WAIT);
            reader.maybe_print_progress(options.progress, produced_total, started);
            continue;
        }
        if let Some(rate) = options.rate {
            let allowed = (elapsed.as_secs_f64() * rate as f64) as u64;
            if produced_total >= allowed {
                std::thread::sleep(Duration::from_millis(1));
                reader.poll_some(READ_WAIT);
                continue;
            }
        }
        bad_budget += options.bad_ratio;
        let (stream, payload) = if bad_budget >= 1.0 {
            // Bad inputs rotate over streams and classes so every pair is exercised.
            bad_budget -= 1.0;
            let stream = &topics.streams[bad_index % topics.streams.len()];
            let class = BadInput::ALL[(bad_index / topics.streams.len()) % BadInput::ALL.len()];
            bad_index += 1;
            (stream, generator.bad_payload(stream.kind, class, max_bytes))
        } else {
            let stream = &topics.streams[(produced_total % topics.streams.len() as u64) as usize];
            (stream, encode_json(&generator.event(stream.kind)))
        };
        send(
            &producer,
            &stream.input,
            &format!("k{produced_total}"),
            &payload,
        )?;
        produced_total += 1;
        *produced.entry(stream.kind.name().to_owned()).or_default() += 1;
        if produced_total % 1000 == 0 {
            // Drain what has arrived without slowing the producer down.
            reader.poll_some(Duration::ZERO);
        }
        reader.maybe_print_progress(options.progress, produced_total, started);
    }
    producer.flush(Duration::from_secs(30))?;

    let mut last_progress = (reader.accounted(), Instant::now());
    while reader.accounted() < produced_total && last_progress.1.elapsed() < DRAIN_QUIET_TIMEOUT {
        reader.poll_some(READ_WAIT);
        reader.maybe_print_progress(options.progress, produced_total, started);
        if reader.accounted() > last_progress.0 {
            last_progress = (reader.accounted(), Instant::now());
        }
    }
    if options.progress {
        reader.print_progress(produced_total, started);
        eprintln!();
    }
    let elapsed = reader
        .last_output
        .unwrap_or_else(Instant::now)
        .duration_since(started);
    shutdown.cancel();
    match engine.join() {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("engine thread panicked"),
    }
    // After the engine's graceful shutdown its commits are final: an input without output
    // below the committed offset is lost; at or above it, it was simply not read yet.
    let (lost, not_yet_seen) = reader.unaccounted(&brokers, &group, &topics)?;
    let mut summary = reader.summary(produced, produced_total, elapsed);
    summary.lost = lost;
    summary.not_yet_seen = not_yet_seen;
    Ok(summary)
}

/// Reads every output topic from the beginning and accounts inputs by coordinates.
struct OutputReader {
    consumer: BaseConsumer,
    dead_letter_topic: String,
    /// Input topic name → stream name, for the per-stream summary.
    stream_of_topic: BTreeMap<String, String>,
    scored: HashSet<(String, i32, i64)>,
    dead_lettered: HashSet<(String, i32, i64)>,
    by_topic_scored: BTreeMap<String, u64>,
    by_topic_dead: BTreeMap<String, u64>,
    by_reason: BTreeMap<String, u64>,
    duplicates: u64,
    latency_ms: Histogram<u64>,
    last_output: Option<Instant>,
    last_progress: Instant,
}

impl OutputReader {
    fn new(brokers: &str, topics: &DemoTopics) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "threatflow-demo-reader")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for topic in topics.outputs() {
            for partition in 0..DEMO_PARTITIONS {
                assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
            }
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            dead_letter_topic: topics.dead_letter.clone(),
            stream_of_topic: topics
                .streams
                .iter()
                .map(|stream| (stream.input.clone(), stream.kind.name().to_owned()))
                .collect(),
            scored: HashSet::new(),
            dead_lettered: HashSet::new(),
            by_topic_scored: BTreeMap::new(),
            by_topic_dead: BTreeMap::new(),
            by_reason: BTreeMap::new(),
            duplicates: 0,
            latency_ms: Histogram::new_with_bounds(1, 3_600_000, 3)?,
            last_output: None,
            last_progress: Instant::now(),
        })
    }

    fn accounted(&self) -> u64 {
        (self.scored.len() + self.dead_lettered.len()) as u64
    }

    /// Inputs without an output, split by the engine group's committed offsets into
    /// (lost, not yet seen).
    fn unaccounted(
        &self,
        brokers: &str,
        group: &str,
        topics: &DemoTopics,
    ) -> anyhow::Result<(u64, u64)> {
        let committed_reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut list = TopicPartitionList::new();
        for stream in &topics.streams {
            for partition in 0..DEMO_PARTITIONS {
                list.add_partition(&stream.input, partition);
            }
        }
        let committed = committed_reader.committed_offsets(list, Duration::from_secs(10))?;
        let (mut lost, mut not_yet_seen) = (0, 0);
        for element in committed.elements() {
            let (low, high) = self.consumer.fetch_watermarks(
                element.topic(),
                element.partition(),
                Duration::from_secs(10),
            )?;
            let committed_offset = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            for offset in low..high {
                let coordinates = (element.topic().to_owned(), element.partition(), offset);
                if self.scored.contains(&coordinates) || self.dead_lettered.contains(&coordinates) {
                    continue;
                }
                if offset < committed_offset {
                    lost += 1;
                } else {
                    not_yet_seen += 1;
                }
            }
        }
        Ok((lost, not_yet_seen))
    }

    /// Reads outputs for up to `max_wait`; with a zero wait, only what is already buffered.
    fn poll_some(&mut self, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        let timeout = if max_wait.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        };
        loop {
            let out_of_time = Instant::now() >= deadline;
            match self.consumer.poll(timeout) {
                None if max_wait.is_zero() || out_of_time => return,
                Some(Ok(message)) => {
                    let owned = message.detach();
                    self.account(&owned);
                }
                None | Some(Err(_)) => {}
            }
            if !max_wait.is_zero() && out_of_time {
                return;
            }
        }
    }

    /// Records one output message.
    fn account(&mut self, message: &rdkafka::message::OwnedMessage) {
        let output_ms = match message.timestamp() {
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
            Timestamp::NotAvailable => None,
        };
        let payload = message.payload().unwrap_or_default();
        let (source, is_dead) = if message.topic() == self.dead_letter_topic {
            match serde_json::from_slice::<DeadLetter>(payload) {
                Ok(dead) => {
                    *self
                        .by_reason
                        .entry(dead.reason.code().to_owned())
                        .or_default() += 1;
                    (dead.source, true)
                }
                Err(_) => return,
            }
        } else {
            match serde_json::from_slice::<Scored>(payload) {
                Ok(scored) => (scored.source, false),
                Err(_) => return,
            }
        };
        if let (Some(output_ms), Some(input_ms)) = (output_ms, source.timestamp_ms) {
            let latency = u64::try_from(output_ms - input_ms).unwrap_or(0).max(1);
            let _ = self.latency_ms.record(latency.min(3_600_000));
        }
        let key = (source.topic.clone(), source.partition, source.offset);
        let (set, by_topic) = if is_dead {
            (&mut self.dead_lettered, &mut self.by_topic_dead)
        } else {
            (&mut self.scored, &mut self.by_topic_scored)
        };
        if set.insert(key) {
            let stream = self
                .stream_of_topic
                .get(&source.topic)
                .cloned()
                .unwrap_or(source.topic);
            *by_topic.entry(stream).or_default() += 1;
        } else {
            self.duplicates += 1;
        }
        self.last_output = Some(Instant::now());
    }

    /// Prints the progress line when enabled and a second has passed since the last one.
    fn maybe_print_progress(&mut self, enabled: bool, produced: u64, started: Instant) {
        if enabled && self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            self.print_progress(produced, started);
            self.last_progress = Instant::now();
        }
    }

    fn print_progress(&self, produced: u64, started: Instant) {
        let seconds = started.elapsed().as_secs_f64().max(0.001);
        let mut stderr = std::io::stderr();
        let _ = write!(
            stderr,
            "\rproduced {produced:>8}  scored {:>8}  dead-lettered {:>6}  {:>8.0} events/s  ",
            self.scored.len(),
            self.dead_lettered.len(),
            self.accounted() as f64 / seconds
        );
        let _ = stderr.flush();
    }

    fn summary(
        &self,
        produced: BTreeMap<String, u64>,
        produced_total: u64,
        elapsed: Duration,
    ) -> DemoSummary {
        let accounted = self.accounted();
        let topics = produced
            .into_iter()
            .map(|(topic, count)| {
                let summary = TopicSummary {
                    produced: count,
                    scored: self.by_topic_scored.get(&topic).copied().unwrap_or(0),
                    dead_lettered: self.by_topic_dead.get(&topic).copied().unwrap_or(0),
                };
                (topic, summary)
            })
            .collect();
        DemoSummary {
            produced: produced_total,
            scored: self.scored.len() as u64,
            dead_lettered: self.dead_lettered.len() as u64,
            lost: 0,
            not_yet_seen: produced_total.saturating_sub(accounted),
            duplicates: self.duplicates,
            events_per_sec: accounted as f64 / elapsed.as_secs_f64().max(0.001),
            latency_p50_ms: self.latency_ms.value_at_quantile(0.5),
            latency_p99_ms: self.latency_ms.value_at_quantile(0.99),
            elapsed_secs: elapsed.as_secs_f64(),
            dead_letters_by_reason: self.by_reason.clone(),
            topics,
        }
    }
}

impl DemoSummary {
    /// The human-readable summary.
    pub fn render(&self) -> String {
        let mut text = String::new();
        text.push_str(&format!(
            "produced {}  scored {}  dead-lettered {}  lost {}  not yet seen {}  duplicates {}\n",
            self.produced,
            self.scored,
            self.dead_lettered,
            self.lost,
            self.not_yet_seen,
            self.duplicates
        ));
        text.push_str(&format!(
            "throughput {:.0} events/s over {:.1} s; latency p50 {} ms, p99 {} ms\n",
            self.events_per_sec, self.elapsed_secs, self.latency_p50_ms, self.latency_p99_ms
        ));
        text.push_str("per topic (in → scored + dead-lettered):\n");
        for (topic, summary) in &self.topics {
            text.push_str(&format!(
                "  {topic:<8} {:>8} → {:>8} + {:>6}\n",
                summary.produced, summary.scored, summary.dead_lettered
            ));
        }
        text.push_str("dead letters by reason:\n");
        for (reason, count) in &self.dead_letters_by_reason {
            text.push_str(&format!("  {reason:<18} {count:>6}\n"));
        }
        text
    }
}
