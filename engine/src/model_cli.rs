//! The `train`, `eval`, `generate` and `bench` commands: thin plumbing from the command line
//! to each operator's training and evaluation code, with the output conventions every
//! operator shares (human-readable report on stdout; with `--json`, one JSON object on the last
//! line). Every command returns `anyhow::Result`; [`exit_code`] is the one place that turns a
//! result into a process exit status: 0, 2 for a usage problem ([`UsageError`]: a bad
//! argument, no model to evaluate, an invalid config file), 1 for anything else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::ml::artifact::newest_version;
use crate::operators::flow::dataset::read_nsl_kdd;
use crate::operators::flow::eval::evaluate;
use crate::operators::flow::model::FlowModel;
use crate::operators::flow::train::{train, TrainOptions};

/// A problem with how the command was called (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit status of a command's result; prints the error with its causes to stderr.
pub fn exit_code(command: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<UsageError>().is_some() => {
            eprintln!("{command}: {}", render(&error));
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("{command} failed: {}", render(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause once (many of our errors already quote their source
/// in their message).
fn render(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// `threatflow train flow`.
pub fn train_flow(options: &TrainOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let summary = train(options, rfc3339_utc(std::time::SystemTime::now()))?;
    let record = summary.model.manifest.training.as_ref();
    println!(
        "trained flow model {} in {:.1} s: binary {} rounds, category {} rounds; written to {}\n",
        summary.model.manifest.version,
        started.elapsed().as_secs_f64(),
        record.map_or(0, |record| record.binary_rounds),
        record.map_or(0, |record| record.category_rounds),
        options.out.display()
    );
    println!(
        "validation split (held out from {}):\n",
        options.data.display()
    );
    print!("{}", summary.validation.render());
    Ok(())
}

/// `threatflow eval flow`.
pub fn eval_flow(
    data: &Path,
    model: Option<&Path>,
    model_dir: &Path,
    json: bool,
    report: Option<&Path>,
) -> anyhow::Result<()> {
    let directory = model_directory("flow", model, model_dir)?;
    let model = FlowModel::load(&directory)
        .with_context(|| format!("cannot load {}", directory.display()))?;
    let rows = read_nsl_kdd(data)?;
    let evaluation = evaluate(&model, &rows);
    print!("{}", evaluation.render());
    if let Some(report) = report {
        let with_text = evaluation
            .write_report(report)
            .map_err(|error| anyhow::anyhow!("cannot write the report: {error}"))?;
        if with_text {
            println!("\nreport written to {}", report.display());
        } else {
            println!(
                "\nreport written to {} (no font found: plots have no text; set THREATFLOW_PLOT_FONT)",
                report.display()
            );
        }
    }
    print_json_line_if(json, &evaluation)
}

/// The version directory `eval <operator>` reads: `--model` when given, else the newest
/// under `<model_dir>/<operator>` (a usage error when there is none).
fn model_directory(
    operator: &str,
    model: Option<&Path>,
    model_dir: &Path,
) -> anyhow::Result<PathBuf> {
    if let Some(directory) = model {
        return Ok(directory.to_path_buf());
    }
    let root = model_dir.join(operator);
    newest_version(&root).ok_or_else(|| {
        UsageError(format!(
            "no model under {}: pass --model DIR or run `threatflow train {operator}`",
            root.display()
        ))
        .into()
    })
}

/// With `json`, prints `value` as the one-line JSON object `--json` promises on the last line
/// of stdout.
fn print_json_line_if<T: serde::Serialize>(json: bool, value: &T) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(value).context("cannot render json")?
        );
    }
    Ok(())
}

/// `threatflow train alert`.
pub fn train_alert(options: &crate::operators::alert::train::TrainOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    {
        let summary = crate::operators::alert::train::train(
            options,
            rfc3339_utc(std::time::SystemTime::now()),
        )?;
        {
            let training = &summary.model.manifest.training;
            println!(
                "trained alert model {} in {:.1} s on {} alerts (risk model {} rounds); written to {}\n",
                summary.model.manifest.version,
                started.elapsed().as_secs_f64(),
                training.train_rows,
                training.risk_rounds,
                options.out.display()
            );
            println!("top features (forest, mean decrease in impurity):");
            for importance in summary.model.manifest.feature_importances.iter().take(8) {
                println!("  {:<28} {:.4}", importance.feature, importance.importance);
            }
            println!(
                "\nvalidation (latest {} alerts of {}):\n",
                training.validation_rows,
                options.data.display()
            );
            print!("{}", summary.validation.render());
        }
    }
    Ok(())
}

/// `threatflow eval alert`.
pub fn eval_alert(
    data: &Path,
    model: Option<&Path>,
    model_dir: &Path,
    rules: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    use crate::operators::alert::{model::AlertModel, rules::RuleSet, scorer::BlendWeights};
    let directory = model_directory("alert", model, model_dir)?;
    let model = AlertModel::load(&directory)
        .with_context(|| format!("cannot load {}", directory.display()))?;
    let rules = RuleSet::load(rules, &model.manifest.features)?;
    let alerts = std::fs::read_to_string(data)
        .map_err(|error| error.to_string())
        .and_then(|text| crate::operators::alert::synth::read_jsonl(&text))
        .map_err(|error| anyhow::anyhow!("{}: {error}", data.display()))?;
    let evaluation =
        crate::operators::alert::eval::evaluate(model, rules, BlendWeights::default(), &alerts);
    print!("{}", evaluation.render());
    print_json_line_if(json, &evaluation)
}

/// `threatflow generate alerts`.
pub fn generate_alerts(
    out: &Path,
    count: usize,
    seed: u64,
    holdout_fraction: f64,
) -> anyhow::Result<()> {
    use crate::operators::alert::synth::{generate, split, write_jsonl, GeneratorConfig};
    if !(0.0..1.0).contains(&holdout_fraction) {
        return Err(UsageError("--holdout-fraction must be in [0, 1)".to_owned()).into());
    }
    let alerts = generate(&GeneratorConfig {
        seed,
        count,
        ..GeneratorConfig::default()
    });
    let total = alerts.len();
    let (train, holdout) = split(alerts, holdout_fraction);
    for (name, part) in [("train.jsonl", &train), ("holdout.jsonl", &holdout)] {
        write_jsonl(&out.join(name), part).with_context(|| out.join(name).display().to_string())?;
    }
    let warmup = holdout.iter().filter(|alert| alert.warmup).count();
    println!(
        "{total} alerts (seed {seed}): {} in {}, {} held out (+{warmup} warm-up) in {}",
        train.len(),
        out.join("train.jsonl").display(),
        holdout.len() - warmup,
        out.join("holdout.jsonl").display()
    );
    Ok(())
}

/// `threatflow train address`.
pub fn train_address(
    options: &crate::operators::address::train::TrainOptions,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    {
        let summary = crate::operators::address::train::train(
            options,
            rfc3339_utc(std::time::SystemTime::now()),
        )?;
        {
            let manifest = &summary.manifest;
            let training = &manifest.training;
            println!(
                "trained address model {} (calibration {}) in {:.1} s on {} legitimate and {} fraudulent addresses ({} unparseable left out); written to {}",
                manifest.version,
                manifest.calibration_version,
                started.elapsed().as_secs_f64(),
                training.legitimate_rows,
                training.fraudulent_rows,
                summary.unparseable,
                options.out.display()
            );
            println!("domain lists: {}\n", manifest.domain_lists_version);
            println!(
                "out-of-fold ({} folds) on {}:\n",
                training.folds,
                options.data.display()
            );
            print!("{}", summary.evaluation.report());
        }
    }
    Ok(())
}

/// `threatflow eval address`.
pub fn eval_address(
    data: &Path,
    model: Option<&Path>,
    model_dir: &Path,
    config: &crate::operators::address::AddressOperatorConfig,
    json: bool,
) -> anyhow::Result<()> {
    use crate::operators::address::{model::AddressModel, synth::read_labeled};
    let directory = model_directory("address", model, model_dir)?;
    let model = AddressModel::load(&directory)
        .with_context(|| format!("cannot load {}", directory.display()))?;
    let scorer = config.scorer(model).map_err(anyhow::Error::msg)?;
    let rows = std::fs::read_to_string(data)
        .map_err(|error| error.to_string())
        .and_then(|text| read_labeled(&text))
        .map_err(|error| anyhow::anyhow!("{}: {error}", data.display()))?;
    let evaluation = crate::operators::address::eval::evaluate(&scorer, &rows);
    print!("{}", evaluation.report());
    print_json_line_if(json, &evaluation)
}

/// `threatflow generate addresses`.
pub fn generate_addresses(
    sources: &Path,
    out: &Path,
    count: usize,
    fraud_share: f64,
    seed: u64,
    holdout_fraction: f64,
) -> anyhow::Result<()> {
    use crate::operators::address::synth::{generate, split, write_jsonl, AddressSources};
    if !(0.0..1.0).contains(&holdout_fraction) || !(0.0..1.0).contains(&fraud_share) {
        return Err(UsageError(
            "--holdout-fraction and --fraud-share must be in [0, 1)".to_owned(),
        )
        .into());
    }
    let sources = AddressSources::load(sources).map_err(anyhow::Error::msg)?;
    let rows = generate(&sources, count, fraud_share, seed);
    let (train, holdout) = split(&rows, holdout_fraction);
    for (name, part) in [("train.jsonl", &train), ("holdout.jsonl", &holdout)] {
        write_jsonl(&out.join(name), part)
            .map_err(|error| anyhow::anyhow!("{}: {error}", out.join(name).display()))?;
    }
    println!(
        "{} addresses (seed {seed}, {} fraudulent): {} in {}, {} held out in {}",
        rows.len(),
        rows.iter().filter(|row| row.label == 1).count(),
        train.len(),
        out.join("train.jsonl").display(),
        holdout.len(),
        out.join("holdout.jsonl").display()
    );
    Ok(())
}

/// `time` as RFC 3339 UTC with seconds (`2026-11-23T17:04:05Z`).
pub fn rfc3339_utc(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `[operators]` section of `config` (a full engine config file), or defaults.
fn operators_config(config: Option<&Path>) -> anyhow::Result<crate::config::OperatorSections> {
    let Some(path) = config else {
        return Ok(Default::default());
    };
    crate::config::EngineConfig::load(path)
        .map(|config| config.operators)
        .map_err(|error| UsageError(format!("{}: {error}", path.display())).into())
}

/// `threatflow train email`.
pub fn train_email(
    config: Option<&Path>,
    mut options: crate::operators::email::train::TrainOptions,
) -> anyhow::Result<()> {
    let email: crate::operators::email::EmailOperatorConfig = operators_config(config)?
        .section("email")
        .map_err(UsageError)?;
    if let Some(features) = email.features {
        options.settings = features;
    }
    let started = std::time::Instant::now();
    {
        let summary = crate::operators::email::train::train(
            &options,
            rfc3339_utc(std::time::SystemTime::now()),
        )
        .map_err(anyhow::Error::msg)?;
        {
            let training = &summary.manifest.training;
            let metrics = &summary.manifest.metrics;
            println!(
                "trained email model {} in {:.1} s on {} messages ({} refused): {} fitted, {} held out for the score scales; one-class SVM on {} rows kept {} support vectors; written to {}",
                summary.manifest.version,
                started.elapsed().as_secs_f64(),
                training.messages,
                training.refused,
                training.fit_rows,
                training.calibration_rows,
                training.one_class_rows,
                training.one_class_support_vectors,
                summary.directory.display()
            );
            println!(
                "held-out normal mail: voted anomalies (2 of 3 at p95) {:.4}; per detector {:?}; vote overlap (ae-ocsvm, ae-if, ocsvm-if) {:?}",
                metrics.voted_share_at_p95,
                metrics.detector_vote_share_at_p95,
                metrics.vote_overlap
            );
        }
    }
    Ok(())
}

/// `threatflow eval email`.
pub fn eval_email(
    data: &Path,
    model: Option<&Path>,
    model_dir: &Path,
    config: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    use crate::operators::email::features::FeatureExtractor;
    use crate::operators::email::model::EmailModel;
    let email: crate::operators::email::EmailOperatorConfig = operators_config(config)?
        .section("email")
        .map_err(UsageError)?;
    let directory = model_directory("email", model, model_dir)?;
    let model = EmailModel::load(&directory)
        .with_context(|| format!("cannot load {}", directory.display()))?;
    let settings = email
        .features
        .clone()
        .unwrap_or_else(|| model.manifest.feature_settings.clone());
    let extractor = FeatureExtractor::new(&settings).map_err(anyhow::Error::msg)?;
    let window = email.window_settings(&model);
    let evaluation = crate::operators::email::eval::evaluate(
        &model,
        &extractor,
        data,
        &email.ensemble_settings(),
        &window,
    )
    .map_err(anyhow::Error::msg)?;
    println!(
        "{} messages ({} injected, {} refused) from {} users ({} insiders), model {}",
        evaluation.messages,
        evaluation.injected,
        evaluation.refused,
        evaluation.users,
        evaluation.insiders,
        model.manifest.version
    );
    println!(
        "message level: ROC-AUC {:.4}, PR-AUC {:.4}; 2-of-3 vote precision {:.3}, recall {:.3}, false-positive rate {:.4}",
        evaluation.message_auc,
        evaluation.message_pr_auc,
        evaluation.vote_precision,
        evaluation.vote_recall,
        evaluation.vote_false_positive_rate
    );
    println!(
        "user level: recall of insiders in the top 5 % ({} users): {:.3}; user ROC-AUC {:.4}; by scenario {:?}",
        evaluation.top_users,
        evaluation.user_recall_at_5pct,
        evaluation.user_auc,
        evaluation.user_recall_by_scenario
    );
    for (user, rank, risk) in &evaluation.missed_insiders {
        println!("missed insider {user}: rank {rank}, peak risk {risk:.4}");
    }
    println!(
        "window: {} late events dropped; snapshot {:.0} bytes per active user",
        evaluation.late_dropped, evaluation.snapshot_bytes_per_user
    );
    print_json_line_if(json, &evaluation)
}

/// `threatflow generate emails`.
pub fn generate_emails(
    options: &crate::operators::email::synth::GenerateOptions,
) -> anyhow::Result<()> {
    {
        let summary =
            crate::operators::email::synth::generate(options).map_err(anyhow::Error::msg)?;
        {
            println!(
                "{} training and {} holdout messages ({} injected from {} insiders: {}) in {}",
                summary.train_messages,
                summary.holdout_messages,
                summary.injected_messages,
                summary.insiders.len(),
                summary.insiders.join(", "),
                options.out.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(rfc3339_utc(leap_day), "2000-02-29T01:02:03Z");
        let late = UNIX_EPOCH + Duration::from_secs(1_795_392_000);
        assert_eq!(rfc3339_utc(late), "2026-11-23T00:00:00Z");
    }
}

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
pub fn eval_prompt(options: &EvalPromptOptions) -> anyhow::Result<()> {
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
pub fn bench_prompt(options: &BenchPromptOptions) -> anyhow::Result<()> {
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
    let direct = bench::direct(
        &version_dir,
        &settings,
        &texts,
        batch_sizes,
        options.repeats,
    )
    .map_err(|error| error.to_string())?;
    println!(
        "bare L2 (tokenize + infer), {} prompts, device {}:",
        texts.len(),
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
