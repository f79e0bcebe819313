//! The `threatflow` command line: `run`, `demo`, `train`, `eval`, `generate`, `bench`,
//! `models`, `replay` and `config check`.
//!
//! Exit codes: 0 success; 1 runtime failure; 2 invalid config or arguments (clap's usage
//! errors are 2 as well).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{EngineConfig, LogFormat};
use crate::operators::table::{self, Verb};
use crate::source::Health;

/// Streaming threat detection: Kafka in, scored and explained events out.
#[derive(Debug, Parser)]
#[command(name = "threatflow", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine against a Kafka cluster.
    Run {
        /// Engine config file (TOML); `THREATFLOW_*` variables override it.
        #[arg(long, env = "THREATFLOW_CONFIG")]
        config: PathBuf,
    },
    /// Run the engine on an embedded broker with generated traffic and print a summary.
    Demo {
        /// Events to produce.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Produce for this many seconds instead of a fixed count.
        #[arg(long)]
        duration: Option<u64>,
        /// Events per second to produce at (unlimited if absent).
        #[arg(long)]
        rate: Option<u64>,
        /// Share of bad input, 0 to 1.
        #[arg(long, default_value_t = 0.02)]
        bad_ratio: f64,
        /// Generator seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print the summary as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
        /// Use this Kafka cluster (host:port list) instead of the embedded broker; the
        /// demo's topics and group get a per-run suffix.
        #[arg(long)]
        brokers: Option<String>,
        /// Keep running with a steady mix at `--rate` (default 20 events/s) and serve the
        /// analyst console and the scoring API on `--http` until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// Address of the console and API with `--serve`.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
    },
    /// Train a model set from labelled data.
    Train {
        #[command(subcommand)]
        command: OperatorCommands<TRAIN>,
    },
    /// Print a model set's figures on labelled data.
    Eval {
        #[command(subcommand)]
        command: OperatorCommands<EVAL>,
    },
    /// Write labelled bootstrap data for a model set.
    Generate {
        #[command(subcommand)]
        command: OperatorCommands<GENERATE>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The model registry: list, show, push, promote, rollback, challenge, verify.
    Models(crate::registry::cli::ModelsArgs),
    /// Re-score a range of an input topic with any model version (backtest); never joins
    /// or commits for the live consumer group.
    Replay(crate::replay::ReplayArgs),
    /// Run the trainer role: read analysts' verdicts (feedback.<operator>), keep the training
    /// buffer, retrain on schedule, gate, and publish challengers through the registry. Run
    /// one per cluster (or set `[lifecycle] trainer = true` in one engine).
    Trainer {
        /// Engine config file (TOML); the same file the engines use.
        #[arg(long, env = "THREATFLOW_CONFIG")]
        config: PathBuf,
    },
    /// Analysts' verdicts: export a buffer for a model trained outside the engine.
    Feedback(crate::learning::export::FeedbackArgs),
    /// Load measurements (figures for BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: OperatorCommands<BENCH>,
    },
    /// Print a reference generated from this build: `config` (Markdown, the source of
    /// docs/configuration.md), `config-schema` (JSON Schema of the config file) or `metrics`
    /// (Markdown, the source of docs/metrics.md).
    Reference {
        /// Which reference.
        #[arg(value_enum)]
        what: ReferenceKind,
    },
    /// Add the drift watch's reference sample to a model version.
    DriftReference {
        #[command(subcommand)]
        command: OperatorCommands<DRIFT_REFERENCE>,
    },
}

const TRAIN: u8 = 0;
const EVAL: u8 = 1;
const GENERATE: u8 = 2;
const BENCH: u8 = 3;
const DRIFT_REFERENCE: u8 = 4;

/// The operators' commands of one verb (`threatflow train <operator> ...`), read from the
/// operator table: each operator defines its arguments in its own folder.
#[derive(Debug)]
struct OperatorCommands<const VERB: u8> {
    name: String,
    matches: clap::ArgMatches,
}

impl<const VERB: u8> OperatorCommands<VERB> {
    fn verb() -> (Verb, &'static str) {
        match VERB {
            TRAIN => (Verb::Train, "train"),
            EVAL => (Verb::Eval, "eval"),
            GENERATE => (Verb::Generate, "generate"),
            BENCH => (Verb::Bench, "bench"),
            _ => (Verb::DriftReference, "drift-reference"),
        }
    }

    /// Runs the command; its exit status.
    fn run(&self) -> ExitCode {
        let (verb, verb_name) = Self::verb();
        let label = format!("{verb_name} {}", self.name);
        match table::commands(verb).find(|command| command.name == self.name) {
            Some(command) => {
                let result = (command.run)(&self.matches).and_then(|()| match verb {
                    Verb::Train => {
                        crate::operators::command_args::TrainTarget::mark_bootstrap_if_asked(
                            &self.name,
                            &self.matches,
                        )
                    }
                    _ => Ok(()),
                });
                crate::model_cli::exit_code(&label, result)
            }
            None => {
                eprintln!("{label}: no such command");
                ExitCode::from(2)
            }
        }
    }
}

