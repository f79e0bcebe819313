//! The pipeline loop, written once for every operator: source → decode → operator → emit.
//!
//! Threads: one *source* thread polls the consumer and batches records per input topic; each
//! binding has `workers` *worker* threads (partition `p` on worker `p mod workers`), each with
//! its own scorer over the binding's shared model slot and the keyed state of its partitions;
//! they decode, score and emit ([`crate::worker`]); librdkafka's producer thread reports
//! deliveries into the offset tracker. The source never blocks on a worker: a full worker queue, a binding
//! over its in-flight budget or a stopped binding pauses that topic's partitions
//! ([`crate::flow_control`]), so memory stays bounded and re-processing after a crash stays
//! at about `pipeline.max_inflight_ms` of input.
//!
//! Delivery guarantee: **at-least-once**. An input's offset is stored only after every record
//! it produced (scored event, extra records, or its dead-letter record) has been acknowledged
//! by the broker, in offset order per partition (see [`crate::offsets`]). Caveats: after a
//! crash, inputs read since the last commit are processed again (same `event_id`, so
//! downstream can de-duplicate). Keyed state is made durable in a changelog topic before the
//! offsets of the inputs folded into it are committed ([`crate::runtime::changelog`]).
//!
//! Shutdown (cancel of the token, e.g. SIGTERM, or a fatal failure — see [`Health::fail`]):
//! stop polling, hand queued batches to the workers, let them drain and checkpoint, flush the
//! producer, store and synchronously commit the final offsets, leave the group — all within
//! `pipeline.shutdown_grace_ms`, the rebalance of the final unsubscribe included (it only
//! commits). Whatever did not make it is simply not committed and is re-read on restart.
//! [`run`] returns an error after a fatal failure, so the process exits non-zero.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::dead_letter_log::DeadLetterLog;
use crate::decode::Decoder;
use crate::dispatch::Dispatcher;
use crate::emit::Emitter;
use crate::encode::OutputEncoder;
use crate::events::SchemaKind;
use crate::flow_control::FlowControl;
use crate::health::BoundModel;
use crate::offsets::{OffsetTracker, TopicPartition};
use crate::operators::OperatorContext;
use crate::registry::fleet::local_version;
use crate::registry::shadow::ShadowTap;
use crate::registry::{FleetBinding, Registry};
use crate::runtime::changelog::Changelog;
use crate::runtime::PartitionStates;
use crate::source::{commit, store_committable, Health, RawRecord, SourceContext, WorkerMessage};
use crate::telemetry;
use crate::worker::{OutputRefusals, Worker};

/// How long one consumer poll may block; bounds the reaction time to shutdown and linger.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// How often stored offsets are refreshed from the tracker (committed every commit interval).
const STORE_INTERVAL: Duration = Duration::from_millis(100);
/// How often flow control re-evaluates pauses and budgets: at 50k inputs/s a binding can
/// overshoot its budget by about 1k records between two looks.
const FLOW_CONTROL_INTERVAL: Duration = Duration::from_millis(20);
/// Headroom of the producer's `message.max.bytes` over `pipeline.max_output_bytes` (which
/// the workers enforce before enqueueing), for librdkafka's per-message framing.
const PRODUCER_FRAMING_HEADROOM: usize = 64 * 1024;
/// Part of `shutdown_grace_ms` kept for the final commit and leaving the group.
const SHUTDOWN_COMMIT_RESERVE: Duration = Duration::from_millis(1500);

/// Errors that stop the pipeline from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Creating or subscribing a Kafka client failed.
    #[error("kafka client error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An operator failed to start (for example its model did not load).
    #[error("operator {operator} failed to start: {message}")]
    OperatorStart {
        /// Operator name.
        operator: String,
        /// What failed.
        message: String,
    },
    /// Building the output encoder failed.
    #[error("output encoder: {0}")]
    Encoder(#[from] crate::encode::EncodeError),
    /// A thread could not be spawned.
    #[error("cannot spawn thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The engine stopped on a fatal failure (a dead worker, a model that kept failing).
    #[error("engine failed: {0}")]
    Failed(String),
}

