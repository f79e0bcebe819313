//! `threatflow bench trees`: our tree inference beside Python XGBoost's `inplace_predict`
//! (one thread) on the same model and rows, alternating the two, medians per side.
//!
//! Two models: the shipped flow model (our GBDT, exported as XGBoost JSON and imported back,
//! so both sides run the identical `f32`-threshold trees) on encoded KDDTest+ rows, and the
//! XGBoost parity fixture (`models/flow/xgboost/fixture`) on its rows. Our side is timed for
//! the quantized evaluator (the engine's) and the packed `f64` one it replaced. Python comes
//! from `--python`, or from a virtual environment the command makes itself
//! (`.tools/bench-xgb`, pinned `xgboost-cpu` wheel). The margins of both sides are compared
//! (XGBoost sums in `f32`), so a fast wrong answer cannot pass as a result.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, FromArgMatches};
use serde::Serialize;

use crate::ml::artifact::newest_version;
use crate::ml::packed::PackedEnsemble;
use crate::ml::quantized::QuantizedEnsemble;
use crate::ml::trees::Ensemble;
use crate::ml::xgboost::import_json;
use crate::ml::xgboost_export::export_json;
use crate::model_cli::print_json_line_if;
use crate::operators::flow::dataset::read_nsl_kdd;
use crate::operators::flow::model::FlowModel;
use crate::operators::table::{OperatorCommand, Verb};

/// The Python side's script, written next to the model it times.
const PYTHON_SCRIPT: &str = include_str!("../../../../models/flow/xgboost/bench_trees.py");
/// The pinned wheel of the virtual environment the command makes.
const XGBOOST_WHEEL: &str = "xgboost-cpu==3.2.0";

/// `threatflow bench trees`.
#[derive(Debug, Clone, Args)]
pub struct BenchTreesArgs {
    /// Model root holding `flow/<version>`.
    #[arg(long, default_value = "models")]
    model_dir: PathBuf,
    /// NSL-KDD rows to score with the flow model.
    #[arg(long, default_value = "models/flow/data/KDDTest+.txt")]
    data: PathBuf,
    /// Rows per batch (the first N of the file).
    #[arg(long, default_value_t = 2000)]
    rows: usize,
    /// Timed batches per side and round (median taken).
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Rounds; the sides alternate within each.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Python with `xgboost` and `numpy`; default: `.tools/bench-xgb`, made if missing.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Print the figures as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// The command's table entry.
pub const COMMAND: OperatorCommand = OperatorCommand {
    verb: Verb::Bench,
    name: "trees",
    command: || {
        BenchTreesArgs::augment_args(clap::Command::new("trees")).about(
            "Tree inference beside Python XGBoost inplace_predict (nthread=1): the flow model \
             and the XGBoost parity fixture, same trees and rows, alternating runs",
        )
    },
    run: |matches| bench_trees(&BenchTreesArgs::from_arg_matches(matches)?),
};

/// One model's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFigures {
    /// Rows per batch.
    pub rows: usize,
    /// Trees.
    pub trees: usize,
    /// Quantized evaluator, rows/s (median over rounds of per-round medians).
    pub rows_per_sec: f64,
    /// Packed `f64` evaluator, rows/s.
    pub packed_rows_per_sec: f64,
    /// Python XGBoost, rows/s.
    pub xgboost_rows_per_sec: f64,
    /// `rows_per_sec / xgboost_rows_per_sec`.
    pub ratio: f64,
    /// `packed_rows_per_sec / xgboost_rows_per_sec`.
    pub packed_ratio: f64,
    /// Largest |our margin − XGBoost's margin| (XGBoost sums in `f32`).
    pub max_margin_difference: f64,
}

/// The command's result: the flow model's figures at the top level.
#[derive(Debug, Clone, Serialize)]
struct BenchTreesResult {
    rows_per_sec: f64,
    xgboost_rows_per_sec: f64,
    ratio: f64,
    packed_rows_per_sec: f64,
    packed_ratio: f64,
    xgboost: String,
    flow: ModelFigures,
    fixture: ModelFigures,
}

