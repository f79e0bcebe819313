//! `threatflow-chaos`: kills the engine with SIGKILL over and over under load, then accounts
//! for every input by its coordinates. Usable against any Kafka-protocol cluster
//! (`--brokers`), or a Tansu broker it starts itself.
//!
//! What it does: creates a fresh set of the demo's topics (five input streams, every operator
//! bound as the demo binds them), starts `threatflow run` on the demo's config, produces a mix
//! of valid and bad inputs open-loop at `--rate`, and `--kills` times waits until the running
//! process has written outputs, lets it work a random interval, then SIGKILLs it and restarts
//! it at once (so every kill lands mid-stream, not during a group join). Then it waits until every input has an
//! output (or none arrived for `--quiet-secs`), stops the engine with SIGTERM, and prints a
//! JSON summary on the last line of stdout:
//! `inputs`, `lost` (committed without an output), `not_yet_seen` (no output, uncommitted),
//! `duplicates`, `reprocessed_per_restart` (outputs of inputs that already had one, by the
//! restart whose process wrote them), `recovery_ms` (restart → first output written by the
//! new process, from the records' own `scored_at_ms` / `failed_at_ms`), and their medians.
//! Exit status 1 when anything was lost.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use threatflow::demo::{DemoTopics, DEMO_TOPIC_PARTITIONS};
use threatflow::generate::{encode_json, BadInput, EventGenerator};
use threatflow_e2e::{Broker, EngineProcess};

/// Options (plain `--name value` pairs; see `usage`).
#[derive(Debug, Clone)]
struct Options {
    brokers: Option<String>,
    engine: PathBuf,
    events: u64,
    rate: u64,
    kills: u32,
    min_interval: Duration,
    max_interval: Duration,
    quiet: Duration,
    bad_ratio: f64,
    seed: u64,
    dynamic_membership: bool,
    work_dir: PathBuf,
}

fn usage() -> &'static str {
    "threatflow-chaos [--brokers HOST:PORT] [--engine PATH] [--events 100000] [--rate 500] \
     [--kills 20] [--min-interval-ms 1000] [--max-interval-ms 6000] [--quiet-secs 60] \
     [--bad-ratio 0.01] [--seed 7] [--dynamic-membership] [--work-dir DIR]"
}

fn parse_options() -> anyhow::Result<Options> {
    let own = std::env::current_exe()?;
    let mut options = Options {
        brokers: None,
        engine: own.with_file_name("threatflow"),
        events: 100_000,
        rate: 500,
        kills: 20,
        min_interval: Duration::from_millis(1_000),
        max_interval: Duration::from_millis(6_000),
        quiet: Duration::from_secs(60),
        bad_ratio: 0.01,
        seed: 7,
        dynamic_membership: false,
        work_dir: std::env::temp_dir().join(format!("threatflow-chaos-{}", std::process::id())),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--dynamic-membership" {
            options.dynamic_membership = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!("{}", usage());
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--brokers" => options.brokers = Some(value),
            "--engine" => options.engine = PathBuf::from(value),
            "--events" => options.events = value.parse()?,
            "--rate" => options.rate = value.parse()?,
            "--kills" => options.kills = value.parse()?,
            "--min-interval-ms" => options.min_interval = Duration::from_millis(value.parse()?),
            "--max-interval-ms" => options.max_interval = Duration::from_millis(value.parse()?),
            "--quiet-secs" => options.quiet = Duration::from_secs(value.parse()?),
            "--bad-ratio" => options.bad_ratio = value.parse()?,
            "--seed" => options.seed = value.parse()?,
            "--work-dir" => options.work_dir = PathBuf::from(value),
            other => anyhow::bail!("unknown option {other}\n{}", usage()),
        }
    }
    anyhow::ensure!(
        options.max_interval >= options.min_interval,
        "max interval < min interval"
    );
    Ok(options)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Input coordinates: (topic, partition, offset).
type Coordinates = (String, i32, i64);

/// What the output reader saw.
#[derive(Default)]
struct Seen {
    /// Input → times (engine clock, ms) of its outputs.
    outputs: HashMap<Coordinates, Vec<i64>>,
}