/// The settings every client of the engine starts from: the brokers and `[kafka.options]`
/// (TLS, SASL, ...). Admin clients and the registry, changelog and drift clients add their own.
pub fn base_client_config(config: &EngineConfig) -> ClientConfig {
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", &config.kafka.brokers);
    for (name, value) in &config.kafka.options {
        base.set(name, value);
    }
    base
}

/// A consumer that reads assigned partitions only: no group membership, nothing committed
/// (replay, the trainer's reads at coordinates). `purpose` names its throwaway group id.
pub fn assigned_consumer(
    config: &EngineConfig,
    purpose: &str,
) -> rdkafka::error::KafkaResult<rdkafka::consumer::BaseConsumer> {
    let mut client = base_client_config(config);
    client
        .set(
            "group.id",
            format!("threatflow-{purpose}-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    client.create()
}

/// librdkafka consumer settings: our defaults, then the user's options, then what the
/// delivery guarantee requires (which no option may override).
pub fn consumer_client_config(config: &EngineConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", &config.kafka.group_id)
        // Failure detection: 10 s instead of librdkafka's 45 s, so a crashed member's
        // partitions move on (or come back to its restarted self) sooner. Options override.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        // Bounds how long a fetch waits for data: brokers that do not answer a waiting fetch
        // as soon as data arrives (Tansu, librdkafka's mock) otherwise add up to librdkafka's
        // 500 ms default to every event's latency. Measured: p50 200 ms → 65 ms at 5k/s.
        .set("fetch.wait.max.ms", "50")
        .set("enable.partition.eof", "false");
    for (name, value) in config
        .kafka
        .options
        .iter()
        .chain(&config.kafka.consumer_options)
    {
        client.set(name, value);
    }
    if let Some(instance_id) = config.kafka.effective_group_instance_id() {
        // Static membership (KIP-345): a restarted member with the same id gets its
        // partitions back without a rebalance or waiting out its session.
        client.set("group.instance.id", instance_id);
    }
    if config
        .kafka
        .consumer_options
        .get("enable.auto.offset.store")
        .is_some_and(|v| v != "false")
    {
        tracing::warn!("enable.auto.offset.store is forced to false (at-least-once delivery)");
    }
    client.set("enable.auto.offset.store", "false");
    // The pipeline commits on its own schedule (`pipeline.commit_interval_ms`), right after
    // storing, so the crash window is one short interval rather than librdkafka's timer.
    client.set("enable.auto.commit", "false");
    client
}

/// librdkafka producer settings: our defaults, then the user's options.
pub fn producer_client_config(config: &EngineConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    let message_max_bytes =
        (config.pipeline.max_output_bytes + PRODUCER_FRAMING_HEADROOM).max(1_000_000);
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.max.bytes", message_max_bytes.to_string());
    for (name, value) in config
        .kafka
        .options
        .iter()
        .chain(&config.kafka.producer_options)
    {
        client.set(name, value);
    }
    client
}

/// Runs the engine until `shutdown` is cancelled or a fatal failure, then shuts down within
/// `pipeline.shutdown_grace_ms`. Blocking: call it from a dedicated thread (or
/// `spawn_blocking`). Returns [`PipelineError::Failed`] after a fatal failure; `/ready`
/// answers 503 during the whole shutdown that precedes it.
pub fn run(
    config: &EngineConfig,
    shutdown: CancellationToken,
    health: Arc<Health>,
) -> Result<(), PipelineError> {
    crate::privacy::set_key(&config.output.pseudonym_key);
    let tracker = Arc::new(OffsetTracker::new());
    let dead_letters = Arc::new(DeadLetterLog::default());
    let refusals = Arc::new(OutputRefusals::new(
        config,
        health.clone(),
        dead_letters.clone(),
    )?);
    let emitter = Arc::new(Emitter::new(
        &producer_client_config(config),
        tracker.clone(),
        refusals,
    )?);
    let registry = Registry::open(config).map_err(|error| PipelineError::OperatorStart {
        operator: "registry".to_owned(),
        message: error.to_string(),
    })?;
    let (worker_channels, workers, fleet) = start_workers(
        config,
        &tracker,
        &emitter,
        &health,
        &dead_letters,
        registry.as_ref(),
    )?;
    let registry_stop = shutdown.child_token();
    let registry_follower = match &registry {
        Some(registry) => {
            registry.start_shadows(&fleet);
            Some(
                registry
                    .follow(fleet, registry_stop.clone())
                    .map_err(|error| PipelineError::OperatorStart {
                        operator: "registry".to_owned(),
                        message: error.to_string(),
                    })?,
            )
        }
        None => None,
    };
    let relay_stop = shutdown.child_token();
    let verdict_relay = crate::ocsf_verdicts::start(config, relay_stop.clone())?;
    health.operators_started.store(true, Ordering::Relaxed);

    let dispatcher = Arc::new(Dispatcher::new(
        worker_channels,
        config.pipeline.batch_size,
        Duration::from_millis(config.pipeline.linger_ms),
        health.clone(),
    ));
    let context = SourceContext::new(
        tracker.clone(),
        dispatcher.clone(),
        health.clone(),
        Duration::from_millis(config.pipeline.revoke_drain_ms),
    );
    let consumer: BaseConsumer<SourceContext> =
        consumer_client_config(config).create_with_context(context)?;
    let topics: Vec<String> = config
        .bindings
        .iter()
        .map(|binding| binding.topic.clone())
        .collect();
    let topic_names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_names)?;
    tracing::info!(
        ?topics,
        group = %config.kafka.group_id,
        group_instance_id = config.kafka.effective_group_instance_id().unwrap_or_default(),
        "engine started"
    );

    let mut flow = FlowControl::new(
        &topics,
        Duration::from_millis(config.pipeline.max_inflight_ms),
        config.pipeline.min_inflight_events,
    );
    let commit_interval = Duration::from_millis(config.pipeline.commit_interval_ms);
    poll_until_stopped(
        &consumer,
        &dispatcher,
        &tracker,
        &mut flow,
        commit_interval,
        &shutdown,
        &dead_letters,
    );
    let grace = Duration::from_millis(config.pipeline.shutdown_grace_ms);
    shut_down(
        &consumer,
        &dispatcher,
        &tracker,
        &emitter,
        workers,
        grace,
        &health,
    );
    dead_letters.flush_if_due();
    registry_stop.cancel();
    if let Some(follower) = registry_follower {
        let _ = follower.join();
    }
    relay_stop.cancel();
    if let Some(relay) = verdict_relay {
        let _ = relay.join();
    }
    match health.failure() {
        Some(failure) => Err(PipelineError::Failed(failure)),
        None => Ok(()),
    }
}

fn poll_until_stopped(
    consumer: &BaseConsumer<SourceContext>,
    dispatcher: &Dispatcher,
    tracker: &OffsetTracker,
    flow: &mut FlowControl,
    commit_interval: Duration,
    shutdown: &CancellationToken,
    dead_letters: &DeadLetterLog,
) {
    let health = consumer.context().health.clone();
    let mut consumed_by_topic: HashMap<String, u64> = HashMap::new();
    let mut last_store = Instant::now();
    let mut last_commit = Instant::now();
    let mut last_flow_control = Instant::now() - FLOW_CONTROL_INTERVAL;
    let mut stored_since_commit = false;
    while !shutdown.is_cancelled() && !health.has_failed() {
        if last_flow_control.elapsed() >= FLOW_CONTROL_INTERVAL {
            let epoch = consumer.context().assignment_epoch.load(Ordering::Acquire);
            flow.update(consumer, dispatcher, tracker, &health, epoch);
            last_flow_control = Instant::now();
        }
        // Wake up in time to dispatch a lingering batch, not a whole poll timeout later.
        let timeout = dispatcher
            .next_linger_deadline()
            .map_or(POLL_TIMEOUT, |deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(POLL_TIMEOUT)
            });
        match consumer.poll(timeout) {
            Some(Ok(message)) => {
                let partition = TopicPartition::new(message.topic(), message.partition());
                // Counted locally and published with the offsets: no allocation per message
                // once the topic is known.
                match consumed_by_topic.get_mut(message.topic()) {
                    Some(count) => *count += 1,
                    None => {
                        consumed_by_topic.insert(partition.topic.clone(), 1);
                    }
                }
                // A refused offset is a re-delivery behind what we already track (after a
                // seek); it was or will be processed in order, so skipping it loses nothing.
                if let Some(tracked) = tracker.track(&partition, message.offset()) {
                    let timestamp_ms = match message.timestamp() {
                        Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
                        Timestamp::NotAvailable => None,
                    };
                    dispatcher.add(RawRecord {
                        tracked,
                        timestamp_ms,
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                    });
                }
            }
            Some(Err(error)) => tracing::warn!(%error, "consumer error"),
            None => {}
        }
        dispatcher.flush(false);
        if last_store.elapsed() >= STORE_INTERVAL {
            stored_since_commit |= store_committable(consumer, tracker);
            if stored_since_commit && last_commit.elapsed() >= commit_interval {
                commit(consumer, CommitMode::Async, "periodic");
                stored_since_commit = false;
                last_commit = Instant::now();
            }
            publish_consumed(&mut consumed_by_topic);
            metrics::gauge!(telemetry::INFLIGHT_EVENTS).set(tracker.pending(&[]) as f64);
            dead_letters.flush_if_due();
            last_store = Instant::now();
        }
    }
    publish_consumed(&mut consumed_by_topic);
}

