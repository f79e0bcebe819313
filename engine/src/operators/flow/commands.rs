//! `threatflow train flow` and `threatflow eval flow`: the operator's command-line arguments
//! (listed in its [`super::SPEC`]); the work is in [`crate::model_cli`].

use std::path::PathBuf;

use clap::{Args, FromArgMatches};

use crate::operators::command_args::{EvalModel, TrainTarget};
use crate::operators::table::{OperatorCommand, Verb};

/// `threatflow train flow`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// NSL-KDD training file.
    #[arg(long, default_value = "models/flow/data/KDDTrain+_20Percent.txt")]
    data: PathBuf,
    #[command(flatten)]
    target: TrainTarget,
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
}

/// `threatflow eval flow`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled NSL-KDD file.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    model: EvalModel,
    /// Also write report.md, report.json, roc.png and pr.png into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// The flow operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
    OperatorCommand {
        verb: Verb::Train,
        name: "flow",
        command: || {
            TrainArgs::augment_args(clap::Command::new("flow")).about(
                "Network-flow model set (binary + category GBDTs, team thresholds) from an \
                 NSL-KDD file; early stopping and thresholds use a stratified split of that file",
            )
        },
        run: |matches| {
            let args = TrainArgs::from_arg_matches(matches)?;
            crate::model_cli::train_flow(&super::train::TrainOptions {
                out: args.target.out("flow"),
                data: args.data,
                version: args.target.version,
                seed: args.seed,
                validation_fraction: args.validation_fraction,
                false_positive_cost: args.fp_cost,
                false_negative_cost: args.fn_cost,
            })
        },
    },
    OperatorCommand {
        verb: Verb::Eval,
        name: "flow",
        command: || {
            EvalArgs::augment_args(clap::Command::new("flow"))
                .about("Network-flow model set on an NSL-KDD file")
        },
        run: |matches| {
            let args = EvalArgs::from_arg_matches(matches)?;
            crate::model_cli::eval_flow(
                &args.data,
                args.model.model(),
                &args.model.model_dir,
                args.model.json,
                args.report.as_deref(),
            )
        },
    },
];
