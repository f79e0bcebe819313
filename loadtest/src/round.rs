//! One measured round: fresh topics and group, the target's processes started and ready, the
//! mix produced (open loop with due-time stamps, or flat out within a window) from its own
//! thread while this one reads every output, samples the group's lag and the processes' CPU
//! and memory each second, waits for the last output, stops the processes gracefully and
//! accounts for every input by its coordinates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use threatflow::demo::mix::{Budget, Mix, MixOptions, OpenLoop};
use threatflow::demo::reader::OutputReader;
use threatflow::demo::{demo_config, send_stamped, DemoTopics, DEMO_TOPIC_PARTITIONS};
use threatflow::operators::OperatorKind;

use crate::broker::Broker;
use crate::options::{Operators, Target};
use crate::process::{free_local_address, UnderTest};

/// How long the processes of a round get to hold their partitions.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopped process gets for its last commits.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How a round produces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the target drains, at most this many inputs without an output.
    FlatOut { window: u64 },
    /// Open loop at this many events/s.
    OpenLoop(f64),
}

/// What is shared by every round of a run.
pub struct RunContext<'a> {
    /// The broker.
    pub broker: &'a Broker,
    /// A per-run id, in topic and group names.
    pub run_id: String,
    /// Configs, state and logs.
    pub work_dir: PathBuf,
    /// The mix (its weights select the streams, and so the bindings, of a round).
    pub mix: MixOptions,
    /// What a round produces.
    pub budget: Budget,
    /// Seconds without a new output after which a round stops waiting.
    pub quiet: Duration,
    /// RUST_LOG of the engine processes.
    pub engine_log: String,
}

/// One second of a round.
#[derive(Debug, Clone, Serialize)]
pub struct SecondPoint {
    /// Seconds since the first input.
    pub second: usize,
    /// Inputs accounted in this second.
    pub accounted: u64,
    /// Latency p50 / p99 of those inputs, ms.
    pub p50_ms: u64,
    /// See `p50_ms`.
    pub p99_ms: u64,
    /// The target group's lag (high watermark − committed, summed over input partitions).
    pub lag: i64,
    /// Inputs produced and not yet accounted.
    pub in_flight: u64,
    /// CPU cores the target's processes used in this second.
    pub cpu_cores: f64,
}

/// A round's result.
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    /// Target name (`engine`, `passthrough`, `raw-relay`, `enginex2`, …).
    pub target: String,
    /// Processes in the target's group.
    pub processes: u32,
    /// `flat-out` or `open-loop`.
    pub pace: String,
    /// The open-loop rate asked for, events/s.
    pub rate: Option<f64>,
    /// Inputs produced.
    pub produced: u64,
    /// Inputs produced per stream.
    pub produced_by_stream: BTreeMap<String, u64>,
    /// Distinct inputs scored (or relayed).
    pub scored: u64,
    /// Distinct inputs dead-lettered.
    pub dead_lettered: u64,
    /// Inputs committed without an output.
    pub lost: u64,
    /// Inputs without an output, uncommitted (late, not lost).
    pub not_yet_seen: u64,
    /// Outputs beyond one per input.
    pub duplicates: u64,
    /// Accounted inputs per second, first input to last output.
    pub events_per_sec: f64,
    /// End-to-end latency from each input's timestamp (its due time when open loop), ms.
    pub p50_ms: u64,
    /// See `p50_ms`.
    pub p90_ms: u64,
    /// See `p50_ms`.
    pub p99_ms: u64,
    /// See `p50_ms`.
    pub max_ms: u64,
    /// Mean CPU cores of the target's processes, first input to last output.
    pub cpu_cores: f64,
    /// Highest resident set of a target process, MiB.
    pub peak_rss_mib: f64,
    /// First input to last output, s.
    pub elapsed_secs: f64,
    /// Dead letters by reason code.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Per second (not in the stdout line).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<SecondPoint>,
}

