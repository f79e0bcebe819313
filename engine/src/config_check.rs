//! `threatflow config check`: a config is only "valid" when the engine could run with it.
//!
//! Beyond parsing and validation (every problem named, exit 2), it checks what the config
//! points at, one line per check, and exits 1 if any fails:
//! - every binding's operator starts: its model version directory exists and loads (sha256
//!   and manifest checked by the operator's own loader), its rule file loads, and for the
//!   prompt operator the ONNX Runtime library is found and loads;
//! - the state directory exists or can be created, and is writable;
//! - unless `--offline`: the brokers answer within [`BROKER_TIMEOUT`] and every input, output
//!   and dead-letter topic exists.
//!
//! The effective config is printed first with secrets masked.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::EngineConfig;
use crate::operators::OperatorContext;

/// How long the broker check waits for metadata.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// One line of the report.
#[derive(Debug)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// `Err` says what is wrong.
    pub result: Result<String, String>,
}

/// Runs `config check` on `file`: 0 all good, 1 a check failed, 2 the config is invalid.
pub fn run(file: &Path, offline: bool) -> ExitCode {
    let config = match EngineConfig::load(file) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    println!("# {}: valid\n{}", file.display(), config.to_masked_toml());
    let checks = checks(&config, offline);
    let mut failed = 0;
    for check in &checks {
        match &check.result {
            Ok(detail) => println!("# ok    {}: {detail}", check.name),
            Err(problem) => {
                failed += 1;
                println!("# FAIL  {}: {problem}", check.name);
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{}: {failed} of {} checks failed",
            file.display(),
            checks.len()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Every check of `config` (broker checks skipped when `offline`).
pub fn checks(config: &EngineConfig, offline: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    for binding in &config.bindings {
        // No feeds from other topics: the check must not consume anything.
        let context = OperatorContext::for_binding(config, &binding.topic, false);
        let result = (binding.operator.spec().start)(&context)
            .map(|runtime| match runtime.model {
                Some(model) => format!("model {} loaded", model.version()),
                None => "started (no model)".to_owned(),
            })
            .map_err(|error| error.to_string());
        checks.push(Check {
            name: format!(
                "operator {} for topic {}",
                binding.operator.name(),
                binding.topic
            ),
            result,
        });
    }
    checks.push(Check {
        name: format!("state directory {}", config.storage.state_dir.display()),
        result: writable_dir(&config.storage.state_dir),
    });
    let remote_store = config
        .registry
        .store_location(&config.storage.model_dir)
        .contains("://")
        && !config.registry.store.starts_with("file://");
    if config.registry.enabled && !(offline && remote_store) {
        checks.push(store_check(config));
    }
    if offline {
        return checks;
    }
    checks.push(broker_check(config));
    checks
}

/// The artifact store answers and lists the versions of every bound operator's model.
fn store_check(config: &EngineConfig) -> Check {
    let location = config.registry.store_location(&config.storage.model_dir);
    let name = format!("artifact store {location}");
    if !location.contains("://") && !Path::new(&location).is_dir() {
        return Check {
            name,
            result: Err("not a directory".to_owned()),
        };
    }
    let result =
        crate::registry::store::ArtifactStore::open(&config.registry, &config.storage.model_dir)
            .map_err(|error| error.to_string())
            .and_then(|store| {
                let mut listed = Vec::new();
                for binding in &config.bindings {
                    if let Some(model) = binding.operator.spec().model {
                        let versions = store
                            .versions(model.dir)
                            .map_err(|error| error.to_string())?;
                        listed.push(format!("{} [{}]", model.dir, versions.join(", ")));
                    }
                }
                listed.dedup();
                Ok(if listed.is_empty() {
                    "reachable".to_owned()
                } else {
                    format!("reachable; {}", listed.join("; "))
                })
            });
    Check { name, result }
}

fn writable_dir(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|error| format!("cannot create: {error}"))?;
    let probe = dir.join(".threatflow-write-check");
    std::fs::write(&probe, b"ok").map_err(|error| format!("not writable: {error}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok("writable".to_owned())
}

fn broker_check(config: &EngineConfig) -> Check {
    let name = format!("brokers {}", config.kafka.brokers);
    let consumer: BaseConsumer = match crate::pipeline::consumer_client_config(config).create() {
        Ok(consumer) => consumer,
        Err(error) => {
            return Check {
                name,
                result: Err(format!("cannot create a client: {error}")),
            }
        }
    };
    let metadata = match consumer.fetch_metadata(None, BROKER_TIMEOUT) {
        Ok(metadata) => metadata,
        Err(error) => {
            return Check {
                name,
                result: Err(format!("no answer within {BROKER_TIMEOUT:?}: {error}")),
            }
        }
    };
    let existing: std::collections::BTreeSet<&str> = metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none())
        .map(|topic| topic.name())
        .collect();
    let mut wanted: Vec<&str> = config
        .bindings
        .iter()
        .flat_map(|binding| [binding.topic.as_str(), binding.output_topic.as_str()])
        .collect();
    // The registry topic is created at start when missing; its absence is not a failure.
    wanted.push(&config.output.dead_letter_topic);
    wanted.sort_unstable();
    wanted.dedup();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|topic| !existing.contains(topic))
        .collect();
    let result = if missing.is_empty() {
        Ok(format!(
            "{} brokers answered; all {} topics exist",
            metadata.brokers().len(),
            wanted.len()
        ))
    } else {
        Err(format!("missing topics: {}", missing.join(", ")))
    };
    Check { name, result }
}
