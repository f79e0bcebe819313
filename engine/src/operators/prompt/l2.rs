//! L2: a Hugging Face-style sequence-classification model on ONNX Runtime (`ort`, library
//! loaded at run time) with its `tokenizer.json`.
//!
//! A model directory holds `manifest.json` (kind `threatflow.prompt.l2-classifier`: input
//! names, output name, labels, the attack label, max length, threshold, metrics, sha256 of
//! the model and tokenizer files), `model.onnx` and `tokenizer.json`. Loading checks both
//! files' sha256 and that the session's inputs and output are the manifest's, so a model that
//! does not fit the code is refused at start, loudly.
//!
//! Long prompts are not cut at `max_length`: they are split into overlapping windows
//! ([`super::window`]), each scored, and the prompt's probability is the highest window's — an
//! injection buried after a long preamble is seen.
//!
//! The execution provider is `cpu` or `cuda:N`; CUDA falls back to the CPU with a warning when
//! the ONNX Runtime library has no CUDA provider or it fails to register.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProvider as _;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde::{Deserialize, Serialize};

use super::window::{PromptTokenizer, Sequence};
use crate::ml::artifact::{self, ArtifactRef};

/// Manifest kind of a prompt L2 model.
pub const MANIFEST_KIND: &str = "threatflow.prompt.l2-classifier";
/// Where `scripts/setup.sh` puts the ONNX Runtime library of a development checkout.
pub const DEV_LIBRARY_PATH: &str = ".tools/lib/libonnxruntime.so";
/// The model inputs this build can feed.
pub const SUPPORTED_INPUTS: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];

/// `models verify`'s feature check of an L2 manifest: its `inputs` are inputs this build
/// feeds (the prompt model's features are its tokenizer's ids).
pub fn check_manifest_inputs(manifest: &serde_json::Value) -> Result<(), String> {
    let Some(inputs) = manifest.get("inputs").and_then(|v| v.as_array()) else {
        return Err("the manifest has no inputs list".to_owned());
    };
    if inputs.is_empty() {
        return Err("the manifest's inputs list is empty".to_owned());
    }
    match inputs.iter().find(|input| {
        !input
            .as_str()
            .is_some_and(|name| SUPPORTED_INPUTS.contains(&name))
    }) {
        Some(unknown) => Err(format!(
            "input {unknown} is not one this build feeds ({})",
            SUPPORTED_INPUTS.join(", ")
        )),
        None => Ok(()),
    }
}

/// The manifest of an L2 model (written by `models/prompt/recipe/train_l2.py`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct L2Manifest {
    /// [`MANIFEST_KIND`].
    pub kind: String,
    /// Model version (directory name).
    pub version: String,
    /// When it was trained.
    #[serde(default)]
    pub created_at: String,
    /// A shipped bootstrap model: exempt from the registry's maximum age.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    /// The ONNX file.
    pub model: ArtifactRef,
    /// The tokenizer file.
    pub tokenizer: ArtifactRef,
    /// Model input names, a subset of input_ids / attention_mask / token_type_ids.
    pub inputs: Vec<String>,
    /// Output name: logits of shape [batch, labels].
    pub output: String,
    /// Label names, in output order.
    pub labels: Vec<String>,
    /// Index of the attack label in `labels`.
    pub attack_label: usize,
    /// Longest sequence (tokens, with special tokens) the model was trained on; the window size.
    pub max_length: usize,
    /// Attack-probability threshold chosen on validation data.
    pub threshold: f64,
    /// Evaluation figures of the training run.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// Errors of the L2 layer.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// The ONNX Runtime library cannot be loaded.
    #[error("onnx runtime library {path}: {message} (run scripts/setup.sh, set [operators.prompt.l2] onnxruntime_library or ORT_DYLIB_PATH)")]
    Library {
        /// Library path tried.
        path: String,
        /// Cause.
        message: String,
    },
    /// The model directory is invalid.
    #[error("prompt l2 model: {0}")]
    Model(String),
    /// Tokenization failed.
    #[error("tokenizer: {0}")]
    Tokenize(String),
    /// Inference failed.
    #[error("inference: {0}")]
    Inference(String),
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// The CUDA provider on this device ordinal.
    Cuda(i32),
}

