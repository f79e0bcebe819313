//! Isolation forest (Liu, Ting & Zhou 2008): anomalies are isolated by fewer random splits.
//!
//! Each tree is grown on `sample_size` rows drawn without replacement, splitting on a random
//! column (among those not constant in the node) at a uniform random threshold between the
//! node's minimum and maximum, down to depth ⌈log₂ sample_size⌉. A row's path length is the
//! depth of the leaf it reaches plus `c(n)`, the average path length of an unsuccessful BST
//! search among the `n` training rows left in that leaf. The anomaly score is
//! `s = 2^(−E[h] / c(sample_size))`: near 1 for anomalies, about 0.5 or below for normal rows
//! (the paper's definition, as in scikit-learn's `score_samples` negated).
//!
//! Missing values (NaN) are ignored when choosing a threshold and go left at scoring time.
//!
//! Why not a crate: `extended-isolation-forest` fixes the dimension at compile time (const
//! generics) and keeps its own serialisation; the operators need runtime feature widths and
//! a model stored with their manifests. Same parameters and seed, same forest.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Euler–Mascheroni constant, for the harmonic-number approximation in [`average_path_length`].
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Leaf marker in [`IsolationTree::left`].
const LEAF: u32 = u32::MAX;

/// Training parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolationForestParams {
    /// Number of trees (the paper: 100 is enough for path lengths to converge).
    pub trees: usize,
    /// Rows per tree (the paper: 256; small samples isolate anomalies better).
    pub sample_size: usize,
    /// Seed of the row samples and splits.
    pub seed: u64,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self {
            trees: 100,
            sample_size: 256,
            seed: 1,
        }
    }
}

/// One isolation tree as parallel arrays; node 0 is the root.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IsolationTree {
    /// Split column (internal nodes).
    pub feature: Vec<u32>,
    /// Values below go left.
    pub threshold: Vec<f64>,
    /// Left child, or `u32::MAX` at a leaf.
    pub left: Vec<u32>,
    /// Right child.
    pub right: Vec<u32>,
    /// Training rows that reached the node (leaves use it for `c(n)`).
    pub size: Vec<u32>,
}

impl IsolationTree {
    /// Path length of `row`: leaf depth plus `c(leaf size)`.
    pub fn path_length(&self, row: &[f64]) -> f64 {
        let mut node = 0usize;
        let mut depth = 0.0;
        while node < self.left.len() && self.left[node] != LEAF {
            let value = row
                .get(self.feature[node] as usize)
                .copied()
                .unwrap_or(f64::NAN);
            let goes_left = value.is_nan() || value < self.threshold[node];
            node = if goes_left {
                self.left[node]
            } else {
                self.right[node]
            } as usize;
            depth += 1.0;
        }
        depth
            + self
                .size
                .get(node)
                .map_or(0.0, |&n| average_path_length(n as usize))
    }

    fn push(&mut self, feature: u32, threshold: f64, size: usize) -> usize {
        self.feature.push(feature);
        self.threshold.push(threshold);
        self.left.push(LEAF);
        self.right.push(LEAF);
        self.size.push(u32::try_from(size).unwrap_or(u32::MAX));
        self.left.len() - 1
    }
}

/// A trained forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    /// Columns of the rows it was trained on.
    pub feature_count: usize,
    /// Rows each tree saw (the normaliser `c(sample_size)`).
    pub sample_size: usize,
    /// The trees.
    pub trees: Vec<IsolationTree>,
}

/// `c(n)`: average path length of an unsuccessful search in a binary search tree of `n`
/// keys, `2·H(n−1) − 2(n−1)/n` with `H(i) ≈ ln i + γ`; `c(1) = 0`, `c(2) = 1`.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Errors of [`IsolationForest::fit`].
#[derive(Debug, thiserror::Error)]
#[error("isolation forest: {0}")]
pub struct IsolationForestError(String);

struct Grower<'a> {
    features: &'a [f64],
    columns: usize,
    max_depth: usize,
    rng: StdRng,
    tree: IsolationTree,
}

impl Grower<'_> {
    fn value(&self, row: usize, column: usize) -> f64 {
        self.features[row * self.columns + column]
    }

    /// Finite min and max of `column` over `rows`, if it is not constant there.
    fn range(&self, rows: &[usize], column: usize) -> Option<(f64, f64)> {
        let (low, high) = rows
            .iter()
            .map(|&row| self.value(row, column))
            .filter(|value| value.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
                (low.min(value), high.max(value))
            });
        (low < high).then_some((low, high))
    }

    fn grow(&mut self, rows: Vec<usize>, depth: usize) -> usize {
        let splittable: Vec<(usize, f64, f64)> = if depth < self.max_depth && rows.len() > 1 {
            (0..self.columns)
                .filter_map(|column| {
                    self.range(&rows, column)
                        .map(|(low, high)| (column, low, high))
                })
                .collect()
        } else {
            Vec::new()
        };
        if splittable.is_empty() {
            return self.tree.push(0, 0.0, rows.len());
        }
        let (column, low, high) = splittable[self.rng.gen_range(0..splittable.len())];
        // A threshold in (low, high] puts at least one row on each side.
        let threshold = high - self.rng.gen::<f64>() * (high - low);
        let (left_rows, right_rows): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&row| {
            let value = self.value(row, column);
            value.is_nan() || value < threshold
        });
        let node = self.tree.push(
            u32::try_from(column).unwrap_or(u32::MAX),
            threshold,
            rows.len(),
        );
        let left = self.grow(left_rows, depth + 1);
        let right = self.grow(right_rows, depth + 1);
        self.tree.left[node] = u32::try_from(left).unwrap_or(LEAF);
        self.tree.right[node] = u32::try_from(right).unwrap_or(LEAF);
        node
    }
}

