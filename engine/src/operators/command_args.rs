//! Arguments every operator's `train` and `eval` commands share (flattened into each
//! operator's own `clap::Args`).

use std::path::{Path, PathBuf};

/// Where `train <operator>` writes: `<model-dir>/<operator>/<version>/`.
#[derive(Debug, clap::Args)]
pub struct TrainTarget {
    /// Version name; the model goes to `<model-dir>/<operator>/<version>/`.
    #[arg(long, default_value = "v1")]
    pub version: String,
    /// Model root directory (`--models` is the old name).
    #[arg(long = "model-dir", alias = "models", default_value = "models")]
    pub model_dir: PathBuf,
}

impl TrainTarget {
    /// The version directory of `operator`.
    pub fn out(&self, operator: &str) -> PathBuf {
        self.model_dir.join(operator).join(&self.version)
    }
}

/// Which model `eval <operator>` reads, and how it prints.
#[derive(Debug, clap::Args)]
pub struct EvalModel {
    /// Model version directory (default: the newest under `<model-dir>/<operator>`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Model root directory.
    #[arg(long, default_value = "models")]
    pub model_dir: PathBuf,
    /// Print the figures as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

impl EvalModel {
    /// `--model`, if given.
    pub fn model(&self) -> Option<&Path> {
        self.model.as_deref()
    }
}
