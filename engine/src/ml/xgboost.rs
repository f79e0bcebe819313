//! Import of XGBoost JSON models (`Booster.save_model("m.json")`, XGBoost 1.6 to 3.x) into
//! the shared [`Ensemble`], so models trained in Python run on the same evaluator and get
//! the same exact TreeSHAP explanations as models trained here.
//!
//! Supported: the `gbtree` booster (also with `num_parallel_tree > 1`) with numerical
//! splits; objectives `binary:logistic`, `binary:logitraw`, `reg:logistic`,
//! `reg:squarederror`, `multi:softprob` and `multi:softmax`. Anything else (dart,
//! categorical splits, vector leaves) is refused with a reason, never guessed.
//!
//! Exactness: XGBoost compares a feature rounded to `f32` with an `f32` threshold. The
//! importer replaces each threshold `t` by the `f64` boundary `b` with
//! `x < b ⟺ (x as f32) < t` for every `f64` x (the rounding midpoint below `t`), so the
//! `f64` evaluator routes every row exactly as XGBoost does; only the sum of leaf values
//! differs, by float rounding (XGBoost sums in `f32`).

use serde::Deserialize;
use serde_json::Value;

use crate::ml::trees::{Ensemble, Tree, LEAF};

/// What the margins of an imported model mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XgbObjective {
    /// One log-odds margin; probability = sigmoid(margin).
    Logistic,
    /// One margin used as is.
    Identity,
    /// One margin per class; probabilities = softmax(margins).
    Softmax,
}

/// An imported model.
#[derive(Debug, Clone)]
pub struct XgbModel {
    /// The trees, per output.
    pub ensemble: Ensemble,
    /// How to read its margins.
    pub objective: XgbObjective,
    /// Objective name as in the file.
    pub objective_name: String,
    /// Feature names, when the model was trained with them.
    pub feature_names: Vec<String>,
}

/// Why a model cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum XgbImportError {
    /// Not JSON, or not an XGBoost model.
    #[error("not an xgboost json model: {0}")]
    Format(String),
    /// A valid model using something this importer does not support.
    #[error("unsupported xgboost model: {0}")]
    Unsupported(String),
}

#[derive(Deserialize)]
struct RawTree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    default_left: Vec<Value>,
    sum_hessian: Vec<f64>,
    #[serde(default)]
    split_type: Vec<i64>,
}