impl<const VERB: u8> clap::FromArgMatches for OperatorCommands<VERB> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        match matches.subcommand() {
            Some((name, sub)) => Ok(Self {
                name: name.to_owned(),
                matches: sub.clone(),
            }),
            None => Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand)),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<const VERB: u8> clap::Subcommand for OperatorCommands<VERB> {
    fn augment_subcommands(command: clap::Command) -> clap::Command {
        table::commands(Self::verb().0)
            .fold(command, |command, operator| {
                command.subcommand((operator.command)())
            })
            .subcommand_required(true)
    }

    fn augment_subcommands_for_update(command: clap::Command) -> clap::Command {
        Self::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        table::commands(Self::verb().0).any(|command| command.name == name)
    }
}

/// What `threatflow reference` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReferenceKind {
    /// Every config key with its type, default and meaning (Markdown).
    Config,
    /// The config file's JSON Schema.
    ConfigSchema,
    /// Every Prometheus metric (Markdown).
    Metrics,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file (with environment overrides), print the effective config, and
    /// check what it points at: models, rule files and the ONNX Runtime library load, the
    /// state directory is writable, the brokers answer and the topics exist. Exit 0 when all
    /// pass, 1 when a check fails, 2 when the config itself is invalid.
    Check {
        /// Config file (TOML).
        file: PathBuf,
        /// Skip the broker and topic checks (no cluster reachable from here).
        #[arg(long)]
        offline: bool,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Demo {
            events,
            duration,
            rate,
            bad_ratio,
            seed,
            json,
            brokers,
            serve,
            http,
        } => {
            if serve {
                crate::telemetry::init_tracing(crate::config::LogFormat::Text);
                let options = crate::demo_serve::ServeOptions {
                    rate: rate.unwrap_or(20).max(1),
                    http,
                    bad_ratio: bad_ratio.clamp(0.0, 1.0),
                    seed,
                    admin_token: std::env::var("THREATFLOW_HTTP__ADMIN_TOKEN").unwrap_or_default(),
                };
                return match crate::demo_serve::run(&options) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("demo failed: {error:#}");
                        ExitCode::FAILURE
                    }
                };
            }
            let options = crate::demo::DemoOptions {
                events,
                duration: duration.map(Duration::from_secs),
                rate,
                bad_ratio: bad_ratio.clamp(0.0, 1.0),
                seed,
                progress: true,
                brokers,
            };
            demo(&options, json)
        }
        Command::Config {
            command: ConfigCommand::Check { file, offline },
        } => crate::config_check::run(&file, offline),
        Command::Reference { what } => {
            let text = match what {
                ReferenceKind::Config => crate::config::reference::config_markdown(),
                ReferenceKind::ConfigSchema => {
                    let schema = crate::config::reference::config_schema();
                    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
                }
                ReferenceKind::Metrics => crate::telemetry::metrics_markdown(),
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::Train { command } => command.run(),
        Command::Eval { command } => command.run(),
        Command::Generate { command } => command.run(),
        Command::Bench { command } => {
            // A benchmark's fallbacks (CUDA asked for, CPU used) must be visible.
            warnings_to_stderr();
            command.run()
        }
        Command::DriftReference { command } => command.run(),
        Command::Replay(args) => crate::model_cli::exit_code("replay", crate::replay::run(&args)),
        Command::Trainer { config } => trainer(&config),
        Command::Feedback(args) => {
            crate::model_cli::exit_code("feedback", crate::learning::export::run(&args))
        }
        Command::Models(args) => {
            crate::model_cli::exit_code("models", crate::registry::cli::run(&args))
        }
    }
}

fn run(config_path: &std::path::Path) -> ExitCode {
    run_role(config_path, "engine", run_engine)
}

fn trainer(config_path: &std::path::Path) -> ExitCode {
    run_role(config_path, "trainer", run_trainer)
}

