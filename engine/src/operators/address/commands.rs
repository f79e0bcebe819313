//! `threatflow train address`, `eval address` and `generate addresses`: the operator's
//! command-line arguments (listed in its [`super::SPEC`]); and what they run
//! (shared plumbing: [`crate::model_cli`]).

use std::path::{Path, PathBuf};

use clap::{Args, FromArgMatches};

use crate::model_cli::{print_json_line_if, rfc3339_utc, UsageError};
use crate::operators::command_args::{EvalModel, TrainTarget};
use crate::operators::table::{OperatorCommand, Verb};

/// `threatflow train address`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labelled addresses.
    #[arg(long, default_value = "models/address/data/train.jsonl")]
    data: PathBuf,
    /// Directory of the domain lists and SOURCES.json.
    #[arg(long, default_value = "models/address/sources")]
    sources: PathBuf,
    #[command(flatten)]
    target: TrainTarget,
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
}

/// `threatflow eval address`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled addresses.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    model: EvalModel,
    /// Risk from which an address counts as flagged (review or block).
    #[arg(long, default_value_t = 0.5)]
    review_at: f64,
    /// Risk from which it is blocked.
    #[arg(long, default_value_t = 0.85)]
    block_at: f64,
}

/// `threatflow generate addresses`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
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
}

/// The address operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
    OperatorCommand {
        verb: Verb::DriftReference,
        name: "address",
        command: || {
            crate::operators::command_args::DriftReferenceArgs::augment_args(clap::Command::new(
                "address",
            ))
            .about(
                "Add the drift watch's reference sample (addresses of the training file) to an \
                 address version that has none (`train address` writes one itself)",
            )
        },
        run: |matches| {
            crate::operators::command_args::DriftReferenceArgs::run(matches, |data, seed, model| {
                let text = std::fs::read_to_string(data)?;
                let rows = super::synth::read_labeled(&text).map_err(anyhow::Error::msg)?;
                Ok(super::drift::write_reference(
                    rows.iter().map(|row| row.address.as_str()),
                    seed,
                    model,
                )?)
            })
        },
    },
    OperatorCommand {
        verb: Verb::Train,
        name: "address",
        command: || {
            TrainArgs::augment_args(clap::Command::new("address")).about(
                "Sender-address fraud model set (character 2/3-gram models, Markov-risk \
                 parameters, boost-only calibration, domain lists) from labelled addresses (CSV \
                 `address,label` or JSON lines; `threatflow generate addresses` writes them)",
            )
        },
        run: |matches| {
            let args = TrainArgs::from_arg_matches(matches)?;
            train_address(&super::train::TrainOptions {
                out: args.target.out("address"),
                data: args.data,
                sources: args.sources,
                version: args.target.version,
                seed: args.seed,
                folds: args.folds,
                concentration: args.concentration,
                l2_penalty: args.l2_penalty,
            })
        },
    },
    OperatorCommand {
        verb: Verb::Eval,
        name: "address",
        command: || {
            EvalArgs::augment_args(clap::Command::new("address")).about(
                "Sender-address fraud model on labelled addresses: CSV `address,label` (1 = \
                 fraudulent) or JSON lines `{\"address\": ..., \"label\": 0|1}`",
            )
        },
        run: |matches| {
            let args = EvalArgs::from_arg_matches(matches)?;
            eval_address(
                &args.data,
                &args.model,
                &super::AddressOperatorConfig {
                    review_at: args.review_at,
                    block_at: args.block_at,
                    ..Default::default()
                },
            )
        },
    },
    OperatorCommand {
        verb: Verb::Generate,
        name: "addresses",
        command: || {
            GenerateArgs::augment_args(clap::Command::new("addresses")).about(
                "Labelled sender addresses (recipe: models/address/README.md): writes \
                 `train.jsonl` and `holdout.jsonl` (a random `--holdout-fraction`) into `--out`",
            )
        },
        run: |matches| {
            let args = GenerateArgs::from_arg_matches(matches)?;
            generate_addresses(
                &args.sources,
                &args.out,
                args.count,
                args.fraud_share,
                args.seed,
                args.holdout_fraction,
            )
        },
    },
];

/// `threatflow train address`.
fn train_address(options: &crate::operators::address::train::TrainOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let summary = crate::operators::address::train::train(
        options,
        rfc3339_utc(std::time::SystemTime::now()),
    )?;
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
    Ok(())
}

/// `threatflow eval address`.
fn eval_address(
    data: &Path,
    model: &EvalModel,
    config: &crate::operators::address::AddressOperatorConfig,
) -> anyhow::Result<()> {
    use crate::operators::address::{model::AddressModel, synth::read_labeled};
    let json = model.json;
    let model = model.load("address", AddressModel::load)?;
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
fn generate_addresses(
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
