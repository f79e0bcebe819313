//! The input mix of a demo or load-test run: which stream each next event goes to, its
//! payload (generated, or replayed from a labelled flow file such as KDDTest+), its key, and
//! the share of bad input — rotating over streams and every class of bad input so that each
//! pair is exercised — plus an open-loop schedule that stamps each input with the time it was
//! *due*, so latency is measured without coordinated omission.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::topics::DemoTopics;
use crate::events::{FlowEvent, InputEvent, SchemaKind};
use crate::generate::{encode_json, BadInput, EventGenerator};

/// What one run produces.
#[derive(Debug, Clone)]
pub struct MixOptions {
    /// Relative weight per stream (index into `DemoTopics::streams`); zero leaves it out.
    pub weights: Vec<u32>,
    /// Share of events that are bad input, 0..=1.
    pub bad_ratio: f64,
    /// Generator seed.
    pub seed: u64,
    /// Distinct record keys (`k0` … `k{n-1}`); `None`: every record its own key.
    pub key_cardinality: Option<u64>,
    /// Extra bytes added to every good JSON input (an unknown field the decoders skip), to
    /// test message sizes.
    pub pad_bytes: usize,
    /// Flows replayed in order (e.g. KDDTest+) instead of generated ones.
    pub flows: Vec<FlowEvent>,
    /// Size limit the oversized bad inputs exceed.
    pub max_message_bytes: usize,
}

impl MixOptions {
    /// Every stream of `topics` with the same weight.
    pub fn even(topics: &DemoTopics, bad_ratio: f64, seed: u64, max_message_bytes: usize) -> Self {
        Self {
            weights: vec![1; topics.streams.len()],
            bad_ratio,
            seed,
            key_cardinality: None,
            pad_bytes: 0,
            flows: Vec::new(),
            max_message_bytes,
        }
    }
}

/// One input to produce.
#[derive(Debug, Clone)]
pub struct NextInput {
    /// Index into `DemoTopics::streams`.
    pub stream: usize,
    /// Record key.
    pub key: String,
    /// Record value.
    pub payload: Vec<u8>,
}

/// Draws the inputs of a run, deterministically from its seed.
pub struct Mix {
    generator: EventGenerator,
    options: MixOptions,
    kinds: Vec<SchemaKind>,
    /// Stream indices repeated by weight: the round-robin order of good inputs.
    order: Vec<usize>,
    produced: u64,
    bad_budget: f64,
    bad_index: usize,
    next_flow: usize,
    padding: String,
}

impl Mix {
    /// A mix over `topics`' streams. Fails when no stream has a weight.
    pub fn new(topics: &DemoTopics, options: MixOptions) -> anyhow::Result<Self> {
        let order: Vec<usize> = options
            .weights
            .iter()
            .enumerate()
            .filter(|(index, _)| *index < topics.streams.len())
            .flat_map(|(index, weight)| std::iter::repeat_n(index, *weight as usize))
            .collect();
        anyhow::ensure!(!order.is_empty(), "the mix has no stream with a weight");
        Ok(Self {
            generator: EventGenerator::new(options.seed),
            kinds: topics.streams.iter().map(|stream| stream.kind).collect(),
            padding: "x".repeat(options.pad_bytes),
            options,
            order,
            produced: 0,
            bad_budget: 0.0,
            bad_index: 0,
            next_flow: 0,
        })
    }

    /// Streams that get inputs (index into `DemoTopics::streams`).
    pub fn streams(&self) -> impl Iterator<Item = usize> + '_ {
        let mut seen = self.order.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.into_iter()
    }

    /// The next input.
    pub fn next_input(&mut self) -> NextInput {
        let number = self.produced;
        self.produced += 1;
        let key = match self.options.key_cardinality {
            Some(cardinality) => format!("k{}", number % cardinality.max(1)),
            None => format!("k{number}"),
        };
        self.bad_budget += self.options.bad_ratio;
        if self.bad_budget >= 1.0 {
            self.bad_budget -= 1.0;
            let streams = self.order.len();
            let stream = self.order[self.bad_index % streams];
            let class = BadInput::ALL[(self.bad_index / streams) % BadInput::ALL.len()];
            self.bad_index += 1;
            let payload = self.generator.bad_payload(
                self.kinds[stream],
                class,
                self.options.max_message_bytes,
            );
            return NextInput {
                stream,
                key,
                payload,
            };
        }
        let stream = self.order[(number % self.order.len() as u64) as usize];
        let event = match self.kinds[stream] {
            SchemaKind::Flow if !self.options.flows.is_empty() => {
                let flows = &self.options.flows;
                let mut flow = flows[self.next_flow % flows.len()].clone();
                self.next_flow += 1;
                flow.timestamp_ms = Some(now_ms());
                InputEvent::Flow(Box::new(flow))
            }
            kind => self.generator.event(kind),
        };
        let mut payload = encode_json(&event);
        if !self.padding.is_empty() && payload.last() == Some(&b'}') {
            payload.pop();
            payload.extend_from_slice(b",\"load_test_padding\":\"");
            payload.extend_from_slice(self.padding.as_bytes());
            payload.extend_from_slice(b"\"}");
        }
        NextInput {
            stream,
            key,
            payload,
        }
    }
}

/// How much a run (or one phase of it) produces.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many inputs.
    Events(u64),
    /// For this long.
    For(Duration),
}

impl Budget {
    /// Whether a phase that started at `started` and produced `produced` is done.
    pub fn done(self, produced: u64, started: Instant) -> bool {
        match self {
            Self::Events(events) => produced >= events,
            Self::For(duration) => started.elapsed() >= duration,
        }
    }
}

/// Wall-clock now, epoch ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// An open-loop schedule: input `n` is due at `start + n / rate`, whatever the engine does.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    start: Instant,
    start_epoch_ms: i64,
    rate: f64,
}

impl OpenLoop {
    /// A schedule of `rate` inputs per second from now.
    pub fn new(rate: f64) -> Self {
        Self {
            start: Instant::now(),
            start_epoch_ms: now_ms(),
            rate: rate.max(0.001),
        }
    }

    /// When input `n` is due.
    pub fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// Input `n`'s due time as epoch ms: the Kafka timestamp it is stamped with, so a late
    /// send counts as latency instead of hiding it.
    pub fn due_epoch_ms(&self, n: u64) -> i64 {
        self.start_epoch_ms + (n as f64 * 1000.0 / self.rate) as i64
    }

    /// Sleeps until input `n` is due (at once when it is overdue).
    pub fn wait_for(&self, n: u64) {
        let due = self.due(n);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}