impl Device {
    /// Parses `cpu`, `cuda` (device 0) or `cuda:N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|ordinal| ordinal.parse::<i32>().ok())
                .filter(|ordinal| *ordinal >= 0)
                .map(Self::Cuda)
                .ok_or_else(|| format!("execution provider {other:?} is not cpu, cuda or cuda:N")),
        }
    }
}

/// The ONNX Runtime library to load: the configured path, else `ORT_DYLIB_PATH`, else the
/// first that exists of: `libonnxruntime.so` next to the executable or in `../lib` beside it
/// (an installed or unpacked release), [`DEV_LIBRARY_PATH`] under any ancestor of the
/// executable's directory (a checkout's `cargo run` and test binaries), `/usr/local/lib` and
/// `/usr/lib` (container images), and last [`DEV_LIBRARY_PATH`] under the working directory.
/// When none exists, the first candidate is returned so the load error names it.
pub fn resolve_library(configured: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH") {
        if !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    let candidates = library_candidates();
    candidates
        .iter()
        .find(|candidate| candidate.exists())
        .or(candidates.first())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEV_LIBRARY_PATH))
}

/// Where [`resolve_library`] looks, in order.
fn library_candidates() -> Vec<PathBuf> {
    const LIBRARY: &str = "libonnxruntime.so";
    let mut candidates = Vec::new();
    if let Ok(executable) = std::env::current_exe() {
        if let Some(dir) = executable.parent() {
            candidates.push(dir.join(LIBRARY));
            candidates.push(dir.join("../lib").join(LIBRARY));
        }
        candidates.extend(
            executable
                .ancestors()
                .skip(1)
                .map(|dir| dir.join(DEV_LIBRARY_PATH)),
        );
    }
    candidates.push(PathBuf::from("/usr/local/lib").join(LIBRARY));
    candidates.push(PathBuf::from("/usr/lib").join(LIBRARY));
    if let Ok(working_dir) = std::env::current_dir() {
        candidates.push(working_dir.join(DEV_LIBRARY_PATH));
    }
    candidates
}

/// The process-wide ONNX Runtime environment (ONNX Runtime allows one per process, and the
/// library is loaded once).
fn environment(library: &Path) -> Result<&'static Environment, L2Error> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    let built = ENVIRONMENT.get_or_init(|| {
        ort::init_from(library)
            .map_err(|error| error.to_string())?
            .with_name("threatflow")
            .build()
            .map_err(|error| error.to_string())
    });
    built.as_ref().map_err(|message| L2Error::Library {
        path: library.display().to_string(),
        message: message.clone(),
    })
}

/// A loaded model: session plus what its manifest says about it.
pub struct L2Model {
    session: Session,
    manifest: L2Manifest,
    device_used: String,
}

impl std::fmt::Debug for L2Model {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("L2Model")
            .field("version", &self.manifest.version)
            .field("device", &self.device_used)
            .finish()
    }
}

/// How to build sessions.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// ONNX Runtime library file.
    pub library: PathBuf,
    /// Execution provider wanted.
    pub device: Device,
    /// Intra-op threads; 0 lets ONNX Runtime choose (one per core).
    pub intra_threads: usize,
    /// ONNX Runtime graph optimizers not to run (names as ONNX Runtime spells them).
    pub disabled_optimizers: Vec<String>,
}

/// Optimizers the prompt model runs faster without, measured on our CPU: ONNX Runtime's fused
/// `SkipLayerNormalization` kernel normalizes with a scalar loop, so the model's own `Add` +
/// `LayerNormalization` pair is faster (one 128-token window 6.05 -> 5.15 ms, 2 threads).
pub const DEFAULT_DISABLED_OPTIMIZERS: [&str; 1] = ["SkipLayerNormFusion"];

