//! The flow model set on disk and in memory: a manifest, a binary attack model and a
//! 5-class category model, and the documented mappings from their probabilities to
//! severity, risk level and recommended action.
//!
//! Layout of a version directory (`models/flow/<version>/`): `manifest.json`, plus the model
//! files it names with their sha256. Model files are either this engine's tree format
//! (`threatflow-trees`, an [`Ensemble`] as JSON) or XGBoost JSON (`xgboost-json`), so a model
//! trained in Python can be dropped in with a manifest.
//!
//! Guarantee: [`FlowModel::load`] refuses, with the reason, a manifest whose feature list
//! differs from the code's, a file whose sha256 differs from the manifest's, and a model whose
//! shape does not fit (feature count, class count). Nothing is scored with a model that
//! failed a check.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ml::gbdt::{sigmoid, softmax, GbdtParams};
use crate::ml::metrics::OperatingPoint;
use crate::ml::quantized::BatchEvaluator;
use crate::ml::trees::Ensemble;
use crate::operators::flow::dataset::CLASSES;
use crate::operators::flow::features::{FeatureEncoder, Vocabularies, ENGINEERED};

/// `kind` of a flow manifest.
pub const MANIFEST_KIND: &str = "threatflow.flow.gbdt";

/// Impact of each class on the 0-10 severity scale, in [`CLASSES`] order: a root compromise
/// (u2r) is worst, remote access (r2l) next, denial of service disrupts but does not
/// breach, a probe only prepares.
pub const IMPACT: [f64; 5] = [0.0, 7.0, 4.0, 8.0, 10.0];

/// Format of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFormat {
    /// [`Ensemble`] serialised as JSON by this engine.
    ThreatflowTrees,
    /// XGBoost's `save_model("m.json")` format.
    XgboostJson,
}

/// A model file named by the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// File name inside the version directory.
    pub path: String,
    /// Its format.
    pub format: ModelFormat,
    /// Hex sha256 of the file.
    pub sha256: String,
}

/// A team's operating point on the attack probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamThreshold {
    /// Team name, as in `thresholds_crossed` and routing config.
    pub team: String,
    /// How the threshold was chosen.
    pub rule: String,
    /// Threshold and its precision / recall on the validation split.
    pub point: OperatingPoint,
}

/// How the model set was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord {
    /// Training file name.
    pub data_file: String,
    /// Its sha256.
    pub data_sha256: String,
    /// Rows used to fit the trees.
    pub train_rows: usize,
    /// Rows held out for early stopping, thresholds and validation metrics.
    pub validation_rows: usize,
    /// Seed of the stratified split.
    pub seed: u64,
    /// Share of each label held out (absent in older manifests: derived from the row counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_fraction: Option<f64>,
    /// Analysts' feedback rows added to the training part (and their weight), when retrained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_rows: Option<usize>,
    /// Parameters of the binary model.
    pub binary_params: GbdtParams,
    /// Rounds kept by early stopping, binary model.
    pub binary_rounds: usize,
    /// Parameters of the category model.
    pub category_params: GbdtParams,
    /// Rounds kept by early stopping, category model.
    pub category_rounds: usize,
    /// Cost of a false positive for the executive operating point.
    pub false_positive_cost: f64,
    /// Cost of a false negative for the executive operating point.
    pub false_negative_cost: f64,
    /// Attack-name groups held out in turn to score validation rows for the thresholds.
    pub calibration_groups: Vec<Vec<String>>,
    /// Validation rows scored that way.
    pub calibration_rows: usize,
}

/// `manifest.json` of a flow model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowManifest {
    /// Always [`MANIFEST_KIND`].
    pub kind: String,
    /// Version, written into every scored event.
    pub version: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// A shipped bootstrap model: exempt from the registry's maximum age.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    /// Feature names in row order; must equal the code's.
    pub features: Vec<String>,
    /// What each engineered feature captures.
    pub engineered_features: BTreeMap<String, String>,
    /// Codes of the symbolic fields.
    pub vocabularies: Vocabularies,
    /// Class names of the category model, in output order.
    pub classes: Vec<String>,
    /// Severity impact weight per class.
    pub impact: Vec<f64>,
    /// Attack-vs-normal model.
    pub binary_model: ModelFile,
    /// Category model (softmax over `classes`).
    pub category_model: ModelFile,
    /// Default decision threshold on the attack probability (the SOC tier 2 point).
    pub decision_threshold: f64,
    /// Per-team operating points.
    pub teams: Vec<TeamThreshold>,
    /// Metrics on the validation split.
    pub metrics: BTreeMap<String, f64>,
    /// Training provenance (absent for imported models).
    pub training: Option<TrainingRecord>,
    /// The drift watch's reference sample of the training rows (`drift_reference.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_reference: Option<ArtifactRef>,
    /// How the trainer made this version from analysts' feedback (rows, weight, the gate's
    /// figures); absent for versions trained by `threatflow train flow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retraining: Option<serde_json::Value>,
}

pub use crate::ml::artifact::ModelError;

