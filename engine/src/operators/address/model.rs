//! The address model set on disk and in memory: four character n-gram models, the Markov
//! risk's parameters, the calibration (logistic regression over [`FEATURES`]) and the domain
//! lists, with a manifest.
//!
//! Layout of a version directory (`models/address/<version>/`): `manifest.json`,
//! `markov.json` (the four n-gram models' counts), `calibration.json`
//! ([`StandardizedLogistic`]), `disposable_domains.txt` and `free_domains.txt` (list syntax
//! of [`crate::operators::address::domains`]). The manifest names each file with its sha256
//! and records the domain lists' source version and the calibration version.
//!
//! Guarantee: [`AddressModel::load`] refuses, with the reason, a manifest of another kind, a
//! feature list that differs from the code's, a file whose sha256 differs, unusable n-gram
//! counts and a calibration that does not fit the feature list.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ml::artifact::{
    read_json, read_manifest, read_verified, write_bytes, write_json_ref, write_pretty_json,
    ArtifactRef,
};
use crate::ml::logistic::{sigmoid, StandardizedLogistic};
use crate::operators::address::domains::{DomainList, DomainLists};
use crate::operators::address::features::{
    feature_names, MarkovModels, FEATURE_COUNT, MARKOV_COLUMNS,
};
use crate::operators::address::markov::{CharNgramModel, StoredNgrams};

/// `kind` of an address manifest.
pub const MANIFEST_KIND: &str = "threatflow.address.markov-calibrated";

/// Parameters of the Markov-based risk (see [`crate::operators::address::scorer`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkovRiskParams {
    /// Slope of `P(fraud | total log ratio) = σ(slope · ratio + intercept)`.
    pub ratio_slope: f64,
    /// Intercept of the same.
    pub ratio_intercept: f64,
    /// Per-character negative log-likelihood under the legitimate 3-gram model at which
    /// abnormality starts (median of legitimate local parts, out of fold).
    pub abnormality_low: f64,
    /// … and at which it is full (their 99th percentile).
    pub abnormality_high: f64,
}

impl MarkovRiskParams {
    /// `P(fraud)` from the total log ratio alone.
    pub fn ratio_risk(&self, log_ratio: f64) -> f64 {
        sigmoid(self.ratio_slope * log_ratio + self.ratio_intercept)
    }

    /// How far outside legitimate local parts `legit_3` (mean ln P) lies, 0–1.
    pub fn abnormality(&self, legit_3: f64) -> f64 {
        let span = (self.abnormality_high - self.abnormality_low).max(1e-9);
        ((-legit_3 - self.abnormality_low) / span).clamp(0.0, 1.0)
    }
}

/// The four n-gram models as stored in `markov.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredMarkov {
    /// Legitimate, order 2.
    pub legit_2: StoredNgrams,
    /// Legitimate, order 3.
    pub legit_3: StoredNgrams,
    /// Fraudulent, order 2.
    pub fraud_2: StoredNgrams,
    /// Fraudulent, order 3.
    pub fraud_3: StoredNgrams,
}

/// How the model set was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressTrainingRecord {
    /// Training file name.
    pub data_file: String,
    /// Its sha256.
    pub data_sha256: String,
    /// Legitimate rows.
    pub legitimate_rows: usize,
    /// Fraudulent rows.
    pub fraudulent_rows: usize,
    /// Fraudulent rows left out of the fraudulent n-gram models because their domain is
    /// disposable (their local parts carry no fraud signal of their own).
    pub fraud_rows_on_disposable_domains: usize,
    /// Folds of the out-of-fold Markov features the calibration was fitted on.
    pub folds: usize,
    /// α of the n-gram smoothing.
    pub concentration: f64,
    /// L2 penalty of the calibration.
    pub l2_penalty: f64,
}

/// `manifest.json` of an address model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressManifest {
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
    /// What each feature measures.
    pub feature_docs: BTreeMap<String, String>,
    /// The n-gram models.
    pub markov: ArtifactRef,
    /// Markov-risk parameters.
    pub markov_risk: MarkovRiskParams,
    /// Training means of the Markov columns, toward which the guardrail pulls them before
    /// calibration.
    pub markov_anchor: Vec<f64>,
    /// The calibration model.
    pub calibration: ArtifactRef,
    /// Version of the calibration: the model version and the first 8 hex digits of
    /// `calibration.json`'s sha256 (changes whenever the calibration does).
    pub calibration_version: String,
    /// Disposable domain list.
    pub disposable_domains: ArtifactRef,
    /// Free-mail domain list.
    pub free_domains: ArtifactRef,
    /// Where the lists come from (npm package versions).
    pub domain_lists_version: String,
    /// Out-of-fold metrics on the training file.
    pub metrics: BTreeMap<String, f64>,
    /// Training provenance.
    pub training: AddressTrainingRecord,
    /// The drift watch's reference sample of the training rows (`drift_reference.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_reference: Option<ArtifactRef>,
    /// How the trainer made this version from analysts' feedback (rows, weight, the gate's
    /// figures); absent for versions trained by `threatflow train address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retraining: Option<serde_json::Value>,
}

