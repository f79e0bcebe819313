//! Drift watch (issue 18, in progress): the statistics and the per-binding detector that
//! compare live feature values with a model version's reference sample.
//!
//! - [`stats`]: two-sample Kolmogorov–Smirnov and chi-square tests, Bonferroni correction;
//! - [`detector`]: a reference sample, a sliding window of live rows, and one test per
//!   feature per full window.
//!
//! Not wired into the pipeline yet: reference samples written by `train`, the drift topic
//! (`schemas/drift.avsc`), metrics and `/models` come with the rest of the feedback loop.

pub mod detector;
pub mod stats;

pub use detector::{DriftWatch, FeatureDrift, FeatureKind, Reference};
