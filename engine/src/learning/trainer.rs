//! The trainer role: `threatflow trainer --config FILE`, or `[lifecycle] trainer = true`
//! inside one engine. Run exactly one (in Kubernetes a single-replica Deployment).
//!
//! One thread reads the feedback topics with its own consumer group and feeds each verdict
//! through the [`Intake`]; offsets are committed only after the buffer is flushed, so a
//! crash re-reads verdicts (harmless: the buffer keeps the latest verdict per event). Every
//! `trainer.interval_secs` it retrains each operator with ≥ `min_new_rows` new rows, and at
//! once at ≥ `immediate_rows`. Jobs ([`super::retrain`]) run one at a time on a worker thread
//! at the lowest CPU priority, so scoring on the same machine keeps its cores. With
//! `promotion = "auto"`, a challenger the trainer made is evaluated when its shadow period
//! ends. The state of all this is [`LearningHealth`]: `/models` and metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::buffer::TrainingBuffer;
use super::drift_trigger::{DriftTrigger, PendingDrift};
use super::intake::{Intake, OperatorInputs, VerdictRecord};
use super::retrain::{self, Job, JobContext, JobOutcome};
use super::Promotion;
use crate::config::EngineConfig;
use crate::decode::Decoder;
use crate::registry::log::{Action, RegistryLog, RegistryState};
use crate::registry::store::ArtifactStore;
use crate::scored::SourceCoordinates;
use crate::sync::lock;
use crate::telemetry;

/// Why the trainer cannot start.
#[derive(Debug, thiserror::Error)]
#[error("trainer: {0}")]
pub struct TrainerError(String);

fn failed(error: impl std::fmt::Display) -> TrainerError {
    TrainerError(error.to_string())
}

/// One operator's learning state, as `/models` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OperatorLearning {
    /// Where its verdicts come from.
    pub feedback_topic: String,
    /// Rows in the training buffer.
    pub buffer_rows: usize,
    /// Rows added or replaced since the last training.
    pub rows_since_training: usize,
    /// `idle`, `retraining`, `evaluating` or `shadowing`.
    pub scheduler: String,
    /// Seconds until the next scheduled check.
    pub next_check_in_s: f64,
    /// Verdicts by outcome.
    pub verdicts: BTreeMap<String, u64>,
    /// The last retraining.
    pub last_training: Option<JobOutcome>,
    /// The last challenger evaluation.
    pub last_evaluation: Option<JobOutcome>,
    /// Live precision per model version.
    pub live_precision: serde_json::Value,
    /// With `trainer.retrain_on_drift`: the drift waiting for `drift_min_new_rows` new rows.
    pub pending_drift: Option<String>,
    /// Why the last retraining started: `rows`, `check` or `drift: <kind> <feature>`.
    pub last_trigger: Option<String>,
}

/// The trainer's state, shared with `/models`.
#[derive(Debug, Default)]
pub struct LearningHealth {
    /// Input topic → operator (to show the state under each binding).
    pub topics: BTreeMap<String, String>,
    operators: Mutex<BTreeMap<String, OperatorLearning>>,
}

impl LearningHealth {
    /// `operator`'s state, when the trainer learns for it.
    pub fn describe(&self, operator: &str) -> Option<serde_json::Value> {
        lock(&self.operators)
            .get(operator)
            .and_then(|state| serde_json::to_value(state).ok())
    }

    fn update(&self, operator: &str, change: impl FnOnce(&mut OperatorLearning)) {
        change(
            lock(&self.operators)
                .entry(operator.to_owned())
                .or_default(),
        );
    }
}

/// A running trainer.
pub struct TrainerHandle {
    /// Its state.
    pub health: Arc<LearningHealth>,
    /// The intake and scheduling thread (ends after `stop`).
    pub thread: std::thread::JoinHandle<()>,
}

