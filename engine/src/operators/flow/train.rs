//! `threatflow train flow`: fits the flow model set on an NSL-KDD file and writes a version
//! directory with its manifest.
//!
//! Recipe (deterministic for a seed): a split of the file stratified by attack name holds out
//! `validation_fraction` of every label; vocabularies come from the training part only; two
//! histogram GBDTs ([`crate::ml::gbdt`]) are fitted with early stopping on the held-out part
//! — a binary attack-vs-normal model and a 5-class category model with square-root
//! class-balancing weights (u2r has a dozen training rows). The held-out part gives the
//! validation metrics written into the manifest (the random-split figures) and, scored by
//! models that never saw the attack type (see [`crate::operators::flow::novel`]), the
//! decision and team thresholds. The test file (KDDTest+) is never read here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::ml::gbdt::{self, Dataset, GbdtParams, Objective};
use crate::ml::metrics::{
    roc_auc, threshold_best_f1, threshold_for_precision, threshold_for_recall, threshold_min_cost,
    threshold_sweep, BinaryCounts, OperatingPoint,
};
use crate::operators::flow::dataset::{parse_nsl_kdd, LabelledFlow, CLASSES};
use crate::operators::flow::eval::{evaluate, FlowEvaluation};
use crate::operators::flow::features::{FeatureEncoder, Vocabularies, Vocabulary};
use crate::operators::flow::model::{
    engineered_feature_docs, sha256_hex, FlowManifest, FlowModel, ModelFile, ModelFormat,
    TeamThreshold, TrainingRecord, IMPACT, MANIFEST_KIND,
};
use crate::operators::flow::novel::{novel_attack_scores, LabelledRows};

