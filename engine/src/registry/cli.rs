//! `threatflow models ...`: the registry from the command line.
//!
//! `push DIR` uploads a verified version and registers it (as challenger by default);
//! `promote OP VERSION`, `rollback OP`, `challenge OP VERSION|--clear` append alias changes
//! (who from `$THREATFLOW_USER`/`$USER`, why from `--reason`); `list` and `show` read the
//! store and the log; `verify DIR` runs the version checks locally (no broker needed). Every
//! command but `verify` takes the engine config (`--config` or `THREATFLOW_CONFIG`) for the
//! brokers, the registry topic and the store.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::log::{actor, Action, RegistryLog, RegistryRecord};
use super::manifest::{verify_version, ManifestView};
use super::store::ArtifactStore;
use crate::config::EngineConfig;
use crate::model_cli::UsageError;
use crate::operators::table::OPERATORS;

/// `threatflow models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Engine config file (brokers, `[registry]`); not needed by `verify`.
    #[arg(long, env = "THREATFLOW_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// Which alias `push` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PushAs {
    /// Shadow-scored next to the champion.
    Challenger,
    /// Scores the stream at once.
    Champion,
    /// Only stored and registered.
    None,
}

/// The `models` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Versions per operator in the store, with their aliases.
    List {
        /// One JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// An operator's aliases and history, or one version's manifest summary and metrics.
    Show {
        /// Operator.
        operator: String,
        /// Version (default: the champion).
        version: Option<String>,
        /// One JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Make VERSION the operator's champion (every pod swaps to it).
    Promote {
        /// Operator.
        operator: String,
        /// Version (must be in the store and pass `verify`).
        version: String,
        /// Why (kept in the history).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Make the previous champion the champion again.
    Rollback {
        /// Operator.
        operator: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Set (or with --clear remove) the operator's challenger, shadow-scored by every pod.
    Challenge {
        /// Operator.
        operator: String,
        /// Version.
        version: Option<String>,
        /// Remove the challenger.
        #[arg(long, conflicts_with = "version")]
        clear: bool,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Check a version directory: manifest, fields, sha256, features, age, metrics.
    Verify {
        /// Version directory (holds manifest.json).
        directory: PathBuf,
        /// Maximum age in days (default: the config's `registry.max_age_days`, else 7).
        #[arg(long)]
        max_age_days: Option<f64>,
    },
    /// Upload a trained version to the store and register it.
    Push {
        /// Version directory.
        directory: PathBuf,
        /// Alias to give it.
        #[arg(long = "as", value_enum, default_value = "challenger")]
        alias: PushAs,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Runs `models`; exit codes as the other commands (0, 1 failed, 2 usage).
pub fn run(args: &ModelsArgs) -> anyhow::Result<()> {
    if let ModelsCommand::Verify {
        directory,
        max_age_days,
    } = &args.command
    {
        let max_age = match (max_age_days, &args.config) {
            (Some(days), _) => *days,
            (None, Some(path)) => load(path)?.registry.max_age_days,
            (None, None) => crate::registry::RegistryConfig::default().max_age_days,
        };
        return verify(directory, max_age);
    }
    let Some(path) = &args.config else {
        return Err(
            UsageError("models: pass --config FILE (or set THREATFLOW_CONFIG)".into()).into(),
        );
    };
    let config = load(path)?;
    let store = ArtifactStore::open(&config.registry, &config.storage.model_dir)?;
    let log = RegistryLog::open(&config)?;
    let (state, _) = log.read_all()?;
    let by = actor();
    match &args.command {
        ModelsCommand::List { json } => {
            let mut listing = serde_json::Map::new();
            for spec in OPERATORS.iter().filter(|spec| spec.model.is_some()) {
                let aliases = state.of(spec.name);
                let versions = store.versions(spec.model.map_or(spec.name, |m| m.dir))?;
                println!(
                    "{}: champion {} challenger {} versions {}",
                    spec.name,
                    aliases.champion.as_deref().unwrap_or("-"),
                    aliases.challenger.as_deref().unwrap_or("-"),
                    versions.join(", ")
                );
                listing.insert(
                    spec.name.to_owned(),
                    serde_json::json!({"champion": aliases.champion, "challenger": aliases.challenger, "versions": versions}),
                );
            }
            print_json(*json, &serde_json::Value::Object(listing));
        }
        ModelsCommand::Show {
            operator,
            version,
            json,
        } => {
            let aliases = state.of(operator);
            let version = version.clone().or_else(|| aliases.champion.clone());
            let manifest = match &version {
                Some(version) => store.manifest(operator, version)?,
                None => None,
            };
            println!(
                "{operator}: champion {} challenger {}",
                aliases.champion.as_deref().unwrap_or("-"),
                aliases.challenger.as_deref().unwrap_or("-")
            );
            if let Some(view) = &manifest {
                println!(
                    "version {} ({}), created {}{}, {} artifacts, metrics {}",
                    view.version,
                    view.json["kind"].as_str().unwrap_or("?"),
                    view.created_at,
                    if view.bootstrap { ", bootstrap" } else { "" },
                    view.artifacts.len(),
                    view.metrics()
                );
            }
            if let Some(retraining) = manifest
                .as_ref()
                .and_then(|view| view.json.get("retraining"))
            {
                println!(
                    "retrained from {} on {} feedback rows (weight {}, {} held out); gate: {}",
                    retraining["champion"].as_str().unwrap_or("?"),
                    retraining["feedback_rows"],
                    retraining["weight"],
                    retraining["holdout_rows"],
                    retraining["gate"]["reason"].as_str().unwrap_or("?"),
                );
            }
            println!("history:");
            for record in &aliases.history {
                println!(
                    "  {} {:?} {} by {}{}",
                    record.at,
                    record.action,
                    record.version.as_deref().unwrap_or("-"),
                    record.by,
                    if record.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", record.reason)
                    }
                );
            }
            print_json(
                *json,
                &serde_json::json!({
                    "operator": operator,
                    "champion": aliases.champion,
                    "challenger": aliases.challenger,
                    "version": manifest.as_ref().map(|view| serde_json::json!({
                        "version": view.version, "kind": view.json["kind"], "created_at": view.created_at,
                        "bootstrap": view.bootstrap, "artifacts": view.artifacts.len(), "metrics": view.metrics(),
                        "retraining": view.json.get("retraining"),
                    })),
                    "history": aliases.history,
                }),
            );
        }
        ModelsCommand::Promote {
            operator,
            version,
            reason,
        } => {
            let previous = promote(
                &config, &store, &log, &state, operator, version, &by, reason,
            )?;
            println!(
                "{operator}: champion {} -> {version}",
                previous.as_deref().unwrap_or("-")
            );
        }
        ModelsCommand::Rollback { operator, reason } => {
            let (previous, target) = rollback(&store, &log, &state, operator, &by, reason)?;
            println!(
                "{operator}: champion {} -> {target} (rollback)",
                previous.as_deref().unwrap_or("-")
            );
        }
        ModelsCommand::Challenge {
            operator,
            version,
            clear,
            reason,
        } => {
            let record = match (version, clear) {
                (Some(version), false) => {
                    let view = promotable(&config, &store, operator, version)?;
                    RegistryRecord::now(operator, Action::Challenge, Some(version), &by, reason)
                        .with_metrics(view.metrics())
                }
                (None, true) => {
                    RegistryRecord::now(operator, Action::ClearChallenger, None, &by, reason)
                }
                _ => {
                    return Err(
                        UsageError("challenge: name a VERSION or pass --clear".into()).into(),
                    )
                }
            };
            let mut record = record;
            record.previous = state.of(operator).challenger;
            log.append(&record)?;
            println!(
                "{operator}: challenger {}",
                version.as_deref().unwrap_or("-")
            );
        }
        ModelsCommand::Push {
            directory,
            alias,
            reason,
        } => {
            let checks =
                verify_version(directory, config.registry.max_age_days, chrono::Utc::now());
            if let Some(failed) = checks.iter().find(|check| !check.passed) {
                bail!("{} does not verify: {}", directory.display(), failed.line());
            }
            let view = store.push(directory)?;
            let operator = view.operator.clone();
            let version = view.version.clone();
            let register =
                RegistryRecord::now(&operator, Action::Register, Some(&version), &by, reason)
                    .with_metrics(view.metrics());
            log.append(&register)?;
            let action = match alias {
                PushAs::Challenger => Some(Action::Challenge),
                PushAs::Champion => Some(Action::Promote),
                PushAs::None => None,
            };
            if let Some(action) = action {
                let mut record =
                    RegistryRecord::now(&operator, action, Some(&version), &by, reason)
                        .with_metrics(view.metrics());
                let aliases = state.of(&operator);
                record.previous = match action {
                    Action::Promote => aliases.champion,
                    _ => aliases.challenger,
                };
                log.append(&record)?;
            }
            println!(
                "pushed {operator} {version} to {} ({})",
                store.location(),
                match alias {
                    PushAs::Challenger => "challenger",
                    PushAs::Champion => "champion",
                    PushAs::None => "registered",
                }
            );
        }
        ModelsCommand::Verify { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<EngineConfig> {
    EngineConfig::load(path)
        .map_err(|error| UsageError(format!("{}: {error}", path.display())).into())
}

fn print_json(json: bool, value: &serde_json::Value) {
    if json {
        println!("{value}");
    }
}

/// The version's manifest after downloading it into a scratch cache and verifying it: a
/// version that would be refused at swap time is refused here first.
/// Makes `version` of `operator` the champion (after it fetches and verifies); returns the
/// previous champion.
#[allow(clippy::too_many_arguments)]
pub fn promote(
    config: &EngineConfig,
    store: &ArtifactStore,
    log: &RegistryLog,
    state: &crate::registry::log::RegistryState,
    operator: &str,
    version: &str,
    by: &str,
    reason: &str,
) -> anyhow::Result<Option<String>> {
    let view = promotable(config, store, operator, version)?;
    let mut record = RegistryRecord::now(operator, Action::Promote, Some(version), by, reason)
        .with_metrics(view.metrics());
    record.previous = state.of(operator).champion;
    log.append(&record)?;
    Ok(record.previous)
}

/// Makes the previous champion of `operator` the champion again; returns (the champion it
/// replaced, the new champion).
pub fn rollback(
    store: &ArtifactStore,
    log: &RegistryLog,
    state: &crate::registry::log::RegistryState,
    operator: &str,
    by: &str,
    reason: &str,
) -> anyhow::Result<(Option<String>, String)> {
    let aliases = state.of(operator);
    let Some(target) = aliases.rollback_target() else {
        bail!("{operator} has no previous champion to roll back to");
    };
    let view = store.manifest(operator, &target)?;
    let mut record = RegistryRecord::now(operator, Action::Rollback, Some(&target), by, reason)
        .with_metrics(view.map(|v| v.metrics()).unwrap_or_default());
    record.previous = aliases.champion.clone();
    log.append(&record)?;
    Ok((record.previous, target))
}

/// Promotes or rolls back `operator` as the engine of `config` (the console's admin actions):
/// `version` `None` rolls back. Returns the new champion.
pub fn change_champion(
    config: &EngineConfig,
    operator: &str,
    version: Option<&str>,
    by: &str,
    reason: &str,
) -> anyhow::Result<String> {
    let store = ArtifactStore::open(&config.registry, &config.storage.model_dir)?;
    let log = RegistryLog::open(config)?;
    let (state, _) = log.read_all()?;
    match version {
        Some(version) => {
            promote(config, &store, &log, &state, operator, version, by, reason)?;
            Ok(version.to_owned())
        }
        None => Ok(rollback(&store, &log, &state, operator, by, reason)?.1),
    }
}

fn promotable(
    config: &EngineConfig,
    store: &ArtifactStore,
    operator: &str,
    version: &str,
) -> anyhow::Result<ManifestView> {
    let scratch = tempfile::Builder::new()
        .prefix("threatflow-models-")
        .tempdir()
        .context("scratch directory")?;
    let directory = store
        .fetch(operator, version, scratch.path())
        .with_context(|| format!("{operator} {version} cannot be promoted"))?;
    let checks = verify_version(&directory, config.registry.max_age_days, chrono::Utc::now());
    if let Some(failed) = checks.iter().find(|check| !check.passed) {
        bail!("{operator} {version} does not verify: {}", failed.line());
    }
    ManifestView::read(&directory).map_err(anyhow::Error::msg)
}

/// `models verify DIR`: one line per check; an error when any fails.
fn verify(directory: &Path, max_age_days: f64) -> anyhow::Result<()> {
    let checks = verify_version(directory, max_age_days, chrono::Utc::now());
    for check in &checks {
        println!("{}", check.line());
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| check.name)
        .collect();
    if failed.is_empty() {
        println!("{}: all checks passed", directory.display());
        Ok(())
    } else {
        bail!("{}: failed {}", directory.display(), failed.join(", "))
    }
}