/// Runs one round of `target`.
pub fn run(
    context: &RunContext<'_>,
    target: Target,
    pace: Pace,
    index: usize,
) -> anyhow::Result<RoundResult> {
    let suffix = format!(".lt-{}-{index}", context.run_id);
    let topics = DemoTopics::with_suffix(&suffix);
    let group = format!("threatflow-loadtest-{}-{index}", context.run_id);
    let bootstrap = context.broker.bootstrap();
    let active: Vec<usize> = context
        .mix
        .weights
        .iter()
        .enumerate()
        .filter(|(_, weight)| **weight > 0)
        .map(|(stream, _)| stream)
        .collect();
    let round_dir = context
        .work_dir
        .join(format!("round-{index}-{}", target.name()));
    std::fs::create_dir_all(&round_dir)?;
    let mut processes = start_target(context, target, &topics, &group, &active, &round_dir)?;
    for process in &mut processes {
        process.wait_ready(READY_TIMEOUT)?;
    }
    if processes.len() > 1 {
        // Joining members rebalance the group: wait until every one holds partitions again.
        std::thread::sleep(Duration::from_secs(3));
        for process in &mut processes {
            process.wait_ready(READY_TIMEOUT)?;
        }
    }

    let mut reader = OutputReader::new(&bootstrap, &topics)?;
    let lag_probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()?;
    let produced = Arc::new(AtomicU64::new(0));
    let accounted = Arc::new(AtomicU64::new(0));
    let producing = Arc::new(AtomicBool::new(true));
    let start = Instant::now();
    reader.start_measuring(start);
    for process in &mut processes {
        process.start_measuring();
    }
    let producer = {
        let (bootstrap, topics, mix, budget) = (
            bootstrap.clone(),
            topics.clone(),
            context.mix.clone(),
            context.budget,
        );
        let (produced, accounted, producing) =
            (produced.clone(), accounted.clone(), producing.clone());
        std::thread::Builder::new()
            .name("load-producer".into())
            .spawn(move || {
                let result = produce(
                    &bootstrap, &topics, mix, pace, budget, &produced, &accounted,
                );
                producing.store(false, Ordering::SeqCst);
                result
            })?
    };

    let mut samples: Vec<(i64, u64, f64)> = Vec::new();
    let mut next_sample = start + Duration::from_secs(1);
    let mut last_cpu = 0.0;
    let mut last_new_output = Instant::now();
    let mut production_ended: Option<Instant> = None;
    loop {
        let before = reader.accounted();
        reader.poll_some(Duration::from_millis(50));
        accounted.store(reader.accounted(), Ordering::SeqCst);
        if reader.accounted() > before {
            last_new_output = Instant::now();
        }
        if Instant::now() >= next_sample {
            let cpu: f64 = processes.iter_mut().map(UnderTest::sample).sum();
            let lag = group_lag(&lag_probe, &reader, &topics, &active).unwrap_or(-1);
            let in_flight = produced
                .load(Ordering::SeqCst)
                .saturating_sub(reader.accounted());
            samples.push((lag, in_flight, cpu - last_cpu));
            last_cpu = cpu;
            next_sample += Duration::from_secs(1);
        }
        if !producing.load(Ordering::SeqCst) {
            // Quiet time counts from the last output or the last input, whichever is later.
            let ended = *production_ended.get_or_insert_with(Instant::now);
            let all_seen = reader.accounted() >= produced.load(Ordering::SeqCst);
            if all_seen || last_new_output.max(ended).elapsed() >= context.quiet {
                break;
            }
        }
    }
    let by_stream = match producer.join() {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("the producer thread panicked"),
    };
    let end = reader.last_output.unwrap_or_else(Instant::now).max(start);
    let elapsed = end.duration_since(start).as_secs_f64().max(0.001);
    let cpu_seconds: f64 = processes.iter_mut().map(UnderTest::sample).sum();
    let peak_rss = processes
        .iter()
        .map(|process| process.peak_rss_bytes)
        .max()
        .unwrap_or(0);
    for process in processes {
        process.stop(STOP_GRACE)?;
    }
    let (lost, not_yet_seen) = reader.unaccounted(&bootstrap, &group, &topics)?;
    let latency = &reader.latency_ms;
    let timeline = reader
        .timeline
        .iter()
        .enumerate()
        .map(|(second, bucket)| {
            let (lag, in_flight, cpu_cores) = samples.get(second).copied().unwrap_or((-1, 0, 0.0));
            SecondPoint {
                second,
                accounted: bucket.accounted,
                p50_ms: bucket.latency_ms.value_at_quantile(0.5),
                p99_ms: bucket.latency_ms.value_at_quantile(0.99),
                lag,
                in_flight,
                cpu_cores,
            }
        })
        .collect();
    Ok(RoundResult {
        target: target.name(),
        processes: match target {
            Target::Engine { processes, .. } => processes,
            Target::Raw => 1,
        },
        pace: match pace {
            Pace::FlatOut { .. } => "flat-out".into(),
            Pace::OpenLoop(_) => "open-loop".into(),
        },
        rate: match pace {
            Pace::FlatOut { .. } => None,
            Pace::OpenLoop(rate) => Some(rate),
        },
        produced: produced.load(Ordering::SeqCst),
        produced_by_stream: by_stream,
        scored: reader.scored(),
        dead_lettered: reader.dead_lettered(),
        lost,
        not_yet_seen,
        duplicates: reader.duplicates,
        events_per_sec: reader.accounted() as f64 / elapsed,
        p50_ms: latency.value_at_quantile(0.5),
        p90_ms: latency.value_at_quantile(0.9),
        p99_ms: latency.value_at_quantile(0.99),
        max_ms: latency.max(),
        cpu_cores: cpu_seconds / elapsed,
        peak_rss_mib: peak_rss as f64 / (1024.0 * 1024.0),
        elapsed_secs: elapsed,
        dead_letters_by_reason: reader.by_reason.clone(),
        timeline,
    })
}

