//! What the operators' `train`, `eval`, `generate` and `bench` commands share (each operator's
//! own arguments and command bodies live in its `commands.rs`): the output conventions
//! (human-readable report on stdout; with `--json`, one JSON object on the last line), which
//! model version an eval reads, the `[operators]` sections of a config file, RFC 3339 stamps,
//! and the exit status. Every command returns `anyhow::Result`; [`exit_code`] is the one place
//! that turns a result into a process exit status: 0, 2 for a usage problem ([`UsageError`]: a
//! bad argument, no model to evaluate, an invalid config file), 1 for anything else.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

/// A problem with how the command was called (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit status of a command's result; prints the error with its causes to stderr.
pub fn exit_code(command: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<UsageError>().is_some() => {
            eprintln!("{command}: {}", render(&error));
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("{command} failed: {}", render(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause once (many of our errors already quote their source
/// in their message).
fn render(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// With `json`, prints `value` as the one-line JSON object `--json` promises on the last line
/// of stdout.
pub fn print_json_line_if<T: serde::Serialize>(json: bool, value: &T) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(value).context("cannot render json")?
        );
    }
    Ok(())
}

/// `time` as RFC 3339 UTC with seconds (`2026-11-23T17:04:05Z`).
pub fn rfc3339_utc(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `[operators]` section of `config` (a full engine config file), or defaults.
pub fn operators_config(config: Option<&Path>) -> anyhow::Result<crate::config::OperatorSections> {
    let Some(path) = config else {
        return Ok(Default::default());
    };
    crate::config::EngineConfig::load(path)
        .map(|config| config.operators)
        .map_err(|error| UsageError(format!("{}: {error}", path.display())).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(rfc3339_utc(leap_day), "2000-02-29T01:02:03Z");
        let late = UNIX_EPOCH + Duration::from_secs(1_795_392_000);
        assert_eq!(rfc3339_utc(late), "2026-11-23T00:00:00Z");
    }
}
