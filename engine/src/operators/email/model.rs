//! The email model set: feature preprocessing, the three detectors and their score scales,
//! with a manifest; and the scoring of one message by the ensemble.
//!
//! Layout of a version directory (`models/email/<version>/`): `manifest.json`,
//! `preprocess.json` (column means and standard deviations, the TF-IDF IDF),
//! `autoencoder.json`, `one_class.json`, `isolation_forest.json`, and `scales.json` (each
//! detector's quantiles on held-out normal mail, [`ScoreScale`]). The manifest names each file
//! with its sha256 and records the feature settings training used.
//!
//! Scoring ([`EmailModel::score`]): features → standardised row (clipped to ±[`CLIP`] so one
//! absurd value cannot dominate a distance) → the three raw scores → each normalised by its
//! scale → `anomaly = Σ wᵢ · normalisedᵢ / Σ wᵢ`; detector i votes when its raw score reaches
//! its scale's quantile at the configured percentile; the message is a voted anomaly with at
//! least `votes_needed` votes.
//!
//! Guarantee: [`EmailModel::load`] refuses a manifest of another kind, a feature list that is
//! not the one its settings produce with this build, a file whose sha256 differs, and
//! detectors or scales whose shapes do not fit.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ml::artifact::{
    read_json, read_manifest, write_json_ref, write_pretty_json, ArtifactRef,
};
use crate::ml::autoencoder::Autoencoder;
use crate::ml::isolation_forest::IsolationForest;
use crate::ml::one_class::OneClassSvm;
use crate::ml::score_scale::ScoreScale;
use crate::operators::email::features::{FeatureExtractor, FeatureSettings};
use crate::operators::email::message::MailMessage;

/// `kind` of an email manifest.
pub const MANIFEST_KIND: &str = "threatflow.email.insider-ensemble";
/// Standardised values are clipped to ± this.
pub const CLIP: f64 = 20.0;
/// Detector names, in the order of every per-detector array.
pub const DETECTORS: [&str; 3] = ["autoencoder", "one_class", "isolation_forest"];

pub use crate::ml::artifact::ModelError;

/// How raw features become detector rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Column means on the training rows.
    pub mean: Vec<f64>,
    /// Column standard deviations (constant columns: 1).
    pub std: Vec<f64>,
    /// IDF per TF-IDF bucket.
    pub idf: Vec<f64>,
}

/// The detectors' score scales, in [`DETECTORS`] order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scales {
    /// One per detector.
    pub detectors: Vec<ScoreScale>,
    /// The held-out normal messages' raw scores, per message (so the voted share of normal
    /// mail can be computed for any configured percentile and vote count).
    pub held_out: Vec<[f64; 3]>,
}

/// How the model set was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTrainingRecord {
    /// sha256 over the training messages' ids, in order.
    pub data_sha256: String,
    /// Messages read.
    pub messages: usize,
    /// Messages refused by the parser (not used).
    pub refused: usize,
    /// Rows the detectors were fitted on.
    pub fit_rows: usize,
    /// Held-out normal rows the scales were fitted on.
    pub calibration_rows: usize,
    /// Rows of the one-class SVM's sample (its cost is quadratic).
    pub one_class_rows: usize,
    /// Support vectors kept.
    pub one_class_support_vectors: usize,
    /// The seed.
    pub seed: u64,
    /// The training folder's name (under `<model_dir>/email/data/`), for the trainer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_file: Option<String>,
    /// Analysts' benign verdicts added to the fitting rows (retrained versions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_rows: Option<usize>,
}

/// Figures on the held-out normal rows at the default operating point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationMetrics {
    /// Share of held-out normal messages with 2 of 3 votes at the 95th percentile.
    pub voted_share_at_p95: f64,
    /// Share per detector voting at the 95th percentile (≈ 0.05 by construction).
    pub detector_vote_share_at_p95: Vec<f64>,
    /// Pairwise vote overlap (Jaccard): messages where both detectors of a pair vote over
    /// those where either does (ae–ocsvm, ae–if, ocsvm–if).
    pub vote_overlap: Vec<f64>,
}

