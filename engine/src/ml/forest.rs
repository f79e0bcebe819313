//! Random-forest classifier (Breiman 2001), trained in Rust on the shared quantile bins.
//!
//! Each tree grows on a bootstrap sample (drawn as per-row multiplicities, so no rows are
//! copied), choosing at every node the Gini-best split among `max_features` columns drawn
//! afresh for that node (`0` = √columns, the usual default for classification). Missing
//! values follow the side that lowers impurity more, as in [`crate::ml::gbdt`].
//!
//! Output: an [`Ensemble`] with one output per class. Every forest tree is stored once per
//! class with the same splits; a leaf of class `k` holds the weighted share of class `k` in
//! that leaf divided by the number of trees, and the base score is 0, so
//! `predict_raw(row)[k]` is the forest's averaged class probability and exact TreeSHAP on
//! output `k` explains it with the shared evaluator (shares are rounded to f32, the stored
//! precision; probabilities then sum to 1 within ~1e-6). Importances are the mean decrease in
//! Gini impurity (weighted by node size), summed over the forest and normalised to 1.
//!
//! Same parameters and seed, same forest.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::ml::binning::{partition_rows, Binning, MISSING_BIN};
use crate::ml::gbdt::{Dataset, GbdtError};
use crate::ml::trees::{Ensemble, Tree, LEAF};

/// Training parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForestParams {
    /// Number of trees.
    pub trees: usize,
    /// Depth limit (the root is depth 0).
    pub max_depth: usize,
    /// Smallest total weight of a leaf.
    pub min_leaf_weight: f64,
    /// Columns tried per node; 0 = √columns.
    pub max_features: usize,
    /// Bootstrap size as a share of the rows.
    pub sample_fraction: f64,
    /// Quantile bins per feature (at most 254).
    pub max_bins: usize,
    /// Seed of bootstrap samples and column draws.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            trees: 100,
            max_depth: 12,
            min_leaf_weight: 2.0,
            max_features: 0,
            sample_fraction: 1.0,
            max_bins: 64,
            seed: 1,
        }
    }
}

/// A trained forest: the class-probability ensemble and impurity importances.
///
/// Serialised compactly as [`StoredForest`] (each tree once, leaf class shares as f32 —
/// training rounds them the same way, so a loaded forest predicts exactly what the trained
/// one did) and expanded to one tree copy per class on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredForest", try_from = "StoredForest")]
pub struct RandomForest {
    /// One output per class; outputs sum to 1.
    pub ensemble: Ensemble,
    /// Mean decrease in Gini impurity per feature, summing to 1 (all 0 if no split).
    pub importances: Vec<f64>,
}

impl RandomForest {
    /// Class probabilities of `row` (the same sums as `ensemble.predict_raw`, walking each
    /// tree once: every class copy shares the first copy's splits).
    pub fn predict_proba(&self, row: &[f64]) -> Vec<f64> {
        let mut probabilities = self.ensemble.base_score.clone();
        let Some(first_copies) = self.ensemble.trees.first() else {
            return probabilities;
        };
        for (index, tree) in first_copies.iter().enumerate() {
            let Some(leaf) = tree.leaf_index(row) else {
                continue;
            };
            for (probability, class_trees) in probabilities.iter_mut().zip(&self.ensemble.trees) {
                *probability += class_trees[index].value[leaf];
            }
        }
        probabilities
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.ensemble.outputs()
    }
}

/// The on-disk form of a [`RandomForest`]: splits once per tree, class shares per leaf.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredForest {
    /// Number of classes.
    pub classes: usize,
    /// Columns of the rows.
    pub feature_count: usize,
    /// Trees; a node's class shares are in `shares[node · classes ..]` (0 for internal nodes).
    pub trees: Vec<StoredTree>,
    /// Importances.
    pub importances: Vec<f64>,
}

/// One stored tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredTree {
    /// Split column per node (`u32::MAX` at leaves).
    pub feature: Vec<u32>,
    /// Split threshold per node.
    pub threshold: Vec<f64>,
    /// Left child per node.
    pub left: Vec<u32>,
    /// Right child per node.
    pub right: Vec<u32>,
    /// Missing values go left.
    pub default_left: Vec<bool>,
    /// Training weight per node.
    pub cover: Vec<f64>,
    /// Class shares of each leaf divided by the tree count, `classes` per node.
    pub shares: Vec<f32>,
}

