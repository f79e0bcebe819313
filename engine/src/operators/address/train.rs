//! `threatflow train address`: fits the n-gram models, the Markov-risk parameters and the
//! calibration on a labelled address file (the generator's `train.jsonl`, or CSV / JSON lines
//! of `address,label`).
//!
//! The calibration and the Markov-risk parameters must see Markov scores of local parts the
//! n-gram models have *not* been trained on — otherwise every training address looks
//! familiar and the calibration learns to trust the Markov features too much. So the rows
//! are split into `folds` folds (seeded shuffle); each fold's features come from n-gram
//! models fitted on the other folds (out-of-fold features). On those:
//! - `ratio_risk`'s sigmoid is a one-feature logistic fit of the label on the total log ratio;
//! - the abnormality bounds are the median and 99th percentile of the legitimate rows'
//!   per-character negative log-likelihood under the legitimate 3-gram model;
//! - the calibration is a logistic regression over all features, the Markov columns pulled
//!   toward their means by the default guardrail as at scoring time.
//!
//! The shipped n-gram models are then fitted on all rows. Fraudulent rows at disposable
//! domains are left out of the fraudulent n-gram models and of the ratio fit: their label
//! comes from the domain, their local parts read like anyone's. The manifest's metrics are
//! the out-of-fold figures of [`evaluate`] with the default guardrail and thresholds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::ml::artifact::sha256_hex;
use crate::ml::logistic::StandardizedLogistic;
use crate::operators::address::domains::{DomainClass, DomainList, DomainLists};
use crate::operators::address::eval::{evaluate_pooled, AddressEvaluation};
use crate::operators::address::features::{
    feature_names, guarded_row, total_log_ratio, AddressFeatures, MarkovModels, FEATURES,
    FEATURE_COUNT, LEGIT_3, LENGTH, MARKOV_COLUMNS,
};
use crate::operators::address::local_part::{parse_address, EmailAddress};
use crate::operators::address::markov::CharNgramModel;
use crate::operators::address::model::{
    AddressManifest, AddressModel, AddressTrainingRecord, MarkovRiskParams, ModelError,
    MANIFEST_KIND,
};
use crate::operators::address::scorer::AddressScorer;
use crate::operators::address::synth::{read_labeled, LabeledAddress};
use crate::operators::address::AddressOperatorConfig;

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Labelled addresses.
    pub data: PathBuf,
    /// Directory with `disposable_domains.txt`, `free_domains.txt` and `SOURCES.json`.
    pub sources: PathBuf,
    /// Version directory to write.
    pub out: PathBuf,
    /// Version name for the manifest.
    pub version: String,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Folds of the out-of-fold features.
    pub folds: usize,
    /// α of the n-gram smoothing.
    pub concentration: f64,
    /// L2 penalty of the calibration.
    pub l2_penalty: f64,
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data or sources could not be read or are unusable.
    #[error("{0}")]
    Data(String),
    /// A fit failed.
    #[error("{0}")]
    Fit(String),
    /// Writing the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What training produced.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The manifest written.
    pub manifest: AddressManifest,
    /// Out-of-fold evaluation.
    pub evaluation: AddressEvaluation,
    /// Rows left out because their address does not parse.
    pub unparseable: usize,
}

struct Row {
    address: EmailAddress,
    fraudulent: bool,
    disposable: bool,
}