impl IsolationForest {
    /// Fits a forest to the row-major `features` (`columns` per row).
    pub fn fit(
        params: &IsolationForestParams,
        features: &[f64],
        columns: usize,
    ) -> Result<Self, IsolationForestError> {
        if columns == 0 || features.is_empty() || features.len() % columns != 0 {
            return Err(IsolationForestError(format!(
                "{} values do not make rows of {columns} columns",
                features.len()
            )));
        }
        if params.trees == 0 || params.sample_size < 2 {
            return Err(IsolationForestError(
                "need at least one tree and a sample size of at least 2".to_owned(),
            ));
        }
        let rows = features.len() / columns;
        let sample_size = params.sample_size.min(rows);
        let max_depth = (sample_size as f64).log2().ceil() as usize;
        let mut rng = StdRng::seed_from_u64(params.seed);
        let trees = (0..params.trees)
            .map(|_| {
                let sampled = sample(&mut rng, rows, sample_size).into_vec();
                let mut grower = Grower {
                    features,
                    columns,
                    max_depth,
                    rng: StdRng::seed_from_u64(rng.gen()),
                    tree: IsolationTree::default(),
                };
                grower.grow(sampled, 0);
                grower.tree
            })
            .collect();
        Ok(Self {
            feature_count: columns,
            sample_size,
            trees,
        })
    }

    /// Mean path length of `row` over the trees.
    pub fn mean_path_length(&self, row: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.0;
        }
        self.trees
            .iter()
            .map(|tree| tree.path_length(row))
            .sum::<f64>()
            / self.trees.len() as f64
    }

    /// Anomaly score in (0, 1]: `2^(−E[h]/c(sample_size))`.
    pub fn score(&self, row: &[f64]) -> f64 {
        let normaliser = average_path_length(self.sample_size);
        if normaliser <= 0.0 {
            return 0.5;
        }
        2f64.powf(-self.mean_path_length(row) / normaliser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_path_length_known_values() {
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // 2(ln 2 + γ) − 4/3 = 1.2073...
        assert!((average_path_length(3) - 1.207_392_357_589_623).abs() < 1e-12);
        // The paper's normaliser for ψ = 256 (scikit-learn gives 10.244770920...).
        assert!((average_path_length(256) - 10.244_770_920_119_917).abs() < 1e-9);
    }

    #[test]
    fn identical_rows_make_one_leaf_scoring_one_half() {
        let features = vec![3.0; 2 * 16];
        let forest =
            IsolationForest::fit(&IsolationForestParams::default(), &features, 2).expect("fits");
        assert_eq!(forest.sample_size, 16);
        assert!(forest.trees.iter().all(|tree| tree.left == vec![LEAF]));
        // E[h] = c(16) and the normaliser is c(16), so s = 2^-1.
        assert!((forest.score(&[3.0, 3.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn two_rows_split_once() {
        let forest = IsolationForest::fit(
            &IsolationForestParams {
                trees: 1,
                sample_size: 2,
                seed: 9,
            },
            &[0.0, 10.0],
            1,
        )
        .expect("fits");
        let tree = &forest.trees[0];
        assert_eq!(tree.left.len(), 3);
        assert!(tree.threshold[0] > 0.0 && tree.threshold[0] <= 10.0);
        // Each row ends alone at depth 1: h = 1 = c(2), s = 0.5.
        assert_eq!(tree.path_length(&[0.0]), 1.0);
        assert_eq!(forest.score(&[10.0]), 0.5);
    }

    #[test]
    fn an_outlier_scores_high_and_inliers_low() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut features: Vec<f64> = (0..1000 * 3).map(|_| rng.gen_range(-1.0..1.0)).collect();
        features.extend([8.0, 8.0, 8.0]);
        let forest =
            IsolationForest::fit(&IsolationForestParams::default(), &features, 3).expect("fits");
        let outlier = forest.score(&[8.0, 8.0, 8.0]);
        let inliers: f64 = features
            .chunks_exact(3)
            .take(1000)
            .map(|row| forest.score(row))
            .sum::<f64>()
            / 1000.0;
        assert!(outlier > 0.7, "outlier {outlier}");
        assert!(
            inliers < 0.55 && outlier - inliers > 0.2,
            "inliers {inliers}"
        );
        assert!(forest.score(&[f64::NAN; 3]).is_finite());
    }

    #[test]
    fn same_seed_same_forest() {
        let features: Vec<f64> = (0..600).map(|i| f64::from(i % 37)).collect();
        let params = IsolationForestParams::default();
        let first = IsolationForest::fit(&params, &features, 3).expect("fits");
        let second = IsolationForest::fit(&params, &features, 3).expect("fits");
        assert_eq!(first, second);
        assert!(IsolationForest::fit(&params, &features[..5], 3).is_err());
    }
}
