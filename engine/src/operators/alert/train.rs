//! `threatflow train alert`: fits the three alert models on a labelled, time-ordered alert
//! file (the generator's `train.jsonl`, or analyst-labelled alerts in the same format).
//!
//! Steps: features are computed by streaming the alerts in event-time order through a fresh
//! entity history (exactly as the operator will); the latest `validation_fraction` of rows
//! is held out. Prevalences are learned from the fitting rows only. The forest is trained
//! with √balanced class weights (better validation macro-F1 than none or fully balanced);
//! the isolation forest on all fitting rows (it is unsupervised) with its flag threshold at
//! the `1 − contamination` quantile of their scores; the risk regressor with early stopping on the held-out rows. Validation metrics
//! come from [`crate::operators::alert::eval::evaluate`] over the held-out rows, through the
//! same scorer the operator uses (with the default rules and blend).

use std::path::{Path, PathBuf};

use crate::ml::artifact::sha256_hex;
use crate::ml::forest::{train_classifier, ForestParams};
use crate::ml::gbdt::{self, Dataset, GbdtParams, Objective};
use crate::ml::isolation_forest::{IsolationForest, IsolationForestParams};
use crate::operators::alert::attack::catalogue;
use crate::operators::alert::eval::{evaluate, AlertEvaluation};
use crate::operators::alert::features::{
    feature_docs, feature_names, width, BusinessHours, FeatureEncoder, Prevalence,
};
use crate::operators::alert::history::EntityHistory;
use crate::operators::alert::model::{
    AlertManifest, AlertModel, AlertTrainingRecord, ArtifactRef, FeatureImportance, ModelError,
    MANIFEST_KIND,
};
use crate::operators::alert::rules::RuleSet;
use crate::operators::alert::scorer::BlendWeights;
use crate::operators::alert::synth::{read_jsonl, with_warmup, LabeledAlert, DISPOSITIONS};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Labelled alerts, JSON lines.
    pub data: PathBuf,
    /// Version directory to write.
    pub out: PathBuf,
    /// Version name for the manifest.
    pub version: String,
    /// Seed of the forests.
    pub seed: u64,
    /// Latest share of the rows held out for validation.
    pub validation_fraction: f64,
    /// Share of alerts the anomaly flag should mark.
    pub contamination: f64,
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data could not be read or parsed.
    #[error("{0}")]
    Data(String),
    /// A trainer refused the data.
    #[error(transparent)]
    Gbdt(#[from] gbdt::GbdtError),
    /// The isolation forest refused the data.
    #[error(transparent)]
    Isolation(#[from] crate::ml::isolation_forest::IsolationForestError),
    /// The model could not be built or written.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A trained, saved model set and its validation figures.
#[derive(Debug)]
pub struct TrainSummary {
    /// The model as written.
    pub model: AlertModel,
    /// Figures on the held-out rows.
    pub validation: AlertEvaluation,
}

/// Forest parameters: 60 trees of depth ≤ 10, leaves of weight ≥ 20, √features per node.
/// Chosen on the validation rows among 10 settings (trees 60/100, depth 8–12, leaf weight
/// 3–30, class weights none / √balanced / balanced): the best validation macro-F1 (0.793),
/// and a 2 MB file where depth 12 made 9 MB.
pub fn forest_params(seed: u64) -> ForestParams {
    ForestParams {
        trees: 60,
        max_depth: 10,
        min_leaf_weight: 20.0,
        max_features: 0,
        sample_fraction: 1.0,
        max_bins: 64,
        seed,
    }
}

/// Isolation forest parameters: the paper's 100 trees of 256 rows.
pub fn isolation_params(seed: u64) -> IsolationForestParams {
    IsolationForestParams {
        trees: 100,
        sample_size: 256,
        seed,
    }
}

/// Risk regressor parameters.
pub fn risk_params() -> GbdtParams {
    GbdtParams {
        objective: Objective::SquaredError,
        rounds: 600,
        learning_rate: 0.05,
        max_depth: 5,
        min_child_weight: 5.0,
        lambda: 1.0,
        gamma: 0.0,
        max_bins: 64,
        early_stopping_rounds: 40,
        ..GbdtParams::default()
    }
}

/// Feature rows of `alerts` in order, each from the history of the alerts before it.
pub fn feature_rows(encoder: &FeatureEncoder, alerts: &[LabeledAlert]) -> Vec<f64> {
    let mut history = EntityHistory::default();
    let intel = crate::operators::alert::scorer::shipped_intel();
    let mut rows = Vec::with_capacity(alerts.len() * width());
    for labeled in alerts {
        let facts = history.facts(&labeled.alert);
        let alert = &labeled.alert;
        let matches = intel.match_alert(&alert.ips, &alert.hosts, alert.last_seen_ms);
        encoder.encode_into(alert, &facts, &matches, &mut rows);
        history.record(&labeled.alert, labeled.risk);
    }
    rows
}

fn class_index(disposition: &str) -> Result<usize, TrainError> {
    DISPOSITIONS
        .iter()
        .position(|known| *known == disposition)
        .ok_or_else(|| TrainError::Data(format!("unknown disposition {disposition:?}")))
}

/// An analyst-labelled alert for retraining: the alert, what its entity history said when it
/// was scored, its disposition and, if given, the risk it deserved.
#[derive(Debug, Clone)]
pub struct FeedbackAlert {
    /// The alert.
    pub alert: crate::events::AlertEvent,
    /// Its entity history's facts (rebuilt at join time).
    pub facts: crate::operators::alert::history::HistoryFacts,
    /// Index into [`DISPOSITIONS`].
    pub disposition: usize,
    /// Corrected risk 0–100.
    pub risk: Option<f64>,
}

/// A training file's text and its alerts in training order: warm-up rows out, by time (as
/// training, its validation rows and its drift reference read them).
pub fn read_training_alerts(path: &Path) -> Result<(String, Vec<LabeledAlert>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut alerts = read_jsonl(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    alerts.retain(|alert| !alert.warmup);
    alerts.sort_by_key(|alert| alert.alert.last_seen_ms);
    Ok((text, alerts))
}

/// Trains, validates and writes a model set; `created_at` goes into the manifest.
pub fn train(options: &TrainOptions, created_at: String) -> Result<TrainSummary, TrainError> {
    train_with_feedback(options, &[], 1.0, created_at)
}

/// [`train`] with analysts' feedback rows added to the fitting rows at `weight` (times the
/// class weight) for the classifier, and — those with a corrected risk — for the risk
/// regressor. The isolation forest, the prevalences and the validation rows stay the
/// bootstrap file's: feedback alerts are chosen by analysts, not a sample of the stream.
pub fn train_with_feedback(
    options: &TrainOptions,
    feedback: &[FeedbackAlert],
    weight: f64,
    created_at: String,
) -> Result<TrainSummary, TrainError> {
    let (text, alerts) = read_training_alerts(&options.data).map_err(TrainError::Data)?;
    if alerts.len() < 100 {
        return Err(TrainError::Data(format!(
            "{} alerts; need at least 100",
            alerts.len()
        )));
    }
    if !(0.0..0.9).contains(&options.validation_fraction)
        || !(0.0..0.5).contains(&options.contamination)
    {
        return Err(TrainError::Data(
            "validation fraction must be in [0, 0.9) and contamination in [0, 0.5)".to_owned(),
        ));
    }
    let validation_rows = ((alerts.len() as f64) * options.validation_fraction).round() as usize;
    let fit_rows = alerts.len() - validation_rows;
    let prevalence = Prevalence::learn(alerts[..fit_rows].iter().map(|a| &a.alert));
    let hours = BusinessHours::default();
    let encoder = FeatureEncoder::new(prevalence.clone(), hours);
    let rows = feature_rows(&encoder, &alerts);
    let columns = width();
    let (fit_features, validation_features) = rows.split_at(fit_rows * columns);
    let classes: Vec<usize> = alerts
        .iter()
        .map(|alert| class_index(&alert.disposition))
        .collect::<Result<_, _>>()?;
    let mut labels: Vec<f64> = classes[..fit_rows].iter().map(|&c| c as f64).collect();
    let mut counts = [0usize; 4];
    for &class in &classes[..fit_rows] {
        counts[class] += 1;
    }
    let class_weights: Vec<f64> = counts
        .iter()
        .map(|&count| (fit_rows as f64 / (4.0 * count.max(1) as f64)).sqrt())
        .collect();
    let mut weights: Vec<f64> = classes[..fit_rows]
        .iter()
        .map(|&class| class_weights[class])
        .collect();
    let mut feedback_features = Vec::with_capacity(feedback.len() * columns);
    let intel = crate::operators::alert::scorer::shipped_intel();
    for row in feedback {
        if row.disposition >= DISPOSITIONS.len() {
            return Err(TrainError::Data(format!(
                "feedback disposition index {} out of range",
                row.disposition
            )));
        }
        let matches = intel.match_alert(&row.alert.ips, &row.alert.hosts, row.alert.last_seen_ms);
        encoder.encode_into(&row.alert, &row.facts, &matches, &mut feedback_features);
        labels.push(row.disposition as f64);
        weights.push(class_weights[row.disposition] * weight);
    }
    let classifier_features: Vec<f64> = fit_features
        .iter()
        .chain(&feedback_features)
        .copied()
        .collect();
    let forest_params = forest_params(options.seed);
    let forest = train_classifier(
        &forest_params,
        &Dataset {
            features: &classifier_features,
            columns,
            labels: &labels,
            weights: Some(&weights),
        },
        DISPOSITIONS.len(),
    )?;
    let isolation_params = isolation_params(options.seed);
    let isolation = IsolationForest::fit(&isolation_params, fit_features, columns)?;
    let mut training_scores: Vec<f64> = fit_features
        .chunks_exact(columns)
        .map(|row| isolation.score(row))
        .collect();
    training_scores.sort_by(f64::total_cmp);
    let quantile_index = (((training_scores.len() as f64) * (1.0 - options.contamination)).floor()
        as usize)
        .min(training_scores.len() - 1);
    let anomaly_threshold = training_scores[quantile_index];
    let risks: Vec<f64> = alerts.iter().map(|alert| alert.risk).collect();
    let risk_params = risk_params();
    let validation_set = Dataset {
        features: validation_features,
        columns,
        labels: &risks[fit_rows..],
        weights: None,
    };
    // The risk regressor: the fitting rows, then the feedback rows that carry a corrected risk.
    let mut risk_features = fit_features.to_vec();
    let mut risk_labels = risks[..fit_rows].to_vec();
    let mut risk_weights = vec![1.0; fit_rows];
    for (row, features) in feedback.iter().zip(feedback_features.chunks_exact(columns)) {
        if let Some(risk) = row.risk {
            risk_features.extend_from_slice(features);
            risk_labels.push(risk.clamp(0.0, 100.0));
            risk_weights.push(weight);
        }
    }
    let risk_feedback_rows = risk_labels.len() - fit_rows;
    let (risk, report) = gbdt::train(
        &risk_params,
        &Dataset {
            features: &risk_features,
            columns,
            labels: &risk_labels,
            weights: (risk_feedback_rows > 0).then_some(risk_weights.as_slice()),
        },
        (validation_rows > 0).then_some(&validation_set),
    )?;
    let names = feature_names();
    let mut feature_importances: Vec<FeatureImportance> = names
        .iter()
        .zip(&forest.importances)
        .map(|(feature, &importance)| FeatureImportance {
            feature: feature.clone(),
            importance,
        })
        .collect();
    feature_importances.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    let data_file = options
        .data
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let manifest = AlertManifest {
        bootstrap: false,
        kind: MANIFEST_KIND.to_owned(),
        version: options.version.clone(),
        created_at,
        attack_source: catalogue().source.clone(),
        features: names.clone(),
        feature_docs: feature_docs(),
        classes: DISPOSITIONS.iter().map(|c| (*c).to_owned()).collect(),
        prevalence,
        business_hours: hours,
        // `save` names the files and fills in their sha256.
        forest: ArtifactRef::default(),
        isolation: ArtifactRef::default(),
        risk: ArtifactRef::default(),
        feature_importances,
        anomaly_contamination: options.contamination,
        anomaly_threshold,
        metrics: Default::default(),
        training: AlertTrainingRecord {
            data_file,
            data_sha256: sha256_hex(text.as_bytes()),
            train_rows: fit_rows,
            validation_rows,
            class_weights,
            forest_params,
            isolation_params,
            risk_params,
            risk_rounds: report.best_rounds,
            feedback_rows: (!feedback.is_empty()).then_some(feedback.len()),
        },
        retraining: None,
        drift_reference: None,
    };
    let mut model = AlertModel::new(manifest, forest, isolation, risk)?;
    let rules = RuleSet::shipped(&names).map_err(|error| TrainError::Data(error.to_string()))?;
    // Validation streams the held-out rows after a day of fitting rows (history warm-up),
    // through the operator's scorer.
    let validation_alerts = with_warmup(&alerts, fit_rows);
    let validation = evaluate(
        model.clone(),
        rules,
        BlendWeights::default(),
        &validation_alerts,
    );
    model.manifest.metrics = validation.headline_metrics();
    std::fs::create_dir_all(&options.out)
        .map_err(|e| TrainError::Data(format!("{}: {e}", options.out.display())))?;
    let fitted: Vec<&crate::events::AlertEvent> =
        alerts[..fit_rows].iter().map(|a| &a.alert).collect();
    model.manifest.drift_reference = Some(super::drift::write_reference(
        &fitted,
        options.seed,
        &options.out,
    )?);
    model.save(&options.out)?;
    Ok(TrainSummary { model, validation })
}

/// Where `train alert` writes by default: `<models>/alert/<version>`.
pub fn version_directory(models: &Path, version: &str) -> PathBuf {
    models.join("alert").join(version)
}