/// `manifest.json` of an email model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailManifest {
    /// Always [`MANIFEST_KIND`].
    pub kind: String,
    /// Version, written into every scored event.
    pub version: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// A shipped bootstrap model: exempt from the registry's maximum age.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    /// Settings the features were computed with.
    pub feature_settings: FeatureSettings,
    /// Column names; must equal what the settings produce.
    pub features: Vec<String>,
    /// Detector names, in file order.
    pub detectors: Vec<String>,
    /// Preprocessing file.
    pub preprocess: ArtifactRef,
    /// Autoencoder file.
    pub autoencoder: ArtifactRef,
    /// One-class SVM file.
    pub one_class: ArtifactRef,
    /// Isolation forest file.
    pub isolation_forest: ArtifactRef,
    /// Score scales file.
    pub scales: ArtifactRef,
    /// Training record.
    pub training: EmailTrainingRecord,
    /// Held-out figures.
    pub metrics: CalibrationMetrics,
    /// The drift watch's reference sample of the training rows (`drift_reference.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_reference: Option<ArtifactRef>,
    /// How the trainer made this version from analysts' feedback (rows, weight, the gate's
    /// figures); absent for versions trained by `threatflow train email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retraining: Option<serde_json::Value>,
}

/// Ensemble settings from config (`[operators.email]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnsembleSettings {
    /// Weights of autoencoder, one-class, isolation forest.
    pub weights: [f64; 3],
    /// Percentile (50–99.9) of held-out normal scores at which a detector votes.
    pub vote_percentile: f64,
    /// Votes that make a voted anomaly.
    pub votes_needed: usize,
}

impl Default for EnsembleSettings {
    fn default() -> Self {
        Self {
            weights: [0.4, 0.3, 0.3],
            vote_percentile: 95.0,
            votes_needed: 2,
        }
    }
}

/// One message's ensemble result.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageScore {
    /// Raw features (numeric then TF-IDF), before standardisation.
    pub features: Vec<f64>,
    /// Each detector's raw score.
    pub raw: [f64; 3],
    /// Each detector's normalised score, 0–1.
    pub normalized: [f64; 3],
    /// Each detector's vote.
    pub votes: [bool; 3],
    /// Weighted anomaly score, 0–1.
    pub anomaly: f64,
    /// At least `votes_needed` votes.
    pub voted: bool,
    /// Squared autoencoder reconstruction error per column (the explanation).
    pub column_errors: Vec<f64>,
}

/// A loaded model set.
#[derive(Debug, Clone)]
pub struct EmailModel {
    /// The manifest.
    pub manifest: EmailManifest,
    /// Preprocessing.
    pub preprocess: Preprocess,
    /// Autoencoder.
    pub autoencoder: Autoencoder,
    /// One-class SVM.
    pub one_class: OneClassSvm,
    /// Isolation forest.
    pub isolation_forest: IsolationForest,
    /// Scales.
    pub scales: Scales,
    /// Feature extraction with the training settings.
    pub extractor: FeatureExtractor,
}

/// The raw feature row of `message`: numeric columns, then the TF-IDF buckets.
pub fn raw_features(
    extractor: &FeatureExtractor,
    idf: &[f64],
    message: &MailMessage,
    sent_ms: i64,
) -> Vec<f64> {
    extractor.extract(message, sent_ms).row(idf)
}

impl Preprocess {
    /// Standardised, clipped row.
    pub fn standardize(&self, raw: &[f64]) -> Vec<f64> {
        raw.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(x, (mean, std))| ((x - mean) / std).clamp(-CLIP, CLIP))
            .collect()
    }
}

impl EmailModel {
    /// Scores `message` sent at `sent_ms`, with the feature extractor `extractor` (the
    /// model's own, or one with the deployment's settings).
    pub fn score(
        &self,
        extractor: &FeatureExtractor,
        message: &MailMessage,
        sent_ms: i64,
        ensemble: &EnsembleSettings,
    ) -> MessageScore {
        let features = raw_features(extractor, &self.preprocess.idf, message, sent_ms);
        self.score_features(features, ensemble)
    }

    /// Scores a raw feature row.
    pub fn score_features(&self, features: Vec<f64>, ensemble: &EnsembleSettings) -> MessageScore {
        let row = self.preprocess.standardize(&features);
        let column_errors = self.autoencoder.column_errors(&row);
        let raw = [
            column_errors.iter().sum::<f64>() / column_errors.len().max(1) as f64,
            self.one_class.score(&row),
            self.isolation_forest.score(&row),
        ];
        let mut normalized = [0.0; 3];
        for (index, scale) in self.scales.detectors.iter().enumerate() {
            normalized[index] = scale.normalize(raw[index]);
        }
        let votes = self.votes(&raw, ensemble);
        let total_weight: f64 = ensemble.weights.iter().sum();
        let anomaly = normalized
            .iter()
            .zip(ensemble.weights)
            .map(|(score, weight)| score * weight)
            .sum::<f64>()
            / total_weight.max(1e-12);
        let voted = votes.iter().filter(|v| **v).count() >= ensemble.votes_needed;
        MessageScore {
            features,
            raw,
            normalized,
            votes,
            anomaly,
            voted,
            column_errors,
        }
    }

