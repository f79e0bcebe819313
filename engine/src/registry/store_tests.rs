use super::*;

fn flow_v1() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/flow/v1"))
}

fn local_store(root: &Path) -> ArtifactStore {
    let config = RegistryConfig {
        store: root.display().to_string(),
        ..RegistryConfig::default()
    };
    ArtifactStore::open(&config, Path::new("unused")).expect("store opens")
}

/// A copy of flow v1 renamed to `version`.
fn flow_as(version: &str, parent: &Path) -> PathBuf {
    let directory = parent.join(version);
    std::fs::create_dir_all(&directory).unwrap();
    for entry in std::fs::read_dir(flow_v1()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), directory.join(entry.file_name())).unwrap();
    }
    let path = directory.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["version"] = version.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    directory
}

#[test]
fn push_then_fetch_round_trips_and_versions_are_immutable() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = local_store(root.path());
    let view = store.push(&flow_v1()).unwrap();
    assert_eq!(
        (view.operator.as_str(), view.version.as_str()),
        ("flow", "v1")
    );
    // Same bytes again: a no-op.
    store.push(&flow_v1()).unwrap();
    let v2 = flow_as("v2", work.path());
    store.push(&v2).unwrap();
    assert_eq!(store.versions("flow").unwrap(), ["v1", "v2"]);
    // Other bytes under a stored version: refused.
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v2.join("manifest.json")).unwrap()).unwrap();
    manifest["metrics"]["auc"] = 0.5.into();
    std::fs::write(
        v2.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let refused = store.push(&v2).unwrap_err().to_string();
    assert!(refused.contains("immutable"), "{refused}");

    let fetched = store.fetch("flow", "v2", cache.path()).unwrap();
    assert_eq!(fetched, cache.path().join("flow").join("v2"));
    assert_eq!(ManifestView::read(&fetched).unwrap().version, "v2");
    assert!(matches!(
        store.fetch("flow", "v9", cache.path()),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.fetch("flow", "../v1", cache.path()).is_err());
}

#[test]
fn a_tampered_store_is_refused_and_a_tampered_cache_is_downloaded_again() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = local_store(root.path());
    store.push(&flow_v1()).unwrap();
    // Cache: one byte changed → the cached copy is replaced by a verified download.
    let cached = store.fetch("flow", "v1", cache.path()).unwrap();
    let file = cached.join("category.json");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let again = store.fetch("flow", "v1", cache.path()).unwrap();
    assert!(verify_artifacts(&again, &ManifestView::read(&again).unwrap()).is_ok());
    // Store: one byte changed → refused, nothing left in the cache.
    std::fs::remove_dir_all(&again).unwrap();
    let stored = root.path().join("flow/v1/binary.json");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[7] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let error = store
        .fetch("flow", "v1", cache.path())
        .unwrap_err()
        .to_string();
    assert!(error.contains("differs from the manifest"), "{error}");
    assert!(!cache.path().join("flow/v1").exists());
}

#[test]
fn a_cached_version_from_another_store_is_replaced_by_this_stores() {
    let (first_root, second_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (work, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Two stores hold different models under one name (a store reset, then a retrained
    // "v7"); each copy verifies on its own.
    let original = flow_as("v7", work.path());
    local_store(first_root.path()).push(&original).unwrap();
    let retrained_dir = tempfile::tempdir().unwrap();
    let retrained = flow_as("v7", retrained_dir.path());
    let path = retrained.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["created_at"] = "2030-01-01T00:00:00Z".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let second = local_store(second_root.path());
    second.push(&retrained).unwrap();
    local_store(first_root.path())
        .fetch("flow", "v7", cache.path())
        .unwrap();
    // The second store's copy replaces the first's in the shared cache.
    let fetched = second.fetch("flow", "v7", cache.path()).unwrap();
    assert_eq!(
        std::fs::read(fetched.join("manifest.json")).unwrap(),
        std::fs::read(&path).unwrap()
    );
}