/// Creates the round's topics and starts its processes.
fn start_target(
    context: &RunContext<'_>,
    target: Target,
    topics: &DemoTopics,
    group: &str,
    active: &[usize],
    round_dir: &Path,
) -> anyhow::Result<Vec<UnderTest>> {
    let bootstrap = context.broker.bootstrap();
    let (operators, count) = match target {
        Target::Raw => {
            context.broker.create_topics(topics, None)?;
            let pairs: Vec<(String, String)> = active
                .iter()
                .map(|&stream| {
                    let stream = &topics.streams[stream];
                    (stream.input.clone(), stream.output.clone())
                })
                .collect();
            let relay = UnderTest::relay(&bootstrap, group, &pairs, &round_dir.join("relay.log"))?;
            return Ok(vec![relay]);
        }
        Target::Engine {
            operators,
            processes,
        } => (operators, processes),
    };
    let mut config = demo_config(&bootstrap, group, topics);
    let active_inputs: Vec<&str> = active
        .iter()
        .map(|&stream| topics.streams[stream].input.as_str())
        .collect();
    config
        .bindings
        .retain(|binding| active_inputs.contains(&binding.topic.as_str()));
    if operators == Operators::Passthrough {
        let passthrough = OperatorKind::named("passthrough")
            .ok_or_else(|| anyhow::anyhow!("no passthrough operator"))?;
        for binding in &mut config.bindings {
            binding.operator = passthrough;
        }
    }
    context.broker.create_topics(topics, Some(&config))?;
    let mut processes = Vec::new();
    for number in 0..count {
        let process_dir = round_dir.join(format!("process-{number}"));
        std::fs::create_dir_all(&process_dir)?;
        let http = free_local_address()?;
        config.http.bind = http.clone();
        config.storage.state_dir = process_dir.join("state");
        config.validate()?;
        let config_path = process_dir.join("engine.toml");
        std::fs::write(&config_path, config.to_masked_toml())?;
        processes.push(UnderTest::engine(
            &config_path,
            http,
            &process_dir.join("engine.log"),
            &context.engine_log,
        )?);
    }
    Ok(processes)
}

/// Produces the round's inputs; returns the count per stream.
fn produce(
    bootstrap: &str,
    topics: &DemoTopics,
    mix: MixOptions,
    pace: Pace,
    budget: Budget,
    produced: &AtomicU64,
    accounted: &AtomicU64,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()?;
    let mut mix = Mix::new(topics, mix)?;
    // Learn every input's partition leaders before the clock starts: a first send would
    // otherwise wait for metadata, and open-loop latency would count that wait.
    for stream in mix.streams() {
        producer
            .client()
            .fetch_metadata(Some(&topics.streams[stream].input), Duration::from_secs(10))?;
    }
    let schedule = match pace {
        Pace::OpenLoop(rate) => Some(OpenLoop::new(rate)),
        Pace::FlatOut { .. } => None,
    };
    let start = Instant::now();
    let mut by_stream = BTreeMap::new();
    let mut count = 0u64;
    while !budget.done(count, start) {
        let timestamp = match pace {
            Pace::OpenLoop(_) => schedule.map(|schedule| {
                schedule.wait_for(count);
                schedule.due_epoch_ms(count)
            }),
            Pace::FlatOut { window } => {
                while count.saturating_sub(accounted.load(Ordering::SeqCst)) >= window {
                    std::thread::sleep(Duration::from_millis(1));
                }
                None
            }
        };
        let input = mix.next_input();
        let stream = &topics.streams[input.stream];
        send_stamped(
            &producer,
            &stream.input,
            &input.key,
            &input.payload,
            timestamp,
        )?;
        count += 1;
        produced.store(count, Ordering::SeqCst);
        *by_stream
            .entry(stream.kind.name().to_owned())
            .or_insert(0u64) += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(by_stream)
}

/// The group's lag over the active input partitions: high watermark − committed offset.
fn group_lag(
    probe: &BaseConsumer,
    reader: &OutputReader,
    topics: &DemoTopics,
    active: &[usize],
) -> anyhow::Result<i64> {
    let mut list = TopicPartitionList::new();
    for &stream in active {
        for partition in 0..DEMO_TOPIC_PARTITIONS {
            list.add_partition(&topics.streams[stream].input, partition);
        }
    }
    let committed = probe.committed_offsets(list, Duration::from_secs(1))?;
    let mut lag = 0;
    for element in committed.elements() {
        let (low, high) = reader.watermarks(element.topic(), element.partition())?;
        let position = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        lag += (high - position).max(0);
    }
    Ok(lag)
}