/// Adds the locally counted consumed records to the metric and resets the counts.
fn publish_consumed(consumed_by_topic: &mut HashMap<String, u64>) {
    for (topic, count) in consumed_by_topic.iter_mut() {
        if *count > 0 {
            metrics::counter!(telemetry::EVENTS_CONSUMED, "topic" => topic.clone())
                .increment(*count);
            *count = 0;
        }
    }
}

/// Drains and commits within `grace`, the final unsubscribe's rebalance included.
fn shut_down(
    consumer: &BaseConsumer<SourceContext>,
    dispatcher: &Dispatcher,
    tracker: &OffsetTracker,
    emitter: &Emitter,
    workers: Vec<JoinHandle<()>>,
    grace: Duration,
    health: &Health,
) {
    let started = Instant::now();
    let deadline = started + grace;
    let drain_deadline = deadline - SHUTDOWN_COMMIT_RESERVE.min(grace / 4);
    health.stopping.store(true, Ordering::Relaxed);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining"
    );
    // Hand what the workers' queues can take, then close them: the rest stays uncommitted.
    dispatcher.flush(true);
    dispatcher.close();
    for worker in workers {
        // Workers exit once their queue is empty; a stuck operator is abandoned at the
        // deadline (its inputs stay uncommitted).
        while !worker.is_finished() && Instant::now() < drain_deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if worker.is_finished() {
            let _ = worker.join();
        } else {
            tracing::warn!("operator worker did not finish within the grace period");
        }
    }
    let left = drain_deadline.saturating_duration_since(Instant::now());
    if let Err(error) = emitter.flush(left) {
        tracing::warn!(%error, in_flight = emitter.in_flight(), "producer flush incomplete");
    }
    // After a fatal failure or with a stopped binding, some inputs never get their outputs
    // (the failed batch, refused records): waiting for them would only delay the restart.
    // Otherwise the retry queue may still deliver, so wait for it within the grace period.
    let pending = if health.has_failed() || !health.stopped_bindings().is_empty() {
        tracker.pending(&[])
    } else {
        tracker.wait_drained(
            &[],
            drain_deadline.saturating_duration_since(Instant::now()),
        )
    };
    store_committable(consumer, tracker);
    commit(consumer, CommitMode::Sync, "shutdown");
    // The revoke of this unsubscribe only commits again (nothing left to drain).
    consumer
        .context()
        .shutdown_drained
        .store(true, Ordering::Release);
    consumer.unsubscribe();
    tracing::info!(
        uncommitted = pending,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shutdown complete"
    );
}

