//! What the registry reads from any operator's manifest, and `models verify`.
//!
//! Every operator's manifest is a JSON object with `kind` (`threatflow.<operator>.<model>`),
//! `version`, `created_at` (RFC 3339), `metrics`, and its files as `{"path", "sha256"}`
//! objects anywhere inside (the operators name them differently). The registry treats a
//! version generically through [`ManifestView`]: which operator, which files, how old.
//!
//! Guarantee of [`verify_version`]: a directory passes only when every check passes —
//! manifest present and valid JSON, required fields present, every artifact's sha256 matches,
//! the feature list equals what this build's operator computes, the version is younger than
//! the maximum age (unless `"bootstrap": true`), and metrics are present.

use std::path::Path;

use crate::operators::table::{self, OperatorSpec};

/// Fields every manifest must have.
pub const REQUIRED_FIELDS: [&str; 4] = ["kind", "version", "created_at", "metrics"];

/// A manifest read generically.
#[derive(Debug, Clone)]
pub struct ManifestView {
    /// The whole manifest.
    pub json: serde_json::Value,
    /// The operator its `kind` names.
    pub operator: String,
    /// Its `version`.
    pub version: String,
    /// Its `created_at`.
    pub created_at: String,
    /// `"bootstrap": true`: a shipped model, exempt from the age limit.
    pub bootstrap: bool,
    /// Every file it names: (path inside the version directory, sha256).
    pub artifacts: Vec<(String, String)>,
}

impl ManifestView {
    /// Reads `directory/manifest.json`.
    pub fn read(directory: &Path) -> Result<Self, String> {
        let path = directory.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        Self::parse(&bytes)
    }

    /// Parses manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|error| format!("manifest.json is not valid JSON: {error}"))?;
        if !json.is_object() {
            return Err("manifest.json is not a JSON object".to_owned());
        }
        let text = |field: &str| json.get(field).and_then(|v| v.as_str()).unwrap_or_default();
        let kind = text("kind");
        let operator = kind
            .strip_prefix("threatflow.")
            .and_then(|rest| rest.split('.').next())
            .unwrap_or_default()
            .to_owned();
        let mut artifacts = Vec::new();
        collect_artifacts(&json, &mut artifacts);
        Ok(Self {
            operator,
            version: text("version").to_owned(),
            created_at: text("created_at").to_owned(),
            bootstrap: json.get("bootstrap").and_then(|v| v.as_bool()) == Some(true),
            artifacts,
            json,
        })
    }

    /// The manifest's `metrics` object (empty object when absent).
    pub fn metrics(&self) -> serde_json::Value {
        self.json
            .get("metrics")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}))
    }

    /// The operator spec its kind names.
    pub fn spec(&self) -> Option<&'static OperatorSpec> {
        table::find(&self.operator).filter(|spec| spec.model.is_some())
    }

    /// Files of the version: the manifest and every artifact.
    pub fn files(&self) -> Vec<String> {
        std::iter::once("manifest.json".to_owned())
            .chain(self.artifacts.iter().map(|(path, _)| path.clone()))
            .collect()
    }

    /// Age in days at `now` (None when `created_at` does not parse).
    pub fn age_days(&self, now: chrono::DateTime<chrono::Utc>) -> Option<f64> {
        let created = chrono::DateTime::parse_from_rfc3339(&self.created_at).ok()?;
        Some((now - created.with_timezone(&chrono::Utc)).num_seconds() as f64 / 86_400.0)
    }
}

/// Every `{"path": .., "sha256": ..}` object inside `value`, in document order.
fn collect_artifacts(value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            if let (Some(path), Some(sha)) = (
                map.get("path").and_then(|v| v.as_str()),
                map.get("sha256").and_then(|v| v.as_str()),
            ) {
                out.push((path.to_owned(), sha.to_owned()));
                return;
            }
            map.values().for_each(|child| collect_artifacts(child, out));
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|item| collect_artifacts(item, out))
        }
        _ => {}
    }
}

/// A file name a manifest may name: plain, inside the version directory.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks every artifact's sha256 in `directory`; the first mismatch or missing file.
pub fn verify_artifacts(directory: &Path, view: &ManifestView) -> Result<(), String> {
    if view.artifacts.is_empty() {
        return Err("the manifest names no artifact".to_owned());
    }
    for (name, expected) in &view.artifacts {
        if !is_plain_file_name(name) {
            return Err(format!("artifact path {name:?} is not a plain file name"));
        }
        crate::ml::artifact::read_verified(directory, name, expected)
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// One check of `models verify`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// Check name (`manifest`, `fields`, `sha256`, `features`, `age`, `metrics`).
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Self {
                name,
                passed: true,
                detail,
            },
            Err(detail) => Self {
                name,
                passed: false,
                detail,
            },
        }
    }

    /// `# ok name: detail` or `# FAIL name: detail`.
    pub fn line(&self) -> String {
        format!(
            "# {} {}: {}",
            if self.passed { "ok" } else { "FAIL" },
            self.name,
            self.detail
        )
    }
}

/// Every check of `directory` (see the module doc), at `now` with `max_age_days`.
pub fn verify_version(
    directory: &Path,
    max_age_days: f64,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Check> {
    let view = match ManifestView::read(directory) {
        Ok(view) => view,
        Err(error) => return vec![Check::new("manifest", Err(error))],
    };
    let mut checks = vec![Check::new(
        "manifest",
        Ok(format!("{} {}", view.operator, view.version)),
    )];
    let missing: Vec<&str> = REQUIRED_FIELDS
        .iter()
        .copied()
        .filter(|field| {
            view.json
                .get(*field)
                .is_none_or(|value| value.is_null() || value.as_str() == Some(""))
        })
        .collect();
    checks.push(Check::new(
        "fields",
        if !missing.is_empty() {
            Err(format!("missing {}", missing.join(", ")))
        } else if view.spec().is_none() {
            Err(format!(
                "kind names no operator with a model: {:?}",
                view.json["kind"]
            ))
        } else {
            Ok(format!("{} present", REQUIRED_FIELDS.join(", ")))
        },
    ));
    checks.push(Check::new(
        "sha256",
        verify_artifacts(directory, &view)
            .map(|()| format!("{} artifacts match", view.artifacts.len())),
    ));
    checks.push(Check::new(
        "features",
        match view.spec().and_then(|spec| spec.model.as_ref()) {
            Some(model) => (model.check_features)(&view.json).map(|()| "equal the code's".into()),
            None => Err("no operator to compare with".to_owned()),
        },
    ));
    checks.push(Check::new(
        "age",
        match view.age_days(now) {
            None => Err(format!("created_at {:?} is not RFC 3339", view.created_at)),
            Some(_) if view.bootstrap => Ok("bootstrap model: exempt".to_owned()),
            Some(age) if age <= max_age_days => {
                Ok(format!("{age:.1} days old (max {max_age_days})"))
            }
            Some(age) => Err(format!(
                "{age:.1} days old, older than the maximum {max_age_days} days"
            )),
        },
    ));
    checks.push(Check::new(
        "metrics",
        match view.json.get("metrics") {
            Some(serde_json::Value::Object(map)) if !map.is_empty() => {
                Ok(format!("{} figures", map.len()))
            }
            _ => Err("no metrics object".to_owned()),
        },
    ));
    checks
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
