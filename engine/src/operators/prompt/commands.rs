//! `threatflow eval prompt` and `threatflow bench prompt`: the operator's command-line
//! arguments (listed in its [`super::SPEC`]); and what they run (shared plumbing: [`crate::model_cli`]).

use std::path::PathBuf;

use clap::{Args, FromArgMatches};

use crate::model_cli::{operators_config, print_json_line_if, UsageError};
use crate::operators::table::{OperatorCommand, Verb};
use anyhow::Context;

/// `threatflow eval prompt`.
#[derive(Debug, Args)]
pub struct EvalArgs {
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
}

/// The prompt operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
    OperatorCommand {
        verb: Verb::Eval,
        name: "prompt",
        command: || {
            EvalArgs::augment_args(clap::Command::new("prompt")).about(
                "Prompt operator (normalize + L1 rules + L2 classifier) on labelled prompts: JSON \
                 lines `{\"text\": ..., \"label\": 0|1}` or CSV `text,label`",
            )
        },
        run: |matches| {
            let args = EvalArgs::from_arg_matches(matches)?;
            eval_prompt(&EvalPromptOptions {
                data: args.data,
                model_dir: args.model_dir,
                config: args.config,
                batch: args.batch,
                rules_only: args.rules_only,
                json: args.json,
            })
        },
    },
    OperatorCommand {
        verb: Verb::Bench,
        name: "prompt",
        command: || {
            BenchPromptOptions::augment_args(clap::Command::new("prompt")).about(
                "The prompt path: bare L2 (tokenize + ONNX Runtime) per batch size over fixed \
                 batches, then the whole operator through the dynamic batcher at open-loop \
                 arrival rates",
            )
        },
        run: |matches| bench_prompt(&BenchPromptOptions::from_arg_matches(matches)?),
    },
];

/// Arguments of `threatflow eval prompt`.
#[derive(Debug, Clone)]
pub struct EvalPromptOptions {
    /// Labelled prompts (JSONL or CSV).
    pub data: PathBuf,
    /// Model root.
    pub model_dir: PathBuf,
    /// Engine config for `[operators.prompt]`.
    pub config: Option<PathBuf>,
    /// Prompts per scoring call.
    pub batch: usize,
    /// L1 only.
    pub rules_only: bool,
    /// JSON line at the end.
    pub json: bool,
}

/// `threatflow eval prompt`.
fn eval_prompt(options: &EvalPromptOptions) -> anyhow::Result<()> {
    use crate::operators::prompt::{eval, PromptScorer};
    let mut prompt: crate::operators::prompt::PromptOperatorConfig =
        operators_config(options.config.as_deref())?
            .section("prompt")
            .map_err(UsageError)?;
    if options.rules_only {
        prompt.l2.enabled = false;
    }
    let scorer = PromptScorer::load(&options.model_dir, &prompt)
        .context("cannot load the prompt operator")?;
    let rows = eval::read_labeled(&options.data).map_err(anyhow::Error::msg)?;
    let evaluation = eval::evaluate(&scorer, &rows, options.batch).map_err(anyhow::Error::msg)?;
    print!("{}", evaluation.report());
    print_json_line_if(options.json, &evaluation)
}

/// Arguments of `threatflow bench prompt`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchPromptOptions {
    /// Prompts (JSONL or CSV, as `eval prompt` reads; labels are ignored).
    #[arg(long)]
    pub data: PathBuf,
    /// Model root holding `prompt/<version>` and `prompt/rules/rules.toml`.
    #[arg(long, default_value = "models")]
    pub model_dir: PathBuf,
    /// Use the first N prompts of the file.
    #[arg(long, default_value_t = 512)]
    pub limit: usize,
    /// Batch sizes of the bare L2 measurement (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub batch_sizes: Vec<usize>,
    /// Passes over the prompts per batch size.
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
    /// Open-loop arrival rates, prompts per second (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "20,100,300")]
    pub rates: Vec<f64>,
    /// Seconds per load level.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Concurrent callers of the open-loop load.
    #[arg(long, default_value_t = 64)]
    pub callers: usize,
    /// Execution provider (`cpu`, `cuda:N`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// ONNX Runtime intra-op threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Batcher: most sequences per batch.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// Batcher: longest wait of the oldest queued sequence, microseconds.
    #[arg(long, default_value_t = 500)]
    pub max_wait_us: u64,
    /// Only the bare L2 measurement.
    #[arg(long, conflicts_with = "load_only")]
    pub direct_only: bool,
    /// Only the open-loop operator measurement.
    #[arg(long)]
    pub load_only: bool,
    /// Print the figures as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// `threatflow bench prompt`.