use crate::ml::artifact::{io_error, ArtifactRef};

pub use crate::ml::artifact::sha256_hex;

/// Everything the model says about one flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowAssessment {
    /// Log-odds of attack from the binary model.
    pub attack_margin: f64,
    /// P(attack) from the binary model.
    pub attack_probability: f64,
    /// Class probabilities, [`CLASSES`] order.
    pub class_probabilities: [f64; 5],
    /// Most probable class overall.
    pub predicted_class: usize,
    /// Most probable attack class when the decision threshold is crossed, else normal (0).
    pub attack_category: usize,
    /// 0-10, see [`severity`].
    pub severity: f64,
    /// Teams whose threshold the attack probability reaches.
    pub teams_crossed: Vec<usize>,
}

/// The loaded, checked model set.
#[derive(Debug, Clone)]
pub struct FlowModel {
    /// Its manifest.
    pub manifest: FlowManifest,
    /// Attack-vs-normal margins (one output, log-odds).
    pub binary: Ensemble,
    /// Category margins (one output per class).
    pub category: Ensemble,
    fast_binary: BatchEvaluator,
    fast_category: BatchEvaluator,
    encoder: FeatureEncoder,
}

impl FlowModel {
    /// Builds a model set from parts (training), checking shapes.
    pub fn new(
        manifest: FlowManifest,
        binary: Ensemble,
        category: Ensemble,
    ) -> Result<Self, ModelError> {
        check_manifest(&manifest)?;
        let width = manifest.features.len();
        if binary.feature_count != width || binary.outputs() != 1 {
            return Err(ModelError::Invalid(format!(
                "binary model has {} features and {} outputs, expected {width} and 1",
                binary.feature_count,
                binary.outputs()
            )));
        }
        if category.feature_count != width || category.outputs() != CLASSES.len() {
            return Err(ModelError::Invalid(format!(
                "category model has {} features and {} outputs, expected {width} and {}",
                category.feature_count,
                category.outputs(),
                CLASSES.len()
            )));
        }
        let encoder = FeatureEncoder::new(&manifest.vocabularies);
        Ok(Self {
            manifest,
            fast_binary: BatchEvaluator::new(&binary),
            fast_category: BatchEvaluator::new(&category),
            binary,
            category,
            encoder,
        })
    }

    /// Loads and checks the model set in `directory`.
    pub fn load(directory: &Path) -> Result<Self, ModelError> {
        let manifest_path = directory.join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(io_error(&manifest_path))?;
        let manifest: FlowManifest = serde_json::from_str(&text).map_err(|error| {
            ModelError::Invalid(format!("{}: {error}", manifest_path.display()))
        })?;
        check_manifest(&manifest)?;
        let binary = load_ensemble(directory, &manifest.binary_model)?;
        let category = load_ensemble(directory, &manifest.category_model)?;
        Self::new(manifest, binary, category)
    }

    /// Writes the manifest and both models into `directory` (created), filling in the
    /// files' sha256.
    pub fn save(&mut self, directory: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(directory).map_err(io_error(directory))?;
        for (file, ensemble) in [
            (&mut self.manifest.binary_model, &self.binary),
            (&mut self.manifest.category_model, &self.category),
        ] {
            file.format = ModelFormat::ThreatflowTrees;
            let bytes = serde_json::to_vec(ensemble)
                .map_err(|error| ModelError::Invalid(error.to_string()))?;
            file.sha256 = sha256_hex(&bytes);
            let path = directory.join(&file.path);
            std::fs::write(&path, &bytes).map_err(io_error(&path))?;
        }
        let manifest = serde_json::to_string_pretty(&self.manifest)
            .map_err(|error| ModelError::Invalid(error.to_string()))?;
        let path = directory.join("manifest.json");
        std::fs::write(&path, manifest + "\n").map_err(io_error(&path))
    }

    /// The feature encoder of this model's vocabularies.
    pub fn encoder(&self) -> &FeatureEncoder {
        &self.encoder
    }

    /// Scores a row-major batch of feature rows (quantized trees, a block of rows per tree).
    pub fn assess_batch(&self, rows: &[f64]) -> Vec<FlowAssessment> {
        let binary_margins = self.fast_binary.predict_raw_batch(rows);
        let category_margins = self.fast_category.predict_raw_batch(rows);
        binary_margins
            .iter()
            .zip(category_margins.chunks_exact(CLASSES.len()))
            .map(|(&margin, margins)| self.assessment(margin, margins))
            .collect()
    }

    fn assessment(&self, attack_margin: f64, category_margins: &[f64]) -> FlowAssessment {
        let attack_probability = sigmoid(attack_margin);
        let probabilities = softmax(category_margins);
        let mut class_probabilities = [0.0; 5];
        for (slot, probability) in class_probabilities.iter_mut().zip(probabilities) {
            *slot = probability;
        }
        let predicted_class = argmax(&class_probabilities, 0);
        let attack_category = if attack_probability >= self.manifest.decision_threshold {
            argmax(&class_probabilities, 1)
        } else {
            0
        };
        let teams_crossed = self
            .manifest
            .teams
            .iter()
            .enumerate()
            .filter(|(_, team)| attack_probability >= team.point.threshold)
            .map(|(index, _)| index)
            .collect();
        FlowAssessment {
            attack_margin,
            attack_probability,
            class_probabilities,
            predicted_class,
            attack_category,
            severity: severity(attack_probability, &class_probabilities),
            teams_crossed,
        }
    }
}

