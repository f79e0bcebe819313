//! `threatflow demo`: the whole engine on an embedded Kafka-protocol broker.
//!
//! It starts librdkafka's in-process mock cluster, creates the topics, runs the engine on it,
//! feeds a realistic mix of generated events (a share of them bad, every class of bad input),
//! reads every output topic back, and accounts for each produced event: scored or
//! dead-lettered, by source coordinates. The summary is honest by construction: it counts
//! what came out of the broker, not what the engine says it did.
//!
//! Without `--rate` a run has two phases, so that the figures it prints are the ones a user
//! should expect: the first half of the events is produced flat out (closed loop, a bounded
//! window in flight) and gives the **throughput**; the second half is produced open loop at
//! half of that throughput, each input stamped with the time it was due, and gives the
//! **latency** at a load the engine sustains. With `--rate` the whole run is open loop at
//! that rate.

pub mod mix;
pub mod reader;
pub mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::source::Health;
use mix::{Budget, Mix, MixOptions, OpenLoop};
use reader::OutputReader;
pub use topics::{
    create_engine_topics, create_external_topics, demo_config, demo_model_dir, send, send_stamped,
    DemoTopics, Stream, DEMO_MAX_MESSAGE_BYTES, DEMO_TOPIC_PARTITIONS,
};

/// Most produced events not yet seen in the outputs in the flat-out phase. It is closed-loop:
/// it waits for the engine instead of outrunning it, so the embedded broker — which keeps
/// only 5 MB per partition and drops the oldest records beyond that — never evicts inputs
/// the engine has not read yet.
pub const MAX_IN_FLIGHT: u64 = 30_000;
/// How long one read of the outputs may wait when there is nothing else to do.
const READ_WAIT: Duration = Duration::from_millis(100);
/// How long the generator reads outputs before producing again when its window is full.
const WINDOW_FULL_WAIT: Duration = Duration::from_millis(10);
/// How long the demo waits for the engine to join its consumer group.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the last input of a phase was produced, the demo keeps reading while outputs keep
/// arriving; it stops once every input is accounted for or no output came for this long (a
/// slow or busy machine makes outputs late, not lost: the final accounting tells them apart).
pub const DRAIN_QUIET_TIMEOUT: Duration = Duration::from_secs(30);
/// Share of the flat-out throughput the latency phase produces at.
const LATENCY_LOAD_SHARE: f64 = 0.5;

/// Options of one demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Events to produce (ignored when `duration` is set).
    pub events: u64,
    /// Produce for this long instead of a fixed count.
    pub duration: Option<Duration>,
    /// Events per second to produce at, open loop, for the whole run; `None`: flat out for
    /// the first half, then open loop at half of the measured throughput.
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
    /// Flat-out throughput: accounted events per second of the flat-out phase, first
    /// produce to last output (with `--rate`: the achieved rate of the whole run).
    pub events_per_sec: f64,
    /// Whether `events_per_sec` was measured flat out (false: at the `--rate` asked for).
    pub flat_out: bool,
    /// The open-loop rate latency was measured at, events/s.
    pub latency_at_events_per_sec: f64,
    /// Median input-to-output latency at that rate, from each input's due time, ms.
    pub latency_p50_ms: u64,
    /// 90th percentile, ms.
    pub latency_p90_ms: u64,
    /// 99th percentile, ms.
    pub latency_p99_ms: u64,
    /// Highest, ms.
    pub latency_max_ms: u64,
    /// Seconds from first produce to last output.
    pub elapsed_secs: f64,
    /// Dead letters by reason code.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Per stream (prompt, flow, email, alert).
    pub topics: BTreeMap<String, TopicSummary>,
}

/// The demo's budgets: the whole run, or its two halves.
impl Budget {
    /// The run's budget split in two halves: flat out, then open loop.
    fn split(options: &DemoOptions) -> (Self, Self) {
        match options.duration {
            Some(duration) => (Self::For(duration / 2), Self::For(duration - duration / 2)),
            None => (
                Self::Events(options.events / 2),
                Self::Events(options.events - options.events / 2),
            ),
        }
    }

