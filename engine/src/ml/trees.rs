//! Decision-tree ensembles: a flattened, cache-friendly evaluator and exact TreeSHAP.
//!
//! A tree is stored as parallel arrays indexed by node (feature, threshold, children, leaf
//! value, cover), the layout XGBoost's JSON models use, so trained and imported models share
//! one evaluator. Split rule (XGBoost's): `x < threshold` goes left, otherwise right; a NaN
//! feature value follows the node's default direction.
//!
//! Guarantee of [`Tree::shap_values`]: the values are the exact path-dependent TreeSHAP
//! attributions (Lundberg, Erion & Lee 2018, Algorithm 2), so for every input
//! `expected_value() + Σ shap = predict()` up to floating-point rounding; a unit test checks
//! this and checks the values against a brute-force Shapley enumeration.

use serde::{Deserialize, Serialize};

/// Child index marking a leaf.
pub const LEAF: u32 = u32::MAX;

/// One regression tree in flattened form; node 0 is the root.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Split feature per node (ignored for leaves).
    pub feature: Vec<u32>,
    /// Split threshold per node: `x < threshold` goes left.
    pub threshold: Vec<f64>,
    /// Left child per node, [`LEAF`] for a leaf.
    pub left: Vec<u32>,
    /// Right child per node, [`LEAF`] for a leaf.
    pub right: Vec<u32>,
    /// Whether a missing (NaN) value goes left.
    pub default_left: Vec<bool>,
    /// Output of a leaf (ignored for internal nodes).
    pub value: Vec<f64>,
    /// Training weight (hessian sum) that reached the node; TreeSHAP's conditional
    /// expectations weight the children by it.
    pub cover: Vec<f64>,
}

impl Tree {
    /// A tree with a single leaf.
    pub fn leaf(value: f64, cover: f64) -> Self {
        let mut tree = Self::default();
        tree.push_leaf(value, cover);
        tree
    }

    /// Appends a leaf node and returns its index.
    pub fn push_leaf(&mut self, value: f64, cover: f64) -> u32 {
        self.push_node(0, 0.0, LEAF, LEAF, true, value, cover)
    }

    /// Appends a node and returns its index (children may be patched later).
    #[allow(clippy::too_many_arguments)] // one field per parallel array, in layout order
    pub fn push_node(
        &mut self,
        feature: u32,
        threshold: f64,
        left: u32,
        right: u32,
        default_left: bool,
        value: f64,
        cover: f64,
    ) -> u32 {
        let index = u32::try_from(self.feature.len()).unwrap_or(LEAF);
        self.feature.push(feature);
        self.threshold.push(threshold);
        self.left.push(left);
        self.right.push(right);
        self.default_left.push(default_left);
        self.value.push(value);
        self.cover.push(cover);
        index
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.feature.len()
    }

    /// Whether the tree has no node at all.
    pub fn is_empty(&self) -> bool {
        self.feature.is_empty()
    }

    fn is_leaf(&self, node: usize) -> bool {
        self.left[node] == LEAF
    }

    /// Whether `row` goes left at internal node `node`.
    fn goes_left(&self, node: usize, row: &[f64]) -> bool {
        let value = row
            .get(self.feature[node] as usize)
            .copied()
            .unwrap_or(f64::NAN);
        if value.is_nan() {
            self.default_left[node]
        } else {
            value < self.threshold[node]
        }
    }

    /// The child that `row` follows at internal node `node`.
    fn next(&self, node: usize, row: &[f64]) -> usize {
        (if self.goes_left(node, row) {
            self.left[node]
        } else {
            self.right[node]
        }) as usize
    }

    /// For every node, whether `row` goes left there (false at leaves); TreeSHAP tables
    /// evaluate each split once per row with it.
    pub fn branch_directions(&self, row: &[f64], directions: &mut Vec<bool>) {
        directions.clear();
        directions
            .extend((0..self.len()).map(|node| !self.is_leaf(node) && self.goes_left(node, row)));
    }

