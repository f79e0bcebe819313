//! `threatflow train email`, `eval email` and `generate emails`: the operator's command-line
//! arguments (listed in its [`super::SPEC`]); the work is in [`crate::model_cli`].

use std::path::PathBuf;

use clap::{Args, FromArgMatches};

use crate::operators::command_args::{EvalModel, TrainTarget};
use crate::operators::table::{OperatorCommand, Verb};

/// `threatflow train email`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Folder of normal mail.
    #[arg(long, default_value = "models/email/data/train")]
    data: PathBuf,
    #[command(flatten)]
    target: TrainTarget,
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
}

/// `threatflow eval email`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled mail folder.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    model: EvalModel,
    /// Engine config whose `[operators.email]` settings (weights, vote percentile,
    /// window, features) apply; defaults otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `threatflow generate emails`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
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
}

/// The email operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
    OperatorCommand {
        verb: Verb::Train,
        name: "email",
        command: || {
            TrainArgs::augment_args(clap::Command::new("email")).about(
                "Insider-threat email ensemble (autoencoder, one-class SVM, isolation forest) \
                 from a folder of normal mail (`*.jsonl` email events, `*.eml`, `*.mbox`)",
            )
        },
        run: |matches| {
            let args = TrainArgs::from_arg_matches(matches)?;
            crate::model_cli::train_email(
                args.config.as_deref(),
                super::train::TrainOptions {
                    data: args.data,
                    models: args.target.model_dir,
                    version: args.target.version,
                    seed: args.seed,
                    calibration_fraction: args.calibration_fraction,
                    one_class_rows: args.one_class_rows,
                    nu: args.nu,
                    ..Default::default()
                },
            )
        },
    },
    OperatorCommand {
        verb: Verb::Eval,
        name: "email",
        command: || {
            EvalArgs::augment_args(clap::Command::new("email")).about(
                "Insider-threat email ensemble on a labelled mail folder (`labels.csv` beside \
                 the mail, as `generate emails` writes): message ROC/PR-AUC, user recall in the \
                 top 5 %",
            )
        },
        run: |matches| {
            let args = EvalArgs::from_arg_matches(matches)?;
            crate::model_cli::eval_email(
                &args.data,
                args.model.model(),
                &args.model.model_dir,
                args.config.as_deref(),
                args.model.json,
            )
        },
    },
    OperatorCommand {
        verb: Verb::Generate,
        name: "emails",
        command: || {
            GenerateArgs::augment_args(clap::Command::new("emails")).about(
                "An organisation's mail from SpamAssassin ham text with injected insider \
                 scenarios (recipe: models/email/README.md): writes `train/emails.jsonl` \
                 (normal mail) and `holdout/emails.jsonl` + `holdout/labels.csv` into `--out`",
            )
        },
        run: |matches| {
            let args = GenerateArgs::from_arg_matches(matches)?;
            crate::model_cli::generate_emails(&super::synth::GenerateOptions {
                sources: args.sources,
                out: args.out,
                users: args.users,
                insiders: args.insiders,
                weeks: args.weeks,
                holdout_fraction: args.holdout_fraction,
                seed: args.seed,
            })
        },
    },
];