    fn whole(options: &DemoOptions) -> Self {
        match options.duration {
            Some(duration) => Self::For(duration),
            None => Self::Events(options.events),
        }
    }
}

/// The producing side of a run: the mix, the producer and what went where.
struct Feed<'a> {
    producer: ThreadedProducer<DefaultProducerContext>,
    mix: Mix,
    topics: &'a DemoTopics,
    produced: BTreeMap<String, u64>,
    total: u64,
    progress: bool,
    started: Instant,
}

impl Feed<'_> {
    fn send_next(&mut self, timestamp_ms: Option<i64>) -> anyhow::Result<()> {
        let input = self.mix.next_input();
        let stream = &self.topics.streams[input.stream];
        send_stamped(
            &self.producer,
            &stream.input,
            &input.key,
            &input.payload,
            timestamp_ms,
        )?;
        self.total += 1;
        *self
            .produced
            .entry(stream.kind.name().to_owned())
            .or_default() += 1;
        Ok(())
    }

    /// Produces flat out, at most `MAX_IN_FLIGHT` unaccounted; returns the phase's accounted
    /// events per second, first produce to last output.
    fn flat_out(&mut self, reader: &mut OutputReader, budget: Budget) -> anyhow::Result<f64> {
        let (start, accounted_before) = (Instant::now(), reader.accounted());
        let mut phase_produced = 0;
        while !budget.done(phase_produced, start) {
            if self.total.saturating_sub(reader.accounted()) >= MAX_IN_FLIGHT {
                reader.poll_some(WINDOW_FULL_WAIT);
            } else {
                self.send_next(None)?;
                phase_produced += 1;
                if phase_produced % 1000 == 0 {
                    // Drain what has arrived without slowing the producer down.
                    reader.poll_some(Duration::ZERO);
                }
            }
            reader.maybe_print_progress(self.progress, self.total, self.started);
        }
        self.finish_phase(reader, start, accounted_before)
    }

    /// Produces open loop at `rate`, each input stamped with the time it was due; returns the
    /// phase's accounted events per second.
    fn open_loop(
        &mut self,
        reader: &mut OutputReader,
        rate: f64,
        budget: Budget,
    ) -> anyhow::Result<f64> {
        let schedule = OpenLoop::new(rate);
        let (start, accounted_before) = (Instant::now(), reader.accounted());
        reader.start_measuring(start);
        let mut phase_produced = 0u64;
        while !budget.done(phase_produced, start) {
            // Read outputs while waiting for the next input's due time.
            loop {
                let now = Instant::now();
                let due = schedule.due(phase_produced);
                if due <= now + Duration::from_millis(1) {
                    schedule.wait_for(phase_produced);
                    break;
                }
                reader.poll_some((due - now - Duration::from_millis(1)).min(READ_WAIT));
            }
            // A safety valve for rates far above what the engine sustains: the embedded
            // broker would evict unread inputs. Latency stays honest (inputs carry their due
            // time), only the load is capped.
            while self.total.saturating_sub(reader.accounted()) >= MAX_IN_FLIGHT {
                reader.poll_some(WINDOW_FULL_WAIT);
            }
            self.send_next(Some(schedule.due_epoch_ms(phase_produced)))?;
            phase_produced += 1;
            if phase_produced % 1000 == 0 {
                reader.poll_some(Duration::ZERO);
            }
            reader.maybe_print_progress(self.progress, self.total, self.started);
        }
        self.finish_phase(reader, start, accounted_before)
    }

    /// Drains the phase and returns its accounted inputs per second, first produce to last
    /// output.
    fn finish_phase(
        &mut self,
        reader: &mut OutputReader,
        start: Instant,
        accounted_before: u64,
    ) -> anyhow::Result<f64> {
        self.drain(reader)?;
        let accounted = reader.accounted() - accounted_before;
        let end = reader.last_output.unwrap_or_else(Instant::now).max(start);
        Ok(accounted as f64 / end.duration_since(start).as_secs_f64().max(0.001))
    }

    /// Flushes the producer and reads until every input is accounted for or outputs stop.
    fn drain(&mut self, reader: &mut OutputReader) -> anyhow::Result<()> {
        self.producer.flush(Duration::from_secs(30))?;
        let mut last_progress = (reader.accounted(), Instant::now());
        while reader.accounted() < self.total && last_progress.1.elapsed() < DRAIN_QUIET_TIMEOUT {
            reader.poll_some(READ_WAIT);
            reader.maybe_print_progress(self.progress, self.total, self.started);
            if reader.accounted() > last_progress.0 {
                last_progress = (reader.accounted(), Instant::now());
            }
        }
        Ok(())
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
                cluster.create_topic(name, DEMO_TOPIC_PARTITIONS, 1)?;
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
    let mix_options = MixOptions::even(
        &topics,
        options.bad_ratio,
        options.seed,
        config.pipeline.max_message_bytes,
    );
    let mut feed = Feed {
        producer: ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "5")
            .create()?,
        mix: Mix::new(&topics, mix_options)?,
        topics: &topics,
        produced: BTreeMap::new(),
        total: 0,
        progress: options.progress,
        started: Instant::now(),
    };
    let (events_per_sec, flat_out, latency_rate) = match options.rate {
        Some(rate) => {
            let rate = rate.max(1) as f64;
            let achieved = feed.open_loop(&mut reader, rate, Budget::whole(options))?;
            (achieved, false, rate)
        }
        None => {
            let (first, second) = Budget::split(options);
            let throughput = feed.flat_out(&mut reader, first)?;
            let rate = (throughput * LATENCY_LOAD_SHARE).max(1.0);
            feed.open_loop(&mut reader, rate, second)?;
            (throughput, true, rate)
        }
    };
    if options.progress {
        reader.print_progress(feed.total, feed.started);
        eprintln!();
    }
    let elapsed = feed.started.elapsed();
    shutdown.cancel();
    match engine.join() {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("engine thread panicked"),
    }
    // After the engine's graceful shutdown its commits are final: an input without output
    // below the committed offset is lost; at or above it, it was simply not read yet.
    let (lost, not_yet_seen) = reader.unaccounted(&brokers, &group, &topics)?;
    let latency = &reader.latency_ms;
    Ok(DemoSummary {
        produced: feed.total,
        scored: reader.scored(),
        dead_lettered: reader.dead_lettered(),
        lost,
        not_yet_seen,
        duplicates: reader.duplicates,
        events_per_sec,
        flat_out,
        latency_at_events_per_sec: latency_rate,
        latency_p50_ms: latency.value_at_quantile(0.5),
        latency_p90_ms: latency.value_at_quantile(0.9),
        latency_p99_ms: latency.value_at_quantile(0.99),
        latency_max_ms: latency.max(),
        elapsed_secs: elapsed.as_secs_f64(),
        dead_letters_by_reason: reader.by_reason.clone(),
        topics: feed
            .produced
            .iter()
            .map(|(stream, produced)| {
                let summary = TopicSummary {
                    produced: *produced,
                    scored: reader.by_stream_scored.get(stream).copied().unwrap_or(0),
                    dead_lettered: reader.by_stream_dead.get(stream).copied().unwrap_or(0),
                };
                (stream.clone(), summary)
            })
            .collect(),
    })
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
        let throughput = if self.flat_out {
            "flat out"
        } else {
            "at the rate asked for"
        };
        text.push_str(&format!(
            "throughput {throughput}: {:.0} events/s ({:.1} s in all)\n",
            self.events_per_sec, self.elapsed_secs
        ));
        text.push_str(&format!(
            "latency at {:.0} events/s, open loop: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms\n",
            self.latency_at_events_per_sec,
            self.latency_p50_ms,
            self.latency_p90_ms,
            self.latency_p99_ms,
            self.latency_max_ms
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