    /// Leaf value reached by `row`. Features beyond the row's length count as missing.
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.leaf_index(row).map_or(0.0, |node| self.value[node])
    }

    /// Index of the leaf `row` reaches (`None` for an empty tree); trees that share their
    /// splits (a random forest's per-class copies) are walked once with it.
    pub fn leaf_index(&self, row: &[f64]) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let mut node = 0;
        while !self.is_leaf(node) {
            node = self.next(node, row);
        }
        Some(node)
    }

    /// Cover-weighted mean leaf value: the prediction when no feature is known.
    pub fn expected_value(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.subtree_expectation(0)
    }

    fn subtree_expectation(&self, node: usize) -> f64 {
        if self.is_leaf(node) {
            return self.value[node];
        }
        let (left, right) = (self.left[node] as usize, self.right[node] as usize);
        let total = self.cover[left] + self.cover[right];
        if total <= 0.0 {
            return 0.5 * (self.subtree_expectation(left) + self.subtree_expectation(right));
        }
        (self.cover[left] * self.subtree_expectation(left)
            + self.cover[right] * self.subtree_expectation(right))
            / total
    }

    /// Adds this tree's exact TreeSHAP values for `row` into `phi` (one slot per feature).
    pub fn shap_values(&self, row: &[f64], phi: &mut [f64]) {
        if self.is_empty() || self.is_leaf(0) {
            return;
        }
        let path = Vec::with_capacity(64);
        self.shap_recurse(row, phi, 0, &path, 1.0, 1.0, None);
    }

    /// Algorithm 2 of Lundberg et al.: walks every root-to-leaf path once, keeping for the
    /// features on the path the weights of all subset sizes (`PathElement::weight`).
    #[allow(clippy::too_many_arguments)] // the recursion state of the published algorithm
    fn shap_recurse(
        &self,
        row: &[f64],
        phi: &mut [f64],
        node: usize,
        parent_path: &[PathElement],
        zero_fraction: f64,
        one_fraction: f64,
        feature: Option<u32>,
    ) {
        let mut path = parent_path.to_vec();
        extend_path(&mut path, zero_fraction, one_fraction, feature);
        if self.is_leaf(node) {
            for index in 1..path.len() {
                let weight = unwound_path_sum(&path, index);
                let element = &path[index];
                if let Some(feature) = element.feature {
                    if let Some(slot) = phi.get_mut(feature as usize) {
                        *slot += weight
                            * (element.one_fraction - element.zero_fraction)
                            * self.value[node];
                    }
                }
            }
            return;
        }
        let hot = self.next(node, row);
        let cold = if hot == self.left[node] as usize {
            self.right[node] as usize
        } else {
            self.left[node] as usize
        };
        let cover = self.cover[node];
        let (hot_fraction, cold_fraction) = if cover > 0.0 {
            (self.cover[hot] / cover, self.cover[cold] / cover)
        } else {
            (0.5, 0.5)
        };
        let split_feature = self.feature[node];
        let mut incoming_zero = 1.0;
        let mut incoming_one = 1.0;
        // A feature split on again further down: undo its earlier element and redo it here.
        if let Some(index) = path
            .iter()
            .position(|element| element.feature == Some(split_feature))
        {
            incoming_zero = path[index].zero_fraction;
            incoming_one = path[index].one_fraction;
            unwind_path(&mut path, index);
        }
        self.shap_recurse(
            row,
            phi,
            hot,
            &path,
            hot_fraction * incoming_zero,
            incoming_one,
            Some(split_feature),
        );
        self.shap_recurse(
            row,
            phi,
            cold,
            &path,
            cold_fraction * incoming_zero,
            0.0,
            Some(split_feature),
        );
    }
}

/// One feature on the current path, with the subset-size weight TreeSHAP carries.
#[derive(Debug, Clone, Copy)]
struct PathElement {
    feature: Option<u32>,
    zero_fraction: f64,
    one_fraction: f64,
    weight: f64,
}

fn extend_path(
    path: &mut Vec<PathElement>,
    zero_fraction: f64,
    one_fraction: f64,
    feature: Option<u32>,
) {
    let depth = path.len();
    path.push(PathElement {
        feature,
        zero_fraction,
        one_fraction,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    });
    let depth_f = depth as f64;
    for index in (0..depth).rev() {
        let index_f = index as f64;
        path[index + 1].weight +=
            one_fraction * path[index].weight * (index_f + 1.0) / (depth_f + 1.0);
        path[index].weight =
            zero_fraction * path[index].weight * (depth_f - index_f) / (depth_f + 1.0);
    }
}

