//! `threatflow replay`: backtest by re-scoring a range of an input topic with any model
//! version (the champion, the challenger, another stored version, or a local directory).
//!
//! Guarantees: the replay reads by assignment, never joins the live consumer group and never
//! commits an offset, so the live engines are not disturbed; it decodes and scores exactly as
//! the engine does (same decoder, same operator code, same version directory), so replaying a
//! range with the version that scored it reproduces its scores. Stateful operators start with
//! empty keyed state at the range's start. It prints the score distribution and verdict counts
//! of the range (labelled figures arrive with the feedback topics).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::EngineConfig;
use crate::decode::Decoder;
use crate::model_cli::UsageError;
use crate::operators::{OperatorContext, Outcome, SourcedEvent};
use crate::runtime::PartitionStates;
use crate::scored::{Scored, SourceCoordinates};

/// `threatflow replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Engine config file (brokers, bindings, `[registry]`).
    #[arg(long, env = "THREATFLOW_CONFIG")]
    pub config: PathBuf,
    /// Input topic to replay (must be bound in the config).
    #[arg(long)]
    pub topic: String,
    /// First record: an offset (every partition) or an RFC 3339 time.
    #[arg(long, default_value = "0")]
    pub from: String,
    /// End (exclusive): an offset or an RFC 3339 time; default the end of each partition now.
    #[arg(long)]
    pub to: Option<String>,
    /// Version to score with: a stored version name, `champion` or `challenger`.
    #[arg(long, conflicts_with = "model_dir")]
    pub model_version: Option<String>,
    /// A local version directory to score with.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Write the scored events as JSON lines to this file.
    #[arg(long, conflicts_with = "output_topic")]
    pub output: Option<PathBuf>,
    /// Write the scored events to this topic (encoded as the config's `[output]` says).
    #[arg(long)]
    pub output_topic: Option<String>,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// A position argument.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Position {
    Offset(i64),
    TimeMs(i64),
}

fn position(text: &str) -> anyhow::Result<Position> {
    if let Ok(offset) = text.parse::<i64>() {
        return Ok(Position::Offset(offset.max(0)));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| Position::TimeMs(time.timestamp_millis()))
        .map_err(|_| {
            UsageError(format!(
                "{text:?} is neither an offset nor an RFC 3339 time"
            ))
            .into()
        })
}

/// Broker round trips may take this long.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Events scored per operator call.
const BATCH: usize = 500;

/// Runs the replay.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let config = EngineConfig::load(&args.config)
        .map_err(|error| UsageError(format!("{}: {error}", args.config.display())))?;
    let Some(binding) = config.bindings.iter().find(|b| b.topic == args.topic) else {
        return Err(UsageError(format!(
            "{} is not an input topic of the config",
            args.topic
        ))
        .into());
    };
    let spec = binding.operator.spec();
    let directory = version_directory(&config, spec, args)?;
    let mut context = OperatorContext::for_binding(&config, &binding.topic, false);
    context.pinned_version_dir = directory.as_deref();
    let runtime = (spec.start)(&context).context("cannot start the operator")?;
    let version = runtime
        .model
        .as_ref()
        .map(|model| model.version())
        .unwrap_or_default();
    let mut scorer = (runtime.new_worker)();
    let mut states = PartitionStates::new(runtime.state);
    let schema_ids: HashMap<u32, _> = config
        .schema_ids
        .iter()
        .filter_map(|(id, kind)| id.parse().ok().map(|id| (id, *kind)))
        .collect();
    let decoder = Decoder::new(
        binding.schema,
        binding.input_format,
        config.pipeline.max_message_bytes,
        schema_ids,
    );
    let ranges = ranges(
        &config,
        &args.topic,
        &position(&args.from)?,
        args.to.as_deref(),
    )?;
    let mut sink = Sink::open(&config, args)?;
    let mut summary = Summary::default();
    let started = Instant::now();
    for range in ranges {
        eprintln!(
            "replay {}/{}: from offset {} to {} (high watermark {})",
            args.topic,
            range.partition,
            range.start,
            range
                .end
                .map_or("the end".to_owned(), |end| end.to_string()),
            range.high
        );
        if range.end.is_some_and(|end| range.start >= end) {
            continue;
        }
        if let Some(empty) = states.empty() {
            states.insert(range.partition, empty);
        }
        let mut batch = Vec::new();
        for record in read_range(&config, &args.topic, &range)? {
            summary.records += 1;
            let (source, payload) = record;
            match decoder.decode(payload.as_deref()) {
                Ok(event) => batch.push(SourcedEvent {
                    event_id: event
                        .producer_event_id()
                        .map(str::to_owned)
                        .unwrap_or_else(|| source.derived_event_id()),
                    source,
                    event,
                }),
                Err(_) => summary.undecodable += 1,
            }
            if batch.len() >= BATCH {
                score(
                    &mut *scorer,
                    &mut states,
                    &mut batch,
                    &mut sink,
                    &mut summary,
                    spec,
                )?;
            }
        }
        score(
            &mut *scorer,
            &mut states,
            &mut batch,
            &mut sink,
            &mut summary,
            spec,
        )?;
    }
    sink.finish()?;
    summary.print(spec.name, &version, started.elapsed(), args.json);
    Ok(())
}