/// Parses an XGBoost JSON model.
pub fn import_json(text: &str) -> Result<XgbModel, XgbImportError> {
    let root: Value =
        serde_json::from_str(text).map_err(|error| XgbImportError::Format(error.to_string()))?;
    let learner = root
        .get("learner")
        .ok_or_else(|| XgbImportError::Format("no learner object".into()))?;
    let booster = &learner["gradient_booster"];
    let booster_name = booster["name"].as_str().unwrap_or_default();
    if booster_name != "gbtree" {
        return Err(XgbImportError::Unsupported(format!(
            "booster {booster_name:?} (only gbtree)"
        )));
    }
    let params = &learner["learner_model_param"];
    let feature_count = parse_number(&params["num_feature"])
        .ok_or_else(|| XgbImportError::Format("num_feature missing".into()))?
        as usize;
    let classes = parse_number(&params["num_class"]).unwrap_or(0.0) as usize;
    let objective_name = learner["objective"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let objective = match objective_name.as_str() {
        "binary:logistic" | "reg:logistic" => XgbObjective::Logistic,
        "binary:logitraw" | "reg:squarederror" => XgbObjective::Identity,
        "multi:softprob" | "multi:softmax" => XgbObjective::Softmax,
        other => {
            return Err(XgbImportError::Unsupported(format!("objective {other:?}")));
        }
    };
    let outputs = if objective == XgbObjective::Softmax {
        classes.max(1)
    } else {
        1
    };
    let base_scores = parse_base_score(&params["base_score"], outputs)?;
    let base_margins = base_scores
        .iter()
        .map(|&score| match objective {
            // XGBoost stores the logistic intercept as a probability.
            XgbObjective::Logistic => (score / (1.0 - score)).ln(),
            XgbObjective::Identity | XgbObjective::Softmax => score,
        })
        .collect();

    let model = &booster["model"];
    let raw_trees: Vec<RawTree> = serde_json::from_value(model["trees"].clone())
        .map_err(|error| XgbImportError::Format(format!("trees: {error}")))?;
    let tree_info: Vec<usize> = serde_json::from_value(model["tree_info"].clone())
        .map_err(|error| XgbImportError::Format(format!("tree_info: {error}")))?;
    if tree_info.len() != raw_trees.len() {
        return Err(XgbImportError::Format(
            "tree_info and trees differ in length".into(),
        ));
    }
    let mut ensemble = Ensemble::new(feature_count, base_margins);
    for (raw, &output) in raw_trees.iter().zip(&tree_info) {
        let tree = convert_tree(raw, feature_count)?;
        ensemble
            .trees
            .get_mut(output)
            .ok_or_else(|| XgbImportError::Format(format!("tree for output {output}")))?
            .push(tree);
    }
    let feature_names = learner["feature_names"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(XgbModel {
        ensemble,
        objective,
        objective_name,
        feature_names,
    })
}

fn convert_tree(raw: &RawTree, feature_count: usize) -> Result<Tree, XgbImportError> {
    let nodes = raw.left_children.len();
    let lengths = [
        raw.right_children.len(),
        raw.split_indices.len(),
        raw.split_conditions.len(),
        raw.default_left.len(),
        raw.sum_hessian.len(),
    ];
    if lengths.iter().any(|&length| length != nodes) || nodes == 0 {
        return Err(XgbImportError::Format(
            "tree arrays differ in length".into(),
        ));
    }
    if raw.split_type.iter().any(|&kind| kind != 0) {
        return Err(XgbImportError::Unsupported("categorical splits".into()));
    }
    let child = |index: i64| -> Result<u32, XgbImportError> {
        if index < 0 {
            return Ok(LEAF);
        }
        u32::try_from(index)
            .ok()
            .filter(|&child| (child as usize) < nodes)
            .ok_or_else(|| XgbImportError::Format(format!("child index {index}")))
    };
    let mut tree = Tree::default();
    for node in 0..nodes {
        let (left, right) = (
            child(raw.left_children[node])?,
            child(raw.right_children[node])?,
        );
        let cover = raw.sum_hessian[node];
        if left == LEAF || right == LEAF {
            tree.push_leaf(f64::from(raw.split_conditions[node]), cover);
            continue;
        }
        let feature = u32::try_from(raw.split_indices[node])
            .ok()
            .filter(|&feature| (feature as usize) < feature_count)
            .ok_or_else(|| {
                XgbImportError::Format(format!("split feature {}", raw.split_indices[node]))
            })?;
        let default_left = match &raw.default_left[node] {
            Value::Bool(flag) => *flag,
            other => other.as_i64().unwrap_or(0) != 0,
        };
        tree.push_node(
            feature,
            f32_split_boundary(raw.split_conditions[node]),
            left,
            right,
            default_left,
            0.0,
            cover,
        );
    }
    Ok(tree)
}

/// The `f64` boundary `b` such that, for every `f64` x, `x < b` exactly when
/// `(x as f32) < threshold` (round to nearest, ties to even).
pub fn f32_split_boundary(threshold: f32) -> f64 {
    if !threshold.is_finite() {
        return f64::from(threshold);
    }
    let below = threshold.next_down();
    if below == f32::NEG_INFINITY {
        return f64::from(threshold);
    }
    // Adjacent f32 values differ in the last of 24 mantissa bits: their midpoint needs 25,
    // so it is exact in f64.
    let midpoint = (f64::from(below) + f64::from(threshold)) / 2.0;
    // A value exactly on the midpoint rounds to the neighbour with an even mantissa (the
    // two neighbours always differ in their last bit, whatever the sign).
    if threshold.to_bits() & 1 == 0 {
        // The midpoint rounds up to `threshold`: it is not below it.
        midpoint
    } else {
        midpoint.next_up()
    }
}

fn parse_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// `"5E-1"`, `"[5E-1]"` or `"[1E-1,2E-1,...]"` (XGBoost 3 stores one intercept per output).
fn parse_base_score(value: &Value, outputs: usize) -> Result<Vec<f64>, XgbImportError> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Ok(vec![0.5; outputs]),
    };
    let values: Vec<f64> = text
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| part.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|error| XgbImportError::Format(format!("base_score {text:?}: {error}")))?;
    match values.len() {
        1 => Ok(vec![values[0]; outputs]),
        count if count == outputs => Ok(values),
        count => Err(XgbImportError::Format(format!(
            "base_score has {count} values for {outputs} outputs"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn split_boundary_matches_f32_rounding() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut thresholds = vec![0.17f32, -0.17, 1.0, -1.0, 0.5, 3.0, 255.0, 1e-3, 7.5e6];
        thresholds.extend((0..200).map(|_| rng.gen_range(-1e4f32..1e4)));
        for threshold in thresholds {
            let boundary = f32_split_boundary(threshold);
            let below = f64::from(threshold.next_down());
            let at = f64::from(threshold);
            let midpoint = (below + at) / 2.0;
            let mut probes = vec![
                below,
                at,
                midpoint,
                midpoint.next_up(),
                midpoint.next_down(),
            ];
            probes.extend((0..20).map(|_| rng.gen_range(below..=at)));
            for x in probes {
                assert_eq!(
                    x < boundary,
                    (x as f32) < threshold,
                    "x {x:e} threshold {threshold:e}"
                );
            }
        }
        assert_eq!(f32_split_boundary(f32::INFINITY), f64::INFINITY);
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        assert!(matches!(import_json("{}"), Err(XgbImportError::Format(_))));
        let dart = r#"{"learner": {"gradient_booster": {"name": "dart"}}}"#;
        assert!(matches!(
            import_json(dart),
            Err(XgbImportError::Unsupported(_))
        ));
        let ranker = r#"{"learner": {"gradient_booster": {"name": "gbtree", "model": {}},
            "learner_model_param": {"num_feature": "2", "num_class": "0", "base_score": "5E-1"},
            "objective": {"name": "rank:pairwise"}}}"#;
        assert!(matches!(
            import_json(ranker),
            Err(XgbImportError::Unsupported(_))
        ));
    }

    #[test]
    fn imports_a_hand_written_stump() {
        // One stump on feature 1 at 0.5; missing goes right; base score 0.5 (margin 0).
        let text = r#"{"learner": {
            "feature_names": ["a", "b"],
            "gradient_booster": {"name": "gbtree", "model": {
                "tree_info": [0],
                "trees": [{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
                    "split_indices": [1, 0, 0], "split_conditions": [0.5, -0.25, 0.75],
                    "default_left": [0, 0, 0], "sum_hessian": [10.0, 4.0, 6.0],
                    "split_type": [0, 0, 0]}]}},
            "learner_model_param": {"num_feature": "2", "num_class": "0", "base_score": "[5E-1]"},
            "objective": {"name": "binary:logistic"}}, "version": [3, 2, 0]}"#;
        let model = import_json(text).unwrap();
        assert_eq!(model.objective, XgbObjective::Logistic);
        assert_eq!(model.feature_names, ["a", "b"]);
        let margin = |row: &[f64]| model.ensemble.predict_raw(row)[0];
        assert_eq!(margin(&[0.0, 0.1]), -0.25);
        assert_eq!(margin(&[0.0, 0.9]), 0.75);
        assert_eq!(margin(&[0.0, f64::NAN]), 0.75);
        // Cover-weighted expectation: (4·-0.25 + 6·0.75) / 10.
        assert!((model.ensemble.expected_value()[0] - 0.35).abs() < 1e-12);
    }
}