fn unwind_path(path: &mut Vec<PathElement>, path_index: usize) {
    let depth = path.len() - 1;
    let depth_f = depth as f64;
    let one_fraction = path[path_index].one_fraction;
    let zero_fraction = path[path_index].zero_fraction;
    let mut next_one_portion = path[depth].weight;
    for index in (0..depth).rev() {
        let index_f = index as f64;
        if one_fraction != 0.0 {
            let saved = path[index].weight;
            path[index].weight =
                next_one_portion * (depth_f + 1.0) / ((index_f + 1.0) * one_fraction);
            next_one_portion =
                saved - path[index].weight * zero_fraction * (depth_f - index_f) / (depth_f + 1.0);
        } else {
            path[index].weight =
                path[index].weight * (depth_f + 1.0) / (zero_fraction * (depth_f - index_f));
        }
    }
    for index in path_index..depth {
        path[index].feature = path[index + 1].feature;
        path[index].zero_fraction = path[index + 1].zero_fraction;
        path[index].one_fraction = path[index + 1].one_fraction;
    }
    path.pop();
}

fn unwound_path_sum(path: &[PathElement], path_index: usize) -> f64 {
    let depth = path.len() - 1;
    let depth_f = depth as f64;
    let one_fraction = path[path_index].one_fraction;
    let zero_fraction = path[path_index].zero_fraction;
    let mut next_one_portion = path[depth].weight;
    let mut total = 0.0;
    for index in (0..depth).rev() {
        let index_f = index as f64;
        if one_fraction != 0.0 {
            let share = next_one_portion / ((index_f + 1.0) * one_fraction);
            total += share;
            next_one_portion = path[index].weight - share * zero_fraction * (depth_f - index_f);
        } else {
            total += path[index].weight / (zero_fraction * (depth_f - index_f));
        }
    }
    total * (depth_f + 1.0)
}

/// An additive ensemble: per output (class), a base score plus the sum of its trees.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Number of input features.
    pub feature_count: usize,
    /// Base margin per output.
    pub base_score: Vec<f64>,
    /// Trees per output.
    pub trees: Vec<Vec<Tree>>,
}

impl Ensemble {
    /// An ensemble with `outputs` outputs, no trees yet.
    pub fn new(feature_count: usize, base_score: Vec<f64>) -> Self {
        let outputs = base_score.len();
        Self {
            feature_count,
            base_score,
            trees: vec![Vec::new(); outputs],
        }
    }

    /// Number of outputs (1 for binary / regression, K for K-class softmax).
    pub fn outputs(&self) -> usize {
        self.base_score.len()
    }

    /// Raw margins of one row, one per output.
    pub fn predict_raw(&self, row: &[f64]) -> Vec<f64> {
        self.base_score
            .iter()
            .zip(&self.trees)
            .map(|(base, trees)| base + trees.iter().map(|tree| tree.predict(row)).sum::<f64>())
            .collect()
    }

    /// Raw margins of a row-major batch (`rows × feature_count`), output-major per row.
    pub fn predict_raw_batch(&self, rows: &[f64]) -> Vec<f64> {
        let width = self.feature_count.max(1);
        rows.chunks(width)
            .flat_map(|row| self.predict_raw(row))
            .collect()
    }

    /// Margin when no feature is known, per output (the SHAP base value).
    pub fn expected_value(&self) -> Vec<f64> {
        self.base_score
            .iter()
            .zip(&self.trees)
            .map(|(base, trees)| base + trees.iter().map(Tree::expected_value).sum::<f64>())
            .collect()
    }

    /// Exact TreeSHAP values of `row` for output `output`, one per feature; they sum with
    /// `expected_value()[output]` to `predict_raw(row)[output]`.
    pub fn shap_values(&self, row: &[f64], output: usize) -> Vec<f64> {
        let mut phi = vec![0.0; self.feature_count];
        if let Some(trees) = self.trees.get(output) {
            for tree in trees {
                tree.shap_values(row, &mut phi);
            }
        }
        phi
    }
}

