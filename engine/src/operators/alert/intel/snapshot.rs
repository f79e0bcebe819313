//! Versioned intel snapshots — threat intelligence shipped and deployed like model data.
//!
//! A snapshot is a directory `<model_dir>/alert/intel/<version>/` holding intel files and a
//! `manifest.json` that lists each with its format, source, licence, default confidence and
//! sha256. Loading checks every file's sha256 against the manifest and refuses the snapshot
//! on a mismatch: changed bytes are not trusted, as with model artifacts. The newest version
//! on disk wins; without one, the snapshot compiled into the binary
//! (`models/alert/intel/v1`) is used, so eval and training see the same intel as the engine.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{parse_text, Indicator, IntelFormat};
use crate::ml::artifact::{newest_version, sha256_hex};

const SHIPPED_MANIFEST: &str = include_str!("../../../../../models/alert/intel/v1/manifest.json");
const SHIPPED_FILES: &[(&str, &str)] = &[(
    "documentation-networks.csv",
    include_str!("../../../../../models/alert/intel/v1/documentation-networks.csv"),
)];

/// `manifest.json` of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    /// Version (the directory name).
    pub version: String,
    /// When it was made.
    pub created: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Its files.
    pub sources: Vec<SnapshotSource>,
}

/// One file of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSource {
    /// File name inside the snapshot directory.
    pub file: String,
    /// Its format.
    pub format: IntelFormat,
    /// sha256 of its bytes (hex).
    pub sha256: String,
    /// Source of indicators that name none.
    pub source: String,
    /// The licence it is redistributed under.
    pub licence: String,
    /// Confidence of list entries that give none.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn default_confidence() -> f64 {
    0.7
}

/// A loaded snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its manifest.
    pub manifest: SnapshotManifest,
    /// Where it came from (a directory, or "(built in)").
    pub location: PathBuf,
    /// Its indicators.
    pub indicators: Vec<Indicator>,
    /// Entries of its files that were no indicator.
    pub skipped: usize,
}

fn build(
    manifest_text: &str,
    location: PathBuf,
    read: impl Fn(&str) -> Result<String, String>,
) -> Result<Snapshot, String> {
    let manifest: SnapshotManifest = serde_json::from_str(manifest_text)
        .map_err(|error| format!("{}: manifest: {error}", location.display()))?;
    let mut indicators = Vec::new();
    let mut skipped = 0;
    for source in &manifest.sources {
        let text = read(&source.file)?;
        let actual = sha256_hex(text.as_bytes());
        if actual != source.sha256 {
            return Err(format!(
                "{}: {} has sha256 {actual}, the manifest says {}",
                location.display(),
                source.file,
                source.sha256
            ));
        }
        let report = parse_text(&text, source.format, &source.source, source.confidence)
            .map_err(|error| format!("{}: {}: {error}", location.display(), source.file))?;
        indicators.extend(report.indicators);
        skipped += report.skipped;
    }
    Ok(Snapshot {
        manifest,
        location,
        indicators,
        skipped,
    })
}

/// The snapshot compiled into this binary.
pub fn shipped() -> Result<Snapshot, String> {
    build(SHIPPED_MANIFEST, PathBuf::from("(built in)"), |file| {
        SHIPPED_FILES
            .iter()
            .find(|(name, _)| *name == file)
            .map(|(_, text)| (*text).to_owned())
            .ok_or_else(|| format!("built-in snapshot has no {file}"))
    })
}

/// The snapshot in `directory` (a version directory with `manifest.json`).
pub fn load_dir(directory: &Path) -> Result<Snapshot, String> {
    let manifest = std::fs::read_to_string(directory.join("manifest.json"))
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    build(&manifest, directory.to_owned(), |file| {
        std::fs::read_to_string(directory.join(file))
            .map_err(|error| format!("{}: {error}", directory.join(file).display()))
    })
}

/// The newest snapshot under `<model_dir>/alert/intel/`, else the built-in one.
pub fn load(model_dir: &Path) -> Result<Snapshot, String> {
    match newest_version(&model_dir.join("alert").join("intel")) {
        Some(directory) => load_dir(&directory),
        None => shipped(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_snapshot_loads_from_the_binary_and_from_disk_alike() {
        let built_in = shipped().unwrap();
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"));
        let on_disk = load(root).unwrap();
        assert_eq!(built_in.indicators, on_disk.indicators);
        assert_eq!(built_in.indicators.len(), 3);
        assert_eq!(built_in.skipped, 0);
    }

    #[test]
    fn a_file_that_differs_from_its_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("alert/intel/v2");
        std::fs::create_dir_all(&version).unwrap();
        let shipped_dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/alert/intel/v1"
        ));
        for file in ["manifest.json", "documentation-networks.csv"] {
            std::fs::copy(shipped_dir.join(file), version.join(file)).unwrap();
        }
        assert_eq!(load(dir.path()).unwrap().location, version);
        let csv = version.join("documentation-networks.csv");
        let tampered = std::fs::read_to_string(&csv).unwrap() + "8.8.8.8/32,cidr,1,x,y\n";
        std::fs::write(&csv, tampered).unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(error.contains("the manifest says"), "{error}");
    }
}
