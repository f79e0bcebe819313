//! The artifact store: immutable model versions under `<store>/<operator>/<version>/`, in a
//! local or mounted directory or an S3-compatible bucket (the `object_store` crate), and the
//! pod's local cache of verified downloads.
//!
//! Guarantees: [`ArtifactStore::push`] uploads only a version that verifies locally, and
//! refuses to overwrite a version already stored with other bytes (versions are immutable);
//! [`ArtifactStore::fetch`] returns a cache directory only after every file named by the
//! manifest matched its sha256 — a download that does not verify is deleted and refused, so
//! a tampered store never reaches a model slot. Downloads go to a temporary directory and are
//! renamed into place, so a crash never leaves a half version in the cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::manifest::{is_plain_file_name, verify_artifacts, ManifestView};
use super::RegistryConfig;

/// Errors of the artifact store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL or its options are invalid.
    #[error("artifact store {location}: {message}")]
    Config {
        /// The store location.
        location: String,
        /// Why.
        message: String,
    },
    /// The store answered with an error.
    #[error("artifact store {location}: {source}")]
    Store {
        /// The store location.
        location: String,
        /// Cause.
        source: object_store::Error,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The version does not verify or would overwrite another one.
    #[error("{0}")]
    Refused(String),
    /// No such version in the store.
    #[error("{operator} {version} is not in the artifact store {location}")]
    NotFound {
        /// Operator.
        operator: String,
        /// Version.
        version: String,
        /// The store location.
        location: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The artifact store of a config.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    location: String,
}

impl ArtifactStore {
    /// Opens the store `config` names (`storage.model_dir` when `registry.store` is empty).
    pub fn open(config: &RegistryConfig, model_dir: &Path) -> Result<Self, StoreError> {
        let location = config.store_location(model_dir);
        let config_error = |message: String| StoreError::Config {
            location: location.clone(),
            message,
        };
        let store: Arc<dyn ObjectStore> = if let Some(rest) = location.strip_prefix("s3://") {
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(&location);
            for (key, value) in &config.store_options {
                let key = key
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|_| config_error(format!("unknown store option {key:?}")))?;
                builder = builder.with_config(key, value);
            }
            if rest.is_empty() {
                return Err(config_error("s3:// needs a bucket".to_owned()));
            }
            let prefix = rest.split_once('/').map(|(_, prefix)| prefix).unwrap_or("");
            let bucket = builder
                .build()
                .map_err(|error| config_error(error.to_string()))?;
            if prefix.trim_matches('/').is_empty() {
                Arc::new(bucket)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    bucket,
                    prefix.trim_matches('/'),
                ))
            }
        } else {
            let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(&location));
            std::fs::create_dir_all(&path).map_err(io(&path))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(&path)
                    .map_err(|error| config_error(error.to_string()))?,
            )
        };
        Ok(Self { store, location })
    }

    /// Where the store is (for messages).
    pub fn location(&self) -> &str {
        &self.location
    }

    fn store_error(&self) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        move |source| StoreError::Store {
            location: self.location.clone(),
            source,
        }
    }

    /// Versions of `operator` in the store (directories holding a manifest), sorted.
    pub fn versions(&self, operator: &str) -> Result<Vec<String>, StoreError> {
        let store = self.store.clone();
        let prefix = StorePath::from(operator);
        let listing = run_async(async move { store.list_with_delimiter(Some(&prefix)).await })
            .map_err(self.store_error())?;
        let mut versions = Vec::new();
        for directory in listing.common_prefixes {
            let Some(version) = directory.filename().map(str::to_owned) else {
                continue;
            };
            if self.read(operator, &version, "manifest.json")?.is_some() {
                versions.push(version);
            }
        }
        versions.sort_by_key(|version| crate::ml::artifact::natural_key(version));
        Ok(versions)
    }

    fn read(
        &self,
        operator: &str,
        version: &str,
        file: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let store = self.store.clone();
        let path = StorePath::from(format!("{operator}/{version}/{file}"));
        let result = run_async(async move {
            match store.get(&path).await {
                Ok(found) => found.bytes().await.map(|bytes| Some(bytes.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(error),
            }
        });
        result.map_err(self.store_error())
    }

    /// The manifest of `operator` `version` in the store.
    pub fn manifest(
        &self,
        operator: &str,
        version: &str,
    ) -> Result<Option<ManifestView>, StoreError> {
        check_name(operator)?;
        check_name(version)?;
        match self.read(operator, version, "manifest.json")? {
            Some(bytes) => ManifestView::parse(&bytes)
                .map(Some)
                .map_err(StoreError::Refused),
            None => Ok(None),
        }
    }

    /// Uploads the version in `directory` after verifying its artifacts; returns its manifest.
    /// Pushing the same bytes again is a no-op; other bytes under a stored version are refused.
    pub fn push(&self, directory: &Path) -> Result<ManifestView, StoreError> {
        let view = ManifestView::read(directory).map_err(StoreError::Refused)?;
        if view.spec().is_none() {
            return Err(StoreError::Refused(format!(
                "{}: manifest kind names no operator with a model",
                directory.display()
            )));
        }
        check_name(&view.version)?;
        verify_artifacts(directory, &view)
            .map_err(|error| StoreError::Refused(format!("{}: {error}", directory.display())))?;
        let manifest_bytes = std::fs::read(directory.join("manifest.json"))
            .map_err(io(&directory.join("manifest.json")))?;
        if let Some(stored) = self.read(&view.operator, &view.version, "manifest.json")? {
            if stored == manifest_bytes {
                return Ok(view);
            }
            return Err(StoreError::Refused(format!(
                "{} {} is already stored with another manifest (versions are immutable: push it under a new version)",
                view.operator, view.version
            )));
        }
        // Artifacts first, the manifest last: a version is visible (listed) only when whole.
        for (name, _) in &view.artifacts {
            let path = directory.join(name);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            self.put(&view.operator, &view.version, name, bytes)?;
        }
        self.put(
            &view.operator,
            &view.version,
            "manifest.json",
            manifest_bytes,
        )?;
        Ok(view)
    }

    fn put(
        &self,
        operator: &str,
        version: &str,
        file: &str,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let path = StorePath::from(format!("{operator}/{version}/{file}"));
        run_async(async move { store.put(&path, PutPayload::from(bytes)).await.map(|_| ()) })
            .map_err(self.store_error())
    }

    /// A verified local copy of `operator` `version` under `cache_root/<operator>/<version>`:
    /// the cached copy when it still verifies, else a fresh download that must verify.
    pub fn fetch(
        &self,
        operator: &str,
        version: &str,
        cache_root: &Path,
    ) -> Result<PathBuf, StoreError> {
        check_name(operator)?;
        check_name(version)?;
        let target = cache_root.join(operator).join(version);
        // The store's manifest decides: a cache filled from another store (one since reset,
        // or a version re-trained under the same name) must not be loaded in its place. Its
        // bytes are small; an unreachable store falls back to a cache that verifies.
        let stored = self.read(operator, version, "manifest.json");
        if let Ok(view) = ManifestView::read(&target) {
            let cached_ok = view.version == version && verify_artifacts(&target, &view).is_ok();
            let cached_bytes = std::fs::read(target.join("manifest.json")).ok();
            match &stored {
                Ok(Some(bytes)) if cached_ok && cached_bytes.as_deref() == Some(bytes) => {
                    return Ok(target);
                }
                Err(error) if cached_ok => {
                    tracing::warn!(operator, version, %error, "artifact store unreachable; loading the verified cached copy");
                    return Ok(target);
                }
                _ => {}
            }
            tracing::warn!(
                operator,
                version,
                "cached model does not verify or differs from the store's; downloading it again"
            );
            std::fs::remove_dir_all(&target).map_err(io(&target))?;
        }
        let Some(manifest_bytes) = stored? else {
            return Err(StoreError::NotFound {
                operator: operator.to_owned(),
                version: version.to_owned(),
                location: self.location.clone(),
            });
        };
        let view = ManifestView::parse(&manifest_bytes).map_err(StoreError::Refused)?;
        if view.version != version || view.operator != operator {
            return Err(StoreError::Refused(format!(
                "{operator}/{version}/manifest.json describes {} {}",
                view.operator, view.version
            )));
        }
        let staging = cache_root
            .join(operator)
            .join(format!(".{version}.download"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        let downloaded = (|| {
            for (name, _) in &view.artifacts {
                if !is_plain_file_name(name) {
                    return Err(StoreError::Refused(format!(
                        "artifact path {name:?} is not a plain file name"
                    )));
                }
                let bytes = self.read(operator, version, name)?.ok_or_else(|| {
                    StoreError::Refused(format!(
                        "{operator} {version}: {name} is missing in the store"
                    ))
                })?;
                let path = staging.join(name);
                std::fs::write(&path, bytes).map_err(io(&path))?;
            }
            let path = staging.join("manifest.json");
            std::fs::write(&path, &manifest_bytes).map_err(io(&path))?;
            verify_artifacts(&staging, &view).map_err(|error| {
                StoreError::Refused(format!(
                    "{operator} {version} from {}: {error}",
                    self.location
                ))
            })
        })();
        if let Err(error) = downloaded {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
        std::fs::rename(&staging, &target).map_err(io(&target))?;
        Ok(target)
    }
}

/// Operator and version names are plain (they become paths).
fn check_name(name: &str) -> Result<(), StoreError> {
    if is_plain_file_name(name) {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "{name:?} is not a plain version or operator name"
        )))
    }
}

/// Runs `future` to completion on a private current-thread runtime in its own thread, so the
/// store can be used from any thread (also one inside another runtime's context).
fn run_async<T: Send + 'static>(
    future: impl std::future::Future<Output = Result<T, object_store::Error>> + Send + 'static,
) -> Result<T, object_store::Error> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| object_store::Error::Generic {
                store: "runtime",
                source: Box::new(error),
            })?
            .block_on(future)
    })
    .join()
    .unwrap_or_else(|_| {
        Err(object_store::Error::Generic {
            store: "runtime",
            source: "artifact store thread panicked".into(),
        })
    })
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
