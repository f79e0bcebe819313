//! `threatflow train email`: fits the insider-threat ensemble on normal mail.
//!
//! Recipe: read every message of the folder (jsonl / eml / mbox; refused messages are
//! counted, not used); hold out `calibration_fraction` of them (by a stable hash of the id
//! and seed) as held-out normal mail; learn the TF-IDF IDF and the column means and standard
//! deviations on the rest; fit the autoencoder and the isolation forest on all of the rest
//! and the one-class SVM on a seeded sample of at most `one_class_rows` of them (its cost is
//! quadratic; ν = `nu`, kernel width = number of columns, i.e. γ = 1/d on standardised
//! columns, scikit-learn's `gamma="scale"`); then fit each detector's score scale on the
//! held-out rows — the 95th percentile of those is where a detector votes.
//!
//! Deterministic: same messages, settings and seed, same files.

use std::path::PathBuf;

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;

use crate::ml::artifact::{sha256_hex, ArtifactRef};
use crate::ml::autoencoder::{Autoencoder, AutoencoderParams};
use crate::ml::isolation_forest::{IsolationForest, IsolationForestParams};
use crate::ml::one_class::OneClassSvm;
use crate::ml::score_scale::ScoreScale;
use crate::operators::email::features::{bucket, learn_idf, FeatureExtractor, FeatureSettings};
use crate::operators::email::message::{read_mail_folder, MailMessage};
use crate::operators::email::model::{
    raw_features, CalibrationMetrics, EmailManifest, EmailModel, EmailTrainingRecord,
    EnsembleSettings, Preprocess, Scales, DETECTORS, MANIFEST_KIND,
};

/// Options of `train email`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Folder of normal mail.
    pub data: PathBuf,
    /// Models root; the version goes to `<models>/email/<version>`.
    pub models: PathBuf,
    /// Version name.
    pub version: String,
    /// Seed of the split, samples and detectors.
    pub seed: u64,
    /// Feature settings (from the config file, or defaults).
    pub settings: FeatureSettings,
    /// Share held out for the score scales.
    pub calibration_fraction: f64,
    /// Most rows the one-class SVM is fitted on.
    pub one_class_rows: usize,
    /// ν of the one-class SVM.
    pub nu: f64,
    /// Autoencoder parameters.
    pub autoencoder: AutoencoderParams,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            data: PathBuf::from("models/email/data/train"),
            models: PathBuf::from("models"),
            version: "v1".to_owned(),
            seed: 7,
            settings: FeatureSettings::default(),
            calibration_fraction: 0.2,
            one_class_rows: 2000,
            nu: 0.05,
            autoencoder: AutoencoderParams::default(),
        }
    }
}

/// What training did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Where the version was written.
    pub directory: PathBuf,
    /// The manifest.
    pub manifest: EmailManifest,
}

/// Trains and writes a model version.
pub fn train(options: &TrainOptions, created_at: String) -> Result<TrainSummary, String> {
    train_with_extra(options, Vec::new(), created_at)
}

