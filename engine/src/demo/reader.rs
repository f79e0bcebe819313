//! Reads every output topic of a run from the beginning and accounts for each input by its
//! source coordinates: scored, dead-lettered, duplicated, or — after the engine stopped —
//! lost (committed without an output) or not yet seen (uncommitted, read again on restart).
//!
//! Only the `source` object (and a dead letter's reason) of each output is parsed, so the same
//! reader accounts for the engine's outputs and for the load test's raw relay baseline.
//! Latency is the output record's Kafka timestamp minus the input's: a load generator that
//! stamps each input with its *scheduled* send time gets latency free of coordinated omission.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage, Timestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;

use super::topics::{DemoTopics, DEMO_TOPIC_PARTITIONS};
use crate::dead_letter::DeadLetterReason;
use crate::scored::SourceCoordinates;

/// How often the live progress line is refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Highest latency the histograms hold, ms (one hour).
const MAX_LATENCY_MS: u64 = 3_600_000;

/// The part of a scored record (or of the relay baseline's record) the reader needs.
#[derive(Deserialize)]
struct OutputEnvelope {
    source: SourceCoordinates,
}

/// The part of a dead-letter record the reader needs.
#[derive(Deserialize)]
struct DeadLetterEnvelope {
    source: SourceCoordinates,
    reason: DeadLetterReason,
}

/// Input coordinates: topic, partition, offset.
type Coordinates = (String, i32, i64);

/// Outputs that arrived in one second of the run.
#[derive(Debug, Clone)]
pub struct SecondBucket {
    /// Distinct inputs accounted in this second.
    pub accounted: u64,
    /// Their latencies, ms.
    pub latency_ms: Histogram<u64>,
}

/// Accounts a run's outputs.
pub struct OutputReader {
    consumer: BaseConsumer,
    dead_letter_topic: String,
    /// Input topic name → stream name, for the per-stream summary.
    stream_of_topic: BTreeMap<String, String>,
    scored: HashSet<Coordinates>,
    dead_lettered: HashSet<Coordinates>,
    /// Distinct scored / dead-lettered inputs per stream name.
    pub by_stream_scored: BTreeMap<String, u64>,
    /// See `by_stream_scored`.
    pub by_stream_dead: BTreeMap<String, u64>,
    /// Dead letters by reason code.
    pub by_reason: BTreeMap<String, u64>,
    /// Output records beyond one per input (re-deliveries).
    pub duplicates: u64,
    /// Input-to-output latency of every distinct input, ms.
    pub latency_ms: Histogram<u64>,
    /// When the last new input was accounted.
    pub last_output: Option<Instant>,
    /// Per second since `timeline_start`: what arrived (for the load test's plot).
    pub timeline: Vec<SecondBucket>,
    timeline_start: Instant,
    last_progress: Instant,
}

impl OutputReader {
    /// A reader assigned to every output partition of `topics` from the beginning.
    pub fn new(brokers: &str, topics: &DemoTopics) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "threatflow-demo-reader")
            .set("enable.auto.commit", "false")
            // Outputs are read as they arrive: the broker answers a waiting fetch late.
            .set("fetch.wait.max.ms", "20")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for topic in topics.outputs() {
            for partition in 0..DEMO_TOPIC_PARTITIONS {
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
            by_stream_scored: BTreeMap::new(),
            by_stream_dead: BTreeMap::new(),
            by_reason: BTreeMap::new(),
            duplicates: 0,
            latency_ms: Histogram::new_with_bounds(1, MAX_LATENCY_MS, 3)?,
            last_output: None,
            timeline: Vec::new(),
            timeline_start: Instant::now(),
            last_progress: Instant::now(),
        })
    }

    /// Starts the per-second timeline (and resets the latency histogram) at `start`: what a
    /// measurement phase counts from.
    pub fn start_measuring(&mut self, start: Instant) {
        self.timeline_start = start;
        self.timeline.clear();
        self.latency_ms.reset();
    }

    /// Distinct inputs with an output.
    pub fn accounted(&self) -> u64 {
        (self.scored.len() + self.dead_lettered.len()) as u64
    }

    /// Distinct inputs scored.
    pub fn scored(&self) -> u64 {
        self.scored.len() as u64
    }

    /// Distinct inputs dead-lettered.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.len() as u64
    }

    /// Inputs of `topics` without an output, split by `group`'s committed offsets into
    /// (lost, not yet seen). Meaningful once the engine stopped: its commits are final.
    pub fn unaccounted(
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
            for partition in 0..DEMO_TOPIC_PARTITIONS {
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

    /// Low and high watermark of a partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
        Ok(self
            .consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(1))?)
    }

    /// Reads outputs for up to `max_wait`; with a zero wait, only what is already buffered.
    pub fn poll_some(&mut self, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        let timeout = if max_wait.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_millis(20).min(max_wait)
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
    fn account(&mut self, message: &OwnedMessage) {
        let output_ms = match message.timestamp() {
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
            Timestamp::NotAvailable => None,
        };
        let payload = message.payload().unwrap_or_default();
        let (source, is_dead) = if message.topic() == self.dead_letter_topic {
            match serde_json::from_slice::<DeadLetterEnvelope>(payload) {
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
            match serde_json::from_slice::<OutputEnvelope>(payload) {
                Ok(output) => (output.source, false),
                Err(_) => return,
            }
        };
        let latency = match (output_ms, source.timestamp_ms) {
            (Some(output_ms), Some(input_ms)) => Some(
                u64::try_from(output_ms - input_ms)
                    .unwrap_or(0)
                    .clamp(1, MAX_LATENCY_MS),
            ),
            _ => None,
        };
        let key = (source.topic, source.partition, source.offset);
        let (set, by_stream) = if is_dead {
            (&mut self.dead_lettered, &mut self.by_stream_dead)
        } else {
            (&mut self.scored, &mut self.by_stream_scored)
        };
        let stream = self.stream_of_topic.get(&key.0).cloned();
        if !set.insert(key) {
            self.duplicates += 1;
            return;
        }
        *by_stream.entry(stream.unwrap_or_default()).or_default() += 1;
        let now = Instant::now();
        self.last_output = Some(now);
        let second = now.saturating_duration_since(self.timeline_start).as_secs() as usize;
        while self.timeline.len() <= second {
            self.timeline.push(SecondBucket {
                accounted: 0,
                latency_ms: Histogram::new_from(&self.latency_ms),
            });
        }
        let bucket = &mut self.timeline[second];
        bucket.accounted += 1;
        if let Some(latency) = latency {
            let _ = self.latency_ms.record(latency);
            let _ = bucket.latency_ms.record(latency);
        }
    }

    /// Prints the progress line when enabled and a second has passed since the last one.
    pub fn maybe_print_progress(&mut self, enabled: bool, produced: u64, started: Instant) {
        if enabled && self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            self.print_progress(produced, started);
            self.last_progress = Instant::now();
        }
    }

    /// Prints the progress line (on stderr, over the previous one).
    pub fn print_progress(&self, produced: u64, started: Instant) {
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
}