fn version_directory(
    config: &EngineConfig,
    spec: &crate::operators::OperatorSpec,
    args: &ReplayArgs,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(directory) = &args.model_dir {
        return Ok(Some(directory.clone()));
    }
    let (Some(name), Some(model)) = (&args.model_version, spec.model) else {
        return Ok(None);
    };
    if !config.registry.enabled {
        return Ok(Some(config.storage.model_dir.join(model.dir).join(name)));
    }
    let store =
        crate::registry::store::ArtifactStore::open(&config.registry, &config.storage.model_dir)?;
    let version = match name.as_str() {
        "champion" | "challenger" => {
            let (state, _) = crate::registry::log::RegistryLog::open(config)?.read_all()?;
            let aliases = state.of(spec.name);
            let alias = if name == "champion" {
                aliases.champion
            } else {
                aliases.challenger
            };
            alias.with_context(|| format!("{} has no {name}", spec.name))?
        }
        other => other.to_owned(),
    };
    let cache = config.registry.cache_dir(&config.storage.state_dir);
    Ok(Some(store.fetch(model.dir, &version, &cache)?))
}

fn consumer(config: &EngineConfig) -> anyhow::Result<BaseConsumer> {
    Ok(crate::pipeline::assigned_consumer(config, "replay")?)
}

/// What to read of one partition.
struct PartitionRange {
    partition: i32,
    /// First offset.
    start: i64,
    /// End offset (exclusive), or `None`: to the end — the high watermark and then until
    /// nothing more arrives for [`END_IDLE`] (some brokers report a high watermark inside
    /// the last record batch).
    end: Option<i64>,
    /// The high watermark when the replay started.
    high: i64,
    /// Records stamped before this (epoch ms) are skipped (a `--from` time).
    from_ms: Option<i64>,
    /// Records stamped at or after this are skipped (a `--to` time).
    to_ms: Option<i64>,
}

/// Nothing more for this long past the high watermark: the end of the partition.
const END_IDLE: Duration = Duration::from_millis(1000);

