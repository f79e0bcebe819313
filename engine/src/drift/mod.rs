//! Drift watch (issue 18, in progress): the statistics and the per-binding detector that
//! compare live feature values with a model version's reference sample.
//!
//! - [`stats`]: two-sample Kolmogorov–Smirnov and chi-square tests, Bonferroni correction;
//! - [`detector`]: a reference sample, a sliding window of live rows, and one test per
//!   feature per full window.
//!
//! - [`tap`]: the watch of one binding beside its workers — reference of the version scoring
//!   now, drift records on `drift.topic`, metrics, `/models`.
//!
//! Operators opt in through [`crate::operators::table::DriftSpec`]: flow, alert, address and
//! email versions carry `drift_reference.json` ([`write_reference`], written by their
//! trainers and by `threatflow drift-reference <operator>` for older versions).

pub mod detector;
pub mod score;
pub mod stats;
pub mod tap;

#[cfg(test)]
mod shipped_tests;

pub use detector::{DriftWatch, FeatureDrift, FeatureKind, Reference};

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::ml::artifact::{write_json_ref, ArtifactRef, ModelError};

/// Rows drawn from the training data into a version's reference sample (the issue asks for
/// at least 1,000).
pub const REFERENCE_ROWS: usize = 2000;

/// The reference sample's file in a model version directory (named by its manifest's
/// `drift_reference`).
pub const REFERENCE_FILE: &str = "drift_reference.json";

/// A categorical value as a number for the detector: FNV-1a of its bytes, cut to 52 bits so
/// it is an exact, finite f64 (distinct categories collide with probability ~2⁻⁵²).
pub fn category_code(value: &str) -> f64 {
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash & ((1 << 52) - 1)) as f64
}

/// Writes the reference sample of `rows` (watched values of training events, in the order
/// of `features`; at most [`REFERENCE_ROWS`], drawn with `seed`) into `directory` and
/// returns the manifest's reference to it.
pub fn write_reference(
    directory: &Path,
    features: &[(String, FeatureKind)],
    mut rows: Vec<Vec<f64>>,
    seed: u64,
) -> Result<ArtifactRef, ModelError> {
    rows.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    rows.truncate(REFERENCE_ROWS);
    let (names, kinds): (Vec<String>, Vec<FeatureKind>) = features.iter().cloned().unzip();
    write_json_ref(
        directory,
        REFERENCE_FILE,
        &Reference::from_rows(&names, &kinds, &rows),
    )
}