/// The operators this config lets the trainer learn for: bound operators with a learning
/// spec, with a decoder per bound topic.
pub fn learning_inputs(config: &EngineConfig) -> BTreeMap<&'static str, OperatorInputs> {
    let schema_ids: HashMap<u32, _> = config
        .schema_ids
        .iter()
        .filter_map(|(id, kind)| id.parse().ok().map(|id| (id, *kind)))
        .collect();
    let mut inputs: BTreeMap<&'static str, OperatorInputs> = BTreeMap::new();
    for binding in &config.bindings {
        let spec = binding.operator.spec();
        let Some(model) = spec
            .model
            .filter(|m| m.learning.is_some() || m.feedback_export.is_some())
        else {
            continue;
        };
        let learning = model.learning;
        inputs
            .entry(spec.name)
            .or_insert_with(|| OperatorInputs {
                operator: spec.name,
                model_dir: model.dir,
                learning,
                decoders: BTreeMap::new(),
            })
            .decoders
            .insert(
                binding.topic.clone(),
                Decoder::new(
                    binding.schema,
                    binding.input_format,
                    config.pipeline.max_message_bytes,
                    schema_ids.clone(),
                ),
            );
    }
    inputs
}

/// Starts the trainer; `None` when no bound operator retrains in the engine.
pub fn start(
    config: &EngineConfig,
    stop: CancellationToken,
) -> Result<Option<TrainerHandle>, TrainerError> {
    if !config.registry.enabled {
        return Err(failed(
            "the trainer publishes through the registry: set [registry] enabled = true",
        ));
    }
    let inputs = learning_inputs(config);
    if inputs.is_empty() {
        tracing::info!("no bound operator retrains in the engine; the trainer has nothing to do");
        return Ok(None);
    }
    let buffer_dir = config.trainer.buffer_dir(&config.storage.state_dir);
    let buffer = Arc::new(TrainingBuffer::open(&buffer_dir).map_err(failed)?);
    let log = RegistryLog::open(config).map_err(failed)?;
    let (state, next) = log.read_all().map_err(failed)?;
    let state = Arc::new(Mutex::new(state));
    {
        let state = state.clone();
        log.follow(next, stop.clone(), move |record| lock(&state).apply(record))
            .map_err(failed)?;
    }
    let health = Arc::new(LearningHealth {
        topics: inputs
            .values()
            .flat_map(|op| {
                op.decoders
                    .keys()
                    .map(|topic| (topic.clone(), op.operator.to_owned()))
            })
            .collect(),
        ..LearningHealth::default()
    });
    let intake = Intake::new(config, buffer.clone()).map_err(failed)?;
    let consumer = feedback_consumer(config, &inputs)?;
    let (jobs, results) = start_worker(
        JobContext {
            config: config.clone(),
            store: ArtifactStore::open(&config.registry, &config.storage.model_dir)
                .map_err(failed)?,
            log,
            buffer: buffer.clone(),
            inputs: inputs.clone(),
        },
        state.clone(),
    )?;
    let mut scheduler = Scheduler {
        config: config.clone(),
        inputs,
        buffer,
        intake,
        consumer,
        state,
        health: health.clone(),
        jobs,
        results,
        busy: BTreeMap::new(),
        evaluated: BTreeMap::new(),
        next_check: Instant::now() + Duration::from_secs_f64(config.trainer.interval_secs),
        pending: BTreeMap::new(),
        drift: None,
        drift_retry: Instant::now(),
        drifted: PendingDrift::new(),
    };
    let thread = std::thread::Builder::new()
        .name("threatflow-trainer".into())
        .spawn(move || scheduler.run(&stop))
        .map_err(failed)?;
    tracing::info!(buffer = %buffer_dir.display(), "trainer started");
    Ok(Some(TrainerHandle { health, thread }))
}

