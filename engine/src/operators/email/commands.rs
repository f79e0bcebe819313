//! `threatflow train email`, `eval email` and `generate emails`: the operator's command-line
//! arguments (listed in its [`super::SPEC`]); and what they run (shared plumbing: [`crate::model_cli`]).

use std::path::{Path, PathBuf};

use clap::{Args, FromArgMatches};

use crate::model_cli::{operators_config, print_json_line_if, rfc3339_utc, UsageError};
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
        verb: Verb::DriftReference,
        name: "email",
        command: || {
            crate::operators::command_args::DriftReferenceArgs::augment_args(clap::Command::new(
                "email",
            ))
            .about(
                "Add the drift watch's reference sample (messages of the training folder) to an \
                 email version that has none (`train email` writes one itself)",
            )
        },
        run: |matches| {
            crate::operators::command_args::DriftReferenceArgs::run(matches, |data, seed, model| {
                let folder = super::message::read_mail_folder(data)?;
                let messages: Vec<super::message::MailMessage> = folder
                    .into_iter()
                    .filter_map(|entry| entry.message.ok())
                    .collect();
                Ok(super::drift::write_reference(messages.iter(), seed, model)?)
            })
        },
    },
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
            train_email(
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
            eval_email(&args.data, &args.model, args.config.as_deref())
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
            generate_emails(&super::synth::GenerateOptions {
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

/// `threatflow train email`.
fn train_email(
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
    let summary =
        crate::operators::email::train::train(&options, rfc3339_utc(std::time::SystemTime::now()))
            .map_err(anyhow::Error::msg)?;
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
    Ok(())
}

/// `threatflow eval email`.
fn eval_email(data: &Path, model: &EvalModel, config: Option<&Path>) -> anyhow::Result<()> {
    use crate::operators::email::features::FeatureExtractor;
    use crate::operators::email::model::EmailModel;
    let email: crate::operators::email::EmailOperatorConfig = operators_config(config)?
        .section("email")
        .map_err(UsageError)?;
    let json = model.json;
    let model = model.load("email", EmailModel::load)?;
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
fn generate_emails(
    options: &crate::operators::email::synth::GenerateOptions,
) -> anyhow::Result<()> {
    let summary = crate::operators::email::synth::generate(options).map_err(anyhow::Error::msg)?;
    println!(
        "{} training and {} holdout messages ({} injected from {} insiders: {}) in {}",
        summary.train_messages,
        summary.holdout_messages,
        summary.injected_messages,
        summary.insiders.len(),
        summary.insiders.join(", "),
        options.out.display()
    );
    Ok(())
}