/// [`DEFAULT_DISABLED_OPTIMIZERS`] as owned names (the config default).
pub fn default_disabled_optimizers() -> Vec<String> {
    DEFAULT_DISABLED_OPTIMIZERS
        .iter()
        .map(|name| (*name).to_owned())
        .collect()
}

/// Reads and checks a model directory's manifest.
pub fn read_manifest(directory: &Path) -> Result<L2Manifest, L2Error> {
    let manifest: L2Manifest =
        artifact::read_manifest(directory, |m: &L2Manifest| m.kind.as_str(), MANIFEST_KIND)
            .map_err(|error| L2Error::Model(format!("{}: {error}", directory.display())))?;
    if manifest.attack_label >= manifest.labels.len() {
        return Err(L2Error::Model(format!(
            "attack_label {} outside the {} labels",
            manifest.attack_label,
            manifest.labels.len()
        )));
    }
    if manifest.max_length < 8 {
        return Err(L2Error::Model(format!(
            "max_length {} too small",
            manifest.max_length
        )));
    }
    Ok(manifest)
}

/// Loads the tokenizer of a model directory, sha-checked.
pub fn load_tokenizer(
    directory: &Path,
    manifest: &L2Manifest,
    max_chunks: usize,
) -> Result<PromptTokenizer, L2Error> {
    let bytes = artifact::read_verified(
        directory,
        &manifest.tokenizer.path,
        &manifest.tokenizer.sha256,
    )
    .map_err(|error| L2Error::Model(error.to_string()))?;
    PromptTokenizer::from_bytes(&bytes, manifest.max_length, max_chunks)
}