/// SOC tier 1 must see this share of attacks.
pub const TIER1_MIN_RECALL: f64 = 0.95;
/// Incident response acts only at this precision.
pub const IR_MIN_PRECISION: f64 = 0.98;

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// NSL-KDD training file.
    pub data: PathBuf,
    /// Version directory to write.
    pub out: PathBuf,
    /// Version name for the manifest.
    pub version: String,
    /// Seed of the split.
    pub seed: u64,
    /// Share of each label held out for validation.
    pub validation_fraction: f64,
    /// Executive operating point: cost of a false alarm.
    pub false_positive_cost: f64,
    /// Executive operating point: cost of a missed attack.
    pub false_negative_cost: f64,
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] crate::operators::flow::dataset::DatasetError),
    /// The trainer refused the data.
    #[error(transparent)]
    Gbdt(#[from] gbdt::GbdtError),
    /// The model could not be built or written.
    #[error(transparent)]
    Model(#[from] crate::operators::flow::model::ModelError),
    /// Something else is wrong with the inputs.
    #[error("{0}")]
    Invalid(String),
}

/// Parameters of the binary model.
pub fn binary_params() -> GbdtParams {
    GbdtParams {
        objective: Objective::BinaryLogistic,
        rounds: 400,
        learning_rate: 0.1,
        max_depth: 6,
        early_stopping_rounds: 40,
        ..GbdtParams::default()
    }
}

/// Parameters of the category model.
pub fn category_params() -> GbdtParams {
    GbdtParams {
        objective: Objective::Softmax {
            classes: CLASSES.len(),
        },
        rounds: 300,
        learning_rate: 0.1,
        max_depth: 6,
        early_stopping_rounds: 30,
        ..GbdtParams::default()
    }
}

/// Encoded rows of a data split.
struct Encoded {
    features: Vec<f64>,
    is_attack: Vec<f64>,
    class: Vec<f64>,
}

fn encode(rows: &[&LabelledFlow], encoder: &FeatureEncoder) -> Encoded {
    let mut features = Vec::with_capacity(rows.len() * FeatureEncoder::width());
    for row in rows {
        encoder.encode_into(&row.event, &mut features);
    }
    Encoded {
        features,
        is_attack: rows
            .iter()
            .map(|row| f64::from(u8::from(row.is_attack())))
            .collect(),
        class: rows
            .iter()
            .map(|row| row.class.unwrap_or(0) as f64)
            .collect(),
    }
}

/// Splits row indices stratified by label: `fraction` of every label (at least one row of
/// any label with two or more) goes to validation.
pub fn stratified_split(
    rows: &[LabelledFlow],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        by_label.entry(row.label.as_str()).or_default().push(index);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for indices in by_label.values_mut() {
        indices.shuffle(&mut rng);
        let mut held_out = (indices.len() as f64 * fraction).round() as usize;
        if held_out == 0 && indices.len() >= 2 {
            held_out = 1;
        }
        validation.extend_from_slice(&indices[..held_out]);
        train.extend_from_slice(&indices[held_out..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    (train, validation)
}

/// Square-root inverse-frequency weights, normalised to mean 1.
fn class_weights(classes: &[f64]) -> Vec<f64> {
    let mut counts = [0usize; CLASSES.len()];
    for &class in classes {
        counts[class as usize] += 1;
    }
    let total = classes.len() as f64;
    let per_class: Vec<f64> = counts
        .iter()
        .map(|&count| {
            if count == 0 {
                0.0
            } else {
                (total / (CLASSES.len() as f64 * count as f64)).sqrt()
            }
        })
        .collect();
    let weights: Vec<f64> = classes
        .iter()
        .map(|&class| per_class[class as usize])
        .collect();
    let mean = weights.iter().sum::<f64>() / total.max(1.0);
    weights.iter().map(|weight| weight / mean).collect()
}

/// The four team operating points from validation scores.
pub fn team_thresholds(
    scores: &[f64],
    labels: &[bool],
    false_positive_cost: f64,
    false_negative_cost: f64,
) -> Vec<TeamThreshold> {
    let sweep = threshold_sweep(scores, labels);
    let fallback = OperatingPoint {
        threshold: 0.5,
        precision: 0.0,
        recall: 0.0,
    };
    let teams: [(&str, String, Option<OperatingPoint>); 4] = [
        (
            "soc_tier1",
            format!("strictest threshold with recall >= {TIER1_MIN_RECALL}"),
            threshold_for_recall(&sweep, TIER1_MIN_RECALL),
        ),
        ("soc_tier2", "best F1".to_owned(), threshold_best_f1(&sweep)),
        (
            "ir",
            format!("loosest threshold with precision >= {IR_MIN_PRECISION}"),
            threshold_for_precision(&sweep, IR_MIN_PRECISION),
        ),
        (
            "executive",
            format!(
                "minimum expected cost, false positive {false_positive_cost}, false negative {false_negative_cost}"
            ),
            threshold_min_cost(&sweep, false_positive_cost, false_negative_cost),
        ),
    ];
    let mut teams: Vec<TeamThreshold> = teams
        .into_iter()
        .map(|(team, rule, point)| TeamThreshold {
            team: team.to_owned(),
            rule,
            point: point.unwrap_or(fallback),
        })
        .collect();
    // Teams nest around the balanced tier 2 point: tier 1 (the wide net) sees at least what
    // tier 2 sees, IR (act only when sure) at most. On a split the model separates almost
    // perfectly, the raw rules would otherwise invert (a 95% recall floor met far above the
    // best-F1 point, a 98% precision floor met far below it).
    let balanced = teams[1].point;
    if teams[0].point.threshold > balanced.threshold {
        teams[0].point = balanced;
        teams[0].rule += ", but never stricter than soc_tier2";
    }
    if teams[2].point.threshold < balanced.threshold {
        teams[2].point = balanced;
        teams[2].rule += ", but never looser than soc_tier2";
    }
    teams
}

/// Result of training.
#[derive(Debug)]
pub struct TrainSummary {
    /// The written model.
    pub model: FlowModel,
    /// Its figures on the validation split.
    pub validation: FlowEvaluation,
}

/// Trains, writes `options.out`, and returns the model with its validation figures.
pub fn train(options: &TrainOptions, created_at: String) -> Result<TrainSummary, TrainError> {
    train_with_feedback(options, created_at, &[], 1.0)
}

/// [`train`] with analysts' rows added to the training part at `weight` each (the
/// validation split is the same as without them, so the retrained model never sees the
/// champion's validation rows). Rows with `class: None` (a threat of unknown category) teach
/// the binary model only.
pub fn train_with_feedback(
    options: &TrainOptions,
    created_at: String,
    feedback: &[LabelledFlow],
    weight: f64,
) -> Result<TrainSummary, TrainError> {
    if !(0.05..=0.5).contains(&options.validation_fraction) {
        return Err(TrainError::Invalid(
            "validation fraction must be within 0.05..=0.5".into(),
        ));
    }
    // Read once: the bytes are both hashed for the manifest and parsed.
    let data_text = std::fs::read_to_string(&options.data).map_err(|source| {
        crate::operators::flow::dataset::DatasetError::Io {
            path: options.data.display().to_string(),
            source,
        }
    })?;
    let rows = parse_nsl_kdd(&data_text, &options.data)?;
    if let Some(unknown) = rows.iter().find(|row| row.class.is_none()) {
        return Err(TrainError::Invalid(format!(
            "attack name {:?} has no category in attack_types.csv",
            unknown.label
        )));
    }
    let (train_indices, validation_indices) =
        stratified_split(&rows, options.validation_fraction, options.seed);
    let train_rows: Vec<&LabelledFlow> = train_indices
        .iter()
        .map(|&i| &rows[i])
        .chain(feedback)
        .collect();
    // 1 per bootstrap row, `weight` per feedback row (they come last).
    let row_weight = |index: usize| {
        if index >= train_indices.len() {
            weight
        } else {
            1.0
        }
    };
    let binary_weights: Option<Vec<f64>> =
        (!feedback.is_empty()).then(|| (0..train_rows.len()).map(row_weight).collect());
    let validation_rows: Vec<&LabelledFlow> =
        validation_indices.iter().map(|&i| &rows[i]).collect();

    let mut vocabularies = Vocabularies::default();
    for (position, field) in crate::events::FlowEvent::SYMBOLIC_NAMES.iter().enumerate() {
        let vocabulary = Vocabulary::learn(
            train_rows
                .iter()
                .map(|row| (row.event.symbolic_features()[position], row.is_attack())),
        );
        vocabularies.fields.insert((*field).to_owned(), vocabulary);
    }
    let encoder = FeatureEncoder::new(&vocabularies);
    let train_set = encode(&train_rows, &encoder);
    let validation_set = encode(&validation_rows, &encoder);
    let columns = FeatureEncoder::width();

    let binary_params = binary_params();
    let (binary, binary_report) = gbdt::train(
        &binary_params,
        &Dataset {
            features: &train_set.features,
            columns,
            labels: &train_set.is_attack,
            weights: binary_weights.as_deref(),
        },
        Some(&Dataset {
            features: &validation_set.features,
            columns,
            labels: &validation_set.is_attack,
            weights: None,
        }),
    )?;
    let category_params = category_params();
    let mut train_weights = class_weights(&train_set.class);
    for (index, (row, weight)) in train_rows.iter().zip(&mut train_weights).enumerate() {
        if row.class.is_none() {
            *weight = 0.0;
        } else {
            *weight *= row_weight(index);
        }
    }
    let validation_weights = class_weights(&validation_set.class);
    let (category, category_report) = gbdt::train(
        &category_params,
        &Dataset {
            features: &train_set.features,
            columns,
            labels: &train_set.class,
            weights: Some(&train_weights),
        },
        Some(&Dataset {
            features: &validation_set.features,
            columns,
            labels: &validation_set.class,
            weights: Some(&validation_weights),
        }),
    )?;

    // Thresholds come from out-of-family scores (see `novel`), not from the random split,
    // on which every threshold looks perfect.
    let novel = novel_attack_scores(
        &binary_params,
        binary_report.best_rounds,
        &LabelledRows {
            features: &train_set.features,
            columns,
            is_attack: &train_set.is_attack,
            names: train_rows.iter().map(|row| row.label.as_str()).collect(),
        },
        &LabelledRows {
            features: &validation_set.features,
            columns,
            is_attack: &validation_set.is_attack,
            names: validation_rows
                .iter()
                .map(|row| row.label.as_str())
                .collect(),
        },
    )?;
    let teams = team_thresholds(
        &novel.scores,
        &novel.labels,
        options.false_positive_cost,
        options.false_negative_cost,
    );
    let decision_threshold = teams
        .iter()
        .find(|team| team.team == "soc_tier2")
        .map_or(0.5, |team| team.point.threshold);

    let file_name = options
        .data
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = FlowManifest {
        bootstrap: false,
        drift_reference: None,
        retraining: None,
        kind: MANIFEST_KIND.to_owned(),
        version: options.version.clone(),
        created_at,
        features: FeatureEncoder::feature_names(),
        engineered_features: engineered_feature_docs(),
        vocabularies,
        classes: CLASSES.iter().map(|class| (*class).to_owned()).collect(),
        impact: IMPACT.to_vec(),
        binary_model: model_file("binary.json"),
        category_model: model_file("category.json"),
        decision_threshold,
        teams,
        metrics: BTreeMap::new(),
        training: Some(TrainingRecord {
            data_file: file_name,
            data_sha256: sha256_hex(data_text.as_bytes()),
            train_rows: train_rows.len(),
            validation_rows: validation_rows.len(),
            seed: options.seed,
            validation_fraction: Some(options.validation_fraction),
            feedback_rows: (!feedback.is_empty()).then_some(feedback.len()),
            binary_params,
            binary_rounds: binary_report.best_rounds,
            category_params,
            category_rounds: category_report.best_rounds,
            false_positive_cost: options.false_positive_cost,
            false_negative_cost: options.false_negative_cost,
            calibration_groups: novel.groups.clone(),
            calibration_rows: novel.scores.len(),
        }),
    };
    let mut model = FlowModel::new(manifest, binary, category)?;
    let validation_owned: Vec<LabelledFlow> = validation_rows.into_iter().cloned().collect();
    let validation = evaluate(&model, &validation_owned);
    model.manifest.metrics = validation.headline_metrics();
    let novel_counts = BinaryCounts::at_threshold(&novel.scores, &novel.labels, decision_threshold);
    for (name, value) in [
        ("novel_attack_auc", roc_auc(&novel.scores, &novel.labels)),
        ("novel_attack_recall", novel_counts.recall()),
        ("novel_attack_precision", novel_counts.precision()),
    ] {
        model
            .manifest
            .metrics
            .insert(name.to_owned(), (value * 1e6).round() / 1e6);
    }
    model.manifest.drift_reference = Some(super::drift::write_reference(
        &train_rows,
        options.seed,
        &options.out,
    )?);
    model.save(&options.out)?;
    Ok(TrainSummary { model, validation })
}

fn model_file(path: &str) -> ModelFile {
    ModelFile {
        path: path.to_owned(),
        format: ModelFormat::ThreatflowTrees,
        sha256: String::new(),
    }
}

pub use crate::ml::artifact::newest_version;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_thresholds_meet_their_rules_on_the_data_they_were_chosen_on() {
        // Scores that separate imperfectly: attacks ~ U(0.3, 1), normals ~ U(0, 0.7).
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for i in 0..1000 {
            let u = (i as f64 * 0.618_033_988_7).fract();
            scores.push(0.3 + 0.7 * u);
            labels.push(true);
            scores.push(0.7 * u);
            labels.push(false);
        }
        let teams = team_thresholds(&scores, &labels, 1.0, 5.0);
        let names: Vec<&str> = teams.iter().map(|team| team.team.as_str()).collect();
        assert_eq!(names, ["soc_tier1", "soc_tier2", "ir", "executive"]);
        assert!(teams[0].point.recall >= TIER1_MIN_RECALL);
        assert!(teams[2].point.precision >= IR_MIN_PRECISION);
        // High-recall tier 1 flags more than precise IR.
        assert!(teams[0].point.threshold < teams[2].point.threshold);
        // Misses cost 5× false alarms: the executive point is looser than best F1.
        assert!(teams[3].point.threshold <= teams[1].point.threshold);
    }
}