impl From<RandomForest> for StoredForest {
    fn from(forest: RandomForest) -> Self {
        let classes = forest.ensemble.outputs();
        let tree_count = forest.ensemble.trees.first().map_or(0, Vec::len);
        let trees = (0..tree_count)
            .map(|index| {
                let first = &forest.ensemble.trees[0][index];
                let mut shares = Vec::with_capacity(first.len() * classes);
                for node in 0..first.len() {
                    for class_trees in &forest.ensemble.trees {
                        shares.push(class_trees[index].value[node] as f32);
                    }
                }
                StoredTree {
                    feature: first.feature.clone(),
                    threshold: first.threshold.clone(),
                    left: first.left.clone(),
                    right: first.right.clone(),
                    default_left: first.default_left.clone(),
                    cover: first.cover.clone(),
                    shares,
                }
            })
            .collect();
        Self {
            classes,
            feature_count: forest.ensemble.feature_count,
            trees,
            importances: forest.importances,
        }
    }
}

impl TryFrom<StoredForest> for RandomForest {
    type Error = String;

    fn try_from(stored: StoredForest) -> Result<Self, Self::Error> {
        let mut ensemble = Ensemble::new(stored.feature_count, vec![0.0; stored.classes]);
        for (index, tree) in stored.trees.into_iter().enumerate() {
            let nodes = tree.feature.len();
            let consistent = [
                tree.threshold.len(),
                tree.left.len(),
                tree.right.len(),
                tree.default_left.len(),
                tree.cover.len(),
            ]
            .iter()
            .all(|&length| length == nodes)
                && tree.shares.len() == nodes * stored.classes
                && tree
                    .left
                    .iter()
                    .chain(&tree.right)
                    .all(|&child| child == LEAF || (child as usize) < nodes);
            if !consistent {
                return Err(format!("forest tree {index} has inconsistent arrays"));
            }
            for (class, class_trees) in ensemble.trees.iter_mut().enumerate() {
                class_trees.push(Tree {
                    feature: tree.feature.clone(),
                    threshold: tree.threshold.clone(),
                    left: tree.left.clone(),
                    right: tree.right.clone(),
                    default_left: tree.default_left.clone(),
                    value: (0..nodes)
                        .map(|node| f64::from(tree.shares[node * stored.classes + class]))
                        .collect(),
                    cover: tree.cover.clone(),
                });
            }
        }
        Ok(Self {
            ensemble,
            importances: stored.importances,
        })
    }
}

/// Weighted class counts per bin of the sampled columns; the last slot is missing.
struct ClassHistogram {
    slots: usize,
    classes: usize,
    counts: Vec<f64>,
}

impl ClassHistogram {
    fn at(&self, column_slot: usize, bin: usize) -> &[f64] {
        let start = (column_slot * self.slots + bin) * self.classes;
        &self.counts[start..start + self.classes]
    }
}

fn gini_mass(counts: &[f64]) -> (f64, f64) {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return (0.0, 0.0);
    }
    let sum_squares: f64 = counts.iter().map(|count| count * count).sum();
    // total · gini = total − Σ c²/total: the impurity mass a split removes from.
    (total, total - sum_squares / total)
}

struct Split {
    column: usize,
    cut_index: usize,
    missing_left: bool,
    decrease: f64,
}

struct TreeGrower<'a> {
    params: &'a ForestParams,
    binning: &'a Binning,
    bins: &'a [Vec<u8>],
    labels: &'a [usize],
    /// Bootstrap multiplicity × sample weight of every row.
    weights: Vec<f64>,
    classes: usize,
    max_features: usize,
    rng: StdRng,
    /// Class shares of each node (leaves only are read).
    shares: Vec<Vec<f64>>,
    tree: Tree,
    importances: &'a mut [f64],
}

