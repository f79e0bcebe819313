//! Drift detection for one binding: the model's reference sample (feature rows drawn from its
//! training data) against a sliding window of live feature rows, one test per feature
//! (KS for numeric, chi-square for categorical), Bonferroni-corrected across features.
//!
//! Guarantees: a check runs only on a full window (never on a handful of rows); each feature
//! yields one [`FeatureDrift`] per check, drifted or not, so a caller can publish every check
//! (the drift topic's contract) and alert on the drifted ones; NaN values are left out of a
//! feature's test rather than poisoning it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::stats::{bonferroni, chi_square_two_sample, ks_two_sample, TestResult};

/// How a feature is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// Kolmogorov–Smirnov on the values.
    Numeric,
    /// Chi-square on the counts of each value (category codes).
    Categorical,
}

/// One feature of a reference sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceFeature {
    /// Name, as in the manifest's feature list.
    pub name: String,
    /// Test.
    pub kind: FeatureKind,
    /// The reference values, sorted ascending, NaN removed.
    pub values: Vec<f64>,
}

/// The reference sample of a model version (`reference.json` beside its manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Per feature, in row order.
    pub features: Vec<ReferenceFeature>,
}

impl Reference {
    /// The reference of `rows` (one value per feature each), features named `names` and
    /// tested as `kinds`.
    pub fn from_rows(names: &[String], kinds: &[FeatureKind], rows: &[Vec<f64>]) -> Self {
        let features = names
            .iter()
            .zip(kinds)
            .enumerate()
            .map(|(column, (name, kind))| ReferenceFeature {
                name: name.clone(),
                kind: *kind,
                values: sorted_column(rows.iter().map(|row| row[column])),
            })
            .collect();
        Self { features }
    }

    /// Rows in the reference (the largest feature's count).
    pub fn size(&self) -> usize {
        self.features
            .iter()
            .map(|f| f.values.len())
            .max()
            .unwrap_or(0)
    }
}

fn sorted_column(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.filter(|value| !value.is_nan()).collect();
    values.sort_by(f64::total_cmp);
    values
}

/// The outcome of one feature's test in one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// Feature name.
    pub feature: String,
    /// Which test.
    pub kind: FeatureKind,
    /// Its statistic and p-value.
    pub statistic: f64,
    /// p-value.
    pub p_value: f64,
    /// Below the Bonferroni-corrected level.
    pub drifted: bool,
    /// Reference rows tested.
    pub reference_size: usize,
    /// Window rows tested.
    pub window_size: usize,
    /// The window's first row time, epoch ms.
    pub window_start_ms: i64,
    /// The window's last row time, epoch ms.
    pub window_end_ms: i64,
}

/// A sliding window of live rows and the checks against the reference.
#[derive(Debug, Clone)]
pub struct DriftWatch {
    reference: Reference,
    alpha: f64,
    window_size: usize,
    window: VecDeque<(i64, Vec<f64>)>,
}

impl DriftWatch {
    /// A watch over `reference` with significance `alpha` (before the correction) and a
    /// window of `window_size` rows.
    pub fn new(reference: Reference, alpha: f64, window_size: usize) -> Self {
        Self {
            reference,
            alpha,
            window_size: window_size.max(1),
            window: VecDeque::with_capacity(window_size),
        }
    }

    /// Adds a live row seen at `at_ms` (the oldest row leaves a full window).
    pub fn observe(&mut self, at_ms: i64, row: Vec<f64>) {
        if self.window.len() == self.window_size {
            self.window.pop_front();
        }
        self.window.push_back((at_ms, row));
    }

    /// Rows in the window now.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Whether the window is full (a check would run).
    pub fn is_full(&self) -> bool {
        self.window.len() == self.window_size
    }

    /// Starts a fresh window (after a check, so consecutive checks see disjoint rows).
    pub fn clear_window(&mut self) {
        self.window.clear();
    }