impl L2Model {
    /// Loads the ONNX model of `directory` (sha-checked) into a session on `settings.device`.
    pub fn load(directory: &Path, settings: &SessionSettings) -> Result<Self, L2Error> {
        let manifest = read_manifest(directory)?;
        let bytes =
            artifact::read_verified(directory, &manifest.model.path, &manifest.model.sha256)
                .map_err(|error| L2Error::Model(error.to_string()))?;
        let environment = environment(&settings.library)?;
        let (session, device_used) = build_session(environment, &bytes, settings)?;
        check_signature(&session, &manifest)?;
        Ok(Self {
            session,
            manifest,
            device_used,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &L2Manifest {
        &self.manifest
    }

    /// The provider the session runs on (`cpu` or `cuda:N`).
    pub fn device_used(&self) -> &str {
        &self.device_used
    }

    /// Attack probability of each sequence. Sequences of similar length run together
    /// ([`length_buckets`]), each bucket padded to its longest: padding a short prompt to a
    /// long one's length costs the model the long one's work.
    pub fn infer(&mut self, batch: &[&Sequence]) -> Result<Vec<f32>, L2Error> {
        let lengths: Vec<usize> = batch.iter().map(|sequence| sequence.ids.len()).collect();
        let mut probabilities = vec![0.0_f32; batch.len()];
        for bucket in length_buckets(&lengths) {
            let members: Vec<&Sequence> = bucket.iter().map(|&index| batch[index]).collect();
            let scores = self.run_padded(&members)?;
            for (&index, probability) in bucket.iter().zip(scores) {
                probabilities[index] = probability;
            }
        }
        Ok(probabilities)
    }

    /// Attack probability of each sequence, all in one run padded to the longest.
    fn run_padded(&mut self, batch: &[&Sequence]) -> Result<Vec<f32>, L2Error> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let longest = batch
            .iter()
            .map(|sequence| sequence.ids.len())
            .max()
            .unwrap_or(0);
        let rows = batch.len();
        let mut ids = vec![0_i64; rows * longest];
        let mut mask = vec![0_i64; rows * longest];
        let mut type_ids = vec![0_i64; rows * longest];
        for (row, sequence) in batch.iter().enumerate() {
            let start = row * longest;
            ids[start..start + sequence.ids.len()].copy_from_slice(&sequence.ids);
            type_ids[start..start + sequence.type_ids.len()].copy_from_slice(&sequence.type_ids);
            mask[start..start + sequence.ids.len()].fill(1);
        }
        let shape = [rows, longest];
        let mut inputs = Vec::with_capacity(self.manifest.inputs.len());
        for name in &self.manifest.inputs {
            let data = match name.as_str() {
                "input_ids" => std::mem::take(&mut ids),
                "attention_mask" => std::mem::take(&mut mask),
                "token_type_ids" => std::mem::take(&mut type_ids),
                other => return Err(L2Error::Inference(format!("unsupported input {other}"))),
            };
            let tensor = Tensor::from_array((shape, data))
                .map_err(|error| L2Error::Inference(error.to_string()))?;
            inputs.push((name.clone(), tensor));
        }
        let outputs = self
            .session
            .run(inputs)
            .map_err(|error| L2Error::Inference(error.to_string()))?;
        let output = outputs
            .get(&self.manifest.output)
            .ok_or_else(|| L2Error::Inference(format!("no output {}", self.manifest.output)))?;
        let (out_shape, logits) = output
            .try_extract_tensor::<f32>()
            .map_err(|error| L2Error::Inference(error.to_string()))?;
        let labels = self.manifest.labels.len();
        if out_shape.len() != 2 || out_shape[0] as usize != rows || out_shape[1] as usize != labels
        {
            return Err(L2Error::Inference(format!(
                "output shape {out_shape:?}, expected [{rows}, {labels}]"
            )));
        }
        Ok(logits
            .chunks_exact(labels)
            .map(|row| softmax_probability(row, self.manifest.attack_label))
            .collect())
    }
}

/// Tokenizes `texts` with `tokenizer` and runs them as one batch on `model`, without the
/// batcher: the bare L2 path that `threatflow bench prompt` and the criterion bench time.
/// One window per text, its first (truncation at `max_length`, as a plain Hugging Face
/// pipeline does), so one probability per text.
pub fn score_directly<T: AsRef<str>>(
    model: &mut L2Model,
    tokenizer: &PromptTokenizer,
    texts: &[T],
) -> Result<Vec<f32>, L2Error> {
    let mut sequences = Vec::with_capacity(texts.len());
    for text in texts {
        sequences.push(tokenizer.first(text.as_ref())?.0);
    }
    let batch: Vec<&Sequence> = sequences.iter().collect();
    model.infer(&batch)
}

/// Groups sequence indices by length, longest first: a bucket holds the sequences within a
/// fifth of its longest one's length (at least 8 tokens of slack, so short prompts still
/// share runs). Padding within a bucket is then at most that slack per sequence.
pub fn length_buckets(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(lengths[index]));
    let mut buckets: Vec<Vec<usize>> = Vec::new();
    let mut longest = 0;
    for index in order {
        let length = lengths[index];
        match buckets.last_mut() {
            Some(bucket) if longest - length <= (longest / 5).max(8) => bucket.push(index),
            _ => {
                longest = length;
                buckets.push(vec![index]);
            }
        }
    }
    buckets
}

/// Softmax of `logits` at `index`, computed stably.
pub fn softmax_probability(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = logits.iter().map(|logit| (logit - max).exp()).sum();
    logits
        .get(index)
        .map_or(0.0, |logit| (logit - max).exp() / total)
}

fn build_session(
    environment: &Environment,
    model: &[u8],
    settings: &SessionSettings,
) -> Result<(Session, String), L2Error> {
    let model_error = |error: &dyn std::fmt::Display| L2Error::Model(error.to_string());
    let mut builder = configured_builder(environment, settings)?;
    if let Device::Cuda(ordinal) = settings.device {
        match cuda_builder(builder, ordinal) {
            Ok(mut cuda) => match cuda.commit_from_memory(model) {
                Ok(session) => return Ok((session, format!("cuda:{ordinal}"))),
                Err(error) => {
                    tracing::warn!(%error, ordinal, "cuda session failed; falling back to cpu");
                }
            },
            Err(reason) => {
                tracing::warn!(%reason, ordinal, "cuda unavailable; falling back to cpu")
            }
        }
        // The CUDA attempt consumed the builder: the fallback gets a fresh one, same settings.
        let session = configured_builder(environment, settings)?
            .commit_from_memory(model)
            .map_err(|e| model_error(&e))?;
        return Ok((session, "cpu".to_owned()));
    }
    let session = builder
        .commit_from_memory(model)
        .map_err(|e| model_error(&e))?;
    Ok((session, "cpu".to_owned()))
}

/// A session builder with the settings every provider shares: full graph optimization bar
/// the disabled optimizers, and the intra-op thread count.
fn configured_builder(
    environment: &Environment,
    settings: &SessionSettings,
) -> Result<ort::session::builder::SessionBuilder, L2Error> {
    let model_error = |error: &dyn std::fmt::Display| L2Error::Model(error.to_string());
    let mut builder = Session::builder(environment)
        .map_err(|e| model_error(&e))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| model_error(&e))?;
    if settings.intra_threads > 0 {
        builder = builder
            .with_intra_threads(settings.intra_threads)
            .map_err(|e| model_error(&e))?;
    }
    if !settings.disabled_optimizers.is_empty() {
        builder = builder
            .with_disabled_optimizers(settings.disabled_optimizers.join(";"))
            .map_err(|e| model_error(&e))?;
    }
    Ok(builder)
}

