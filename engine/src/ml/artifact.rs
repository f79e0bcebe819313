//! Model artifacts on disk: files named by a manifest together with their sha256, written
//! and read back with the check, so a model whose bytes changed after training is refused;
//! and the choice of the newest version directory of an operator.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A file named by a manifest.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    /// File name inside the version directory.
    pub path: String,
    /// Hex sha256 of the file.
    pub sha256: String,
}

impl ArtifactRef {
    /// A reference to `path` whose sha256 is filled in when the file is written.
    pub fn named(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            sha256: String::new(),
        }
    }
}

/// Errors loading, verifying or saving a model version (one type for every operator).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The bytes, the manifest or a model do not pass a check (sha256, feature list, shape).
    #[error("{0}")]
    Invalid(String),
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Maps an I/O error on `path` to [`ModelError::Io`].
pub fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads `directory/name` and checks its sha256 against `expected_sha256`.
pub fn read_verified(
    directory: &Path,
    name: &str,
    expected_sha256: &str,
) -> Result<Vec<u8>, ModelError> {
    let path = directory.join(name);
    let bytes = std::fs::read(&path).map_err(io_error(&path))?;
    let actual = sha256_hex(&bytes);
    if actual != expected_sha256 {
        return Err(ModelError::Invalid(format!(
            "{}: sha256 {actual} differs from the manifest's {expected_sha256}",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Reads and parses the JSON file `directory/name` after the sha256 check.
pub fn read_json<T: serde::de::DeserializeOwned>(
    directory: &Path,
    name: &str,
    expected_sha256: &str,
) -> Result<T, ModelError> {
    let bytes = read_verified(directory, name, expected_sha256)?;
    serde_json::from_slice(&bytes).map_err(|error| ModelError::Invalid(format!("{name}: {error}")))
}

/// Reads `directory/manifest.json` and checks that its kind (`kind_of`) is `expected_kind`.
pub fn read_manifest<T: serde::de::DeserializeOwned>(
    directory: &Path,
    kind_of: impl Fn(&T) -> &str,
    expected_kind: &str,
) -> Result<T, ModelError> {
    let invalid =
        |error: &dyn std::fmt::Display| ModelError::Invalid(format!("manifest.json: {error}"));
    let bytes = std::fs::read(directory.join("manifest.json")).map_err(|e| invalid(&e))?;
    let manifest: T = serde_json::from_slice(&bytes).map_err(|e| invalid(&e))?;
    if kind_of(&manifest) != expected_kind {
        return Err(ModelError::Invalid(format!(
            "manifest kind {:?} is not {expected_kind:?}",
            kind_of(&manifest)
        )));
    }
    Ok(manifest)
}

/// Writes `value` as compact JSON to `directory/name` and returns the manifest's reference
/// to it (name and sha256).
pub fn write_json_ref<T: serde::Serialize>(
    directory: &Path,
    name: &str,
    value: &T,
) -> Result<ArtifactRef, ModelError> {
    Ok(ArtifactRef {
        path: name.to_owned(),
        sha256: write_json(directory, name, value)?,
    })
}

/// Writes `value` as compact JSON to `directory/name` (directory created) and returns the
/// file's sha256.
pub fn write_json<T: serde::Serialize>(
    directory: &Path,
    name: &str,
    value: &T,
) -> Result<String, ModelError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|error| ModelError::Invalid(format!("{name}: {error}")))?;
    write_bytes(directory, name, &bytes)
}

/// Writes `bytes` to `directory/name` (directory created) and returns their sha256.
pub fn write_bytes(directory: &Path, name: &str, bytes: &[u8]) -> Result<String, ModelError> {
    std::fs::create_dir_all(directory).map_err(io_error(directory))?;
    let path = directory.join(name);
    std::fs::write(&path, bytes).map_err(io_error(&path))?;
    Ok(sha256_hex(bytes))
}

/// Writes `value` as pretty JSON plus a newline (manifests: read by people and diffs).
pub fn write_pretty_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ModelError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| ModelError::Invalid(format!("{}: {error}", path.display())))?;
    std::fs::write(path, text + "\n").map_err(io_error(path))
}

/// The directory of the newest version under `operator_dir` (natural order of the names), for
/// operators and `eval` when no version is named.
pub fn newest_version(operator_dir: &Path) -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(operator_dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("manifest.json").is_file())
        .collect();
    versions
        .sort_by_key(|path| natural_key(&path.file_name().unwrap_or_default().to_string_lossy()));
    versions.pop()
}

/// Sort key that orders `v2` before `v10`.
pub fn natural_key(name: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for character in name.chars() {
        if character.is_ascii_digit() {
            if !text.is_empty() {
                key.push((0, std::mem::take(&mut text)));
            }
            digits.push(character);
        } else {
            if !digits.is_empty() {
                key.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                digits.clear();
            }
            text.push(character);
        }
    }
    if !digits.is_empty() {
        key.push((digits.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        key.push((0, text));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_v10_after_v2() {
        let mut names = vec!["v10", "v2", "v1"];
        names.sort_by_key(|name| natural_key(name));
        assert_eq!(names, ["v1", "v2", "v10"]);
    }

    #[test]
    fn a_changed_file_is_refused() {
        let directory = tempfile::tempdir().expect("tempdir");
        let sha = write_json(directory.path(), "m.json", &vec![1.0, 2.0]).expect("writes");
        let back: Vec<f64> = read_json(directory.path(), "m.json", &sha).expect("reads");
        assert_eq!(back, vec![1.0, 2.0]);
        std::fs::write(directory.path().join("m.json"), "[1.0,2.5]").expect("writes");
        let error = read_json::<Vec<f64>>(directory.path(), "m.json", &sha).unwrap_err();
        assert!(error.to_string().contains("differs from the manifest"));
    }
}
