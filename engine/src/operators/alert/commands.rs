//! `threatflow train alert`, `eval alert` and `generate alerts`: the operator's command-line
//! arguments (listed in its [`super::SPEC`]); and what they run (shared plumbing: [`crate::model_cli`]).

use std::path::{Path, PathBuf};

use clap::{Args, FromArgMatches};

use crate::model_cli::{print_json_line_if, rfc3339_utc, UsageError};
use crate::operators::command_args::{EvalModel, TrainTarget};
use crate::operators::table::{OperatorCommand, Verb};
use anyhow::Context;

/// `threatflow train alert`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labelled alerts, JSON lines.
    #[arg(long, default_value = "models/alert/data/train.jsonl")]
    data: PathBuf,
    #[command(flatten)]
    target: TrainTarget,
    /// Seed of the forests.
    #[arg(long, default_value_t = 20_261_123)]
    seed: u64,
    /// Latest share of the rows held out for early stopping and validation.
    #[arg(long, default_value_t = 0.15)]
    validation_fraction: f64,
    /// Share of alerts the anomaly flag should mark.
    #[arg(long, default_value_t = 0.05)]
    contamination: f64,
}

/// `threatflow eval alert`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled alerts.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    model: EvalModel,
    /// Rule file (default: the shipped models/alert/rules.toml).
    #[arg(long)]
    rules: Option<PathBuf>,
}

/// `threatflow generate alerts`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
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
    /// Add benign bursts that look like campaigns (patch days, the SOC's own scanner), for
    /// correlation figures; the shipped model's data has none.
    #[arg(long)]
    lookalikes: bool,
}

/// The alert operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
    OperatorCommand {
        verb: Verb::DriftReference,
        name: "alert",
        command: || {
            crate::operators::command_args::DriftReferenceArgs::augment_args(clap::Command::new(
                "alert",
            ))
            .about(
                "Add the drift watch's reference sample (the fitting rows of the training file) \
                 to an alert version that has none (`train alert` writes one itself)",
            )
        },
        run: |matches| {
            crate::operators::command_args::DriftReferenceArgs::run(matches, |data, seed, model| {
                let manifest = super::model::AlertModel::load(model)?.manifest;
                let (_, alerts) =
                    super::train::read_training_alerts(data).map_err(anyhow::Error::msg)?;
                let fitted: Vec<&crate::events::AlertEvent> = alerts
                    .iter()
                    .take(manifest.training.train_rows)
                    .map(|a| &a.alert)
                    .collect();
                Ok(super::drift::write_reference(&fitted, seed, model)?)
            })
        },
    },
    OperatorCommand {
        verb: Verb::Train,
        name: "alert",
        command: || {
            TrainArgs::augment_args(clap::Command::new("alert")).about(
                "SIEM alert model set (disposition forest, isolation forest, risk GBDT) from \
                 labelled alerts (`threatflow generate alerts` writes them); the latest rows \
                 validate",
            )
        },
        run: |matches| {
            let args = TrainArgs::from_arg_matches(matches)?;
            train_alert(&super::train::TrainOptions {
                out: args.target.out("alert"),
                data: args.data,
                version: args.target.version,
                seed: args.seed,
                validation_fraction: args.validation_fraction,
                contamination: args.contamination,
            })
        },
    },
    OperatorCommand {
        verb: Verb::Eval,
        name: "alert",
        command: || {
            EvalArgs::augment_args(clap::Command::new("alert")).about(
                "SIEM alert model set on labelled alerts (JSON lines, time order), beside a \
                 rules-only baseline",
            )
        },
        run: |matches| {
            let args = EvalArgs::from_arg_matches(matches)?;
            eval_alert(&args.data, &args.model, args.rules.as_deref())
        },
    },
    OperatorCommand {
        verb: Verb::Generate,
        name: "alerts",
        command: || {
            GenerateArgs::augment_args(clap::Command::new("alerts")).about(
                "Labelled SIEM alerts grounded in MITRE ATT&CK (recipe: models/alert/README.md): \
                 writes `train.jsonl` (first part by time) and `holdout.jsonl` (the rest, after \
                 a day of warm-up rows) into `--out`",
            )
        },
        run: |matches| {
            let args = GenerateArgs::from_arg_matches(matches)?;
            generate_alerts(
                &args.out,
                args.count,
                args.seed,
                args.holdout_fraction,
                args.lookalikes,
            )
        },
    },
];

/// `threatflow train alert`.
fn train_alert(options: &crate::operators::alert::train::TrainOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let summary =
        crate::operators::alert::train::train(options, rfc3339_utc(std::time::SystemTime::now()))?;
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
    Ok(())
}

/// `threatflow eval alert`.
fn eval_alert(data: &Path, model: &EvalModel, rules: Option<&Path>) -> anyhow::Result<()> {
    use crate::operators::alert::{model::AlertModel, rules::RuleSet, scorer::BlendWeights};
    let json = model.json;
    let model = model.load("alert", AlertModel::load)?;
    let rules = RuleSet::load(rules, &model.manifest.features)?;
    let alerts = std::fs::read_to_string(data)
        .map_err(|error| error.to_string())
        .and_then(|text| crate::operators::alert::synth::read_jsonl(&text))
        .map_err(|error| anyhow::anyhow!("{}: {error}", data.display()))?;
    let weights = BlendWeights::default();
    let make = |weights: BlendWeights| {
        crate::operators::alert::scorer::AlertScorer::new(model.clone(), rules.clone(), weights)
    };
    // The operator's default correlation, the same on users and hosts only, and with a 2 h
    // window.
    use crate::operators::alert::incidents::{CorrelationSettings, EntityKinds};
    let defaults = crate::operators::alert::AlertOperatorConfig::default().correlation();
    let stages =
        crate::operators::alert::eval_incidents::stage_table(make, weights, &alerts, &defaults);
    let incidents = [
        defaults,
        CorrelationSettings {
            entities: EntityKinds {
                ips: false,
                ..EntityKinds::ALL
            },
            ..defaults
        },
        CorrelationSettings {
            window_ms: 2 * 3_600_000,
            ..defaults
        },
    ]
    .iter()
    .map(|settings| {
        crate::operators::alert::eval_incidents::incident_figures(&make(weights), &alerts, settings)
    })
    .collect();
    let mut evaluation = crate::operators::alert::eval::evaluate(model, rules, weights, &alerts);
    evaluation.stages = stages;
    evaluation.incidents = incidents;
    print!("{}", evaluation.render());
    print_json_line_if(json, &evaluation)
}

/// `threatflow generate alerts`.
fn generate_alerts(
    out: &Path,
    count: usize,
    seed: u64,
    holdout_fraction: f64,
    lookalikes: bool,
) -> anyhow::Result<()> {
    use crate::operators::alert::synth::{generate, split, write_jsonl, GeneratorConfig};
    if !(0.0..1.0).contains(&holdout_fraction) {
        return Err(UsageError("--holdout-fraction must be in [0, 1)".to_owned()).into());
    }
    let alerts = generate(&GeneratorConfig {
        seed,
        count,
        lookalikes,
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