fn bench_trees(args: &BenchTreesArgs) -> anyhow::Result<()> {
    let python = match &args.python {
        Some(python) => python.clone(),
        None => bench_python()?,
    };
    let work = tempfile::tempdir()?;
    let script = work.path().join("bench_trees.py");
    std::fs::write(&script, PYTHON_SCRIPT)?;

    let version = newest_version(&args.model_dir.join("flow"))
        .with_context(|| format!("no flow model under {}", args.model_dir.display()))?;
    let model = FlowModel::load(&version)?;
    let mut flow_rows = Vec::new();
    for row in read_nsl_kdd(&args.data)?.iter().take(args.rows) {
        model.encoder().encode_into(&row.event, &mut flow_rows);
    }
    let exported = export_json(&model.binary).context("the flow model has one output")?;
    let flow_trees = import_json(&exported)?.ensemble;

    let fixture_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/flow/xgboost/fixture");
    let fixture_json = std::fs::read_to_string(fixture_dir.join("binary.json"))?;
    let fixture_trees = import_json(&fixture_json)?.ensemble;
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir.join("expected.json"))?)?;
    let fixture_rows: Vec<f64> = expected["rows"]
        .as_array()
        .context("fixture rows")?
        .iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|value| value.as_f64().unwrap_or(f64::NAN))
        .collect();

    let mut xgboost_version = String::new();
    let mut figures = Vec::new();
    for (name, ensemble, model_json, rows) in [
        ("flow", &flow_trees, exported.as_str(), &flow_rows),
        (
            "fixture",
            &fixture_trees,
            fixture_json.as_str(),
            &fixture_rows,
        ),
    ] {
        let sides = Sides::write(work.path(), name, model_json, ensemble, rows)?;
        let mut ours = Vec::new();
        let mut packed = Vec::new();
        let mut theirs = Vec::new();
        let mut difference: f64 = 0.0;
        for round in 0..args.rounds.max(1) {
            let (rate, margins, version) = sides.python(&python, &script, args.repeats)?;
            xgboost_version = version;
            theirs.push(rate);
            let (rate, our_margins) = sides.quantized(args.repeats);
            ours.push(rate);
            packed.push(sides.packed(args.repeats));
            for (a, b) in our_margins.iter().zip(&margins) {
                difference = difference.max((a - b).abs());
            }
            anyhow::ensure!(
                our_margins.len() == margins.len(),
                "{name}: {} margins here, {} from XGBoost",
                our_margins.len(),
                margins.len()
            );
            eprintln!(
                "{name} round {round}: quantized {:.0} rows/s, packed {:.0}, xgboost {:.0}",
                ours[round], packed[round], theirs[round]
            );
        }
        let (ours, packed, theirs) = (median(ours), median(packed), median(theirs));
        figures.push(ModelFigures {
            rows: sides.row_count,
            trees: ensemble.trees.iter().map(Vec::len).sum(),
            rows_per_sec: ours,
            packed_rows_per_sec: packed,
            xgboost_rows_per_sec: theirs,
            ratio: ours / theirs,
            packed_ratio: packed / theirs,
            max_margin_difference: difference,
        });
    }
    let fixture = figures.pop().context("fixture figures")?;
    let flow = figures.pop().context("flow figures")?;
    for (name, figures) in [("flow model", &flow), ("xgboost fixture", &fixture)] {
        println!(
            "{name}: {} trees, {} rows/batch: quantized {:.0} rows/s ({:.2}x xgboost), packed {:.0} \
             ({:.2}x), xgboost {xgboost_version} {:.0}; max |margin difference| {:.1e}",
            figures.trees,
            figures.rows,
            figures.rows_per_sec,
            figures.ratio,
            figures.packed_rows_per_sec,
            figures.packed_ratio,
            figures.xgboost_rows_per_sec,
            figures.max_margin_difference
        );
    }
    print_json_line_if(
        args.json,
        &BenchTreesResult {
            rows_per_sec: flow.rows_per_sec,
            xgboost_rows_per_sec: flow.xgboost_rows_per_sec,
            ratio: flow.ratio,
            packed_rows_per_sec: flow.packed_rows_per_sec,
            packed_ratio: flow.packed_ratio,
            xgboost: xgboost_version,
            flow,
            fixture,
        },
    )
}

