//! Command-line options of `threatflow-loadtest` and what they resolve to: the mix, the
//! rounds to run (the engine as configured, then each baseline) and how each is paced.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use threatflow::demo::DemoTopics;
use threatflow::events::SchemaKind;

/// Load test of threatflow: produces a realistic mix to the input topics open loop at a
/// target rate (latency from each input's scheduled send time) or flat out, accounts for
/// every input by its coordinates, and runs baselines side by side in the same run.
#[derive(Debug, Clone, Parser)]
#[command(name = "threatflow-loadtest", version)]
pub struct Options {
    /// Inputs per round (ignored with --duration).
    #[arg(long, default_value_t = 50_000)]
    pub events: u64,
    /// Produce for this many seconds per round instead of a count.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Open-loop rate in events/s; `half` measures each target flat out first and then runs
    /// it at half of that; absent: flat out (closed loop, at most --window in flight).
    #[arg(long)]
    pub rate: Option<Rate>,
    /// Most inputs without an output while producing flat out.
    #[arg(long, default_value_t = threatflow::demo::MAX_IN_FLIGHT)]
    pub window: u64,
    /// Stream weights, e.g. `flow=1` or `prompt=1,flow=4,email=1,alert=2,address=1`
    /// (streams: prompt, flow, email, alert, address). Default: all alike.
    #[arg(long, default_value = "prompt=1,flow=1,email=1,alert=1,address=1")]
    pub mix: String,
    /// Flows replayed from an NSL-KDD file (e.g. models/flow/data/KDDTest+.txt) instead of
    /// generated ones.
    #[arg(long)]
    pub flows: Option<PathBuf>,
    /// Share of bad inputs (every class, rotating), 0..1.
    #[arg(long, default_value_t = 0.02)]
    pub bad_ratio: f64,
    /// Distinct record keys; default: every input its own key.
    #[arg(long)]
    pub keys: Option<u64>,
    /// Extra bytes in every good input (an unknown JSON field), to test message sizes.
    #[arg(long, default_value_t = 0)]
    pub pad_bytes: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Operators of the measured engine: `real` (each stream's model operator, as the demo
    /// binds them) or `passthrough` (the streaming core's own figure).
    #[arg(long, value_enum, default_value_t = Operators::Real)]
    pub operators: Operators,
    /// Engine processes in one consumer group for the measured round.
    #[arg(long, default_value_t = 1)]
    pub processes: u32,
    /// Baselines run in the same invocation, each reported as a ratio (repeatable).
    #[arg(long, value_enum)]
    pub baseline: Vec<Baseline>,
    /// Rounds per target; targets alternate and medians are reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// A Kafka-protocol cluster (HOST:PORT,...) instead of the embedded broker; every round
    /// gets its own topics and group.
    #[arg(long, conflicts_with = "tansu")]
    pub brokers: Option<String>,
    /// Start a local Tansu broker from this binary (e.g. .tools/bin/tansu) and run on it.
    #[arg(long)]
    pub tansu: Option<PathBuf>,
    /// Write the full result (with per-second timelines) here as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a PNG plot of throughput and latency over time here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// End stdout with one JSON line (the summary).
    #[arg(long)]
    pub json: bool,
    /// Engine log level (RUST_LOG of the engine processes).
    #[arg(long, default_value = "warn")]
    pub engine_log: String,
    /// Where rounds keep configs, state and logs (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// How long a round waits for outputs once its inputs are produced, seconds without a
    /// new output.
    #[arg(long, default_value_t = 30)]
    pub quiet_secs: u64,
}

/// How a round is paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Open loop at this many events/s.
    Fixed(f64),
    /// Open loop at half of the target's flat-out rate, measured first in the same run.
    HalfOfMax,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "half" {
            return Ok(Self::HalfOfMax);
        }
        match text.parse::<f64>() {
            Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(Self::Fixed(rate)),
            _ => Err(format!(
                "--rate must be events/s > 0 or `half`, not {text:?}"
            )),
        }
    }
}

/// Operators of an engine round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Operators {
    /// Each stream's model operator.
    Real,
    /// The passthrough operator on every stream.
    Passthrough,
}

/// A baseline measured beside the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Baseline {
    /// A raw rdkafka consume → produce loop on the same broker and topics: the ceiling.
    Raw,
    /// The engine with the passthrough operator on every stream.
    Passthrough,
    /// Two engine processes in one consumer group (against the measured round's one).
    ScaleOut,
}

/// What one round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `threatflow run` processes in one group.
    Engine {
        /// Operators bound.
        operators: Operators,
        /// Processes in the group.
        processes: u32,
    },
    /// The raw rdkafka relay.
    Raw,
}

impl Target {
    /// A short name for tables and JSON.
    pub fn name(self) -> String {
        match self {
            Self::Engine {
                operators,
                processes,
            } => {
                let operators = match operators {
                    Operators::Real => "engine",
                    Operators::Passthrough => "passthrough",
                };
                if processes == 1 {
                    operators.to_owned()
                } else {
                    format!("{operators}x{processes}")
                }
            }
            Self::Raw => "raw-relay".to_owned(),
        }
    }
}

impl Options {
    /// The measured target, then one per baseline (in the order given, without repeats).
    pub fn targets(&self) -> Vec<Target> {
        let main = Target::Engine {
            operators: self.operators,
            processes: self.processes.max(1),
        };
        let mut targets = vec![main];
        for &baseline in &self.baseline {
            let target = self.baseline_target(baseline);
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        targets
    }

    /// What a baseline runs.
    pub fn baseline_target(&self, baseline: Baseline) -> Target {
        let processes = self.processes.max(1);
        match baseline {
            Baseline::Raw => Target::Raw,
            Baseline::Passthrough => Target::Engine {
                operators: Operators::Passthrough,
                processes,
            },
            Baseline::ScaleOut => Target::Engine {
                operators: self.operators,
                processes: processes * 2,
            },
        }
    }

    /// Stream weights in the order of `DemoTopics::streams`.
    pub fn weights(&self, topics: &DemoTopics) -> anyhow::Result<Vec<u32>> {
        let mut weights = vec![0; topics.streams.len()];
        for part in self.mix.split(',').filter(|part| !part.trim().is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let kind = SchemaKind::ALL
                .into_iter()
                .find(|kind| kind.name() == name.trim())
                .ok_or_else(|| anyhow::anyhow!("--mix: unknown stream {name:?}"))?;
            let index = topics
                .streams
                .iter()
                .position(|stream| stream.kind == kind)
                .ok_or_else(|| anyhow::anyhow!("--mix: no topic for stream {name:?}"))?;
            weights[index] = weight
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--mix: weight of {name} must be a whole number"))?;
        }
        anyhow::ensure!(
            weights.iter().any(|weight| *weight > 0),
            "--mix: no stream with a weight"
        );
        Ok(weights)
    }
}
