//! `threatflow train alert`, `eval alert` and `generate alerts`: the operator's command-line
//! arguments (listed in its [`super::SPEC`]); the work is in [`crate::model_cli`].

use std::path::PathBuf;

use clap::{Args, FromArgMatches};

use crate::operators::command_args::{EvalModel, TrainTarget};
use crate::operators::table::{OperatorCommand, Verb};

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
}

/// The alert operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
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
            crate::model_cli::train_alert(&super::train::TrainOptions {
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
            crate::model_cli::eval_alert(
                &args.data,
                args.model.model(),
                &args.model.model_dir,
                args.rules.as_deref(),
                args.model.json,
            )
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
            crate::model_cli::generate_alerts(
                &args.out,
                args.count,
                args.seed,
                args.holdout_fraction,
            )
        },
    },
];
