//! `[registry]`: where model versions are stored, which Kafka topic records the aliases, and
//! how a challenger is shadowed. Defaults need nothing new: the store is `storage.model_dir`
//! and an empty registry topic registers the local newest (or configured) version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The registry settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Follow the registry log: boot on each operator's champion, swap when it changes,
    /// shadow its challenger. `false`: load the configured/newest local version and never
    /// change it (as before the registry).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The compacted, single-partition registry topic (created if missing).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Artifact store: a path (default: `storage.model_dir`), `file:///abs/path`, or
    /// `s3://bucket/prefix` (credentials and endpoint from the `AWS_*` environment and
    /// `store_options`).
    #[serde(default)]
    pub store: String,
    /// Options of an S3 store (`aws_endpoint`, `aws_region`, `aws_allow_http`, ...: the
    /// `object_store` crate's `AmazonS3ConfigKey` names); they override the environment.
    #[serde(default)]
    pub store_options: BTreeMap<String, String>,
    /// Local cache of downloaded, verified versions (default `<state_dir>/model-cache`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// `models verify` / promotion refuse a version older than this many days unless its
    /// manifest says `"bootstrap": true` (shipped models).
    #[serde(default = "default_max_age_days")]
    pub max_age_days: f64,
    /// Share of live events each pod also scores with the challenger (0 to 1).
    #[serde(default = "default_shadow_fraction")]
    pub shadow_fraction: f64,
    /// Topic the challenger's scored events go to for offline study (empty: none).
    #[serde(default)]
    pub shadow_topic: String,
}

fn default_enabled() -> bool {
    true
}
fn default_topic() -> String {
    "threatflow.registry".to_owned()
}
fn default_max_age_days() -> f64 {
    7.0
}
fn default_shadow_fraction() -> f64 {
    0.1
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            topic: default_topic(),
            store: String::new(),
            store_options: BTreeMap::new(),
            cache_dir: None,
            max_age_days: default_max_age_days(),
            shadow_fraction: default_shadow_fraction(),
            shadow_topic: String::new(),
        }
    }
}

impl RegistryConfig {
    /// Problems with the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.enabled && self.topic.trim().is_empty() {
            problems.push("registry.topic must not be empty".to_owned());
        }
        if !(0.0..=1.0).contains(&self.shadow_fraction) {
            problems.push("registry.shadow_fraction must be within 0..=1".to_owned());
        }
        if self.max_age_days.is_nan() || self.max_age_days <= 0.0 {
            problems.push("registry.max_age_days must be positive".to_owned());
        }
        problems
    }

    /// The store location: `store`, or `model_dir` when empty.
    pub fn store_location(&self, model_dir: &std::path::Path) -> String {
        if self.store.trim().is_empty() {
            model_dir.display().to_string()
        } else {
            self.store.trim().to_owned()
        }
    }

    /// The local cache directory.
    pub fn cache_dir(&self, state_dir: &std::path::Path) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("model-cache"))
    }
}
