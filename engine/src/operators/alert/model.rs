//! The alert model set on disk and in memory: a random-forest disposition classifier, an
//! isolation-forest anomaly detector and a gradient-boosted risk regressor, with a manifest.
//!
//! Layout of a version directory (`models/alert/<version>/`): `manifest.json`, `forest.json`
//! ([`RandomForest`]), `isolation.json` ([`IsolationForest`]) and `risk.json` ([`Ensemble`],
//! squared error on risk 0–100). The manifest names each file with its sha256, lists the
//! feature columns, the training prevalences and business hours the features need, the
//! forest's feature importances, the anomaly threshold, validation metrics and training
//! provenance.
//!
//! Guarantee: [`AlertModel::load`] refuses, with the reason, a manifest of another kind, a
//! feature list that differs from the code's, a file whose sha256 differs, and models whose
//! shapes do not fit the feature list or the four dispositions.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::ml::artifact::ArtifactRef;
use crate::ml::artifact::{read_json, write_json, write_pretty_json};
use crate::ml::forest::{ForestParams, RandomForest};
use crate::ml::gbdt::GbdtParams;
use crate::ml::isolation_forest::{IsolationForest, IsolationForestParams};
use crate::ml::trees::Ensemble;
use crate::operators::alert::features::{feature_names, BusinessHours, FeatureEncoder, Prevalence};
use crate::operators::alert::synth::DISPOSITIONS;

/// `kind` of an alert manifest.
pub const MANIFEST_KIND: &str = "threatflow.alert.ensemble";

/// One feature's importance in the disposition classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureImportance {
    /// Feature column.
    pub feature: String,
    /// Mean decrease in Gini impurity, share of the total.
    pub importance: f64,
}

/// How the model set was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTrainingRecord {
    /// Training file name.
    pub data_file: String,
    /// Its sha256.
    pub data_sha256: String,
    /// Rows that fitted the models.
    pub train_rows: usize,
    /// Latest rows (by time) held out for early stopping and the validation metrics.
    pub validation_rows: usize,
    /// Class weights of the forest (√balanced: √(rows / (classes · rows of the class))).
    pub class_weights: Vec<f64>,
    /// Forest parameters.
    pub forest_params: ForestParams,
    /// Isolation forest parameters.
    pub isolation_params: IsolationForestParams,
    /// Risk regressor parameters.
    pub risk_params: GbdtParams,
    /// Rounds kept by early stopping.
    pub risk_rounds: usize,
    /// Analysts' feedback rows added to the fitting rows (retrained versions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_rows: Option<usize>,
}

/// `manifest.json` of an alert model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertManifest {
    /// Always [`MANIFEST_KIND`].
    pub kind: String,
    /// Version, written into every scored event.
    pub version: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// A shipped bootstrap model: exempt from the registry's maximum age.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    /// ATT&CK release the tactic columns come from.
    pub attack_source: String,
    /// Feature names in row order; must equal the code's.
    pub features: Vec<String>,
    /// What each feature measures.
    pub feature_docs: BTreeMap<String, String>,
    /// Dispositions in classifier output order.
    pub classes: Vec<String>,
    /// Rule and technique prevalences learned from the training alerts.
    pub prevalence: Prevalence,
    /// Business hours behind `off_hours`.
    pub business_hours: BusinessHours,
    /// Disposition classifier.
    pub forest: ArtifactRef,
    /// Anomaly detector.
    pub isolation: ArtifactRef,
    /// Risk regressor.
    pub risk: ArtifactRef,
    /// Classifier feature importances, strongest first.
    pub feature_importances: Vec<FeatureImportance>,
    /// Share of training alerts the anomaly flag is meant to mark.
    pub anomaly_contamination: f64,
    /// Anomaly score at or above which an alert is flagged (the training quantile
    /// `1 − anomaly_contamination`).
    pub anomaly_threshold: f64,
    /// Metrics on the validation rows.
    pub metrics: BTreeMap<String, f64>,
    /// Training provenance.
    pub training: AlertTrainingRecord,
    /// The drift watch's reference sample of the training rows (`drift_reference.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_reference: Option<ArtifactRef>,
    /// How the trainer made this version from analysts' feedback (rows, weight, the gate's
    /// figures); absent for versions trained by `threatflow train alert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retraining: Option<serde_json::Value>,
}

pub use crate::ml::artifact::ModelError;

/// What the models say about one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAssessment {
    /// Probability of each disposition, [`DISPOSITIONS`] order.
    pub class_probabilities: Vec<f64>,
    /// Index of the most probable disposition.
    pub disposition: usize,
    /// Its probability.
    pub confidence: f64,
    /// The regressor's risk, clamped to 0–100.
    pub ml_risk: f64,
    /// Isolation-forest anomaly score, 0–1.
    pub anomaly_score: f64,
    /// `anomaly_score >= anomaly_threshold`.
    pub anomalous: bool,
}

/// A loaded, checked model set.
#[derive(Debug, Clone)]
pub struct AlertModel {
    /// The manifest.
    pub manifest: AlertManifest,
    /// Disposition classifier.
    pub forest: RandomForest,
    /// Anomaly detector.
    pub isolation: IsolationForest,
    /// Risk regressor.
    pub risk: Ensemble,
    encoder: FeatureEncoder,
}