/// Index of the largest value from `start` on.
fn argmax(values: &[f64; 5], start: usize) -> usize {
    (start..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(start)
}

/// Severity 0-10: the attack probability times the impact of the attack categories, each
/// weighted by its share of the attack-class probability:
/// `P(attack) · Σ_{c≠normal} P(c)·IMPACT[c] / Σ_{c≠normal} P(c)`, rounded to one decimal.
pub fn severity(attack_probability: f64, class_probabilities: &[f64; 5]) -> f64 {
    let attack_mass: f64 = class_probabilities[1..].iter().sum();
    let impact = if attack_mass > 0.0 {
        class_probabilities[1..]
            .iter()
            .zip(&IMPACT[1..])
            .map(|(probability, weight)| probability * weight)
            .sum::<f64>()
            / attack_mass
    } else {
        0.0
    };
    ((attack_probability * impact).clamp(0.0, 10.0) * 10.0).round() / 10.0
}

/// Risk level of a severity: CRITICAL ≥ 8, HIGH ≥ 6, MEDIUM ≥ 3.5, LOW ≥ 1, else INFO (so a
/// certain probe is MEDIUM, a certain DoS HIGH, a certain r2l or u2r CRITICAL).
pub fn risk_level(severity: f64) -> &'static str {
    match severity {
        s if s >= 8.0 => "CRITICAL",
        s if s >= 6.0 => "HIGH",
        s if s >= 3.5 => "MEDIUM",
        s if s >= 1.0 => "LOW",
        _ => "INFO",
    }
}

/// What a SOC should do, by risk level and attack category.
pub fn recommended_action(risk_level: &str, attack_category: usize) -> &'static str {
    match (risk_level, attack_category) {
        ("INFO", _) | (_, 0) => "none",
        ("LOW", _) => "log and watch the source",
        (_, 1) => "rate-limit or block the source at the edge",
        (_, 2) => "block the scanning source and watch its targets for follow-up",
        ("CRITICAL", 3) => "lock the targeted account, isolate the host and open an incident",
        (_, 3) => "lock the targeted account and review its authentication logs",
        _ => "isolate the host and open an incident",
    }
}

fn check_manifest(manifest: &FlowManifest) -> Result<(), ModelError> {
    if manifest.kind != MANIFEST_KIND {
        return Err(ModelError::Invalid(format!(
            "manifest kind {:?}, expected {MANIFEST_KIND:?}",
            manifest.kind
        )));
    }
    let expected = FeatureEncoder::feature_names();
    if manifest.features != expected {
        let first_difference = expected
            .iter()
            .zip(&manifest.features)
            .position(|(code, model)| code != model)
            .unwrap_or(expected.len().min(manifest.features.len()));
        return Err(ModelError::Invalid(format!(
            "manifest features differ from the code's at position {first_difference} \
             (model has {}, code has {}): retrain or use a matching engine version",
            manifest.features.len(),
            expected.len()
        )));
    }
    if manifest.classes != CLASSES {
        return Err(ModelError::Invalid(format!(
            "manifest classes {:?}, expected {CLASSES:?}",
            manifest.classes
        )));
    }
    if !(0.0..=1.0).contains(&manifest.decision_threshold) {
        return Err(ModelError::Invalid(
            "decision_threshold outside [0, 1]".into(),
        ));
    }
    Ok(())
}

fn load_ensemble(directory: &Path, file: &ModelFile) -> Result<Ensemble, ModelError> {
    let path = directory.join(&file.path);
    let bytes = std::fs::read(&path).map_err(io_error(&path))?;
    let actual = sha256_hex(&bytes);
    if actual != file.sha256 {
        return Err(ModelError::Invalid(format!(
            "{}: sha256 {actual} differs from the manifest's {}",
            path.display(),
            file.sha256
        )));
    }
    match file.format {
        ModelFormat::ThreatflowTrees => serde_json::from_slice(&bytes)
            .map_err(|error| ModelError::Invalid(format!("{}: {error}", path.display()))),
        ModelFormat::XgboostJson => {
            let text = String::from_utf8_lossy(&bytes);
            crate::ml::xgboost::import_json(&text)
                .map(|model| model.ensemble)
                .map_err(|error| ModelError::Invalid(format!("{}: {error}", path.display())))
        }
    }
}

/// The engineered-feature docs for a manifest.
pub fn engineered_feature_docs() -> BTreeMap<String, String> {
    ENGINEERED
        .iter()
        .map(|feature| (feature.name.to_owned(), feature.doc.to_owned()))
        .collect()
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
