//! The engine's side of the registry: boot on each operator's champion, follow the log, and
//! swap every binding of an operator when its champion changes (or shadow its challenger).
//!
//! Boot ([`Registry::boot_version`]): an operator with a champion starts on it (downloaded
//! and verified into the local cache); with none, the configured or newest local version is
//! pushed to the store if missing and registered and promoted (`by` the pod, reason
//! "bootstrap"), so a fresh install needs nothing new. Follow ([`Registry::follow`]): each
//! record is folded into the state; a new champion is fetched, verified, loaded and warmed on
//! the registry thread — never a scoring thread — and swapped into every slot of the
//! operator; a failure (missing, tampered, not loadable) is logged and counted and the old
//! version keeps scoring. A champion already in the cache swaps in the time of a load
//! (rollback).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::log::{actor, Action, RegistryLog, RegistryRecord, RegistryState};
use super::manifest::ManifestView;
use super::shadow::ShadowTap;
use super::store::ArtifactStore;
use crate::config::EngineConfig;
use crate::runtime::ModelHandle;
use crate::sync::lock;
use crate::telemetry;

/// Errors of the registry at boot.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] super::log::LogError),
    /// A local version is unusable.
    #[error("{0}")]
    Version(String),
}

/// A binding the registry keeps on its operator's champion.
#[derive(Clone)]
pub struct FleetBinding {
    /// Operator name.
    pub operator: &'static str,
    /// Input topic.
    pub topic: String,
    /// Its model slot.
    pub model: Arc<dyn ModelHandle>,
    /// Its shadow tap.
    pub shadow: Option<Arc<ShadowTap>>,
}

/// The registry as one engine process sees it.
pub struct Registry {
    store: ArtifactStore,
    log: RegistryLog,
    cache_dir: PathBuf,
    state: Mutex<RegistryState>,
    next_offset: i64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store.location())
            .field("topic", &self.log.topic())
            .finish()
    }
}

impl Registry {
    /// Opens the store and reads the whole log (`None` when `registry.enabled` is false or
    /// no binding's operator has a model).
    pub fn open(config: &EngineConfig) -> Result<Option<Arc<Self>>, RegistryError> {
        let any_model = config
            .bindings
            .iter()
            .any(|binding| binding.operator.spec().model.is_some());
        if !config.registry.enabled || !any_model {
            return Ok(None);
        }
        let store = ArtifactStore::open(&config.registry, &config.storage.model_dir)?;
        let log = RegistryLog::open(config)?;
        let (state, next_offset) = log.read_all()?;
        tracing::info!(
            store = store.location(),
            topic = log.topic(),
            operators = state.operators.len(),
            "model registry read"
        );
        Ok(Some(Arc::new(Self {
            store,
            log,
            cache_dir: config.registry.cache_dir(&config.storage.state_dir),
            state: Mutex::new(state),
            next_offset,
        })))
    }

    /// The registry state now.
    pub fn state(&self) -> RegistryState {
        lock(&self.state).clone()
    }

    /// `/models`' `registry` entry of `operator`.
    pub fn describe(&self, operator: &str) -> serde_json::Value {
        let aliases = lock(&self.state).of(operator);
        serde_json::json!({
            "champion": aliases.champion,
            "challenger": aliases.challenger,
            "last_change": aliases.history.iter().rev()
                .find(|record| record.action != Action::Register)
                .map(|record| serde_json::json!({
                    "action": record.action, "version": record.version, "by": record.by,
                    "at": record.at, "reason": record.reason,
                })),
            "history": aliases.history.iter().rev().take(10)
                .map(|record| serde_json::json!({
                    "action": record.action, "version": record.version, "by": record.by,
                    "at": record.at, "reason": record.reason,
                }))
                .collect::<Vec<_>>(),
        })
    }

    /// The version directory `operator` boots on: its champion from the cache/store; with
    /// none, `local` (the configured or newest local version) registered as champion.
    pub fn boot_version(
        &self,
        operator: &str,
        local: impl FnOnce() -> Result<PathBuf, String>,
    ) -> Result<PathBuf, RegistryError> {
        let champion = lock(&self.state).of(operator).champion;
        if let Some(version) = champion {
            return Ok(self.store.fetch(operator, &version, &self.cache_dir)?);
        }
        let local = local().map_err(RegistryError::Version)?;
        let view = self.store.push(&local)?;
        if view.operator != operator {
            return Err(RegistryError::Version(format!(
                "{} holds a {} model, not {operator}",
                local.display(),
                view.operator
            )));
        }
        let by = format!("engine@{}", actor());
        let reason = "bootstrap: the registry had no champion";
        for action in [Action::Register, Action::Promote] {
            let record = RegistryRecord::now(operator, action, Some(&view.version), &by, reason)
                .with_metrics(view.metrics());
            self.log.append(&record)?;
            lock(&self.state).apply(record);
        }
        tracing::info!(operator, version = %view.version, "registered the local model as champion");
        Ok(self.store.fetch(operator, &view.version, &self.cache_dir)?)
    }