fn fit_markov<'a>(rows: impl Iterator<Item = &'a Row> + Clone, concentration: f64) -> MarkovModels {
    let legit = rows
        .clone()
        .filter(|row| !row.fraudulent)
        .map(|row| row.address.local.as_str());
    let fraud = rows
        .filter(|row| row.fraudulent && !row.disposable)
        .map(|row| row.address.local.as_str());
    MarkovModels {
        legit_2: CharNgramModel::fit(2, concentration, legit.clone()),
        legit_3: CharNgramModel::fit(3, concentration, legit),
        fraud_2: CharNgramModel::fit(2, concentration, fraud.clone()),
        fraud_3: CharNgramModel::fit(3, concentration, fraud),
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn read_text(path: &Path) -> Result<String, TrainError> {
    std::fs::read_to_string(path).map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

/// The domain lists' version from `SOURCES.json`.
fn lists_version(sources: &Path) -> Result<String, TrainError> {
    let text = read_text(&sources.join("SOURCES.json"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| TrainError::Data(format!("SOURCES.json: {e}")))?;
    value["domain_lists_version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| TrainError::Data("SOURCES.json has no domain_lists_version".into()))
}

/// Trains, evaluates out of fold and writes a model set; `created_at` goes into the manifest.
pub fn train(options: &TrainOptions, created_at: String) -> Result<TrainSummary, TrainError> {
    let text = read_text(&options.data)?;
    let labeled: Vec<LabeledAddress> = read_labeled(&text).map_err(TrainError::Data)?;
    let disposable_text = read_text(&options.sources.join("disposable_domains.txt"))?;
    let free_text = read_text(&options.sources.join("free_domains.txt"))?;
    let lists = DomainLists {
        disposable: DomainList::parse(&disposable_text),
        free: DomainList::parse(&free_text),
    };
    let mut rows = Vec::new();
    let mut kept = Vec::new();
    for item in &labeled {
        if let Ok(address) = parse_address(&item.address) {
            let disposable = lists.classify(&address.domain) == DomainClass::Disposable;
            rows.push(Row {
                address,
                fraudulent: item.label == 1,
                disposable,
            });
            kept.push(item.clone());
        }
    }
    let fraudulent = rows.iter().filter(|row| row.fraudulent).count();
    if options.folds < 2 || fraudulent < options.folds || rows.len() - fraudulent < options.folds {
        return Err(TrainError::Data(format!(
            "{} usable rows ({fraudulent} fraudulent) are too few for {} folds",
            rows.len(),
            options.folds
        )));
    }

    // Out-of-fold feature rows.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(options.seed));
    let mut fold_of = vec![0; rows.len()];
    for (position, &index) in order.iter().enumerate() {
        fold_of[index] = position % options.folds;
    }
    // Each fold's n-gram models, fitted on the other folds; they also score the fold in the
    // out-of-fold evaluation below.
    let fold_models: Vec<MarkovModels> = (0..options.folds)
        .map(|fold| {
            let others = rows
                .iter()
                .enumerate()
                .filter(|(i, _)| fold_of[*i] != fold)
                .map(|(_, r)| r);
            fit_markov(others, options.concentration)
        })
        .collect();
    let oof: Vec<[f64; FEATURE_COUNT]> = rows
        .iter()
        .zip(&fold_of)
        .map(|(row, &fold)| AddressFeatures::compute(&row.address, &fold_models[fold], &lists).row)
        .collect();

    // Markov-risk parameters.
    let (ratio_rows, ratio_labels): (Vec<Vec<f64>>, Vec<bool>) = rows
        .iter()
        .zip(&oof)
        .filter(|(row, _)| !(row.fraudulent && row.disposable))
        .map(|(row, features)| (vec![total_log_ratio(features)], row.fraudulent))
        .unzip();
    let ratio =
        StandardizedLogistic::fit(&ratio_rows, &ratio_labels, 1e-3).map_err(TrainError::Fit)?;
    let mut legit_nll: Vec<f64> = rows
        .iter()
        .zip(&oof)
        .filter(|(row, _)| !row.fraudulent)
        .map(|(_, features)| -features[LEGIT_3])
        .collect();
    legit_nll.sort_by(f64::total_cmp);
    let markov_risk = MarkovRiskParams {
        ratio_slope: ratio.weights[0] / ratio.scales[0],
        ratio_intercept: ratio.intercept - ratio.weights[0] * ratio.means[0] / ratio.scales[0],
        abnormality_low: quantile(&legit_nll, 0.5),
        abnormality_high: quantile(&legit_nll, 0.99),
    };

    // Calibration.
    let markov_anchor: Vec<f64> = MARKOV_COLUMNS
        .map(|column| oof.iter().map(|row| row[column]).sum::<f64>() / oof.len() as f64)
        .collect();
    let guardrail = AddressOperatorConfig::default().guardrail();
    let features: Vec<Vec<f64>> = oof
        .iter()
        .map(|row| {
            guarded_row(row, &markov_anchor, guardrail.factor(row[LENGTH] as usize)).to_vec()
        })
        .collect();
    let labels: Vec<bool> = rows.iter().map(|row| row.fraudulent).collect();
    let calibration = StandardizedLogistic::fit(&features, &labels, options.l2_penalty)
        .map_err(TrainError::Fit)?;

    let manifest = AddressManifest {
        bootstrap: false,
        kind: MANIFEST_KIND.to_owned(),
        version: options.version.clone(),
        created_at,
        features: feature_names(),
        feature_docs: FEATURES
            .iter()
            .map(|(name, doc)| ((*name).to_owned(), (*doc).to_owned()))
            .collect(),
        markov: Default::default(),
        markov_risk,
        markov_anchor,
        calibration: Default::default(),
        calibration_version: String::new(),
        disposable_domains: Default::default(),
        free_domains: Default::default(),
        domain_lists_version: lists_version(&options.sources)?,
        metrics: BTreeMap::new(),
        training: AddressTrainingRecord {
            data_file: options
                .data
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            data_sha256: sha256_hex(text.as_bytes()),
            legitimate_rows: rows.len() - fraudulent,
            fraudulent_rows: fraudulent,
            fraud_rows_on_disposable_domains: rows
                .iter()
                .filter(|row| row.fraudulent && row.disposable)
                .count(),
            folds: options.folds,
            concentration: options.concentration,
            l2_penalty: options.l2_penalty,
        },
        retraining: None,
        drift_reference: None,
    };

    // Out-of-fold evaluation: each fold scored by a model whose n-grams never saw it.
    let config = AddressOperatorConfig::default();
    let mut fold_rows_all = Vec::new();
    let mut fold_scorers = Vec::new();
    for (fold, markov) in fold_models.into_iter().enumerate() {
        let scorer = AddressScorer {
            model: AddressModel {
                manifest: manifest.clone(),
                markov,
                calibration: calibration.clone(),
                lists: lists.clone(),
            },
            guardrail: config.guardrail(),
            thresholds: config.thresholds(),
        };
        let fold_rows: Vec<LabeledAddress> = kept
            .iter()
            .enumerate()
            .filter(|(i, _)| fold_of[*i] == fold)
            .map(|(_, row)| row.clone())
            .collect();
        fold_scorers.push(scorer);
        fold_rows_all.push(fold_rows);
    }
    let evaluation = evaluate_pooled(
        fold_scorers
            .iter()
            .zip(&fold_rows_all)
            .map(|(s, r)| (s, r.as_slice())),
    );

    let mut model = AddressModel {
        manifest,
        markov: fit_markov(rows.iter(), options.concentration),
        calibration,
        lists,
    };
    model.manifest.metrics = BTreeMap::from([
        ("oof_precision".to_owned(), evaluation.precision),
        ("oof_recall".to_owned(), evaluation.recall),
        ("oof_f1".to_owned(), evaluation.f1),
        ("oof_auc".to_owned(), evaluation.auc),
        ("oof_markov_only_f1".to_owned(), evaluation.markov_only.f1),
    ]);
    std::fs::create_dir_all(&options.out)
        .map_err(|e| TrainError::Data(format!("{}: {e}", options.out.display())))?;
    model.manifest.drift_reference = Some(super::drift::write_reference(
        labeled.iter().map(|row| row.address.as_str()),
        options.seed,
        &options.out,
    )?);
    model.save(&options.out, &disposable_text, &free_text)?;
    Ok(TrainSummary {
        manifest: model.manifest,
        evaluation,
        unparseable: labeled.len() - rows.len(),
    })
}