/// Per partition: what to read.
fn ranges(
    config: &EngineConfig,
    topic: &str,
    from: &Position,
    to: Option<&str>,
) -> anyhow::Result<Vec<PartitionRange>> {
    let consumer = consumer(config)?;
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let Some(found) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        bail!("topic {topic} does not exist");
    };
    let to = to.map(position).transpose()?;
    let mut ranges = Vec::new();
    for partition in found.partitions().iter().map(|p| p.id()) {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        // The broker's first offset at or after a time (None: no such record).
        let offset_at = |ms: i64| -> anyhow::Result<Option<i64>> {
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(topic, partition, Offset::Offset(ms))?;
            let found = consumer.offsets_for_times(list, TIMEOUT)?;
            Ok(
                match found.find_partition(topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(offset)) if offset >= 0 => Some(offset.max(low)),
                    _ => None,
                },
            )
        };
        // Offsets are not clamped to the high watermark: some brokers report a stale one.
        let (start, from_ms) = match *from {
            Position::Offset(offset) => (offset.max(low), None),
            Position::TimeMs(ms) => (offset_at(ms)?.unwrap_or(high), Some(ms)),
        };
        // A time end is also checked on every record's timestamp, and the broker's offset
        // for it is used only when it lies past the start (brokers differ on times past the
        // last record); otherwise the partition is read to its end.
        let (end, to_ms) = match to {
            None => (None, None),
            Some(Position::Offset(offset)) => (Some(offset.max(low)), None),
            Some(Position::TimeMs(ms)) => (offset_at(ms)?.filter(|&end| end > start), Some(ms)),
        };
        ranges.push(PartitionRange {
            partition,
            start,
            end,
            high,
            from_ms,
            to_ms,
        });
    }
    Ok(ranges)
}

type ReadRecord = (SourceCoordinates, Option<Vec<u8>>);

/// The records of `partition` in `start..end`.
fn read_range(
    config: &EngineConfig,
    topic: &str,
    range: &PartitionRange,
) -> anyhow::Result<Vec<ReadRecord>> {
    let PartitionRange {
        partition,
        start,
        end,
        high,
        from_ms,
        to_ms,
    } = *range;
    let consumer = consumer(config)?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&list)?;
    let mut records = Vec::new();
    let mut last_progress = Instant::now();
    let mut next = start;
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                last_progress = Instant::now();
                next = message.offset() + 1;
                if end.is_some_and(|end| message.offset() >= end) {
                    break;
                }
                let stamped = message.timestamp().to_millis();
                let outside = stamped.is_some_and(|ms| {
                    from_ms.is_some_and(|from| ms < from) || to_ms.is_some_and(|to| ms >= to)
                });
                if !outside {
                    records.push((
                        SourceCoordinates {
                            topic: topic.to_owned(),
                            partition,
                            offset: message.offset(),
                            timestamp_ms: stamped,
                        },
                        message.payload().map(<[u8]>::to_vec),
                    ));
                }
                if end.is_some_and(|end| message.offset() + 1 >= end) {
                    break;
                }
            }
            Some(Err(error)) => return Err(error.into()),
            // Past the high watermark and nothing more arrives: the partition's end (also for
            // an end offset beyond the last record).
            None if next >= high && last_progress.elapsed() > END_IDLE => break,
            None if last_progress.elapsed() > TIMEOUT => {
                bail!("reading {topic}/{partition} stalled at offset {next}")
            }
            None => {}
        }
    }
    Ok(records)
}

fn score(
    scorer: &mut dyn crate::operators::Operator,
    states: &mut PartitionStates,
    batch: &mut Vec<SourcedEvent>,
    sink: &mut Sink,
    summary: &mut Summary,
    spec: &crate::operators::OperatorSpec,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcomes = scorer
        .score_batch(batch, states)
        .context("scoring failed")?;
    for outcome in outcomes {
        match outcome {
            Outcome::Scored { scored, .. } => {
                summary.add(&scored, spec);
                sink.write(&scored)?;
            }
            Outcome::Rejected { .. } => summary.rejected += 1,
        }
    }
    batch.clear();
    Ok(())
}

/// Where scored events go.
enum Sink {
    None,
    File(std::io::BufWriter<std::fs::File>),
    Topic {
        producer: Box<ThreadedProducer<DefaultProducerContext>>,
        topic: String,
        encoder: Box<crate::encode::OutputEncoder>,
    },
}

