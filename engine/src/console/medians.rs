//! The training median of each model feature, shown beside an event's value in the console.
//!
//! Read from the version's drift reference sample (`drift_reference.json`, 2,000 training
//! rows per feature, sorted), once per binding and version. Numeric features only: a
//! categorical feature's reference holds category codes, whose median means nothing.
//! Versions without a reference (prompt) have no medians; their explanations are rules.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::drift::detector::{FeatureKind, Reference};
use crate::health::Health;
use crate::sync::lock;

/// Feature name → training median.
pub type Medians = HashMap<String, f64>;

/// (input topic, model version).
type VersionKey = (String, String);

/// Medians by (input topic, model version); `None` cached for versions without a reference.
#[derive(Default)]
pub struct MedianCache {
    cache: Mutex<HashMap<VersionKey, Option<Arc<Medians>>>>,
}

impl MedianCache {
    /// The medians of the version `version` of the model bound to `topic`, when that version
    /// is the one loaded now and it has a drift reference.
    pub fn for_version(&self, health: &Health, topic: &str, version: &str) -> Option<Arc<Medians>> {
        let key = (topic.to_owned(), version.to_owned());
        if let Some(cached) = lock(&self.cache).get(&key) {
            return cached.clone();
        }
        let bound = lock(&health.models).get(topic).cloned()?;
        let description = bound.handle.describe();
        if description["model_version"].as_str() != Some(version) {
            return None;
        }
        let directory = PathBuf::from(description["directory"].as_str()?);
        let medians = read_medians(&directory).map(Arc::new);
        lock(&self.cache).insert(key, medians.clone());
        medians
    }
}

/// The medians of the reference beside the manifest in `directory`.
pub fn read_medians(directory: &std::path::Path) -> Option<Medians> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(directory.join("manifest.json")).ok()?).ok()?;
    let file = manifest["drift_reference"]["path"]
        .as_str()
        .unwrap_or(crate::drift::REFERENCE_FILE);
    let reference: Reference =
        serde_json::from_slice(&std::fs::read(directory.join(file)).ok()?).ok()?;
    Some(
        reference
            .features
            .iter()
            .filter(|feature| feature.kind == FeatureKind::Numeric && !feature.values.is_empty())
            .map(|feature| {
                (
                    feature.name.clone(),
                    feature.values[feature.values.len() / 2],
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_flow_model_has_numeric_medians_from_its_reference() {
        let directory = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/flow/v1"));
        let medians = read_medians(&directory).expect("models/flow/v1 has a drift reference");
        // NSL-KDD: most connections carry no failed logins; byte counts are non-negative.
        assert_eq!(medians.get("num_failed_logins"), Some(&0.0));
        assert!(medians["src_bytes"] >= 0.0);
        assert!(
            !medians.contains_key("protocol_type"),
            "categorical codes have no median"
        );
    }
}