/// One model's inputs for both sides.
struct Sides<'a> {
    model_path: PathBuf,
    rows_path: PathBuf,
    margins_path: PathBuf,
    rows: &'a [f64],
    row_count: usize,
    quantized: QuantizedEnsemble,
    packed: PackedEnsemble,
}

impl<'a> Sides<'a> {
    fn write(
        directory: &Path,
        name: &str,
        model_json: &str,
        ensemble: &Ensemble,
        rows: &'a [f64],
    ) -> anyhow::Result<Self> {
        let width = ensemble.feature_count.max(1);
        let as_json: Vec<Vec<Option<f64>>> = rows
            .chunks_exact(width)
            .map(|row| row.iter().map(|v| (!v.is_nan()).then_some(*v)).collect())
            .collect();
        let sides = Self {
            model_path: directory.join(format!("{name}.json")),
            rows_path: directory.join(format!("{name}-rows.json")),
            margins_path: directory.join(format!("{name}-margins.json")),
            rows,
            row_count: as_json.len(),
            quantized: QuantizedEnsemble::new(ensemble).context("no quantized form")?,
            packed: PackedEnsemble::new(ensemble),
        };
        std::fs::write(&sides.model_path, model_json)?;
        std::fs::write(
            &sides.rows_path,
            serde_json::to_string(&serde_json::json!({ "rows": as_json }))?,
        )?;
        Ok(sides)
    }

    /// Python's rows/s, margins and XGBoost version.
    fn python(
        &self,
        python: &Path,
        script: &Path,
        repeats: usize,
    ) -> anyhow::Result<(f64, Vec<f64>, String)> {
        let output = Command::new(python)
            .arg(script)
            .args([&self.model_path, &self.rows_path, &self.margins_path])
            .arg(repeats.to_string())
            // One thread everywhere: numpy's BLAS threads would spin beside XGBoost's one.
            .env("OMP_NUM_THREADS", "1")
            .env("OPENBLAS_NUM_THREADS", "1")
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "the xgboost side failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let margins: Vec<f64> =
            serde_json::from_str(&std::fs::read_to_string(&self.margins_path)?)?;
        Ok((
            line["rows_per_s"].as_f64().context("rows_per_s")?,
            margins,
            line["xgboost"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    fn quantized(&self, repeats: usize) -> (f64, Vec<f64>) {
        let margins = self.quantized.predict_raw_batch(self.rows);
        let rate = time_batches(repeats, self.row_count, || {
            std::hint::black_box(
                self.quantized
                    .predict_raw_batch(std::hint::black_box(self.rows)),
            );
        });
        (rate, margins)
    }

    fn packed(&self, repeats: usize) -> f64 {
        time_batches(repeats, self.row_count, || {
            std::hint::black_box(
                self.packed
                    .predict_raw_batch(std::hint::black_box(self.rows)),
            );
        })
    }
}

/// Rows/s of the median of `repeats` timed batches, after a tenth as many for warm-up (as
/// the Python side does).
fn time_batches(repeats: usize, rows: usize, mut batch: impl FnMut()) -> f64 {
    for _ in 0..(repeats / 10).max(3) {
        batch();
    }
    let timings: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let started = Instant::now();
            batch();
            started.elapsed().as_secs_f64()
        })
        .collect();
    rows as f64 / median(timings).max(1e-12)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// `.tools/bench-xgb/bin/python`, making the environment (pinned wheel) when missing.
fn bench_python() -> anyhow::Result<PathBuf> {
    let environment = PathBuf::from(".tools/bench-xgb");
    let python = environment.join("bin/python");
    let has_xgboost = |python: &Path| {
        Command::new(python)
            .args(["-c", "import xgboost, numpy"])
            .status()
            .is_ok_and(|status| status.success())
    };
    if python.exists() && has_xgboost(&python) {
        return Ok(python);
    }
    eprintln!("making {} with {XGBOOST_WHEEL} …", environment.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&environment)
        .status()?;
    anyhow::ensure!(made.success(), "python3 -m venv failed");
    let installed = Command::new(environment.join("bin/pip"))
        .args(["install", "-q", XGBOOST_WHEEL, "numpy>=1.26"])
        .status()?;
    anyhow::ensure!(installed.success(), "pip install {XGBOOST_WHEEL} failed");
    Ok(python)
}