impl TreeGrower<'_> {
    fn best_split(&mut self, rows: &[u32], counts: &[f64]) -> Option<Split> {
        let columns = self.bins.len();
        let chosen = sample(&mut self.rng, columns, self.max_features.min(columns)).into_vec();
        let slots = self.binning.cuts.iter().map(Vec::len).max().unwrap_or(0) + 2;
        let mut histogram = ClassHistogram {
            slots,
            classes: self.classes,
            counts: vec![0.0; chosen.len() * slots * self.classes],
        };
        for &row in rows {
            let weight = self.weights[row as usize];
            let label = self.labels[row as usize];
            for (column_slot, &column) in chosen.iter().enumerate() {
                let bin = self.bins[column][row as usize];
                let slot = if bin == MISSING_BIN {
                    slots - 1
                } else {
                    usize::from(bin)
                };
                histogram.counts[(column_slot * slots + slot) * self.classes + label] += weight;
            }
        }
        let (_, parent_mass) = gini_mass(counts);
        let mut best: Option<Split> = None;
        let mut left = vec![0.0; self.classes];
        let mut with_missing = vec![0.0; self.classes];
        let mut right = vec![0.0; self.classes];
        for (column_slot, &column) in chosen.iter().enumerate() {
            let missing = histogram.at(column_slot, slots - 1).to_vec();
            left.iter_mut().for_each(|value| *value = 0.0);
            for cut_index in 1..=self.binning.cuts[column].len() {
                for (sum, add) in left
                    .iter_mut()
                    .zip(histogram.at(column_slot, cut_index - 1))
                {
                    *sum += add;
                }
                for missing_left in [false, true] {
                    for class in 0..self.classes {
                        with_missing[class] =
                            left[class] + if missing_left { missing[class] } else { 0.0 };
                        right[class] = counts[class] - with_missing[class];
                    }
                    let (left_total, left_mass) = gini_mass(&with_missing);
                    let (right_total, right_mass) = gini_mass(&right);
                    if left_total < self.params.min_leaf_weight
                        || right_total < self.params.min_leaf_weight
                    {
                        continue;
                    }
                    let decrease = parent_mass - left_mass - right_mass;
                    if decrease > 1e-12 && best.as_ref().is_none_or(|b| decrease > b.decrease) {
                        best = Some(Split {
                            column,
                            cut_index,
                            missing_left,
                            decrease,
                        });
                    }
                }
            }
        }
        best
    }

    fn push_leaf(&mut self, counts: &[f64]) -> u32 {
        let total: f64 = counts.iter().sum();
        let shares = counts
            .iter()
            .map(|count| if total > 0.0 { count / total } else { 0.0 })
            .collect();
        self.shares.push(shares);
        self.tree.push_leaf(0.0, total)
    }

    fn grow(&mut self, rows: Vec<u32>, depth: usize) -> u32 {
        let mut counts = vec![0.0; self.classes];
        for &row in &rows {
            counts[self.labels[row as usize]] += self.weights[row as usize];
        }
        let pure = counts.iter().filter(|&&count| count > 0.0).count() <= 1;
        let split = if depth < self.params.max_depth && !pure {
            self.best_split(&rows, &counts)
        } else {
            None
        };
        let Some(split) = split else {
            return self.push_leaf(&counts);
        };
        self.importances[split.column] += split.decrease;
        let (left_rows, right_rows) = partition_rows(
            &rows,
            &self.bins[split.column],
            split.cut_index,
            split.missing_left,
        );
        drop(rows);
        let threshold = self.binning.cuts[split.column][split.cut_index - 1];
        let feature = u32::try_from(split.column).unwrap_or(u32::MAX);
        let total: f64 = counts.iter().sum();
        let node = self.tree.push_node(
            feature,
            threshold,
            LEAF,
            LEAF,
            split.missing_left,
            0.0,
            total,
        );
        self.shares.push(Vec::new());
        let left = self.grow(left_rows, depth + 1);
        let right = self.grow(right_rows, depth + 1);
        self.tree.left[node as usize] = left;
        self.tree.right[node as usize] = right;
        node
    }
}

