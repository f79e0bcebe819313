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
//! Operators opt in through [`crate::operators::table::DriftSpec`] (today: flow, whose
//! versions carry `drift_reference.json`).

pub mod detector;
pub mod score;
pub mod stats;
pub mod tap;

pub use detector::{DriftWatch, FeatureDrift, FeatureKind, Reference};

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