/// Random trees for the tests of the tree code (evaluator, TreeSHAP, packing).
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Tree, LEAF};
    use rand::rngs::StdRng;
    use rand::Rng;

    /// A random tree of at most `depth` levels over `features` features, with consistent
    /// covers; a node becomes a leaf early with probability `leaf_probability`.
    pub(crate) fn random_tree(
        rng: &mut StdRng,
        features: u32,
        depth: u32,
        leaf_probability: f64,
    ) -> Tree {
        fn grow(tree: &mut Tree, rng: &mut StdRng, shape: (u32, u32, f64), cover: f64) -> u32 {
            let (features, depth, leaf_probability) = shape;
            if depth == 0 || rng.gen_bool(leaf_probability) {
                return tree.push_leaf(rng.gen_range(-2.0..2.0), cover);
            }
            let node = tree.push_node(
                rng.gen_range(0..features),
                rng.gen_range(0.0..1.0),
                LEAF,
                LEAF,
                rng.gen_bool(0.5),
                0.0,
                cover,
            );
            let share = rng.gen_range(0.1..0.9);
            let child_shape = (features, depth - 1, leaf_probability);
            let left = grow(tree, rng, child_shape, cover * share);
            let right = grow(tree, rng, child_shape, cover * (1.0 - share));
            tree.left[node as usize] = left;
            tree.right[node as usize] = right;
            node
        }
        let mut tree = Tree::default();
        grow(&mut tree, rng, (features, depth, leaf_probability), 100.0);
        tree
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::random_tree;
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// E[f(x) | x_S] as TreeSHAP defines it: known features follow x, unknown ones average
    /// the children by cover.
    fn conditional_expectation(tree: &Tree, node: usize, row: &[f64], known: &[bool]) -> f64 {
        if tree.is_leaf(node) {
            return tree.value[node];
        }
        if known[tree.feature[node] as usize] {
            return conditional_expectation(tree, tree.next(node, row), row, known);
        }
        let (left, right) = (tree.left[node] as usize, tree.right[node] as usize);
        (tree.cover[left] * conditional_expectation(tree, left, row, known)
            + tree.cover[right] * conditional_expectation(tree, right, row, known))
            / tree.cover[node]
    }

    fn brute_force_shap(tree: &Tree, row: &[f64], features: usize) -> Vec<f64> {
        let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        let mut phi = vec![0.0; features];
        for feature in 0..features {
            for subset in 0u32..(1 << features) {
                if subset & (1 << feature) != 0 {
                    continue;
                }
                let size = subset.count_ones() as usize;
                let weight = factorial(size) * factorial(features - size - 1) / factorial(features);
                let mut known: Vec<bool> =
                    (0..features).map(|bit| subset & (1 << bit) != 0).collect();
                let without = conditional_expectation(tree, 0, row, &known);
                known[feature] = true;
                let with = conditional_expectation(tree, 0, row, &known);
                phi[feature] += weight * (with - without);
            }
        }
        phi
    }

    #[test]
    fn treeshap_equals_brute_force_shapley_values() {
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..200 {
            let features = rng.gen_range(1..6usize);
            let depth = rng.gen_range(1..6);
            let tree = random_tree(&mut rng, features as u32, depth, 0.15);
            let row: Vec<f64> = (0..features)
                .map(|_| {
                    if rng.gen_bool(0.1) {
                        f64::NAN
                    } else {
                        rng.gen_range(0.0..1.0)
                    }
                })
                .collect();
            let mut phi = vec![0.0; features];
            tree.shap_values(&row, &mut phi);
            let expected = brute_force_shap(&tree, &row, features);
            for (fast, slow) in phi.iter().zip(&expected) {
                assert!((fast - slow).abs() < 1e-9, "{phi:?} vs {expected:?}");
            }
        }
    }

    #[test]
    fn shap_values_plus_base_value_equal_the_raw_prediction() {
        let mut rng = StdRng::seed_from_u64(6);
        let features = 12;
        let mut ensemble = Ensemble::new(features, vec![0.3, -0.1]);
        for output in 0..2 {
            for _ in 0..40 {
                ensemble.trees[output].push(random_tree(&mut rng, features as u32, 6, 0.15));
            }
        }
        for _ in 0..100 {
            let row: Vec<f64> = (0..features).map(|_| rng.gen_range(0.0..1.0)).collect();
            let raw = ensemble.predict_raw(&row);
            let base = ensemble.expected_value();
            for output in 0..2 {
                let total: f64 =
                    ensemble.shap_values(&row, output).iter().sum::<f64>() + base[output];
                assert!(
                    (total - raw[output]).abs() < 1e-6,
                    "{total} vs {}",
                    raw[output]
                );
            }
        }
    }

    #[test]
    fn split_rule_is_strictly_less_than_and_nan_follows_the_default() {
        let mut tree = Tree::default();
        let root = tree.push_node(0, 0.5, LEAF, LEAF, false, 0.0, 2.0);
        let left = tree.push_leaf(-1.0, 1.0);
        let right = tree.push_leaf(1.0, 1.0);
        tree.left[root as usize] = left;
        tree.right[root as usize] = right;
        assert_eq!(tree.predict(&[0.49]), -1.0);
        assert_eq!(tree.predict(&[0.5]), 1.0);
        assert_eq!(tree.predict(&[f64::NAN]), 1.0);
        assert_eq!(tree.predict(&[]), 1.0, "a missing column counts as NaN");
        assert_eq!(tree.expected_value(), 0.0);
    }
}