    /// Loads and checks the version in `directory`.
    pub fn load(directory: &Path) -> Result<Self, ModelError> {
        let manifest: EmailManifest =
            read_manifest(directory, |m: &EmailManifest| &m.kind, MANIFEST_KIND)?;
        if manifest.features != manifest.feature_settings.feature_names()
            || manifest.detectors != DETECTORS
        {
            return Err(ModelError::Invalid(
                "manifest features or detectors differ from this build's email features".into(),
            ));
        }
        let extractor =
            FeatureExtractor::new(&manifest.feature_settings).map_err(ModelError::Invalid)?;
        let width = manifest.features.len();
        let preprocess: Preprocess = read_json(
            directory,
            &manifest.preprocess.path,
            &manifest.preprocess.sha256,
        )?;
        let buckets = manifest.feature_settings.tfidf_buckets;
        if preprocess.mean.len() != width
            || preprocess.std.len() != width
            || preprocess.idf.len() != buckets
            || preprocess.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(ModelError::Invalid(
                "preprocess.json does not fit the features".into(),
            ));
        }
        let autoencoder: Autoencoder = read_json(
            directory,
            &manifest.autoencoder.path,
            &manifest.autoencoder.sha256,
        )?;
        autoencoder.validate().map_err(ModelError::Invalid)?;
        let one_class: OneClassSvm = read_json(
            directory,
            &manifest.one_class.path,
            &manifest.one_class.sha256,
        )?;
        one_class.validate().map_err(ModelError::Invalid)?;
        let isolation_forest: IsolationForest = read_json(
            directory,
            &manifest.isolation_forest.path,
            &manifest.isolation_forest.sha256,
        )?;
        let scales: Scales = read_json(directory, &manifest.scales.path, &manifest.scales.sha256)?;
        for scale in &scales.detectors {
            scale.validate().map_err(ModelError::Invalid)?;
        }
        if autoencoder.inputs != width
            || one_class.inputs != width
            || isolation_forest.feature_count != width
            || scales.detectors.len() != DETECTORS.len()
        {
            return Err(ModelError::Invalid(
                "detectors do not fit the feature width".into(),
            ));
        }
        Ok(Self {
            manifest,
            preprocess,
            autoencoder,
            one_class,
            isolation_forest,
            scales,
            extractor,
        })
    }

    /// Writes the version into `directory`, filling in the file references.
    pub fn save(&mut self, directory: &Path) -> Result<(), ModelError> {
        let manifest = &mut self.manifest;
        manifest.preprocess = write_json_ref(directory, "preprocess.json", &self.preprocess)?;
        manifest.autoencoder = write_json_ref(directory, "autoencoder.json", &self.autoencoder)?;
        manifest.one_class = write_json_ref(directory, "one_class.json", &self.one_class)?;
        manifest.isolation_forest =
            write_json_ref(directory, "isolation_forest.json", &self.isolation_forest)?;
        manifest.scales = write_json_ref(directory, "scales.json", &self.scales)?;
        write_pretty_json(&directory.join("manifest.json"), manifest)?;
        Ok(())
    }

    /// Whether raw scores `raw` make detector votes at `ensemble`'s percentile.
    pub fn votes(&self, raw: &[f64; 3], ensemble: &EnsembleSettings) -> [bool; 3] {
        let mut votes = [false; 3];
        for (index, scale) in self.scales.detectors.iter().enumerate() {
            votes[index] = raw[index] >= scale.quantile(ensemble.vote_percentile / 100.0);
        }
        votes
    }

    /// Share of held-out normal mail that `ensemble` makes a voted anomaly (at least one
    /// message's worth, so it is never 0): the `p₀` of the per-user vote surprise.
    pub fn normal_vote_rate(&self, ensemble: &EnsembleSettings) -> f64 {
        let rows = &self.scales.held_out;
        let voted = rows
            .iter()
            .filter(|raw| {
                self.votes(raw, ensemble).iter().filter(|v| **v).count() >= ensemble.votes_needed
            })
            .count();
        (voted.max(1)) as f64 / (rows.len() + 1) as f64
    }

    /// Names of the columns with the largest reconstruction errors, largest first, with
    /// their raw value and error.
    pub fn top_columns(&self, score: &MessageScore, k: usize) -> Vec<(String, f64, f64)> {
        let mut order: Vec<usize> = (0..score.column_errors.len()).collect();
        order.sort_by(|&a, &b| score.column_errors[b].total_cmp(&score.column_errors[a]));
        order
            .into_iter()
            .take(k)
            .map(|index| {
                (
                    self.manifest.features[index].clone(),
                    score.features[index],
                    score.column_errors[index],
                )
            })
            .collect()
    }
}