fn bench_prompt(options: &BenchPromptOptions) -> anyhow::Result<()> {
    let figures = run_bench_prompt(options).map_err(anyhow::Error::msg)?;
    print_json_line_if(options.json, &figures)
}

fn run_bench_prompt(options: &BenchPromptOptions) -> Result<serde_json::Value, String> {
    use crate::operators::prompt::{bench, eval, l2, PromptOperatorConfig, PromptScorer};
    let mut texts: Vec<String> = eval::read_labeled(&options.data)?
        .into_iter()
        .map(|row| row.text)
        .collect();
    texts.truncate(options.limit.max(1));
    let mut config = PromptOperatorConfig::default();
    config.l2.execution_provider = options.device.clone();
    config.l2.intra_threads = options.threads;
    config.l2.max_batch = options.max_batch;
    config.l2.max_wait_us = options.max_wait_us;
    let version_dir = crate::operators::model_version_dir(&options.model_dir, "prompt", "")
        .map_err(|error| error.to_string())?;
    let settings = l2::SessionSettings {
        library: l2::resolve_library(""),
        device: l2::Device::parse(&options.device)?,
        intra_threads: options.threads,
        disabled_optimizers: config.l2.disabled_optimizers.clone(),
    };
    let batch_sizes = if options.load_only {
        &[][..]
    } else {
        &options.batch_sizes[..]
    };
    let rates = if options.direct_only {
        &[][..]
    } else {
        &options.rates[..]
    };
    let (device_used, direct) = bench::direct(
        &version_dir,
        &settings,
        &texts,
        batch_sizes,
        options.repeats,
    )
    .map_err(|error| error.to_string())?;
    println!(
        "bare L2 (tokenize + infer), {} prompts, device {} (asked for {}):",
        texts.len(),
        device_used,
        options.device
    );
    for figure in &direct {
        println!(
            "  batch {:>3}: median {:.2} ms/batch, p95 {:.2} ms, {:.0} prompts/s ({} batches)",
            figure.batch,
            figure.median_batch_ms,
            figure.p95_batch_ms,
            figure.prompts_per_second,
            figure.batches
        );
    }
    let scorer =
        PromptScorer::load(&options.model_dir, &config).map_err(|error| error.to_string())?;
    let mut levels = Vec::new();
    println!(
        "operator path through the batcher (max_batch {}, max_wait {} us), open loop:",
        config.l2.max_batch, config.l2.max_wait_us
    );
    for &rate in rates {
        let figure = bench::open_loop(
            &scorer,
            &texts,
            rate,
            std::time::Duration::from_secs_f64(options.seconds),
            options.callers,
        )?;
        println!(
            "  offered {:>6.0}/s: achieved {:.0}/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, mean batch {:.1}, queue p50 {:.2} ms, inference p50 {:.2} ms",
            figure.offered_per_second,
            figure.achieved_per_second,
            figure.p50_ms,
            figure.p95_ms,
            figure.p99_ms,
            figure.mean_batch,
            figure.queue_p50_ms,
            figure.inference_p50_ms
        );
        levels.push(figure);
    }
    Ok(serde_json::json!({
        "device": scorer.l2_device(),
        "prompts": texts.len(),
        "direct": direct,
        "open_loop": levels,
    }))
}