fn cuda_builder(
    builder: ort::session::builder::SessionBuilder,
    ordinal: i32,
) -> Result<ort::session::builder::SessionBuilder, String> {
    let available = ort::ep::CUDA::is_available().map_err(|error| error.to_string())?;
    if !available {
        return Err("this onnx runtime library has no cuda execution provider".to_owned());
    }
    let provider = ort::ep::CUDA::default()
        .with_device_id(ordinal)
        .build()
        .error_on_failure();
    builder
        .with_execution_providers([provider])
        .map_err(|error| error.to_string())
}

fn check_signature(session: &Session, manifest: &L2Manifest) -> Result<(), L2Error> {
    let mut session_inputs: Vec<&str> = session.inputs().iter().map(|input| input.name()).collect();
    let mut manifest_inputs: Vec<&str> = manifest.inputs.iter().map(String::as_str).collect();
    session_inputs.sort_unstable();
    manifest_inputs.sort_unstable();
    if session_inputs != manifest_inputs {
        return Err(L2Error::Model(format!(
            "model inputs {session_inputs:?} differ from the manifest's {manifest_inputs:?}"
        )));
    }
    if !session
        .outputs()
        .iter()
        .any(|output| output.name() == manifest.output)
    {
        return Err(L2Error::Model(format!(
            "model has no output {:?}",
            manifest.output
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!(Device::parse("cpu"), Ok(Device::Cpu));
        assert_eq!(Device::parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(Device::parse("cuda:3"), Ok(Device::Cuda(3)));
        assert!(Device::parse("cuda:-1").is_err());
        assert!(Device::parse("tpu").is_err());
    }

    #[test]
    fn softmax_is_stable_and_normalised() {
        let probability = softmax_probability(&[1000.0, 1001.0], 1);
        assert!((probability - 0.731_058_6).abs() < 1e-6, "{probability}");
        assert!((softmax_probability(&[0.0, 0.0], 0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn sequences_of_similar_length_share_a_bucket() {
        let lengths = [128, 20, 110, 12, 126, 60, 18, 55];
        let buckets = length_buckets(&lengths);
        assert_eq!(buckets, vec![vec![0, 4, 2], vec![5, 7], vec![1, 6, 3]]);
        let mut all: Vec<usize> = buckets.concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..lengths.len()).collect::<Vec<_>>(),
            "every sequence once"
        );
        assert!(length_buckets(&[]).is_empty());
    }

    #[test]
    fn library_resolution_prefers_the_configured_path() {
        assert_eq!(
            resolve_library("/opt/ort/lib.so"),
            PathBuf::from("/opt/ort/lib.so")
        );
    }
}