    /// Starts shadow scoring on every tap whose operator has a challenger now.
    pub fn start_shadows(&self, bindings: &[FleetBinding]) {
        let state = self.state();
        for binding in bindings {
            if let Some(version) = state.of(binding.operator).challenger {
                self.set_challenger(binding, &version);
            }
        }
    }

    /// Follows the log: swaps champions and sets challengers on `bindings` until `stop`.
    pub fn follow(
        self: &Arc<Self>,
        bindings: Vec<FleetBinding>,
        stop: CancellationToken,
    ) -> Result<std::thread::JoinHandle<()>, RegistryError> {
        let registry = self.clone();
        Ok(self.log.follow(self.next_offset, stop, move |record| {
            registry.apply(&bindings, record);
        })?)
    }

    fn apply(&self, bindings: &[FleetBinding], record: RegistryRecord) {
        let operator = record.operator.clone();
        let (before, after) = {
            let mut state = lock(&self.state);
            let before = state.of(&operator);
            state.apply(record);
            (before, state.of(&operator))
        };
        let affected = bindings
            .iter()
            .filter(|binding| binding.operator == operator);
        for binding in affected {
            if after.champion != before.champion {
                if let Some(version) = &after.champion {
                    self.swap(binding, version);
                }
            }
            if after.challenger != before.challenger {
                match &after.challenger {
                    Some(version) => self.set_challenger(binding, version),
                    None => {
                        if let Some(tap) = &binding.shadow {
                            tap.clear();
                        }
                    }
                }
            }
        }
    }

    fn swap(&self, binding: &FleetBinding, version: &str) {
        let previous = binding.model.version();
        if previous == version {
            return;
        }
        let started = std::time::Instant::now();
        let result = self
            .store
            .fetch(binding.operator, version, &self.cache_dir)
            .map_err(|error| error.to_string())
            .and_then(|directory| binding.model.swap(&directory).map_err(|e| e.to_string()));
        match result {
            Ok(loaded) => {
                publish_version(binding, Some(&previous), &loaded);
                tracing::info!(
                    operator = binding.operator,
                    topic = %binding.topic,
                    version = %loaded,
                    swap_ms = started.elapsed().as_millis() as u64,
                    "registry champion now scoring"
                )
            }
            Err(error) => {
                metrics::counter!(telemetry::MODEL_SWAP_FAILURES, "operator" => binding.operator)
                    .increment(1);
                tracing::error!(
                    operator = binding.operator,
                    topic = %binding.topic,
                    version,
                    error,
                    still_scoring = %binding.model.version(),
                    "registry champion refused; the previous version keeps scoring"
                );
            }
        }
    }

    fn set_challenger(&self, binding: &FleetBinding, version: &str) {
        let Some(tap) = &binding.shadow else { return };
        let result = self
            .store
            .fetch(binding.operator, version, &self.cache_dir)
            .map_err(|error| error.to_string())
            .and_then(|directory| tap.set_challenger(&directory).map_err(|e| e.to_string()));
        if let Err(error) = result {
            metrics::counter!(telemetry::MODEL_SWAP_FAILURES, "operator" => binding.operator)
                .increment(1);
            tracing::error!(
                operator = binding.operator,
                version,
                error,
                "challenger refused; no shadow scoring"
            );
            tap.clear();
        }
    }
}

/// Sets `threatflow_model_version_info` to 1 for the version `binding` scores with now (and
/// 0 for `previous`).
pub fn publish_version(binding: &FleetBinding, previous: Option<&str>, current: &str) {
    let gauge = |version: &str| {
        metrics::gauge!(
            telemetry::MODEL_VERSION,
            "operator" => binding.operator,
            "topic" => binding.topic.clone(),
            "version" => version.to_owned()
        )
    };
    if let Some(previous) = previous {
        gauge(previous).set(0.0);
    }
    gauge(current).set(1.0);
}

/// The configured `version` of `operator` (`[operators.<name>] version`), empty for newest.
pub fn configured_version(config: &EngineConfig, operator: &str) -> String {
    config
        .operators
        .0
        .get(operator)
        .and_then(|section| section.get("version"))
        .and_then(|value| value.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The local version directory `operator` would load without a registry.
pub fn local_version(config: &EngineConfig, operator: &str, dir: &str) -> Result<PathBuf, String> {
    let directory = crate::operators::model_version_dir(
        &config.storage.model_dir,
        dir,
        &configured_version(config, operator),
    )
    .map_err(|error| error.to_string())?;
    ManifestView::read(&directory)?;
    Ok(directory)
}