/// The topics `spec` writes besides the binding's output (incident and entity records),
/// with the config key naming each; empty (switched-off) ones left out.
pub fn side_output_topics(
    config: &EngineConfig,
    spec: &crate::operators::OperatorSpec,
) -> Result<crate::operators::table::OutputTopics, String> {
    let mut topics = (spec.check_config)(&config.operators)?;
    topics.retain(|(_, topic)| !topic.is_empty());
    Ok(topics)
}

/// Creates the [`side_output_topics`] of `spec` when they are missing, with the input
/// topic's partition count, so a default-on side output (`scored.incidents`) needs no manual
/// step; a broker that refuses the create (no ACL) stops the start with the topic's name.
fn ensure_side_outputs(
    config: &EngineConfig,
    spec: &crate::operators::OperatorSpec,
    input_topic: &str,
) -> Result<(), String> {
    let topics = side_output_topics(config, spec)?;
    if topics.is_empty() {
        return Ok(());
    }
    let base = base_client_config(config);
    let partitions = crate::runtime::changelog::partition_count(&base, input_topic)
        .map_err(|error| format!("input topic {input_topic}: {error}"))?
        .max(1);
    for (key, topic) in &topics {
        crate::runtime::changelog::create_topic(&base, topic, partitions, false)
            .map_err(|error| format!("{key}: {error}"))?;
    }
    Ok(())
}