impl Sink {
    fn open(config: &EngineConfig, args: &ReplayArgs) -> anyhow::Result<Self> {
        if let Some(path) = &args.output {
            let file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
            return Ok(Self::File(std::io::BufWriter::new(file)));
        }
        if let Some(topic) = &args.output_topic {
            if config
                .bindings
                .iter()
                .any(|binding| &binding.topic == topic)
            {
                return Err(UsageError(format!("{topic} is an input topic (would loop)")).into());
            }
            return Ok(Self::Topic {
                producer: Box::new(crate::pipeline::producer_client_config(config).create()?),
                topic: topic.clone(),
                encoder: Box::new(crate::encode::OutputEncoder::new(&config.output)?),
            });
        }
        Ok(Self::None)
    }

    fn write(&mut self, scored: &Scored) -> anyhow::Result<()> {
        match self {
            Self::None => {}
            Self::File(file) => {
                serde_json::to_writer(&mut *file, scored)?;
                file.write_all(b"\n")?;
            }
            Self::Topic {
                producer,
                topic,
                encoder,
            } => {
                let payload = encoder.encode_scored(scored)?;
                let mut record = BaseRecord::to(topic.as_str())
                    .key(scored.event_id.as_bytes())
                    .payload(&payload);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((error, back)) => {
                            if !matches!(
                                error.rdkafka_error_code(),
                                Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                            ) {
                                return Err(error.into());
                            }
                            record = back;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::None => Ok(()),
            Self::File(mut file) => Ok(file.flush()?),
            Self::Topic { producer, .. } => Ok(producer.flush(Duration::from_secs(30))?),
        }
    }
}

/// Figures of a replayed range.
#[derive(Debug, Default)]
struct Summary {
    records: u64,
    undecodable: u64,
    rejected: u64,
    scores: Vec<f64>,
    verdicts: BTreeMap<String, u64>,
}

impl Summary {
    fn add(&mut self, scored: &Scored, spec: &crate::operators::OperatorSpec) {
        let Some(keys) = spec.model.map(|model| model.shadow) else {
            *self.verdicts.entry("unscored".to_owned()).or_default() += 1;
            return;
        };
        if let Some(score) = scored.scores.get(keys.score) {
            self.scores.push(*score);
        }
        let verdict = scored
            .labels
            .get(keys.verdict)
            .cloned()
            .unwrap_or_else(|| "none".into());
        *self.verdicts.entry(verdict).or_default() += 1;
    }

    fn print(mut self, operator: &str, version: &str, elapsed: Duration, json: bool) {
        self.scores.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            (!self.scores.is_empty()).then(|| {
                let index = ((self.scores.len() - 1) as f64 * q).round() as usize;
                self.scores[index]
            })
        };
        let scored = self.verdicts.values().sum::<u64>();
        let mean = (!self.scores.is_empty())
            .then(|| self.scores.iter().sum::<f64>() / self.scores.len() as f64);
        println!(
            "replayed {} records with {operator} {version} in {:.1} s: {scored} scored, {} undecodable, {} rejected",
            self.records,
            elapsed.as_secs_f64(),
            self.undecodable,
            self.rejected
        );
        println!(
            "score: mean {:?} p10 {:?} p50 {:?} p90 {:?} p99 {:?} max {:?}",
            mean,
            quantile(0.1),
            quantile(0.5),
            quantile(0.9),
            quantile(0.99),
            quantile(1.0)
        );
        println!("verdicts: {:?}", self.verdicts);
        if json {
            let line = serde_json::json!({
                "operator": operator, "model_version": version, "records": self.records,
                "scored": scored, "undecodable": self.undecodable, "rejected": self.rejected,
                "score": {"mean": mean, "min": quantile(0.0), "p10": quantile(0.1), "p50": quantile(0.5),
                          "p90": quantile(0.9), "p99": quantile(0.99), "max": quantile(1.0)},
                "verdicts": self.verdicts,
            });
            println!("{line}");
        }
    }
}
