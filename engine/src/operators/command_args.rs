//! Arguments every operator's `train` and `eval` commands share (flattened into each
//! operator's own `clap::Args`).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::ml::artifact::newest_version;
use crate::model_cli::UsageError;

/// Where `train <operator>` writes: `<model-dir>/<operator>/<version>/`.
#[derive(Debug, clap::Args)]
pub struct TrainTarget {
    /// Version name; the model goes to `<model-dir>/<operator>/<version>/`.
    #[arg(long, default_value = "v1")]
    pub version: String,
    /// Model root directory (`--models` is the old name).
    #[arg(long = "model-dir", alias = "models", default_value = "models")]
    pub model_dir: PathBuf,
    /// Mark the version as a shipped bootstrap model (`"bootstrap": true` in its manifest):
    /// exempt from the registry's maximum age. For the models committed under `models/`.
    #[arg(long)]
    pub bootstrap: bool,
}

impl TrainTarget {
    /// After `train <operator>` succeeded: with `--bootstrap` (read from the command's
    /// matches, so every operator's train command gets it through the flattened target),
    /// sets `"bootstrap": true` in the written manifest.
    pub fn mark_bootstrap_if_asked(
        operator: &str,
        matches: &clap::ArgMatches,
    ) -> anyhow::Result<()> {
        let asked = matches
            .try_get_one::<bool>("bootstrap")
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false);
        if !asked {
            return Ok(());
        }
        let (Some(root), Some(version)) = (
            matches.get_one::<PathBuf>("model_dir"),
            matches.get_one::<String>("version"),
        ) else {
            return Ok(());
        };
        let path = root.join(operator).join(version).join("manifest.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let mut manifest: serde_json::Value = serde_json::from_str(&text)?;
        manifest["bootstrap"] = serde_json::Value::Bool(true);
        crate::ml::artifact::write_pretty_json(&path, &manifest)?;
        Ok(())
    }

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
    /// The version directory to evaluate: `--model` when given, else the newest under
    /// `<model-dir>/<operator>` (a usage error when there is none).
    pub fn version_dir(&self, operator: &str) -> anyhow::Result<PathBuf> {
        if let Some(directory) = &self.model {
            return Ok(directory.clone());
        }
        let root = self.model_dir.join(operator);
        newest_version(&root).ok_or_else(|| {
            UsageError(format!(
                "no model under {}: pass --model DIR or run `threatflow train {operator}`",
                root.display()
            ))
            .into()
        })
    }

    /// Loads the version to evaluate with `load`; an error names the directory.
    pub fn load<M, E>(
        &self,
        operator: &str,
        load: impl FnOnce(&Path) -> Result<M, E>,
    ) -> anyhow::Result<M>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let directory = self.version_dir(operator)?;
        load(&directory).with_context(|| format!("cannot load {}", directory.display()))
    }
}

/// `threatflow drift-reference <operator>` for alert, address and email: adds the drift
/// watch's reference sample to a version trained before its trainer wrote one.
#[derive(Debug, clap::Args)]
pub struct DriftReferenceArgs {
    /// The data the version was trained on (as its `train` command reads it).
    #[arg(long)]
    pub data: PathBuf,
    /// The version directory to add the reference sample to.
    #[arg(long)]
    pub model: PathBuf,
    /// Seed of the sample.
    #[arg(long, default_value_t = 20_261_123)]
    pub seed: u64,
}

impl DriftReferenceArgs {
    /// Parses the matches, writes the sample with `write` (given the data, the seed and the
    /// version directory) and names it in the version's manifest.
    pub fn run(
        matches: &clap::ArgMatches,
        write: impl FnOnce(&Path, u64, &Path) -> anyhow::Result<crate::ml::artifact::ArtifactRef>,
    ) -> anyhow::Result<()> {
        use clap::FromArgMatches;
        let args = Self::from_arg_matches(matches)?;
        let reference = write(&args.data, args.seed, &args.model)?;
        let path = args.model.join("manifest.json");
        let text = std::fs::read(&path).with_context(|| path.display().to_string())?;
        let mut manifest: serde_json::Value = serde_json::from_slice(&text)?;
        manifest["drift_reference"] = serde_json::to_value(&reference)?;
        std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
            .with_context(|| path.display().to_string())?;
        println!("wrote {} to {}", reference.path, args.model.display());
        Ok(())
    }
}