fn read_outputs(
    brokers: &str,
    topics: &DemoTopics,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "threatflow-chaos-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in topics.outputs() {
        for partition in 0..DEMO_TOPIC_PARTITIONS {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(record) =
            serde_json::from_slice::<serde_json::Value>(message.payload().unwrap_or_default())
        else {
            continue;
        };
        let source = &record["source"];
        let coordinates = (
            source["topic"].as_str().unwrap_or_default().to_owned(),
            source["partition"].as_i64().unwrap_or(-1) as i32,
            source["offset"].as_i64().unwrap_or(-1),
        );
        let at = record["scored_at_ms"]
            .as_i64()
            .or_else(|| record["failed_at_ms"].as_i64())
            .unwrap_or_else(now_ms);
        if let Ok(mut seen) = seen.lock() {
            seen.outputs.entry(coordinates).or_default().push(at);
        }
    }
    Ok(())
}

/// Produces `events` inputs open-loop at `rate`; returns where each landed.
fn produce(
    options: &Options,
    brokers: &str,
    topics: &DemoTopics,
) -> anyhow::Result<Vec<Coordinates>> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()?;
    let inputs: Vec<_> = topics
        .inputs()
        .map(|(kind, topic)| (kind, topic.to_owned()))
        .collect();
    let mut generator = EventGenerator::new(options.seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let started = Instant::now();
    let mut payloads = Vec::new();
    for index in 0..options.events {
        let (kind, topic) = &inputs[index as usize % inputs.len()];
        let payload = if rng.gen_bool(options.bad_ratio) {
            let class = BadInput::ALL[rng.gen_range(0..BadInput::ALL.len())];
            generator.bad_payload(*kind, class, 64 * 1024)
        } else {
            encode_json(&generator.event(*kind))
        };
        payloads.push((topic.clone(), format!("k{index}"), payload));
    }
    for (index, (topic, key, payload)) in payloads.iter().enumerate() {
        // Open loop: each input has its scheduled send time.
        let due = started + Duration::from_secs_f64(index as f64 / options.rate.max(1) as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    // Offsets are read back from the topics: every record in them is an input.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut landed = Vec::new();
    for (_, topic) in &inputs {
        for partition in 0..DEMO_TOPIC_PARTITIONS {
            let (low, high) = reader.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
            landed.extend((low..high).map(|offset| (topic.clone(), partition, offset)));
        }
    }
    Ok(landed)
}

fn committed(
    brokers: &str,
    group: &str,
    topics: &DemoTopics,
) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for (_, topic) in topics.inputs() {
        for partition in 0..DEMO_TOPIC_PARTITIONS {
            list.add_partition(topic, partition);
        }
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .map(|element| {
            let offset = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            };
            ((element.topic().to_owned(), element.partition()), offset)
        })
        .collect())
}

