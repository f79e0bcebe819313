//! XGBoost JSON models imported into the shared evaluator predict what Python xgboost
//! predicts on the same rows (fixture: `models/flow/xgboost/make_fixture.sh`), and their
//! TreeSHAP values add up to the margin.

use serde::Deserialize;
use threatflow::ml::gbdt::{sigmoid, softmax};
use threatflow::ml::xgboost::{import_json, XgbObjective};

const TOLERANCE: f64 = 1e-5;

#[derive(Deserialize)]
struct Expected {
    xgboost_version: String,
    rows: Vec<Vec<Option<f64>>>,
    binary_margin: Vec<f64>,
    binary_probability: Vec<f64>,
    multiclass_margin: Vec<Vec<f64>>,
    multiclass_probability: Vec<Vec<f64>>,
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../models/flow/xgboost/fixture/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn rows(expected: &Expected) -> Vec<Vec<f64>> {
    expected
        .rows
        .iter()
        .map(|row| row.iter().map(|value| value.unwrap_or(f64::NAN)).collect())
        .collect()
}

#[test]
fn binary_model_matches_python_xgboost() {
    let expected: Expected = serde_json::from_str(&fixture("expected.json")).unwrap();
    assert!(expected.xgboost_version.starts_with("3."));
    let model = import_json(&fixture("binary.json")).unwrap();
    assert_eq!(model.objective, XgbObjective::Logistic);
    assert_eq!(model.ensemble.trees[0].len(), 40);
    let rows = rows(&expected);
    assert!(rows.iter().flatten().any(|value| value.is_nan()));
    let mut worst: f64 = 0.0;
    for (index, row) in rows.iter().enumerate() {
        let margin = model.ensemble.predict_raw(row)[0];
        let probability = sigmoid(margin);
        worst = worst
            .max((margin - expected.binary_margin[index]).abs())
            .max((probability - expected.binary_probability[index]).abs());
        // Exact TreeSHAP on the imported trees: base value + Σ φ = margin.
        let shap = model.ensemble.shap_values(row, 0);
        let total = model.ensemble.expected_value()[0] + shap.iter().sum::<f64>();
        assert!(
            (total - margin).abs() < 1e-6,
            "row {index}: {total} vs {margin}"
        );
    }
    assert!(worst < TOLERANCE, "largest difference {worst:e}");
}

#[test]
fn multiclass_model_matches_python_xgboost() {
    let expected: Expected = serde_json::from_str(&fixture("expected.json")).unwrap();
    let model = import_json(&fixture("multiclass.json")).unwrap();
    assert_eq!(model.objective, XgbObjective::Softmax);
    assert_eq!(model.ensemble.outputs(), 5);
    let mut worst: f64 = 0.0;
    for (index, row) in rows(&expected).iter().enumerate() {
        let margins = model.ensemble.predict_raw(row);
        let probabilities = softmax(&margins);
        for class in 0..5 {
            worst = worst
                .max((margins[class] - expected.multiclass_margin[index][class]).abs())
                .max((probabilities[class] - expected.multiclass_probability[index][class]).abs());
        }
    }
    assert!(worst < TOLERANCE, "largest difference {worst:e}");
}