fn feedback_consumer(
    config: &EngineConfig,
    inputs: &BTreeMap<&'static str, OperatorInputs>,
) -> Result<BaseConsumer, TrainerError> {
    let mut client = crate::pipeline::base_client_config(config);
    let group = if config.feedback.group_id.is_empty() {
        format!("{}.trainer", config.kafka.group_id)
    } else {
        config.feedback.group_id.clone()
    };
    client
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "10000");
    let consumer: BaseConsumer = client.create().map_err(failed)?;
    let topics: Vec<String> = inputs
        .keys()
        .map(|operator| config.feedback.topic(operator))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).map_err(failed)?;
    Ok(consumer)
}

/// Where finished jobs come back.
type JobResults = Receiver<(Job, JobOutcome)>;

/// The job worker: one job at a time, at the lowest CPU priority.
fn start_worker(
    context: JobContext,
    state: Arc<Mutex<RegistryState>>,
) -> Result<(Sender<Job>, JobResults), TrainerError> {
    let (job_sender, job_receiver) = std::sync::mpsc::channel::<Job>();
    let (result_sender, result_receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("threatflow-retrain".into())
        .spawn(move || {
            lower_priority();
            while let Ok(job) = job_receiver.recv() {
                let snapshot = lock(&state).clone();
                let outcome = retrain::run(&context, &job, &snapshot);
                if result_sender.send((job, outcome)).is_err() {
                    return;
                }
            }
        })
        .map_err(failed)?;
    Ok((job_sender, result_receiver))
}

/// Nice 19 for this thread and the threads it starts: training yields the cores to scoring.
fn lower_priority() {
    // SAFETY: setpriority on our own thread id; no memory is shared with the call.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
    if result != 0 {
        tracing::warn!("could not lower the retraining thread's priority");
    }
}

struct Scheduler {
    config: EngineConfig,
    inputs: BTreeMap<&'static str, OperatorInputs>,
    buffer: Arc<TrainingBuffer>,
    intake: Intake,
    consumer: BaseConsumer,
    state: Arc<Mutex<RegistryState>>,
    health: Arc<LearningHealth>,
    jobs: Sender<Job>,
    results: JobResults,
    /// Operators with a job queued or running.
    busy: BTreeMap<&'static str, &'static str>,
    /// Per operator: the challenge (at_ms) already evaluated, and when to look again.
    evaluated: BTreeMap<&'static str, (i64, Option<Instant>)>,
    next_check: Instant,
    /// Offsets to commit (next to read) per feedback partition.
    pending: BTreeMap<(String, i32), i64>,
    /// With `trainer.retrain_on_drift`: the drift topic's reader, once it opened, and when
    /// to try opening it again.
    drift: Option<DriftTrigger>,
    drift_retry: Instant,
    /// Operators reported drifted, waiting for their rows.
    drifted: PendingDrift,
}

impl Scheduler {
    fn run(&mut self, stop: &CancellationToken) {
        let mut last_tick = Instant::now() - Duration::from_secs(10);
        while !stop.is_cancelled() {
            if let Some(message) = self.consumer.poll(Duration::from_millis(200)) {
                match message {
                    Ok(message) => {
                        let message = message.detach();
                        self.take(&message);
                    }
                    Err(error) => tracing::warn!(%error, "feedback read failed; retrying"),
                }
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                self.commit();
                self.collect_results();
                self.schedule();
            }
        }
        self.commit();
    }

    fn take(&mut self, message: &rdkafka::message::OwnedMessage) {
        let topic = message.topic().to_owned();
        let Some(inputs) = self
            .inputs
            .values()
            .find(|inputs| self.config.feedback.topic(inputs.operator) == topic)
        else {
            return;
        };
        let champion = lock(&self.state).of(inputs.operator).champion;
        let record = VerdictRecord {
            source: SourceCoordinates {
                topic: topic.clone(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp_ms: message.timestamp().to_millis(),
            },
            key: message.key(),
            payload: message.payload(),
        };
        match self.intake.take(inputs, champion.as_deref(), &record) {
            Ok(outcome) => {
                let label = format!("{outcome:?}").to_lowercase();
                self.health.update(inputs.operator, |state| {
                    *state.verdicts.entry(label).or_default() += 1;
                });
                self.pending
                    .insert((topic, message.partition()), message.offset() + 1);
            }
            Err(error) => {
                // Not taken: read it again after a pause (the broker or store is away).
                tracing::warn!(%error, topic, partition = message.partition(), offset = message.offset(), "verdict not taken; retrying");
                let _ = self.consumer.seek(
                    &topic,
                    message.partition(),
                    Offset::Offset(message.offset()),
                    Duration::from_secs(5),
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    /// Flushes the buffer, then commits what it holds.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(error) = self
            .buffer
            .flush()
            .map_err(|e| e.to_string())
            .and_then(|()| self.intake.flush().map_err(|e| e.to_string()))
        {
            tracing::warn!(%error, "training buffer not flushed; verdict offsets not committed");
            return;
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.pending {
            let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        match self.consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => self.pending.clear(),
            Err(error) => tracing::warn!(%error, "verdict offsets not committed; retrying"),
        }
    }

    fn collect_results(&mut self) {
        while let Ok((job, outcome)) = self.results.try_recv() {
            let operator = job.operator();
            self.busy.remove(operator);
            metrics::counter!(telemetry::RETRAININGS, "operator" => operator, "outcome" => outcome.outcome)
                .increment(1);
            if outcome.outcome == "failed" {
                tracing::error!(operator, job = outcome.job, reason = %outcome.reason, "trainer job failed");
            }
            match job {
                Job::Retrain(_) => {
                    metrics::gauge!(telemetry::RETRAINING_SECONDS, "operator" => operator)
                        .set(outcome.duration_s);
                    metrics::gauge!(telemetry::RETRAINING_LAST, "operator" => operator)
                        .set(crate::scored::now_ms() as f64 / 1000.0);
                    self.health
                        .update(operator, |state| state.last_training = Some(outcome));
                }
                Job::Evaluate(_) => {
                    if outcome.outcome == "waiting" || outcome.outcome == "failed" {
                        // Look again after another shadow period.
                        if let Some(entry) = self.evaluated.get_mut(operator) {
                            entry.1 = Some(
                                Instant::now()
                                    + Duration::from_secs_f64(
                                        self.config.trainer.shadow_period_secs.max(1.0),
                                    ),
                            );
                        }
                    }
                    self.health
                        .update(operator, |state| state.last_evaluation = Some(outcome));
                }
            }
        }
    }

    /// Notes the operators reported drifted since the last tick.
    fn take_drift(&mut self) {
        if self.drift.is_none() && self.config.trainer.retrain_on_drift {
            self.open_drift();
        }
        let Some(trigger) = &self.drift else {
            return;
        };
        for signal in trigger.poll() {
            let Some(&operator) = self
                .inputs
                .keys()
                .find(|operator| **operator == signal.operator)
            else {
                continue;
            };
            let reasons = self.drifted.entry(operator).or_default();
            if reasons.is_empty() {
                tracing::info!(operator, reason = %signal.reason, "drift reported; retraining once new verdicts arrive");
            }
            // Name a few of what drifted, not every record of a long drift.
            if reasons.len() < 5 && !reasons.contains(&signal.reason) {
                reasons.push(signal.reason);
            }
        }
    }

    /// Opens the drift topic's reader (the engine may not have created the topic yet: tried
    /// again every 10 s).
    fn open_drift(&mut self) {
        // A validated config has `[drift] enabled` whenever `retrain_on_drift` is set.
        if Instant::now() < self.drift_retry {
            return;
        }
        self.drift_retry = Instant::now() + Duration::from_secs(10);
        match DriftTrigger::open(&self.config) {
            Ok(trigger) => {
                tracing::info!(topic = %self.config.drift.topic, "retraining on drift");
                self.drift = Some(trigger);
            }
            Err(error) => {
                tracing::warn!(%error, "retrain on drift waits for the drift topic");
            }
        }
    }

    fn schedule(&mut self) {
        self.take_drift();
        let now = Instant::now();
        let check_due = now >= self.next_check;
        let trainer = self.config.trainer.clone();
        let operators: Vec<&'static str> = self.inputs.keys().copied().collect();
        for operator in operators {
            let rows = self.buffer.len(operator).unwrap_or(0);
            let new = self.buffer.new_since_training(operator).unwrap_or(0);
            metrics::gauge!(telemetry::TRAINING_BUFFER_ROWS, "operator" => operator)
                .set(rows as f64);
            metrics::gauge!(telemetry::TRAINING_NEW_ROWS, "operator" => operator).set(new as f64);
            let retrains = self
                .inputs
                .get(operator)
                .is_some_and(|i| i.learning.is_some());
            let trigger = if !retrains {
                None
            } else if new >= trainer.immediate_rows {
                Some("rows".to_owned())
            } else if check_due && new >= trainer.min_new_rows {
                Some("check".to_owned())
            } else {
                self.drifted
                    .get(operator)
                    .filter(|_| new >= trainer.drift_min_new_rows)
                    .map(|reasons| format!("drift: {}", reasons.join(", ")))
            };
            if let Some(trigger) = trigger {
                if !self.busy.contains_key(operator)
                    && self.jobs.send(Job::Retrain(operator)).is_ok()
                {
                    tracing::info!(operator, new_rows = new, %trigger, "retraining");
                    self.busy.insert(operator, "retraining");
                    self.drifted.remove(operator);
                    self.health
                        .update(operator, |state| state.last_trigger = Some(trigger));
                }
            }
            let pending_drift = self.drifted.get(operator).map(|reasons| reasons.join(", "));
            if trainer.promotion == Promotion::Auto && !self.busy.contains_key(operator) {
                self.maybe_evaluate(operator, now);
            }
            let scheduler = match self.busy.get(operator) {
                Some(job) => (*job).to_owned(),
                None if self.trainer_challenge(operator).is_some() => "shadowing".to_owned(),
                None => "idle".to_owned(),
            };
            let precision = self.intake.precision.describe(operator);
            let next_check_in_s = self.next_check.saturating_duration_since(now).as_secs_f64();
            let feedback_topic = self.config.feedback.topic(operator);
            self.health.update(operator, |state| {
                state.feedback_topic = feedback_topic;
                state.buffer_rows = rows;
                state.rows_since_training = new;
                state.scheduler = scheduler;
                state.next_check_in_s = next_check_in_s;
                state.live_precision = precision;
                state.pending_drift = pending_drift;
            });
        }
        if check_due {
            self.next_check = now + Duration::from_secs_f64(trainer.interval_secs);
        }
    }

    /// When the current challenger was set by the trainer: that record's time (epoch ms).
    fn trainer_challenge(&self, operator: &str) -> Option<i64> {
        let aliases = lock(&self.state).of(operator);
        let challenger = aliases.challenger.as_deref()?;
        let record = aliases.history.iter().rev().find(|record| {
            record.action == Action::Challenge && record.version.as_deref() == Some(challenger)
        })?;
        record.by.starts_with("trainer:").then_some(record.at_ms)
    }

    fn maybe_evaluate(&mut self, operator: &'static str, now: Instant) {
        let Some(challenged_ms) = self.trainer_challenge(operator) else {
            return;
        };
        let period_ms = (self.config.trainer.shadow_period_secs * 1000.0) as i64;
        if crate::scored::now_ms() < challenged_ms + period_ms {
            return;
        }
        let due = match self.evaluated.get(operator) {
            Some((at, retry)) if *at == challenged_ms => retry.is_some_and(|retry| now >= retry),
            _ => true,
        };
        if due && self.jobs.send(Job::Evaluate(operator)).is_ok() {
            self.evaluated.insert(operator, (challenged_ms, None));
            self.busy.insert(operator, "evaluating");
        }
    }
}