impl AlertModel {
    /// Assembles and checks a model set.
    pub fn new(
        manifest: AlertManifest,
        forest: RandomForest,
        isolation: IsolationForest,
        risk: Ensemble,
    ) -> Result<Self, ModelError> {
        check(&manifest, &forest, &isolation, &risk)?;
        let encoder = FeatureEncoder::new(manifest.prevalence.clone(), manifest.business_hours);
        Ok(Self {
            manifest,
            forest,
            isolation,
            risk,
            encoder,
        })
    }

    /// Loads `directory/manifest.json` and the files it names, verifying each.
    pub fn load(directory: &Path) -> Result<Self, ModelError> {
        let manifest_path = directory.join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| ModelError::Io {
            path: manifest_path.display().to_string(),
            source,
        })?;
        let manifest: AlertManifest = serde_json::from_str(&text).map_err(|error| {
            ModelError::Invalid(format!("{}: {error}", manifest_path.display()))
        })?;
        if manifest.kind != MANIFEST_KIND {
            return Err(ModelError::Invalid(format!(
                "manifest kind {:?}, expected {MANIFEST_KIND:?}",
                manifest.kind
            )));
        }
        let forest = read_json(directory, &manifest.forest.path, &manifest.forest.sha256)?;
        let isolation = read_json(
            directory,
            &manifest.isolation.path,
            &manifest.isolation.sha256,
        )?;
        let risk = read_json(directory, &manifest.risk.path, &manifest.risk.sha256)?;
        Self::new(manifest, forest, isolation, risk)
    }

    /// Writes the three models and the manifest into `directory`, filling in the sha256s.
    pub fn save(&mut self, directory: &Path) -> Result<(), ModelError> {
        self.manifest.forest = ArtifactRef::named("forest.json");
        self.manifest.isolation = ArtifactRef::named("isolation.json");
        self.manifest.risk = ArtifactRef::named("risk.json");
        self.manifest.forest.sha256 = write_json(directory, "forest.json", &self.forest)?;
        self.manifest.isolation.sha256 = write_json(directory, "isolation.json", &self.isolation)?;
        self.manifest.risk.sha256 = write_json(directory, "risk.json", &self.risk)?;
        write_pretty_json(&directory.join("manifest.json"), &self.manifest)?;
        Ok(())
    }

    /// The feature encoder of this model's prevalences and hours.
    pub fn encoder(&self) -> &FeatureEncoder {
        &self.encoder
    }

    /// Scores one feature row.
    pub fn assess(&self, row: &[f64]) -> AlertAssessment {
        let class_probabilities = self.forest.predict_proba(row);
        let disposition = (0..class_probabilities.len())
            .max_by(|&a, &b| class_probabilities[a].total_cmp(&class_probabilities[b]))
            .unwrap_or(0);
        let confidence = class_probabilities.get(disposition).copied().unwrap_or(0.0);
        let ml_risk = self
            .risk
            .predict_raw(row)
            .first()
            .copied()
            .unwrap_or(0.0)
            .clamp(0.0, 100.0);
        let anomaly_score = self.isolation.score(row);
        AlertAssessment {
            class_probabilities,
            disposition,
            confidence,
            ml_risk,
            anomaly_score,
            anomalous: anomaly_score >= self.manifest.anomaly_threshold,
        }
    }
}

fn check(
    manifest: &AlertManifest,
    forest: &RandomForest,
    isolation: &IsolationForest,
    risk: &Ensemble,
) -> Result<(), ModelError> {
    let expected = feature_names();
    if manifest.features != expected {
        let first_difference = manifest
            .features
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(manifest.features.len()));
        return Err(ModelError::Invalid(format!(
            "manifest feature list differs from the code's at column {first_difference} \
             ({} columns in the manifest, {} in the code); retrain with this version",
            manifest.features.len(),
            expected.len()
        )));
    }
    if manifest.classes != DISPOSITIONS {
        return Err(ModelError::Invalid(format!(
            "classes {:?}, expected {DISPOSITIONS:?}",
            manifest.classes
        )));
    }
    let width = expected.len();
    if forest.ensemble.feature_count != width
        || forest.classes() != DISPOSITIONS.len()
        || forest.importances.len() != width
    {
        return Err(ModelError::Invalid(format!(
            "forest has {} features and {} classes; expected {width} and {}",
            forest.ensemble.feature_count,
            forest.classes(),
            DISPOSITIONS.len()
        )));
    }
    if isolation.feature_count != width || isolation.trees.is_empty() {
        return Err(ModelError::Invalid(format!(
            "isolation forest has {} features and {} trees; expected {width} features",
            isolation.feature_count,
            isolation.trees.len()
        )));
    }
    if risk.feature_count != width || risk.outputs() != 1 {
        return Err(ModelError::Invalid(format!(
            "risk model has {} features and {} outputs; expected {width} and 1",
            risk.feature_count,
            risk.outputs()
        )));
    }
    if !(0.0..=1.0).contains(&manifest.anomaly_threshold) {
        return Err(ModelError::Invalid(format!(
            "anomaly threshold {} outside 0–1",
            manifest.anomaly_threshold
        )));
    }
    Ok(())
}