fn median(values: &[i64]) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    std::fs::create_dir_all(&options.work_dir)?;
    let _own_broker;
    let brokers = match &options.brokers {
        Some(brokers) => brokers.clone(),
        None => {
            let broker = Broker::start()?;
            let bootstrap = broker.bootstrap.clone();
            _own_broker = broker;
            bootstrap
        }
    };
    let run_id = format!("{:08x}", rand::random::<u32>());
    let topics = DemoTopics::with_suffix(&format!(".chaos-{run_id}"));
    threatflow::demo::create_external_topics(&brokers, &topics)?;
    let group = format!("threatflow-chaos-{run_id}");
    let mut config = threatflow::demo::demo_config(&brokers, &group, &topics);
    // Keyed state and the model cache in the work dir, not the engine's working directory.
    config.storage.state_dir = options.work_dir.join("state");
    let config_path = options.work_dir.join("engine.toml");
    std::fs::write(&config_path, config.to_masked_toml())?;
    // Static membership as in a Kubernetes pod that restarts in place (POD_NAME is stable).
    let pod_name = format!("chaos-{run_id}");
    let env: Vec<(&str, &str)> = if options.dynamic_membership {
        Vec::new()
    } else {
        vec![("POD_NAME", pod_name.as_str())]
    };
    let log = |index: usize| options.work_dir.join(format!("engine-{index}.log"));
    let mut engine = EngineProcess::start_with_env(&options.engine, &config_path, &log(0), &env)?;

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader = {
        let (brokers, topics, seen, stop) = (
            brokers.clone(),
            topics.clone(),
            seen.clone(),
            stop_reader.clone(),
        );
        std::thread::spawn(move || read_outputs(&brokers, &topics, seen, stop))
    };
    let producer = {
        let brokers = brokers.clone();
        let topics = topics.clone();
        let options = options.clone();
        std::thread::spawn(move || produce(&options, &brokers, &topics))
    };

    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed ^ 0x5eed);
    let mut restarts_ms: Vec<i64> = Vec::new();
    let mut process_started_ms = now_ms();
    for kill in 0..options.kills {
        // Kill only a process that is working: wait for its first output (bounded), then let
        // it run the random interval.
        let first_output_deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < first_output_deadline {
            let working = seen.lock().is_ok_and(|seen| {
                seen.outputs
                    .values()
                    .flatten()
                    .any(|&at| at >= process_started_ms)
            });
            if working {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let interval = rng.gen_range(options.min_interval..=options.max_interval);
        std::thread::sleep(interval);
        engine.kill_hard()?;
        let restart_ms = now_ms();
        engine = EngineProcess::start_with_env(
            &options.engine,
            &config_path,
            &log(kill as usize + 1),
            &env,
        )?;
        restarts_ms.push(restart_ms);
        process_started_ms = restart_ms;
        eprintln!(
            "chaos: kill {} of {} at {:.1} s",
            kill + 1,
            options.kills,
            started.elapsed().as_secs_f64()
        );
    }
    let landed = producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let accounted = |seen: &Seen| {
        landed
            .iter()
            .filter(|input| seen.outputs.contains_key(*input))
            .count()
    };
    let mut last = (0usize, Instant::now());
    loop {
        let count = seen.lock().map(|seen| accounted(&seen)).unwrap_or(0);
        if count >= landed.len() || last.1.elapsed() >= options.quiet {
            break;
        }
        if count > last.0 {
            last = (count, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let final_status = engine.terminate(Duration::from_secs(40))?;
    std::thread::sleep(Duration::from_secs(2));
    stop_reader.store(true, Ordering::Relaxed);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;

    let committed = committed(&brokers, &group, &topics)?;
    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let (mut lost, mut not_yet_seen) = (0u64, 0u64);
    for (topic, partition, offset) in &landed {
        if seen
            .outputs
            .contains_key(&(topic.clone(), *partition, *offset))
        {
            continue;
        }
        if *offset
            < committed
                .get(&(topic.clone(), *partition))
                .copied()
                .unwrap_or(0)
        {
            lost += 1;
        } else {
            not_yet_seen += 1;
        }
    }
    // Re-processing: every output beyond an input's first, attributed to the process that
    // wrote it (by its timestamp against the restart times).
    let mut reprocessed = vec![0u64; restarts_ms.len() + 1];
    let mut first_output_after: Vec<Option<i64>> = vec![None; restarts_ms.len()];
    let process_of = |at: i64| restarts_ms.iter().filter(|&&restart| at >= restart).count();
    let mut duplicates = 0u64;
    for times in seen.outputs.values() {
        let mut sorted = times.clone();
        sorted.sort_unstable();
        for (index, at) in sorted.iter().enumerate() {
            let process = process_of(*at);
            if index > 0 {
                duplicates += 1;
                reprocessed[process] += 1;
            }
            if process > 0 {
                let slot = &mut first_output_after[process - 1];
                *slot = Some(slot.map_or(*at, |first: i64| first.min(*at)));
            }
        }
    }
    let recovery_ms: Vec<i64> = first_output_after
        .iter()
        .zip(&restarts_ms)
        .filter_map(|(first, restart)| first.map(|first| first - restart))
        .collect();
    let per_restart: Vec<i64> = reprocessed
        .iter()
        .skip(1)
        .map(|&count| count as i64)
        .collect();
    let summary = serde_json::json!({
        "inputs": landed.len(),
        "kills": options.kills,
        "lost": lost,
        "not_yet_seen": not_yet_seen,
        "duplicates": duplicates,
        "reprocessed_per_restart": per_restart,
        "reprocessed_median": median(&per_restart),
        "reprocessed_max": per_restart.iter().max().copied().unwrap_or(0),
        "recovery_ms": recovery_ms,
        "recovery_median_ms": median(&recovery_ms),
        "recovery_max_ms": recovery_ms.iter().max().copied().unwrap_or(0),
        "restarts_without_output": first_output_after.iter().filter(|first| first.is_none()).count(),
        "static_membership": !options.dynamic_membership,
        "final_exit_code": final_status.code(),
        "elapsed_secs": started.elapsed().as_secs_f64(),
        "inputs_by_topic": landed.iter().fold(BTreeMap::<String, u64>::new(), |mut counts, (topic, _, _)| {
            *counts.entry(topic.clone()).or_default() += 1;
            counts
        }),
        "work_dir": options.work_dir.display().to_string(),
    });
    println!("{summary}");
    if lost > 0 {
        std::process::exit(1);
    }
    Ok(())
}