type WorkerChannels = HashMap<String, Vec<SyncSender<WorkerMessage>>>;

type StartedWorkers = (WorkerChannels, Vec<JoinHandle<()>>, Vec<FleetBinding>);

fn start_workers(
    config: &EngineConfig,
    tracker: &Arc<OffsetTracker>,
    emitter: &Arc<Emitter>,
    health: &Arc<Health>,
    dead_letters: &Arc<DeadLetterLog>,
    registry: Option<&Arc<Registry>>,
) -> Result<StartedWorkers, PipelineError> {
    let schema_ids: HashMap<u32, SchemaKind> = config
        .schema_ids
        .iter()
        .filter_map(|(id, kind)| id.parse().ok().map(|id| (id, *kind)))
        .collect();
    let mut channels = HashMap::new();
    let mut handles = Vec::new();
    let mut fleet = Vec::new();
    for binding in &config.bindings {
        let start_error = |message: String| PipelineError::OperatorStart {
            operator: binding.operator.name().to_owned(),
            message,
        };
        let spec = binding.operator.spec();
        let pinned = match (registry, spec.model) {
            (Some(registry), Some(model)) => Some(
                registry
                    .boot_version(spec.name, || local_version(config, spec.name, model.dir))
                    .map_err(|error| start_error(error.to_string()))?,
            ),
            _ => None,
        };
        let mut context = OperatorContext::for_binding(config, &binding.topic, true);
        context.pinned_version_dir = pinned.as_deref();
        let runtime = (spec.start)(&context).map_err(|error| start_error(error.to_string()))?;
        ensure_side_outputs(config, spec, &binding.topic).map_err(start_error)?;
        let shadow = match (registry, spec.model, &runtime.shadow) {
            (Some(_), Some(model), Some(factory)) => Some(
                start_shadow(
                    config,
                    spec.name,
                    model.shadow,
                    factory.clone(),
                    runtime.state,
                )
                .map_err(|error| start_error(error.to_string()))?,
            ),
            _ => None,
        };
        let drift = match (&runtime.model, spec.model.and_then(|model| model.drift)) {
            (Some(handle), Some(drift_spec)) if config.drift.enabled => Some(
                start_drift(
                    config,
                    spec.name,
                    &binding.topic,
                    drift_spec,
                    handle.clone(),
                )
                .map_err(|error| start_error(error.to_string()))?,
            ),
            _ => None,
        };
        if let (Some(handle), Some(model)) = (&runtime.model, spec.model) {
            crate::sync::lock(&health.models).insert(
                binding.topic.clone(),
                BoundModel {
                    handle: handle.clone(),
                    versions_dir: config.storage.model_dir.join(model.dir),
                    shadow: shadow.clone(),
                    registry: registry.cloned(),
                    drift: drift.clone(),
                },
            );
            let bound = FleetBinding {
                operator: spec.name,
                topic: binding.topic.clone(),
                model: handle.clone(),
                shadow: shadow.clone(),
            };
            crate::registry::fleet::publish_version(&bound, None, &handle.version());
            fleet.push(bound);
        }
        let changelog = match runtime.state {
            Some(_) => Some(
                Changelog::open(config, &binding.topic, binding.operator.name())
                    .map_err(|error| start_error(error.to_string()))?,
            ),
            None => None,
        };
        let new_worker = Arc::new(runtime.new_worker);
        let state_view = changelog
            .as_ref()
            .map(|_| Arc::new(crate::runtime::StateView::default()));
        health
            .scoring
            .register(crate::api::scoring::ScoringBinding::new(
                spec.name,
                &binding.topic,
                binding.schema,
                config.pipeline.max_message_bytes,
                new_worker.clone(),
                match (runtime.state, runtime.state_reads, &state_view) {
                    (Some(factory), Some(reads), Some(view)) => {
                        Some(crate::api::scoring::ApiState {
                            factory,
                            reads,
                            view: view.clone(),
                        })
                    }
                    _ => None,
                },
                binding.privacy,
            ));
        let lanes = binding.worker_count();
        tracing::info!(
            topic = %binding.topic,
            operator = binding.operator.name(),
            workers = lanes,
            changelog = changelog.as_ref().map(|c| c.topic().to_owned()),
            "binding started"
        );
        let mut senders = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            let worker = Worker {
                binding: binding.clone(),
                lane,
                operator: new_worker(),
                states: PartitionStates::new(runtime.state),
                changelog: match &changelog {
                    Some(changelog) => Some(
                        changelog
                            .writer(state_view.clone())
                            .map_err(|error| start_error(error.to_string()))?,
                    ),
                    None => None,
                },
                state_checkpoint: Duration::from_millis(config.pipeline.state_checkpoint_ms),
                decoder: Decoder::new(
                    binding.schema,
                    binding.input_format,
                    config.pipeline.max_message_bytes,
                    schema_ids.clone(),
                ),
                encoder: OutputEncoder::new(&config.output)?,
                emitter: emitter.clone(),
                tracker: tracker.clone(),
                dead_letter_topic: config.output.dead_letter_topic.clone(),
                tick: Duration::from_millis(config.pipeline.tick_ms),
                max_output_bytes: config.pipeline.max_output_bytes,
                health: health.clone(),
                dead_letters: dead_letters.clone(),
                shadow: shadow.clone(),
                drift: drift.clone(),
            };
            let (sender, receiver) =
                std::sync::mpsc::sync_channel(config.pipeline.channel_capacity);
            handles.push(crate::worker::spawn(worker, receiver)?);
            senders.push(sender);
        }
        channels.insert(binding.topic.clone(), senders);
    }
    Ok((channels, handles, fleet))
}

