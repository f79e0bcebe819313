//! Model slots: the one loaded model of a binding, shared by all its workers (and by anything
//! else that scores with it), swappable without a restart.
//!
//! A [`ModelSlot`] holds an immutable loaded model behind an `ArcSwap` pointer. A worker
//! reads the pointer once per batch ([`ModelSlot::current`]) and scores the whole batch with
//! that model, so every event of a batch carries the version that scored it.
//!
//! A swap ([`ModelHandle::swap`]) loads the new version *on the caller's thread* — never a
//! scoring thread — through the operator's [`ModelLoader`], which verifies it (manifest,
//! sha256 of every file, feature list) and warms it (e.g. one inference through a fresh ONNX
//! Runtime session); only then is the pointer stored. Batches that already took the old
//! model finish on it; it is dropped with its last batch. A version that fails to load is
//! refused with its error and the old one keeps scoring. Swaps of one slot are serialised.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::operators::OperatorError;
use crate::sync::lock;

/// How an operator loads, verifies and warms one model version directory.
pub trait ModelLoader: Send + Sync + 'static {
    /// The loaded, immutable model (everything a worker needs to score).
    type Model: Send + Sync + 'static;

    /// Loads, verifies and warms the version in `version_dir`.
    fn load(&self, version_dir: &Path) -> Result<Self::Model, OperatorError>;

    /// The version written into every scored event.
    fn version(model: &Self::Model) -> String;

    /// What `/models` shows about the model (manifest summary).
    fn describe(model: &Self::Model) -> serde_json::Value;
}

/// A loaded model and where it came from.
pub struct Loaded<M> {
    /// The model.
    pub model: M,
    /// Its version (as in the scored events).
    pub version: String,
    /// The directory it was loaded from.
    pub directory: PathBuf,
}

/// The type-erased face of a slot: what the pipeline, `/models` and the admin API use.
pub trait ModelHandle: Send + Sync {
    /// Operator name.
    fn operator(&self) -> &'static str;
    /// Version currently scoring.
    fn version(&self) -> String;
    /// `/models` entry: operator, version, directory, manifest summary.
    fn describe(&self) -> serde_json::Value;
    /// Loads, verifies and warms `version_dir`, then makes it current; returns the new
    /// version. On error the current model keeps scoring.
    fn swap(&self, version_dir: &Path) -> Result<String, OperatorError>;
}

/// One binding's model slot.
pub struct ModelSlot<L: ModelLoader> {
    operator: &'static str,
    loader: L,
    current: ArcSwap<Loaded<L::Model>>,
    swapping: Mutex<()>,
}

impl<L: ModelLoader> ModelSlot<L> {
    /// Loads `version_dir` with `loader` into a new slot.
    pub fn load(
        operator: &'static str,
        loader: L,
        version_dir: &Path,
    ) -> Result<Arc<Self>, OperatorError> {
        let loaded = Self::load_version(&loader, version_dir)?;
        tracing::info!(operator, version = %loaded.version, directory = %version_dir.display(), "model loaded");
        Ok(Arc::new(Self {
            operator,
            loader,
            current: ArcSwap::from_pointee(loaded),
            swapping: Mutex::new(()),
        }))
    }

    /// A slot over an already loaded `model` (tests, benchmarks, offline scoring).
    pub fn with_model(
        operator: &'static str,
        loader: L,
        model: L::Model,
        directory: &Path,
    ) -> Arc<Self> {
        Arc::new(Self {
            operator,
            loader,
            current: ArcSwap::from_pointee(Loaded {
                version: L::version(&model),
                model,
                directory: directory.to_owned(),
            }),
            swapping: Mutex::new(()),
        })
    }

    fn load_version(loader: &L, version_dir: &Path) -> Result<Loaded<L::Model>, OperatorError> {
        let model = loader.load(version_dir)?;
        Ok(Loaded {
            version: L::version(&model),
            model,
            directory: version_dir.to_owned(),
        })
    }

    /// The model to score the next batch with (one atomic load; hold it for the batch).
    pub fn current(&self) -> Arc<Loaded<L::Model>> {
        self.current.load_full()
    }

    /// The loader (for operator settings it carries).
    pub fn loader(&self) -> &L {
        &self.loader
    }
}

impl<L: ModelLoader> ModelHandle for ModelSlot<L> {
    fn operator(&self) -> &'static str {
        self.operator
    }

    fn version(&self) -> String {
        self.current.load().version.clone()
    }

    fn describe(&self) -> serde_json::Value {
        let current = self.current.load();
        serde_json::json!({
            "operator": self.operator,
            "model_version": current.version,
            "directory": current.directory.display().to_string(),
            "model": L::describe(&current.model),
        })
    }

    fn swap(&self, version_dir: &Path) -> Result<String, OperatorError> {
        let _one_at_a_time = lock(&self.swapping);
        let started = std::time::Instant::now();
        let loaded = Self::load_version(&self.loader, version_dir)?;
        let version = loaded.version.clone();
        let previous = self.current.swap(Arc::new(loaded));
        tracing::info!(
            operator = self.operator,
            from = %previous.version,
            to = %version,
            load_ms = started.elapsed().as_millis() as u64,
            "model swapped"
        );
        metrics::counter!(crate::telemetry::MODEL_SWAPS, "operator" => self.operator).increment(1);
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FileLoader;

    impl ModelLoader for FileLoader {
        type Model = String;

        fn load(&self, version_dir: &Path) -> Result<String, OperatorError> {
            std::fs::read_to_string(version_dir.join("version"))
                .map(|text| text.trim().to_owned())
                .map_err(|error| OperatorError::resource("test model", error))
        }

        fn version(model: &String) -> String {
            model.clone()
        }

        fn describe(model: &String) -> serde_json::Value {
            serde_json::json!({ "version": model })
        }
    }

    #[test]
    fn swap_replaces_the_model_and_a_failed_load_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        for version in ["v1", "v2"] {
            std::fs::create_dir(dir.path().join(version)).unwrap();
            std::fs::write(dir.path().join(version).join("version"), version).unwrap();
        }
        let slot = ModelSlot::load("test", FileLoader, &dir.path().join("v1")).unwrap();
        let held = slot.current();
        assert_eq!(slot.swap(&dir.path().join("v2")).unwrap(), "v2");
        // A batch that took the old model keeps it to the end.
        assert_eq!(held.model, "v1");
        assert_eq!(slot.current().model, "v2");
        let refused = slot.swap(&dir.path().join("v3"));
        assert!(refused.is_err());
        assert_eq!(slot.version(), "v2");
        assert_eq!(slot.describe()["model"]["version"], "v2");
    }
}