/// [`train`] with `extra` normal messages (analysts' benign verdicts, repeated for their
/// weight) added to the fitting rows only: the score scales stay fitted on the folder's
/// held-out normal mail, which no fitted row repeats.
pub fn train_with_extra(
    options: &TrainOptions,
    extra: Vec<MailMessage>,
    created_at: String,
) -> Result<TrainSummary, String> {
    let extractor = FeatureExtractor::new(&options.settings)?;
    let folder = read_mail_folder(&options.data).map_err(|e| e.to_string())?;
    let mut ids = String::new();
    let mut messages: Vec<(String, MailMessage)> = Vec::new();
    let mut refused = 0;
    for entry in folder {
        ids.push_str(&entry.id);
        ids.push('\n');
        match entry.message {
            Ok(message) => messages.push((entry.id, message)),
            Err(_) => refused += 1,
        }
    }
    let held_out = |id: &str| {
        bucket(&format!("{id}/{}", options.seed), 10_000) as f64 / 10_000.0
            < options.calibration_fraction
    };
    let (calibration, mut fit): (Vec<_>, Vec<_>) =
        messages.iter().partition(|(id, _)| held_out(id));
    let extra: Vec<(String, MailMessage)> = extra
        .into_iter()
        .enumerate()
        .map(|(index, message)| (format!("feedback-{index}"), message))
        .collect();
    fit.extend(extra.iter());
    if fit.len() < 50 || calibration.len() < 20 {
        return Err(format!(
            "need at least 50 training and 20 held-out messages, have {} and {}",
            fit.len(),
            calibration.len()
        ));
    }
    let buckets = options.settings.tfidf_buckets;
    let fit_extracted: Vec<_> = fit
        .iter()
        .map(|(_, m)| extractor.extract(m, m.date_ms.unwrap_or(0)))
        .collect();
    let idf = learn_idf(
        fit_extracted.iter().map(|e| e.term_counts.as_slice()),
        buckets,
    );
    let fit_raw: Vec<Vec<f64>> = fit_extracted.iter().map(|e| e.row(&idf)).collect();
    let width = fit_raw[0].len();
    let n = fit_raw.len() as f64;
    let mean: Vec<f64> = (0..width)
        .map(|c| fit_raw.iter().map(|r| r[c]).sum::<f64>() / n)
        .collect();
    let std: Vec<f64> = (0..width)
        .map(|c| {
            let var = fit_raw
                .iter()
                .map(|r| (r[c] - mean[c]).powi(2))
                .sum::<f64>()
                / n;
            if var > 1e-12 {
                var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let preprocess = Preprocess { mean, std, idf };
    let fit_rows: Vec<Vec<f64>> = fit_raw.iter().map(|r| preprocess.standardize(r)).collect();

    let autoencoder = Autoencoder::fit(&fit_rows, &options.autoencoder)?;
    let forest_params = IsolationForestParams {
        seed: options.seed,
        ..IsolationForestParams::default()
    };
    let flat: Vec<f64> = fit_rows.iter().flatten().copied().collect();
    let isolation_forest =
        IsolationForest::fit(&forest_params, &flat, width).map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut picked = sample(
        &mut rng,
        fit_rows.len(),
        options.one_class_rows.min(fit_rows.len()),
    )
    .into_vec();
    picked.sort_unstable();
    let sample_rows = Array2::from_shape_fn((picked.len(), width), |(r, c)| fit_rows[picked[r]][c]);
    let one_class = OneClassSvm::fit(&sample_rows, options.nu, width as f64)?;

    let calibration_rows: Vec<Vec<f64>> = calibration
        .iter()
        .map(|(_, m)| {
            preprocess.standardize(&raw_features(
                &extractor,
                &preprocess.idf,
                m,
                m.date_ms.unwrap_or(0),
            ))
        })
        .collect();
    let detector_scores: Vec<[f64; 3]> = calibration_rows
        .iter()
        .map(|row| {
            [
                autoencoder.score(row),
                one_class.score(row),
                isolation_forest.score(row),
            ]
        })
        .collect();
    let scales = Scales {
        detectors: (0..DETECTORS.len())
            .map(|d| ScoreScale::fit(&detector_scores.iter().map(|s| s[d]).collect::<Vec<_>>()))
            .collect::<Result<_, _>>()?,
        held_out: detector_scores,
    };
    let manifest = EmailManifest {
        bootstrap: false,
        kind: MANIFEST_KIND.to_owned(),
        version: options.version.clone(),
        created_at,
        feature_settings: options.settings.clone(),
        features: options.settings.feature_names(),
        detectors: DETECTORS.map(str::to_owned).to_vec(),
        preprocess: ArtifactRef::default(),
        autoencoder: ArtifactRef::default(),
        one_class: ArtifactRef::default(),
        isolation_forest: ArtifactRef::default(),
        scales: ArtifactRef::default(),
        training: EmailTrainingRecord {
            data_sha256: sha256_hex(ids.as_bytes()),
            messages: messages.len() + refused,
            refused,
            fit_rows: fit_rows.len(),
            calibration_rows: calibration_rows.len(),
            one_class_rows: picked.len(),
            one_class_support_vectors: one_class.support_count(),
            seed: options.seed,
            data_file: options
                .data
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
            feedback_rows: (!extra.is_empty()).then_some(extra.len()),
        },
        metrics: CalibrationMetrics::default(),
        retraining: None,
        drift_reference: None,
    };
    let mut model = EmailModel {
        manifest,
        preprocess,
        autoencoder,
        one_class,
        isolation_forest,
        scales,
        extractor,
    };
    model.manifest.metrics = calibration_metrics(&model);
    let directory = options.models.join("email").join(&options.version);
    std::fs::create_dir_all(&directory).map_err(|e| format!("{}: {e}", directory.display()))?;
    model.manifest.drift_reference = Some(
        super::drift::write_reference(
            messages
                .iter()
                .filter(|(id, _)| !held_out(id))
                .map(|(_, m)| m),
            options.seed,
            &directory,
        )
        .map_err(|e| e.to_string())?,
    );
    model.save(&directory).map_err(|e| e.to_string())?;
    Ok(TrainSummary {
        directory,
        manifest: model.manifest,
    })
}

/// Figures on the held-out normal mail at the default operating point, voted exactly as
/// [`EmailModel::votes`] votes.
fn calibration_metrics(model: &EmailModel) -> CalibrationMetrics {
    let settings = EnsembleSettings::default();
    let votes: Vec<[bool; 3]> = model
        .scales
        .held_out
        .iter()
        .map(|raw| model.votes(raw, &settings))
        .collect();
    let n = votes.len().max(1) as f64;
    let share = |f: &dyn Fn(&[bool; 3]) -> bool| votes.iter().filter(|v| f(v)).count() as f64 / n;
    let overlap = |a: usize, b: usize| {
        let both = share(&|v| v[a] && v[b]);
        let either = share(&|v| v[a] || v[b]);
        if either > 0.0 {
            both / either
        } else {
            0.0
        }
    };
    CalibrationMetrics {
        voted_share_at_p95: share(&|v| v.iter().filter(|x| **x).count() >= settings.votes_needed),
        detector_vote_share_at_p95: (0..3).map(|d| share(&|v| v[d])).collect(),
        vote_overlap: vec![overlap(0, 1), overlap(0, 2), overlap(1, 2)],
    }
}