/// The drift watch of a binding (its thread started; the drift topic created if missing).
fn start_drift(
    config: &EngineConfig,
    operator: &'static str,
    topic: &str,
    spec: crate::operators::table::DriftSpec,
    model: Arc<dyn crate::runtime::ModelHandle>,
) -> Result<Arc<crate::drift::tap::DriftTap>, Box<dyn std::error::Error + Send + Sync>> {
    crate::runtime::changelog::create_topic(
        &base_client_config(config),
        &config.drift.topic,
        1,
        false,
    )?;
    let output = crate::drift::tap::DriftOutput {
        topic: config.drift.topic.clone(),
        producer: producer_client_config(config).create()?,
    };
    Ok(crate::drift::tap::DriftTap::start(
        operator,
        topic,
        spec,
        model,
        &config.drift,
        Some(output),
    )?)
}

/// The shadow tap of a binding of `operator` (its thread started; no challenger yet).
fn start_shadow(
    config: &EngineConfig,
    operator: &'static str,
    keys: crate::operators::table::ShadowKeys,
    factory: crate::registry::shadow::ShadowFactory,
    state: Option<crate::runtime::StateFactory>,
) -> Result<Arc<ShadowTap>, Box<dyn std::error::Error + Send + Sync>> {
    let output = if config.registry.shadow_topic.is_empty() {
        None
    } else {
        let producer: rdkafka::producer::ThreadedProducer<
            rdkafka::producer::DefaultProducerContext,
        > = producer_client_config(config).create()?;
        Some((config.registry.shadow_topic.clone(), producer))
    };
    Ok(ShadowTap::start(
        operator,
        keys,
        config.registry.shadow_fraction,
        factory,
        state,
        output,
    )?)
}