    /// Tests every feature of a full window against the reference; empty when not full.
    pub fn check(&self) -> Vec<FeatureDrift> {
        if !self.is_full() {
            return Vec::new();
        }
        let level = bonferroni(self.alpha, self.reference.features.len());
        let start = self.window.iter().map(|(at, _)| *at).min().unwrap_or(0);
        let end = self.window.iter().map(|(at, _)| *at).max().unwrap_or(0);
        self.reference
            .features
            .iter()
            .enumerate()
            .filter_map(|(column, feature)| {
                let live = sorted_column(
                    self.window
                        .iter()
                        .map(|(_, row)| row.get(column).copied().unwrap_or(f64::NAN)),
                );
                let result = match feature.kind {
                    FeatureKind::Numeric => ks_two_sample(&feature.values, &live),
                    FeatureKind::Categorical => categorical(&feature.values, &live),
                }?;
                let TestResult { statistic, p_value } = result;
                Some(FeatureDrift {
                    feature: feature.name.clone(),
                    kind: feature.kind,
                    statistic,
                    p_value,
                    drifted: p_value < level,
                    reference_size: feature.values.len(),
                    window_size: live.len(),
                    window_start_ms: start,
                    window_end_ms: end,
                })
            })
            .collect()
    }
}

/// Chi-square over the categories seen on either side (values are category codes).
fn categorical(reference: &[f64], live: &[f64]) -> Option<TestResult> {
    let mut counts: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for value in reference {
        counts.entry(value.to_bits()).or_default().0 += 1;
    }
    for value in live {
        counts.entry(value.to_bits()).or_default().1 += 1;
    }
    let (reference_counts, live_counts): (Vec<u64>, Vec<u64>) = counts.into_values().unzip();
    chi_square_two_sample(&reference_counts, &live_counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of (bytes, protocol code): bytes log-uniform-ish from `seed`, protocol 0/1/2.
    fn rows(count: usize, seed: u64, byte_scale: f64) -> Vec<Vec<f64>> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..count)
            .map(|_| {
                let bytes = (next() * 10.0).exp() * byte_scale;
                let protocol = (next() * 3.0).floor();
                vec![bytes, protocol]
            })
            .collect()
    }

    fn reference() -> Reference {
        Reference::from_rows(
            &["src_bytes".to_owned(), "protocol_type".to_owned()],
            &[FeatureKind::Numeric, FeatureKind::Categorical],
            &rows(2000, 1, 1.0),
        )
    }

    #[test]
    fn a_shifted_numeric_feature_is_named_and_the_others_are_not() {
        let mut watch = DriftWatch::new(reference(), 0.05, 500);
        for (at, mut row) in rows(500, 2, 1.0).into_iter().enumerate() {
            row[0] *= 50.0;
            watch.observe(at as i64, row);
        }
        let checks = watch.check();
        assert_eq!(checks.len(), 2);
        assert!(
            checks[0].drifted && checks[0].feature == "src_bytes",
            "{checks:?}"
        );
        assert!(!checks[1].drifted, "{checks:?}");
        assert_eq!(
            (checks[0].window_start_ms, checks[0].window_end_ms),
            (0, 499)
        );
        assert_eq!(checks[0].reference_size, 2000);
    }

    #[test]
    fn the_same_source_raises_nothing_over_ten_windows() {
        let mut watch = DriftWatch::new(reference(), 0.05, 500);
        let mut drifted = 0;
        for window in 0..10 {
            for (at, row) in rows(500, 100 + window, 1.0).into_iter().enumerate() {
                watch.observe(at as i64, row);
            }
            drifted += watch.check().iter().filter(|check| check.drifted).count();
            watch.clear_window();
        }
        assert_eq!(drifted, 0);
    }

    #[test]
    fn a_shifted_category_mix_is_caught_by_chi_square() {
        let mut watch = DriftWatch::new(reference(), 0.05, 500);
        for (at, mut row) in rows(500, 3, 1.0).into_iter().enumerate() {
            if at % 2 == 0 {
                row[1] = 2.0;
            }
            watch.observe(at as i64, row);
        }
        let checks = watch.check();
        assert!(
            checks[1].drifted && checks[1].kind == FeatureKind::Categorical,
            "{checks:?}"
        );
        assert!(!checks[0].drifted, "{checks:?}");
    }

    #[test]
    fn nothing_is_checked_before_the_window_is_full_and_nan_is_left_out() {
        let mut watch = DriftWatch::new(reference(), 0.05, 10);
        for at in 0..9 {
            watch.observe(at, vec![f64::NAN, 1.0]);
        }
        assert!(watch.check().is_empty());
        watch.observe(9, vec![5.0, 1.0]);
        let checks = watch.check();
        assert_eq!(checks[0].window_size, 1);
        assert_eq!(checks[1].window_size, 10);
    }

    #[test]
    fn a_reference_round_trips_as_json() {
        let reference = reference();
        let text = serde_json::to_string(&reference).unwrap();
        let back: Reference = serde_json::from_str(&text).unwrap();
        assert_eq!(back, reference);
        assert_eq!(back.size(), 2000);
    }
}
