use super::*;

#[test]
fn severity_mapping_follows_the_documented_weights() {
    // Certain attacks of one category score their impact weight.
    assert_eq!(severity(1.0, &[0.0, 1.0, 0.0, 0.0, 0.0]), 7.0);
    assert_eq!(severity(1.0, &[0.0, 0.0, 1.0, 0.0, 0.0]), 4.0);
    assert_eq!(severity(1.0, &[0.0, 0.0, 0.0, 0.0, 1.0]), 10.0);
    // Half sure of an r2l (impact 8): 4.
    assert_eq!(severity(0.5, &[0.5, 0.0, 0.0, 0.5, 0.0]), 4.0);
    // Mixed categories weigh their impacts by share of the attack mass.
    assert_eq!(severity(1.0, &[0.0, 0.5, 0.5, 0.0, 0.0]), 5.5);
    assert_eq!(severity(0.0, &[1.0, 0.0, 0.0, 0.0, 0.0]), 0.0);
    assert_eq!(risk_level(10.0), "CRITICAL");
    assert_eq!(risk_level(7.0), "HIGH");
    assert_eq!(risk_level(4.0), "MEDIUM");
    assert_eq!(risk_level(1.2), "LOW");
    assert_eq!(risk_level(0.2), "INFO");
    assert_eq!(recommended_action("INFO", 1), "none");
    assert_eq!(recommended_action("HIGH", 0), "none");
    assert_eq!(
        recommended_action("CRITICAL", 4),
        "isolate the host and open an incident"
    );
}

fn shipped_version_dir() -> std::path::PathBuf {
    let flow = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/flow"));
    crate::operators::flow::train::newest_version(&flow).unwrap()
}

/// A copy of the shipped model in a temporary directory, to tamper with.
fn copy_of_shipped_model() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped_version_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    copy
}

#[test]
fn shipped_model_loads_and_its_manifest_is_complete() {
    let model = FlowModel::load(&shipped_version_dir()).unwrap();
    let manifest = &model.manifest;
    assert_eq!(manifest.features, FeatureEncoder::feature_names());
    assert_eq!(manifest.classes, CLASSES);
    let teams: Vec<&str> = manifest
        .teams
        .iter()
        .map(|team| team.team.as_str())
        .collect();
    assert_eq!(teams, ["soc_tier1", "soc_tier2", "ir", "executive"]);
    for key in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
        "novel_attack_auc",
    ] {
        assert!(manifest.metrics.contains_key(key), "{key}");
    }
    let training = manifest.training.as_ref().unwrap();
    assert_eq!(training.data_file, "KDDTrain+_20Percent.txt");
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/flow/data/KDDTrain+_20Percent.txt"
    ))
    .unwrap();
    assert_eq!(training.data_sha256, sha256_hex(&data));
    assert!(manifest.vocabularies.fields["service"].categories.len() > 40);
}

#[test]
fn a_tampered_model_file_is_refused() {
    let copy = copy_of_shipped_model();
    let path = copy.path().join("binary.json");
    let mut bytes = std::fs::read(&path).unwrap();
    let position = bytes.iter().position(|byte| byte.is_ascii_digit()).unwrap();
    bytes[position] = if bytes[position] == b'9' { b'8' } else { b'9' };
    std::fs::write(&path, bytes).unwrap();
    let error = FlowModel::load(copy.path()).unwrap_err().to_string();
    assert!(error.contains("sha256"), "{error}");
}

#[test]
fn a_manifest_with_other_features_is_refused() {
    let copy = copy_of_shipped_model();
    let path = copy.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["features"][7] = serde_json::Value::String("renamed_feature".into());
    std::fs::write(&path, manifest.to_string()).unwrap();
    let error = FlowModel::load(copy.path()).unwrap_err().to_string();
    assert!(error.contains("features differ"), "{error}");
    assert!(error.contains("position 7"), "{error}");
}

#[test]
fn an_xgboost_model_loads_through_a_manifest() {
    // A user's XGBoost binary model replaces the engine's, named in the manifest.
    let copy = copy_of_shipped_model();
    let shipped = FlowModel::load(copy.path()).unwrap();
    let xgboost_text = serde_json::json!({
        "learner": {
            "gradient_booster": {"name": "gbtree", "model": {
                "tree_info": [0],
                "trees": [{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
                    "split_indices": [4, 0, 0], "split_conditions": [1000.0, -2.0, 2.0],
                    "default_left": [1, 0, 0], "sum_hessian": [2.0, 1.0, 1.0]}]}},
            "learner_model_param": {"num_feature": FeatureEncoder::width().to_string(),
                "num_class": "0", "base_score": "5E-1"},
            "objective": {"name": "binary:logistic"}}
    })
    .to_string();
    std::fs::write(copy.path().join("user.json"), &xgboost_text).unwrap();
    let mut manifest = shipped.manifest.clone();
    manifest.binary_model = ModelFile {
        path: "user.json".into(),
        format: ModelFormat::XgboostJson,
        sha256: sha256_hex(xgboost_text.as_bytes()),
    };
    std::fs::write(
        copy.path().join("manifest.json"),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();
    let model = FlowModel::load(copy.path()).unwrap();
    let mut row = vec![0.0; FeatureEncoder::width()];
    row[4] = 5000.0; // src_bytes ≥ 1000: the right leaf, margin 2
    assert!((model.binary.predict_raw(&row)[0] - 2.0).abs() < 1e-12);
}
