//! `threatflow-loadtest`: the load test of threatflow.
//!
//! It produces a realistic mix (the demo's generator, or flows replayed from NSL-KDD) to the
//! input topics — open loop at a target rate, each input stamped with the time it was due so
//! that latency carries no coordinated omission, or flat out within a window — while the
//! engine runs as separate `threatflow run` processes; it reads every output back and accounts
//! for each input by its coordinates (scored, dead-lettered, lost, late, duplicated), and it
//! samples the group's lag and the processes' CPU and memory from `/proc` each second.
//! Baselines run in the same invocation on the same broker and are reported as ratios: a raw
//! rdkafka consume → produce relay (the ceiling), the engine with the passthrough operator,
//! and twice the processes in one group (scale-out). The last line of stdout is one JSON
//! object (`--json`); `--out` keeps every round's per-second timeline and `--plot` draws it.
//!
//! This binary is also the processes under test: re-executed with `THREATFLOW_LOADTEST_ROLE`
//! set to `engine` it is the engine's own CLI (`threatflow run`), set to `relay` the relay.

mod broker;
mod options;
mod process;
mod relay;
mod report;
mod round;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use threatflow::demo::mix::MixOptions;
use threatflow::demo::{DemoTopics, DEMO_MAX_MESSAGE_BYTES};

use options::{Options, Rate, Target};
use round::{Pace, RoundResult, RunContext};
use threatflow::demo::mix::Budget;

fn main() -> ExitCode {
    match std::env::var(process::ROLE_VARIABLE).as_deref() {
        Ok("engine") => return threatflow::cli::main(),
        Ok("relay") => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            return match relay::main(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("relay failed: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let options = Options::parse();
    match run(&options) {
        Ok(summary) => {
            print!("{}", summary.render());
            if options.json {
                println!("{}", summary.json_line());
            }
            if summary.lost > 0 {
                eprintln!(
                    "{} inputs were committed without an output (lost)",
                    summary.lost
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("load test failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> anyhow::Result<report::Summary> {
    let broker = broker::Broker::open(options.brokers.as_deref(), options.tansu.as_deref())?;
    let temporary = tempfile::tempdir()?;
    let work_dir = options
        .work_dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_owned());
    let names = DemoTopics::with_suffix("");
    let flows = match &options.flows {
        Some(path) => threatflow::operators::flow::dataset::read_nsl_kdd(path)?
            .into_iter()
            .map(|labelled| labelled.event)
            .collect(),
        None => Vec::new(),
    };
    let mix = MixOptions {
        weights: options.weights(&names)?,
        bad_ratio: options.bad_ratio.clamp(0.0, 1.0),
        seed: options.seed,
        key_cardinality: options.keys,
        pad_bytes: options.pad_bytes,
        flows,
        max_message_bytes: DEMO_MAX_MESSAGE_BYTES,
    };
    let context = RunContext {
        broker: &broker,
        run_id: format!("{:08x}", rand::random::<u32>()),
        work_dir,
        mix,
        budget: match options.duration {
            Some(seconds) => Budget::For(Duration::from_secs(seconds)),
            None => Budget::Events(options.events),
        },
        quiet: Duration::from_secs(options.quiet_secs),
        engine_log: options.engine_log.clone(),
    };
    let targets = options.targets();
    let mut rounds: Vec<RoundResult> = Vec::new();
    for _ in 0..options.repeat.max(1) {
        // Targets alternate within each repeat, so drift of a shared machine hits all alike.
        for &target in &targets {
            let flat_out = Pace::FlatOut {
                window: options.window.max(1),
            };
            let paces = match options.rate {
                None => vec![flat_out],
                Some(Rate::Fixed(rate)) => vec![Pace::OpenLoop(rate)],
                Some(Rate::HalfOfMax) => vec![flat_out],
            };
            for pace in paces {
                let round = run_round(&context, target, pace, rounds.len())?;
                let half = (round.events_per_sec / 2.0).max(1.0);
                rounds.push(round);
                if options.rate == Some(Rate::HalfOfMax) {
                    let round = run_round(&context, target, Pace::OpenLoop(half), rounds.len())?;
                    rounds.push(round);
                }
            }
        }
    }
    let name_of = |wanted: options::Baseline| {
        options
            .baseline
            .contains(&wanted)
            .then(|| options.baseline_target(wanted).name())
    };
    let summary = report::summarise(
        broker.kind(),
        &targets[0].name(),
        name_of(options::Baseline::Passthrough).as_deref(),
        name_of(options::Baseline::Raw).as_deref(),
        name_of(options::Baseline::ScaleOut).as_deref(),
        rounds,
    );
    if let Some(path) = &options.out {
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")?;
    }
    if let Some(path) = &options.plot {
        summary.write_plot(path)?;
    }
    Ok(summary)
}

/// Runs one round and reports it on stderr.
fn run_round(
    context: &RunContext<'_>,
    target: Target,
    pace: Pace,
    index: usize,
) -> anyhow::Result<RoundResult> {
    eprintln!("round {index}: {} {pace:?} …", target.name());
    let round = round::run(context, target, pace, index)?;
    eprintln!(
        "round {index}: {} {:.0} events/s, p50 {} ms, p99 {} ms, lost {}, duplicates {}, cpu {:.2} cores, RSS {:.0} MiB",
        round.target,
        round.events_per_sec,
        round.p50_ms,
        round.p99_ms,
        round.lost,
        round.duplicates,
        round.cpu_cores,
        round.peak_rss_mib
    );
    Ok(round)
}
