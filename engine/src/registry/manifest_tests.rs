use super::*;
use std::path::PathBuf;

/// The newest shipped version of `operator` (the prompt model is at v2, the others at v1).
fn shipped(operator: &str) -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")).join(operator);
    crate::ml::artifact::newest_version(&root).expect("a shipped version")
}

fn copy_of(operator: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(shipped(operator)).expect("shipped model") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
    }
    copy
}

fn edit_manifest(directory: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = directory.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

fn failed(checks: &[Check]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect()
}

#[test]
fn every_shipped_model_verifies() {
    for operator in ["flow", "alert", "address", "email", "prompt"] {
        let checks = verify_version(&shipped(operator), 7.0, chrono::Utc::now());
        assert_eq!(
            failed(&checks),
            Vec::<&str>::new(),
            "{operator}: {checks:?}"
        );
        assert_eq!(checks.len(), 6);
    }
}

#[test]
fn each_broken_property_fails_its_named_check() {
    let now = chrono::Utc::now();
    let missing = copy_of("flow");
    edit_manifest(missing.path(), |m| {
        m.as_object_mut().unwrap().remove("created_at");
    });
    assert!(failed(&verify_version(missing.path(), 7.0, now)).contains(&"fields"));

    let wrong_sha = copy_of("flow");
    let path = wrong_sha.path().join("binary.json");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        failed(&verify_version(wrong_sha.path(), 7.0, now)),
        ["sha256"]
    );

    let renamed = copy_of("alert");
    edit_manifest(renamed.path(), |m| {
        m["features"][3] = "renamed_feature".into()
    });
    let checks = verify_version(renamed.path(), 7.0, now);
    assert_eq!(failed(&checks), ["features"]);
    assert!(checks[3].detail.contains("position 3"), "{checks:?}");

    let expired = copy_of("address");
    edit_manifest(expired.path(), |m| {
        m["bootstrap"] = false.into();
        m["created_at"] = "2020-01-01T00:00:00Z".into();
    });
    assert_eq!(failed(&verify_version(expired.path(), 7.0, now)), ["age"]);

    let no_metrics = copy_of("flow");
    edit_manifest(no_metrics.path(), |m| {
        m.as_object_mut().unwrap().remove("metrics");
    });
    assert!(failed(&verify_version(no_metrics.path(), 7.0, now)).contains(&"metrics"));

    let not_json = tempfile::tempdir().unwrap();
    std::fs::write(not_json.path().join("manifest.json"), "{ not json").unwrap();
    assert_eq!(
        failed(&verify_version(not_json.path(), 7.0, now)),
        ["manifest"]
    );
}

#[test]
fn a_fresh_trained_version_is_young_and_an_old_one_expires() {
    let young = copy_of("flow");
    edit_manifest(young.path(), |m| {
        m["bootstrap"] = false.into();
        m["created_at"] = crate::model_cli::rfc3339_utc(std::time::SystemTime::now()).into();
    });
    let now = chrono::Utc::now();
    assert!(failed(&verify_version(young.path(), 7.0, now)).is_empty());
    let later = now + chrono::Duration::days(8);
    assert_eq!(failed(&verify_version(young.path(), 7.0, later)), ["age"]);
}

#[test]
fn artifacts_are_found_wherever_the_manifest_names_them() {
    let view = ManifestView::read(&shipped("email")).unwrap();
    assert_eq!(view.operator, "email");
    let names: Vec<&str> = view.artifacts.iter().map(|(p, _)| p.as_str()).collect();
    for file in [
        "preprocess.json",
        "autoencoder.json",
        "one_class.json",
        "isolation_forest.json",
        "scales.json",
    ] {
        assert!(names.contains(&file), "{names:?}");
    }
    assert!(view.bootstrap);
}