pub use crate::ml::artifact::ModelError;

/// A loaded model set.
#[derive(Debug, Clone)]
pub struct AddressModel {
    /// The manifest.
    pub manifest: AddressManifest,
    /// The n-gram models.
    pub markov: MarkovModels,
    /// The calibration.
    pub calibration: StandardizedLogistic,
    /// The domain lists as shipped with the model.
    pub lists: DomainLists,
}

fn restore(stored: &StoredNgrams, name: &str) -> Result<CharNgramModel, ModelError> {
    CharNgramModel::from_stored(stored)
        .map_err(|error| ModelError::Invalid(format!("{name}: {error}")))
}

fn read_text(directory: &Path, artifact: &ArtifactRef) -> Result<String, ModelError> {
    let bytes = read_verified(directory, &artifact.path, &artifact.sha256)?;
    String::from_utf8(bytes)
        .map_err(|_| ModelError::Invalid(format!("{} is not UTF-8", artifact.path)))
}

impl AddressModel {
    /// Loads and checks the version in `directory`.
    pub fn load(directory: &Path) -> Result<Self, ModelError> {
        let manifest: AddressManifest =
            read_manifest(directory, |m: &AddressManifest| &m.kind, MANIFEST_KIND)?;
        if manifest.features != feature_names() {
            return Err(ModelError::Invalid(
                "manifest features differ from this build's address features".into(),
            ));
        }
        let stored: StoredMarkov =
            read_json(directory, &manifest.markov.path, &manifest.markov.sha256)?;
        let markov = MarkovModels {
            legit_2: restore(&stored.legit_2, "legit_2")?,
            legit_3: restore(&stored.legit_3, "legit_3")?,
            fraud_2: restore(&stored.fraud_2, "fraud_2")?,
            fraud_3: restore(&stored.fraud_3, "fraud_3")?,
        };
        let orders = [
            &markov.legit_2,
            &markov.legit_3,
            &markov.fraud_2,
            &markov.fraud_3,
        ]
        .map(CharNgramModel::order);
        if orders != [2, 3, 2, 3] {
            return Err(ModelError::Invalid(format!(
                "n-gram orders {orders:?}, expected 2, 3, 2, 3"
            )));
        }
        let calibration: StandardizedLogistic = read_json(
            directory,
            &manifest.calibration.path,
            &manifest.calibration.sha256,
        )?;
        calibration
            .validate(FEATURE_COUNT)
            .map_err(ModelError::Invalid)?;
        if manifest.markov_anchor.len() != MARKOV_COLUMNS.len()
            || manifest.markov_anchor.iter().any(|x| !x.is_finite())
        {
            return Err(ModelError::Invalid(format!(
                "markov_anchor needs {} finite values",
                MARKOV_COLUMNS.len()
            )));
        }
        let lists = DomainLists {
            disposable: DomainList::parse(&read_text(directory, &manifest.disposable_domains)?),
            free: DomainList::parse(&read_text(directory, &manifest.free_domains)?),
        };
        Ok(Self {
            manifest,
            markov,
            calibration,
            lists,
        })
    }

    /// Writes the version into `directory`, with the texts of the domain lists it was built
    /// from (a loaded model keeps only the parsed lists), filling in the file references and
    /// the calibration version.
    pub fn save(
        &mut self,
        directory: &Path,
        disposable_text: &str,
        free_text: &str,
    ) -> Result<(), ModelError> {
        let stored = StoredMarkov {
            legit_2: self.markov.legit_2.to_stored(),
            legit_3: self.markov.legit_3.to_stored(),
            fraud_2: self.markov.fraud_2.to_stored(),
            fraud_3: self.markov.fraud_3.to_stored(),
        };
        let manifest = &mut self.manifest;
        manifest.markov = write_json_ref(directory, "markov.json", &stored)?;
        manifest.calibration = write_json_ref(directory, "calibration.json", &self.calibration)?;
        manifest.calibration_version =
            format!("{}+{}", manifest.version, &manifest.calibration.sha256[..8]);
        manifest.disposable_domains = ArtifactRef::named("disposable_domains.txt");
        manifest.disposable_domains.sha256 = write_bytes(
            directory,
            "disposable_domains.txt",
            disposable_text.as_bytes(),
        )?;
        manifest.free_domains = ArtifactRef::named("free_domains.txt");
        manifest.free_domains.sha256 =
            write_bytes(directory, "free_domains.txt", free_text.as_bytes())?;
        write_pretty_json(&directory.join("manifest.json"), manifest)?;
        Ok(())
    }
}
