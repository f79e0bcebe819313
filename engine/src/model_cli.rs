//! The `train` and `eval` commands: thin plumbing from the command line to each operator's
//! training and evaluation code, with the output conventions every operator shares
//! (human-readable report on stdout; with `--json`, one JSON object on the last line).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::ml::artifact::newest_version;
use crate::operators::flow::dataset::read_nsl_kdd;
use crate::operators::flow::eval::evaluate;
use crate::operators::flow::model::FlowModel;
use crate::operators::flow::train::{train, TrainOptions};

/// `threatflow train flow`.
pub fn train_flow(options: &TrainOptions) -> ExitCode {
    let started = std::time::Instant::now();
    match train(options, rfc3339_utc(std::time::SystemTime::now())) {
        Ok(summary) => {
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
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("train flow failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `threatflow eval flow`.
pub fn eval_flow(data: &Path, model: Option<&Path>, json: bool, report: Option<&Path>) -> ExitCode {
    let directory = match model_directory("flow", model) {
        Ok(directory) => directory,
        Err(code) => return code,
    };
    let model = match FlowModel::load(&directory) {
        Ok(model) => model,
        Err(error) => {
            eprintln!("cannot load {}: {error}", directory.display());
            return ExitCode::FAILURE;
        }
    };
    let rows = match read_nsl_kdd(data) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let evaluation = evaluate(&model, &rows);
    print!("{}", evaluation.render());
    if let Some(report) = report {
        match evaluation.write_report(report) {
            Ok(true) => println!("\nreport written to {}", report.display()),
            Ok(false) => println!(
                "\nreport written to {} (no font found: plots have no text; set THREATFLOW_PLOT_FONT)",
                report.display()
            ),
            Err(error) => {
                eprintln!("cannot write the report: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    if json {
        return print_json_line(&evaluation);
    }
    ExitCode::SUCCESS
}

/// The version directory `eval <operator>` reads: `--model` when given, else the newest
/// under `models/<operator>`; the exit code to return when there is none.
fn model_directory(operator: &str, model: Option<&Path>) -> Result<PathBuf, ExitCode> {
    if let Some(directory) = model {
        return Ok(directory.to_path_buf());
    }
    let root = Path::new("models").join(operator);
    newest_version(&root).ok_or_else(|| {
        eprintln!(
            "no model under {}: pass --model DIR or run `threatflow train {operator}`",
            root.display()
        );
        ExitCode::from(2)
    })
}

/// Prints `value` as the one-line JSON object `--json` promises on the last line of stdout.
fn print_json_line<T: serde::Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string(value) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot render json: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `threatflow train alert`.
pub fn train_alert(options: &crate::operators::alert::train::TrainOptions) -> ExitCode {
    let started = std::time::Instant::now();
    match crate::operators::alert::train::train(options, rfc3339_utc(std::time::SystemTime::now()))
    {
        Ok(summary) => {
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
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("train alert failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `threatflow eval alert`.
pub fn eval_alert(data: &Path, model: Option<&Path>, rules: Option<&Path>, json: bool) -> ExitCode {
    use crate::operators::alert::{model::AlertModel, rules::RuleSet, scorer::BlendWeights};
    let directory = match model_directory("alert", model) {
        Ok(directory) => directory,
        Err(code) => return code,
    };
    let model = match AlertModel::load(&directory) {
        Ok(model) => model,
        Err(error) => {
            eprintln!("cannot load {}: {error}", directory.display());
            return ExitCode::FAILURE;
        }
    };
    let rules = match RuleSet::load(rules, &model.manifest.features) {
        Ok(rules) => rules,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let alerts = match std::fs::read_to_string(data)
        .map_err(|error| error.to_string())
        .and_then(|text| crate::operators::alert::synth::read_jsonl(&text))
    {
        Ok(alerts) => alerts,
        Err(error) => {
            eprintln!("{}: {error}", data.display());
            return ExitCode::FAILURE;
        }
    };
    let evaluation =
        crate::operators::alert::eval::evaluate(model, rules, BlendWeights::default(), &alerts);
    print!("{}", evaluation.render());
    if json {
        return print_json_line(&evaluation);
    }
    ExitCode::SUCCESS
}

/// `threatflow generate alerts`.
pub fn generate_alerts(out: &Path, count: usize, seed: u64, holdout_fraction: f64) -> ExitCode {
    use crate::operators::alert::synth::{generate, split, write_jsonl, GeneratorConfig};
    if !(0.0..1.0).contains(&holdout_fraction) {
        eprintln!("--holdout-fraction must be in [0, 1)");
        return ExitCode::from(2);
    }
    let alerts = generate(&GeneratorConfig {
        seed,
        count,
        ..GeneratorConfig::default()
    });
    let total = alerts.len();
    let (train, holdout) = split(alerts, holdout_fraction);
    for (name, part) in [("train.jsonl", &train), ("holdout.jsonl", &holdout)] {
        if let Err(error) = write_jsonl(&out.join(name), part) {
            eprintln!("{}: {error}", out.join(name).display());
            return ExitCode::FAILURE;
        }
    }
    let warmup = holdout.iter().filter(|alert| alert.warmup).count();
    println!(
        "{total} alerts (seed {seed}): {} in {}, {} held out (+{warmup} warm-up) in {}",
        train.len(),
        out.join("train.jsonl").display(),
        holdout.len() - warmup,
        out.join("holdout.jsonl").display()
    );
    ExitCode::SUCCESS
}

/// `threatflow train address`.
pub fn train_address(options: &crate::operators::address::train::TrainOptions) -> ExitCode {
    let started = std::time::Instant::now();
    match crate::operators::address::train::train(
        options,
        rfc3339_utc(std::time::SystemTime::now()),
    ) {
        Ok(summary) => {
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
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("train address failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `threatflow eval address`.
pub fn eval_address(
    data: &Path,
    model: Option<&Path>,
    config: &crate::operators::address::AddressOperatorConfig,
    json: bool,
) -> ExitCode {
    use crate::operators::address::{model::AddressModel, synth::read_labeled};
    let directory = match model_directory("address", model) {
        Ok(directory) => directory,
        Err(code) => return code,
    };
    let scorer = match AddressModel::load(&directory)
        .map_err(|error| format!("cannot load {}: {error}", directory.display()))
        .and_then(|model| config.scorer(model))
    {
        Ok(scorer) => scorer,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let rows = match std::fs::read_to_string(data)
        .map_err(|error| error.to_string())
        .and_then(|text| read_labeled(&text))
    {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("{}: {error}", data.display());
            return ExitCode::FAILURE;
        }
    };
    let evaluation = crate::operators::address::eval::evaluate(&scorer, &rows);
    print!("{}", evaluation.report());
    if json {
        return print_json_line(&evaluation);
    }
    ExitCode::SUCCESS
}

/// `threatflow generate addresses`.
pub fn generate_addresses(
    sources: &Path,
    out: &Path,
    count: usize,
    fraud_share: f64,
    seed: u64,
    holdout_fraction: f64,
) -> ExitCode {
    use crate::operators::address::synth::{generate, split, write_jsonl, AddressSources};
    if !(0.0..1.0).contains(&holdout_fraction) || !(0.0..1.0).contains(&fraud_share) {
        eprintln!("--holdout-fraction and --fraud-share must be in [0, 1)");
        return ExitCode::from(2);
    }
    let sources = match AddressSources::load(sources) {
        Ok(sources) => sources,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let rows = generate(&sources, count, fraud_share, seed);
    let (train, holdout) = split(&rows, holdout_fraction);
    for (name, part) in [("train.jsonl", &train), ("holdout.jsonl", &holdout)] {
        if let Err(error) = write_jsonl(&out.join(name), part) {
            eprintln!("{}: {error}", out.join(name).display());
            return ExitCode::FAILURE;
        }
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
    ExitCode::SUCCESS
}

/// `time` as RFC 3339 UTC with seconds (`2026-11-23T17:04:05Z`).
pub fn rfc3339_utc(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `[operators]` section of `config` (a full engine config file), or defaults.
fn operators_config(config: Option<&Path>) -> Result<crate::operators::OperatorsConfig, ExitCode> {
    let Some(path) = config else {
        return Ok(Default::default());
    };
    crate::config::EngineConfig::load(path)
        .map(|config| config.operators)
        .map_err(|error| {
            eprintln!("{}: {error}", path.display());
            ExitCode::from(2)
        })
}

/// `threatflow train email`.
pub fn train_email(
    config: Option<&Path>,
    mut options: crate::operators::email::train::TrainOptions,
) -> ExitCode {
    let email = match operators_config(config) {
        Ok(operators) => operators.email,
        Err(code) => return code,
    };
    if let Some(features) = email.features {
        options.settings = features;
    }
    let started = std::time::Instant::now();
    match crate::operators::email::train::train(&options, rfc3339_utc(std::time::SystemTime::now()))
    {
        Ok(summary) => {
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
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("train email failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `threatflow eval email`.
pub fn eval_email(
    data: &Path,
    model: Option<&Path>,
    config: Option<&Path>,
    json: bool,
) -> ExitCode {
    use crate::operators::email::features::FeatureExtractor;
    use crate::operators::email::model::EmailModel;
    let email = match operators_config(config) {
        Ok(operators) => operators.email,
        Err(code) => return code,
    };
    let directory = match model_directory("email", model) {
        Ok(directory) => directory,
        Err(code) => return code,
    };
    let loaded = EmailModel::load(&directory)
        .map_err(|error| format!("cannot load {}: {error}", directory.display()))
        .and_then(|model| {
            let settings = email
                .features
                .clone()
                .unwrap_or_else(|| model.manifest.feature_settings.clone());
            FeatureExtractor::new(&settings).map(|extractor| (model, extractor))
        });
    let (model, extractor) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let window = email.window_settings(&model);
    let evaluation = match crate::operators::email::eval::evaluate(
        &model,
        &extractor,
        data,
        &email.ensemble_settings(),
        &window,
    ) {
        Ok(evaluation) => evaluation,
        Err(error) => {
            eprintln!("eval email failed: {error}");
            return ExitCode::FAILURE;
        }
    };
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
    if json {
        return print_json_line(&evaluation);
    }
    ExitCode::SUCCESS
}

/// `threatflow generate emails`.
pub fn generate_emails(options: &crate::operators::email::synth::GenerateOptions) -> ExitCode {
    match crate::operators::email::synth::generate(options) {
        Ok(summary) => {
            println!(
                "{} training and {} holdout messages ({} injected from {} insiders: {}) in {}",
                summary.train_messages,
                summary.holdout_messages,
                summary.injected_messages,
                summary.insiders.len(),
                summary.insiders.join(", "),
                options.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("generate emails failed: {error}");
            ExitCode::FAILURE
        }
    }
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
pub fn eval_prompt(options: &EvalPromptOptions) -> ExitCode {
    use crate::operators::prompt::{eval, PromptScorer};
    let mut prompt = match operators_config(options.config.as_deref()) {
        Ok(operators) => operators.prompt,
        Err(code) => return code,
    };
    if options.rules_only {
        prompt.l2.enabled = false;
    }
    let scorer = match PromptScorer::load(&options.model_dir, &prompt) {
        Ok(scorer) => scorer,
        Err(error) => {
            eprintln!("cannot load the prompt operator: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rows = match eval::read_labeled(&options.data) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    match eval::evaluate(&scorer, &rows, options.batch) {
        Ok(evaluation) => {
            print!("{}", evaluation.report());
            if options.json {
                return print_json_line(&evaluation);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("eval prompt failed: {error}");
            ExitCode::FAILURE
        }
    }
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
pub fn bench_prompt(options: &BenchPromptOptions) -> ExitCode {
    match run_bench_prompt(options) {
        Ok(figures) => {
            if options.json {
                return print_json_line(&figures);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench prompt failed: {error}");
            ExitCode::FAILURE
        }
    }
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