/// Trains a forest on `data`, whose labels are class indices `0..classes`.
pub fn train_classifier(
    params: &ForestParams,
    data: &Dataset<'_>,
    classes: usize,
) -> Result<RandomForest, GbdtError> {
    if data.columns == 0 || data.rows() == 0 || data.features.len() != data.rows() * data.columns {
        return Err(GbdtError::InvalidData(format!(
            "{} values for {} rows × {} columns",
            data.features.len(),
            data.rows(),
            data.columns
        )));
    }
    if classes < 2 || params.trees == 0 || params.sample_fraction <= 0.0 {
        return Err(GbdtError::InvalidData(format!(
            "need ≥ 2 classes, ≥ 1 tree and a positive sample fraction (got {classes}, {}, {})",
            params.trees, params.sample_fraction
        )));
    }
    let labels: Vec<usize> = data
        .labels
        .iter()
        .map(|&label| label as usize)
        .collect::<Vec<_>>();
    if let Some(bad) = data
        .labels
        .iter()
        .find(|&&label| label < 0.0 || label.fract() != 0.0 || label as usize >= classes)
    {
        return Err(GbdtError::InvalidData(format!(
            "label {bad} is not a class index below {classes}"
        )));
    }
    let max_bins = params.max_bins.clamp(2, usize::from(MISSING_BIN) - 1);
    let binning = Binning::fit(data, max_bins);
    let bins = binning.transform(data);
    let max_features = if params.max_features == 0 {
        ((data.columns as f64).sqrt().round() as usize).max(1)
    } else {
        params.max_features
    };
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut ensemble = Ensemble::new(data.columns, vec![0.0; classes]);
    let mut importances = vec![0.0; data.columns];
    let draws = ((data.rows() as f64) * params.sample_fraction).ceil() as usize;
    let scale = 1.0 / params.trees as f64;
    for _ in 0..params.trees {
        let mut weights = vec![0.0; data.rows()];
        for _ in 0..draws {
            let row = rng.gen_range(0..data.rows());
            weights[row] += data.weight(row);
        }
        let rows: Vec<u32> = (0..data.rows())
            .filter(|&row| weights[row] > 0.0)
            .filter_map(|row| u32::try_from(row).ok())
            .collect();
        let mut grower = TreeGrower {
            params,
            binning: &binning,
            bins: &bins,
            labels: &labels,
            weights,
            classes,
            max_features,
            rng: StdRng::seed_from_u64(rng.gen()),
            shares: Vec::new(),
            tree: Tree::default(),
            importances: &mut importances,
        };
        grower.grow(rows, 0);
        let (tree, shares) = (grower.tree, grower.shares);
        for (class, class_trees) in ensemble.trees.iter_mut().enumerate() {
            let mut class_tree = tree.clone();
            for (node, node_shares) in shares.iter().enumerate() {
                if let Some(share) = node_shares.get(class) {
                    // Rounded as stored, so a saved and reloaded forest predicts the same.
                    class_tree.value[node] = f64::from((share * scale) as f32);
                }
            }
            class_trees.push(class_tree);
        }
    }
    let total: f64 = importances.iter().sum();
    if total > 0.0 {
        importances.iter_mut().for_each(|value| *value /= total);
    }
    Ok(RandomForest {
        ensemble,
        importances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two informative columns (class = quadrant of x0, x1) and two noise columns.
    fn quadrants(rows: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..rows {
            let x0: f64 = rng.gen_range(-1.0..1.0);
            let x1: f64 = rng.gen_range(-1.0..1.0);
            features.extend([x0, x1, rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)]);
            labels.push(f64::from(u8::from(x0 > 0.0) * 2 + u8::from(x1 > 0.0)));
        }
        (features, labels)
    }

    fn params() -> ForestParams {
        ForestParams {
            trees: 30,
            max_depth: 6,
            max_features: 2,
            ..ForestParams::default()
        }
    }

    #[test]
    fn learns_quadrants_and_ranks_informative_features_first() {
        let (features, labels) = quadrants(2000, 1);
        let data = Dataset {
            features: &features,
            columns: 4,
            labels: &labels,
            weights: None,
        };
        let forest = train_classifier(&params(), &data, 4).expect("trains");
        let (test_features, test_labels) = quadrants(500, 2);
        let correct = test_features
            .chunks_exact(4)
            .zip(&test_labels)
            .filter(|(row, &label)| {
                let proba = forest.predict_proba(row);
                let predicted = (0..4)
                    .max_by(|&a, &b| proba[a].total_cmp(&proba[b]))
                    .unwrap_or(0);
                predicted as f64 == label
            })
            .count();
        assert!(correct >= 480, "accuracy {correct}/500");
        assert!((forest.importances.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(forest.importances[0] > 5.0 * forest.importances[2]);
        assert!(forest.importances[1] > 5.0 * forest.importances[3]);
    }

    #[test]
    fn probabilities_sum_to_one_and_shap_adds_up() {
        let (features, labels) = quadrants(600, 3);
        let data = Dataset {
            features: &features,
            columns: 4,
            labels: &labels,
            weights: None,
        };
        let forest = train_classifier(&params(), &data, 4).expect("trains");
        for row in features.chunks_exact(4).take(50) {
            let proba = forest.predict_proba(row);
            assert_eq!(proba, forest.ensemble.predict_raw(row));
            assert!((proba.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{proba:?}");
            for (class, probability) in proba.iter().enumerate() {
                let shap = forest.ensemble.shap_values(row, class);
                let base = forest.ensemble.expected_value()[class];
                let total = base + shap.iter().sum::<f64>();
                assert!((total - probability).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn same_seed_same_forest_and_missing_values_are_routed() {
        let (mut features, labels) = quadrants(400, 4);
        for value in features.iter_mut().step_by(7) {
            *value = f64::NAN;
        }
        let data = Dataset {
            features: &features,
            columns: 4,
            labels: &labels,
            weights: None,
        };
        let first = train_classifier(&params(), &data, 4).expect("trains");
        let second = train_classifier(&params(), &data, 4).expect("trains");
        assert_eq!(first, second);
        let proba = first.predict_proba(&[f64::NAN; 4]);
        assert!((proba.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn stored_form_round_trips_exactly() {
        let (features, labels) = quadrants(300, 6);
        let data = Dataset {
            features: &features,
            columns: 4,
            labels: &labels,
            weights: None,
        };
        let forest = train_classifier(&params(), &data, 4).expect("trains");
        let text = serde_json::to_string(&forest).expect("serialises");
        let back: RandomForest = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, forest);
        let broken = text.replacen("\"shares\":[", "\"shares\":[0.5,", 1);
        assert!(serde_json::from_str::<RandomForest>(&broken).is_err());
    }

    #[test]
    fn refuses_labels_outside_the_classes() {
        let data = Dataset {
            features: &[0.0, 1.0],
            columns: 1,
            labels: &[0.0, 3.0],
            weights: None,
        };
        assert!(train_classifier(&params(), &data, 2).is_err());
    }
}
