//! The `threatflow` command line: `run`, `demo`, `train`, `eval`, `generate` and `config check`.
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
    },
    /// Train a model set from labelled data.
    Train {
        #[command(subcommand)]
        command: TrainCommand,
    },
    /// Print a model set's figures on labelled data.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Write labelled bootstrap data for a model set.
    Generate {
        #[command(subcommand)]
        command: GenerateCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Load measurements (figures for BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The prompt path: bare L2 (tokenize + ONNX Runtime) per batch size over fixed batches,
    /// then the whole operator through the dynamic batcher at open-loop arrival rates.
    Prompt(crate::model_cli::BenchPromptOptions),
}

#[derive(Debug, Subcommand)]
enum TrainCommand {
    /// Network-flow model set (binary + category GBDTs, team thresholds) from an NSL-KDD
    /// file; early stopping and thresholds use a stratified split of that file.
    Flow {
        /// NSL-KDD training file.
        #[arg(long, default_value = "models/flow/data/KDDTrain+_20Percent.txt")]
        data: PathBuf,
        /// Version name; the model goes to `<models>/flow/<version>/`.
        #[arg(long, default_value = "v1")]
        version: String,
        /// Model root directory (`--models` is the old name).
        #[arg(long = "model-dir", alias = "models", default_value = "models")]
        models: PathBuf,
        /// Seed of the validation split.
        #[arg(long, default_value_t = 20_261_123)]
        seed: u64,
        /// Share of each label held out for early stopping, thresholds and metrics.
        #[arg(long, default_value_t = 0.2)]
        validation_fraction: f64,
        /// Executive operating point: cost of a false alarm.
        #[arg(long, default_value_t = 1.0)]
        fp_cost: f64,
        /// Executive operating point: cost of a missed attack.
        #[arg(long, default_value_t = 5.0)]
        fn_cost: f64,
    },
    /// SIEM alert model set (disposition forest, isolation forest, risk GBDT) from labelled
    /// alerts (`threatflow generate alerts` writes them); the latest rows validate.
    Alert {
        /// Labelled alerts, JSON lines.
        #[arg(long, default_value = "models/alert/data/train.jsonl")]
        data: PathBuf,
        /// Version name; the model goes to `<models>/alert/<version>/`.
        #[arg(long, default_value = "v1")]
        version: String,
        /// Model root directory (`--models` is the old name).
        #[arg(long = "model-dir", alias = "models", default_value = "models")]
        models: PathBuf,
        /// Seed of the forests.
        #[arg(long, default_value_t = 20_261_123)]
        seed: u64,
        /// Latest share of the rows held out for early stopping and validation.
        #[arg(long, default_value_t = 0.15)]
        validation_fraction: f64,
        /// Share of alerts the anomaly flag should mark.
        #[arg(long, default_value_t = 0.05)]
        contamination: f64,
    },
    /// Sender-address fraud model set (character 2/3-gram models, Markov-risk parameters,
    /// boost-only calibration, domain lists) from labelled addresses (CSV `address,label` or
    /// JSON lines; `threatflow generate addresses` writes them).
    Address {
        /// Labelled addresses.
        #[arg(long, default_value = "models/address/data/train.jsonl")]
        data: PathBuf,
        /// Directory of the domain lists and SOURCES.json.
        #[arg(long, default_value = "models/address/sources")]
        sources: PathBuf,
        /// Version name; the model goes to `<models>/address/<version>/`.
        #[arg(long, default_value = "v1")]
        version: String,
        /// Model root directory (`--models` is the old name).
        #[arg(long = "model-dir", alias = "models", default_value = "models")]
        models: PathBuf,
        /// Seed of the fold assignment.
        #[arg(long, default_value_t = 20_261_123)]
        seed: u64,
        /// Folds of the out-of-fold Markov features.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// α of the n-gram back-off smoothing.
        #[arg(long, default_value_t = 1.0)]
        concentration: f64,
        /// L2 penalty of the calibration.
        #[arg(long, default_value_t = 1.0)]
        l2_penalty: f64,
    },
    /// Insider-threat email ensemble (autoencoder, one-class SVM, isolation forest) from a
    /// folder of normal mail (`*.jsonl` email events, `*.eml`, `*.mbox`).
    Email {
        /// Folder of normal mail.
        #[arg(long, default_value = "models/email/data/train")]
        data: PathBuf,
        /// Version name; the model goes to `<models>/email/<version>/`.
        #[arg(long, default_value = "v1")]
        version: String,
        /// Model root directory (`--models` is the old name).
        #[arg(long = "model-dir", alias = "models", default_value = "models")]
        models: PathBuf,
        /// Engine config whose `[operators.email.features]` (organisation domains, work
        /// hours, time zone, keywords, TF-IDF buckets) the features use; defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seed of the held-out split, the one-class sample and the detectors.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Share of the mail held out for the detectors' score scales.
        #[arg(long, default_value_t = 0.2)]
        calibration_fraction: f64,
        /// Most rows the one-class SVM is fitted on (quadratic cost).
        #[arg(long, default_value_t = 2000)]
        one_class_rows: usize,
        /// ν of the one-class SVM.
        #[arg(long, default_value_t = 0.05)]
        nu: f64,
    },
}

#[derive(Debug, Subcommand)]
enum GenerateCommand {
    /// Labelled SIEM alerts grounded in MITRE ATT&CK (recipe: models/alert/README.md):
    /// writes `train.jsonl` (first part by time) and `holdout.jsonl` (the rest, after a day
    /// of warm-up rows) into `--out`.
    Alerts {
        /// Output directory.
        #[arg(long, default_value = "models/alert/data")]
        out: PathBuf,
        /// Alerts to generate.
        #[arg(long, default_value_t = 30_000)]
        count: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 20_261_123)]
        seed: u64,
        /// Latest share held out.
        #[arg(long, default_value_t = 0.2)]
        holdout_fraction: f64,
    },
    /// Labelled sender addresses (recipe: models/address/README.md): writes `train.jsonl`
    /// and `holdout.jsonl` (a random `--holdout-fraction`) into `--out`.
    Addresses {
        /// Directory of the source lists (ham addresses, first names, domain lists).
        #[arg(long, default_value = "models/address/sources")]
        sources: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "models/address/data")]
        out: PathBuf,
        /// Addresses to generate.
        #[arg(long, default_value_t = 24_000)]
        count: usize,
        /// Share of fraudulent addresses.
        #[arg(long, default_value_t = 0.4)]
        fraud_share: f64,
        /// Generator seed.
        #[arg(long, default_value_t = 20_261_123)]
        seed: u64,
        /// Share held out.
        #[arg(long, default_value_t = 0.2)]
        holdout_fraction: f64,
    },
    /// An organisation's mail from SpamAssassin ham text with injected insider scenarios
    /// (recipe: models/email/README.md): writes `train/emails.jsonl` (normal mail) and
    /// `holdout/emails.jsonl` + `holdout/labels.csv` into `--out`.
    Emails {
        /// The ham corpus.
        #[arg(long, default_value = "models/email/sources/ham.jsonl.gz")]
        sources: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "models/email/data")]
        out: PathBuf,
        /// People in the organisation.
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Insiders among them (holdout period).
        #[arg(long, default_value_t = 8)]
        insiders: usize,
        /// Weeks of training mail and, after them, of holdout mail.
        #[arg(long, default_value_t = 4)]
        weeks: u32,
        /// Share of ham texts reserved for the holdout period.
        #[arg(long, default_value_t = 0.3)]
        holdout_fraction: f64,
        /// Generator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Network-flow model set on an NSL-KDD file.
    Flow {
        /// Labelled NSL-KDD file.
        #[arg(long)]
        data: PathBuf,
        /// Model version directory (default: the newest under `<model-dir>/flow`).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model root directory.
        #[arg(long, default_value = "models")]
        model_dir: PathBuf,
        /// Print the figures as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
        /// Also write report.md, report.json, roc.png and pr.png into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// SIEM alert model set on labelled alerts (JSON lines, time order), beside a
    /// rules-only baseline.
    Alert {
        /// Labelled alerts.
        #[arg(long)]
        data: PathBuf,
        /// Model version directory (default: the newest under `<model-dir>/alert`).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model root directory.
        #[arg(long, default_value = "models")]
        model_dir: PathBuf,
        /// Rule file (default: the shipped models/alert/rules.toml).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Print the figures as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Sender-address fraud model on labelled addresses: CSV `address,label` (1 =
    /// fraudulent) or JSON lines `{"address": ..., "label": 0|1}`.
    Address {
        /// Labelled addresses.
        #[arg(long)]
        data: PathBuf,
        /// Model version directory (default: the newest under `<model-dir>/address`).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model root directory.
        #[arg(long, default_value = "models")]
        model_dir: PathBuf,
        /// Risk from which an address counts as flagged (review or block).
        #[arg(long, default_value_t = 0.5)]
        review_at: f64,
        /// Risk from which it is blocked.
        #[arg(long, default_value_t = 0.85)]
        block_at: f64,
        /// Print the figures as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Insider-threat email ensemble on a labelled mail folder (`labels.csv` beside the
    /// mail, as `generate emails` writes): message ROC/PR-AUC, user recall in the top 5 %.
    Email {
        /// Labelled mail folder.
        #[arg(long)]
        data: PathBuf,
        /// Model version directory (default: the newest under `<model-dir>/email`).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model root directory.
        #[arg(long, default_value = "models")]
        model_dir: PathBuf,
        /// Engine config whose `[operators.email]` settings (weights, vote percentile,
        /// window, features) apply; defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the figures as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Prompt operator (normalize + L1 rules + L2 classifier) on labelled prompts: JSON lines
    /// `{"text": ..., "label": 0|1}` or CSV `text,label`.
    Prompt {
        /// Labelled prompts.
        #[arg(long)]
        data: PathBuf,
        /// Model root holding `prompt/<version>` and `prompt/rules/rules.toml`.
        #[arg(long, default_value = "models")]
        model_dir: PathBuf,
        /// Engine config whose `[operators.prompt]` settings apply; defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Prompts per scoring call (1 measures single-prompt latency).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Score with the rules alone (no ONNX Runtime).
        #[arg(long)]
        rules_only: bool,
        /// Print the figures as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
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
        } => {
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
        Command::Train {
            command:
                TrainCommand::Flow {
                    data,
                    version,
                    models,
                    seed,
                    validation_fraction,
                    fp_cost,
                    fn_cost,
                },
        } => crate::model_cli::exit_code(
            "train flow",
            crate::model_cli::train_flow(&crate::operators::flow::train::TrainOptions {
                out: models.join("flow").join(&version),
                data,
                version,
                seed,
                validation_fraction,
                false_positive_cost: fp_cost,
                false_negative_cost: fn_cost,
            }),
        ),
        Command::Eval {
            command:
                EvalCommand::Flow {
                    data,
                    model,
                    model_dir,
                    json,
                    report,
                },
        } => crate::model_cli::exit_code(
            "eval flow",
            crate::model_cli::eval_flow(
                &data,
                model.as_deref(),
                &model_dir,
                json,
                report.as_deref(),
            ),
        ),
        Command::Train {
            command:
                TrainCommand::Alert {
                    data,
                    version,
                    models,
                    seed,
                    validation_fraction,
                    contamination,
                },
        } => crate::model_cli::exit_code(
            "train alert",
            crate::model_cli::train_alert(&crate::operators::alert::train::TrainOptions {
                out: models.join("alert").join(&version),
                data,
                version,
                seed,
                validation_fraction,
                contamination,
            }),
        ),
        Command::Eval {
            command:
                EvalCommand::Alert {
                    data,
                    model,
                    model_dir,
                    rules,
                    json,
                },
        } => crate::model_cli::exit_code(
            "eval alert",
            crate::model_cli::eval_alert(
                &data,
                model.as_deref(),
                &model_dir,
                rules.as_deref(),
                json,
            ),
        ),
        Command::Generate {
            command:
                GenerateCommand::Alerts {
                    out,
                    count,
                    seed,
                    holdout_fraction,
                },
        } => crate::model_cli::exit_code(
            "generate alerts",
            crate::model_cli::generate_alerts(&out, count, seed, holdout_fraction),
        ),
        Command::Train {
            command:
                TrainCommand::Address {
                    data,
                    sources,
                    version,
                    models,
                    seed,
                    folds,
                    concentration,
                    l2_penalty,
                },
        } => crate::model_cli::exit_code(
            "train address",
            crate::model_cli::train_address(&crate::operators::address::train::TrainOptions {
                out: models.join("address").join(&version),
                data,
                sources,
                version,
                seed,
                folds,
                concentration,
                l2_penalty,
            }),
        ),
        Command::Eval {
            command:
                EvalCommand::Address {
                    data,
                    model,
                    model_dir,
                    review_at,
                    block_at,
                    json,
                },
        } => crate::model_cli::exit_code(
            "eval address",
            crate::model_cli::eval_address(
                &data,
                model.as_deref(),
                &model_dir,
                &crate::operators::address::AddressOperatorConfig {
                    review_at,
                    block_at,
                    ..Default::default()
                },
                json,
            ),
        ),
        Command::Generate {
            command:
                GenerateCommand::Addresses {
                    sources,
                    out,
                    count,
                    fraud_share,
                    seed,
                    holdout_fraction,
                },
        } => crate::model_cli::exit_code(
            "generate addresses",
            crate::model_cli::generate_addresses(
                &sources,
                &out,
                count,
                fraud_share,
                seed,
                holdout_fraction,
            ),
        ),
        Command::Train {
            command:
                TrainCommand::Email {
                    data,
                    version,
                    models,
                    config,
                    seed,
                    calibration_fraction,
                    one_class_rows,
                    nu,
                },
        } => crate::model_cli::exit_code(
            "train email",
            crate::model_cli::train_email(
                config.as_deref(),
                crate::operators::email::train::TrainOptions {
                    data,
                    models,
                    version,
                    seed,
                    calibration_fraction,
                    one_class_rows,
                    nu,
                    ..Default::default()
                },
            ),
        ),
        Command::Eval {
            command:
                EvalCommand::Prompt {
                    data,
                    model_dir,
                    config,
                    batch,
                    rules_only,
                    json,
                },
        } => crate::model_cli::exit_code(
            "eval prompt",
            crate::model_cli::eval_prompt(&crate::model_cli::EvalPromptOptions {
                data,
                model_dir,
                config,
                batch,
                rules_only,
                json,
            }),
        ),
        Command::Eval {
            command:
                EvalCommand::Email {
                    data,
                    model,
                    model_dir,
                    config,
                    json,
                },
        } => crate::model_cli::exit_code(
            "eval email",
            crate::model_cli::eval_email(
                &data,
                model.as_deref(),
                &model_dir,
                config.as_deref(),
                json,
            ),
        ),
        Command::Generate {
            command:
                GenerateCommand::Emails {
                    sources,
                    out,
                    users,
                    insiders,
                    weeks,
                    holdout_fraction,
                    seed,
                },
        } => crate::model_cli::exit_code(
            "generate emails",
            crate::model_cli::generate_emails(&crate::operators::email::synth::GenerateOptions {
                sources,
                out,
                users,
                insiders,
                weeks,
                holdout_fraction,
                seed,
            }),
        ),
        Command::Config {
            command: ConfigCommand::Check { file, offline },
        } => crate::config_check::run(&file, offline),
        Command::Bench {
            command: BenchCommand::Prompt(options),
        } => crate::model_cli::exit_code("bench prompt", crate::model_cli::bench_prompt(&options)),
    }
}

fn run(config_path: &std::path::Path) -> ExitCode {
    let config = match EngineConfig::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", config_path.display());
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_tracing(config.log.format);
    match run_engine(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "engine failed");
            ExitCode::FAILURE
        }
    }
}

fn run_engine(config: EngineConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        crate::shutdown::cancel_on_signal(shutdown.clone());
        let health = Arc::new(Health::default());
        if !config.http.bind.is_empty() {
            crate::http::serve(&config.http, health.clone(), shutdown.clone()).await?;
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

fn demo(options: &crate::demo::DemoOptions, json: bool) -> ExitCode {
    // librdkafka's mock cluster and the engine log at info; keep the demo's console readable.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    crate::telemetry::init_tracing(LogFormat::Text);
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