/// Loads the config (exit 2 when invalid), starts logging and runs `role` until it ends.
fn run_role(
    config_path: &std::path::Path,
    name: &str,
    role: fn(EngineConfig) -> anyhow::Result<()>,
) -> ExitCode {
    let config = match EngineConfig::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", config_path.display());
            return ExitCode::from(2);
        }
    };
    // Held until the role ends: dropping it flushes the last traces.
    let _traces =
        crate::telemetry::init_tracing_with_otlp(config.log.format, &config.log.otlp_endpoint);
    match role(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// The runtime of a long-running role: one worker thread (the HTTP endpoint and signals;
/// the work itself runs on blocking threads).
fn role_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

/// The shutdown token (cancelled on SIGTERM/SIGINT), the health facts, and the HTTP
/// endpoint serving them when `http.bind` is set.
async fn start_endpoint(config: &EngineConfig) -> anyhow::Result<(CancellationToken, Arc<Health>)> {
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    let health = Arc::new(Health::default());
    if !config.http.bind.is_empty() {
        crate::http::serve(config, health.clone(), shutdown.clone()).await?;
    }
    Ok((shutdown, health))
}

/// The trainer alone: its HTTP endpoint (`/models` shows the learning state) until a signal.
fn run_trainer(config: EngineConfig) -> anyhow::Result<()> {
    role_runtime()?.block_on(async move {
        let (shutdown, health) = start_endpoint(&config).await?;
        let stop = shutdown.clone();
        let handle =
            tokio::task::spawn_blocking(move || crate::learning::trainer::start(&config, stop))
                .await??;
        let Some(handle) = handle else {
            anyhow::bail!("no bound operator retrains in the engine: nothing to train");
        };
        *crate::sync::lock(&health.learning) = Some(handle.health.clone());
        for fact in [
            &health.operators_started,
            &health.assignment_received,
            &health.broker_up,
        ] {
            fact.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        shutdown.cancelled().await;
        tokio::task::spawn_blocking(move || handle.thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the trainer thread panicked"))?;
        Ok(())
    })
}

fn run_engine(config: EngineConfig) -> anyhow::Result<()> {
    role_runtime()?.block_on(async move {
        let (shutdown, health) = start_endpoint(&config).await?;
        if config.lifecycle.trainer {
            let trainer_config = config.clone();
            let stop = shutdown.clone();
            let started = tokio::task::spawn_blocking(move || {
                crate::learning::trainer::start(&trainer_config, stop)
            })
            .await??;
            if let Some(handle) = started {
                *crate::sync::lock(&health.learning) = Some(handle.health);
            }
        }
        let engine_shutdown = shutdown.clone();
        arm_shutdown_watchdog(
            health.clone(),
            Duration::from_millis(config.pipeline.shutdown_grace_ms),
        )?;
        let result = tokio::task::spawn_blocking(move || {
            crate::pipeline::run(&config, engine_shutdown, health)
        })
        .await?;
        // Stop the HTTP endpoint too if the engine ended on its own.
        shutdown.cancel();
        Ok(result?)
    })
}

/// Time the watchdog allows past `shutdown_grace_ms` before it ends the process (the grace
/// covers drain, flush and commit; this covers a stuck library call inside them).
const SHUTDOWN_WATCHDOG_SLACK: Duration = Duration::from_secs(3);

/// Once a shutdown starts (signal or fatal failure), ends the process with status 1 if it
/// has not exited within the grace period plus [`SHUTDOWN_WATCHDOG_SLACK`]: an orchestrator's
/// grace period must never be overrun by a hung drain.
fn arm_shutdown_watchdog(health: Arc<Health>, grace: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("threatflow-watchdog".into())
        .spawn(move || {
            while !health.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(grace + SHUTDOWN_WATCHDOG_SLACK);
            tracing::error!(
                grace_ms = grace.as_millis() as u64,
                "shutdown overran its grace period; exiting without finishing it"
            );
            std::process::exit(1);
        })?;
    Ok(())
}

/// Logging for the interactive commands: warnings and errors only unless `RUST_LOG` says
/// otherwise (librdkafka's mock cluster and the engine log a lot at info).
fn warnings_to_stderr() {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    crate::telemetry::init_tracing(LogFormat::Text);
}

fn demo(options: &crate::demo::DemoOptions, json: bool) -> ExitCode {
    warnings_to_stderr();
    eprintln!(
        "threatflow demo: {}, 5 streams, {} events{}",
        options
            .brokers
            .as_deref()
            .map_or("embedded broker".to_owned(), |brokers| format!(
                "brokers {brokers}"
            )),
        options.events,
        options
            .rate
            .map(|rate| format!(" at {rate}/s"))
            .unwrap_or_default()
    );
    match crate::demo::run(options) {
        Ok(summary) => {
            print!("{}", summary.render());
            if json {
                match serde_json::to_string(&summary) {
                    Ok(line) => println!("{line}"),
                    Err(error) => eprintln!("cannot render json summary: {error}"),
                }
            }
            if summary.lost > 0 {
                eprintln!(
                    "{} produced events were committed without an output (lost)",
                    summary.lost
                );
                ExitCode::FAILURE
            } else {
                if summary.not_yet_seen > 0 {
                    eprintln!(
                        "{} produced events had no output yet when the demo stopped waiting \
                         (late, not lost: uncommitted, so the engine reads them on its next start)",
                        summary.not_yet_seen
                    );
                }
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("demo failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_of_every_operator_is_a_valid_clap_command() {
        // clap's own consistency checks (unique names, valid defaults) over the whole tree,
        // the operators' commands included.
        super::Cli::command().debug_assert();
        let cli = super::Cli::command();
        for verb in ["train", "eval", "generate", "bench"] {
            let verb = cli.find_subcommand(verb).unwrap();
            assert!(verb.get_subcommands().count() >= 1);
        }
    }
}
