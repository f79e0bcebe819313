//! `threatflow train flow` and `threatflow eval flow`: the operator's command-line arguments
//! (listed in its [`super::SPEC`]); and what they run (shared plumbing: [`crate::model_cli`]).

use std::path::{Path, PathBuf};

use clap::{Args, FromArgMatches};

use crate::model_cli::{print_json_line_if, rfc3339_utc};
use crate::operators::command_args::{EvalModel, TrainTarget};
use crate::operators::flow::dataset::read_nsl_kdd;
use crate::operators::flow::eval::evaluate;
use crate::operators::flow::model::FlowModel;
use crate::operators::flow::train::{train, TrainOptions};
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

/// `threatflow drift-reference flow`.
#[derive(Debug, Args)]
pub struct DriftReferenceArgs {
    /// NSL-KDD file the version was trained on.
    #[arg(long, default_value = "models/flow/data/KDDTrain+_20Percent.txt")]
    data: PathBuf,
    /// The version directory to add the reference sample to.
    #[arg(long)]
    model: PathBuf,
    /// Seed of the sample.
    #[arg(long, default_value_t = 20_261_123)]
    seed: u64,
}

/// The flow operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
    super::bench_trees::COMMAND,
    OperatorCommand {
        verb: Verb::DriftReference,
        name: "flow",
        command: || {
            DriftReferenceArgs::augment_args(clap::Command::new("flow")).about(
                "Add the drift watch's reference sample (rows of the training file) to a flow \
                 version that has none (`train flow` writes one itself)",
            )
        },
        run: |matches| {
            let args = DriftReferenceArgs::from_arg_matches(matches)?;
            let rows = read_nsl_kdd(&args.data)?;
            let training: Vec<_> = rows.iter().collect();
            let mut model = FlowModel::load(&args.model)?;
            let reference = super::drift::write_reference(&training, args.seed, &args.model)?;
            println!(
                "wrote {} ({} rows) to {}",
                reference.path,
                training.len().min(super::drift::REFERENCE_ROWS),
                args.model.display()
            );
            model.manifest.drift_reference = Some(reference);
            model.save(&args.model)?;
            Ok(())
        },
    },
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
            train_flow(&super::train::TrainOptions {
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
            eval_flow(&args.data, &args.model, args.report.as_deref())
        },
    },
];

/// `threatflow train flow`.
fn train_flow(options: &TrainOptions) -> anyhow::Result<()> {
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
fn eval_flow(data: &Path, model: &EvalModel, report: Option<&Path>) -> anyhow::Result<()> {
    let json = model.json;
    let model = model.load("flow", FlowModel::load)?;
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
