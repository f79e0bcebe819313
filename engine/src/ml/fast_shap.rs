//! Exact path-dependent TreeSHAP in O(leaves × depth) per tree and row, by precomputing per
//! leaf what does not depend on the row (the idea of Fast TreeSHAP v2, Yang 2021).
//!
//! Why it is exact: a tree's path-dependent expectation given the known features S is a sum
//! over leaves, `Σ_l v_l Π_{j∈F_l} (j∈S ? o_j : z_j)`, where `F_l` are the distinct features
//! on the leaf's path, `o_j ∈ {0,1}` says whether the row satisfies every split on `j` along
//! the path, and `z_j` is the product of the cover fractions of those splits. The Shapley
//! value of feature i in one leaf's product game is
//! `(o_i − z_i) · (Z/z_i) · U(H∖{i})`, with `Z = Π z_j`, `H` the set of features with
//! `o_j = 1`, and `U(A) = Σ_{S⊆A} |S|!(d−|S|−1)!/d! · Π_{j∈S} 1/z_j`. `U` depends only on
//! the leaf and a subset of its ≤ depth features, so it is tabulated for every subset at
//! build time; a row then costs one pass over each leaf's path. The result equals
//! [`Tree::shap_values`] (Lundberg's Algorithm 2) up to rounding; a test checks both that
//! and additivity.
//!
//! Limits: a tree deeper than [`MAX_TABLE_DEPTH`] distinct features on a path, or with a
//! zero-cover child, falls back to [`Tree::shap_values`] (tables grow as 2^depth).

use crate::ml::trees::{Ensemble, Tree, LEAF};

/// Deepest distinct-feature path tabulated (2^10 entries per leaf at most).
pub const MAX_TABLE_DEPTH: usize = 10;

/// One condition on a leaf's path: the node, its feature's slot, and the branch taken.
#[derive(Debug, Clone, Copy)]
struct Step {
    node: u32,
    slot: u8,
    goes_left: bool,
}

/// A leaf as planned from its path (build time only).
#[derive(Debug, Clone)]
struct LeafPlan {
    value: f64,
    features: Vec<u32>,
    zero_fractions: Vec<f64>,
    zero_product: f64,
    steps: Vec<Step>,
    /// `U(A)` for every subset `A` of the slots, indexed by bitmask.
    subset_weights: Vec<f64>,
}

/// A tabulated leaf in the flat arrays of [`FastTreeShap`].
#[derive(Debug, Clone, Copy)]
struct LeafEntry {
    /// First of its steps in `steps`.
    steps: u32,
    /// First of its slots in `slot_features` / `hot_factors`.
    slots: u32,
    /// First of its `2^slots` subset weights in `weights`.
    weights: u32,
    step_count: u8,
    slot_count: u8,
    /// `−v·Z`: a slot whose feature the row does not satisfy adds this × `U(hot)`.
    cold_factor: f64,
}

#[derive(Debug, Clone)]
enum TreePlan {
    /// Its leaves: a range of `FastTreeShap::leaves`.
    Tabulated(std::ops::Range<u32>),
    Fallback,
}

/// TreeSHAP tables for one output of an ensemble. The leaves' data lie in a few flat arrays
/// (one walk through memory per tree), with every per-slot factor multiplied out at build
/// time: a row costs one pass over each leaf's path and slots, without a division or a branch
/// per slot.
#[derive(Debug, Clone)]
pub struct FastTreeShap {
    feature_count: usize,
    output: usize,
    plans: Vec<TreePlan>,
    leaves: Vec<LeafEntry>,
    steps: Vec<Step>,
    slot_features: Vec<u32>,
    /// `v·Z·(1 − z)/z` per slot: a satisfied slot adds this × `U(hot ∖ {slot})`.
    hot_factors: Vec<f64>,
    weights: Vec<f64>,
}

impl FastTreeShap {
    /// Tabulates every tree of `ensemble` for output `output`.
    pub fn new(ensemble: &Ensemble, output: usize) -> Self {
        let mut tables = Self {
            feature_count: ensemble.feature_count,
            output,
            plans: Vec::new(),
            leaves: Vec::new(),
            steps: Vec::new(),
            slot_features: Vec::new(),
            hot_factors: Vec::new(),
            weights: Vec::new(),
        };
        for tree in ensemble.trees.get(output).into_iter().flatten() {
            let plan = match plan_tree(tree) {
                Some(leaves) => {
                    let first = tables.leaves.len() as u32;
                    for leaf in leaves {
                        tables.push_leaf(leaf);
                    }
                    TreePlan::Tabulated(first..tables.leaves.len() as u32)
                }
                None => TreePlan::Fallback,
            };
            tables.plans.push(plan);
        }
        tables
    }

    fn push_leaf(&mut self, leaf: LeafPlan) {
        let scale = leaf.value * leaf.zero_product;
        self.leaves.push(LeafEntry {
            steps: self.steps.len() as u32,
            slots: self.slot_features.len() as u32,
            weights: self.weights.len() as u32,
            step_count: leaf.steps.len() as u8,
            slot_count: leaf.features.len() as u8,
            cold_factor: -scale,
        });
        self.steps.extend(leaf.steps);
        self.slot_features.extend(&leaf.features);
        self.hot_factors.extend(
            leaf.zero_fractions
                .iter()
                .map(|&zero| scale * (1.0 - zero) / zero),
        );
        self.weights.extend(leaf.subset_weights);
    }

    /// SHAP values of `row` for this output, one per feature; they sum with the ensemble's
    /// `expected_value()[output]` to its `predict_raw(row)[output]`.
    pub fn shap_values(&self, ensemble: &Ensemble, row: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; self.feature_count];
        let Some(trees) = ensemble.trees.get(self.output) else {
            return phi;
        };
        let mut directions = Vec::new();
        for (tree, plan) in trees.iter().zip(&self.plans) {
            match plan {
                TreePlan::Fallback => tree.shap_values(row, &mut phi),
                TreePlan::Tabulated(leaves) => {
                    tree.branch_directions(row, &mut directions);
                    for leaf in &self.leaves[leaves.start as usize..leaves.end as usize] {
                        self.add_leaf(leaf, &directions, &mut phi);
                    }
                }
            }
        }
        phi
    }

    fn add_leaf(&self, leaf: &LeafEntry, directions: &[bool], phi: &mut [f64]) {
        let slots = usize::from(leaf.slot_count);
        let mut hot = (1usize << slots) - 1;
        let steps = &self.steps[leaf.steps as usize..][..usize::from(leaf.step_count)];
        for step in steps {
            // Clear the slot of every condition the row does not meet.
            let missed = directions[step.node as usize] != step.goes_left;
            hot &= !(usize::from(missed) << step.slot);
        }
        let features = &self.slot_features[leaf.slots as usize..][..slots];
        let hot_factors = &self.hot_factors[leaf.slots as usize..][..slots];
        let weights = &self.weights[leaf.weights as usize..][..1 << slots];
        for (slot, (&feature, &hot_factor)) in features.iter().zip(hot_factors).enumerate() {
            let bit = 1usize << slot;
            // `hot ∖ {slot}` is `hot` itself when the slot is cold.
            let factor = if hot & bit != 0 {
                hot_factor
            } else {
                leaf.cold_factor
            };
            if let Some(value) = phi.get_mut(feature as usize) {
                *value += factor * weights[hot & !bit];
            }
        }
    }
}

/// The tree's leaves, or `None` when one cannot be tabulated.
fn plan_tree(tree: &Tree) -> Option<Vec<LeafPlan>> {
    let mut leaves = Vec::new();
    if tree.is_empty() {
        return Some(leaves);
    }
    let mut path = Vec::new();
    collect_leaves(tree, 0, &mut path, &mut leaves).then_some(leaves)
}

/// Walks to every leaf, keeping the path (node, went left, cover fraction); false when a
/// leaf cannot be tabulated.
fn collect_leaves(
    tree: &Tree,
    node: usize,
    path: &mut Vec<(usize, bool, f64)>,
    leaves: &mut Vec<LeafPlan>,
) -> bool {
    if tree.left[node] == LEAF {
        return match plan_leaf(tree, node, path) {
            Some(leaf) => {
                leaves.push(leaf);
                true
            }
            None => false,
        };
    }
    let (left, right) = (tree.left[node] as usize, tree.right[node] as usize);
    let cover = tree.cover[node];
    for (child, goes_left) in [(left, true), (right, false)] {
        let fraction = if cover > 0.0 {
            tree.cover[child] / cover
        } else {
            0.5
        };
        path.push((node, goes_left, fraction));
        let ok = collect_leaves(tree, child, path, leaves);
        path.pop();
        if !ok {
            return false;
        }
    }
    true
}

fn plan_leaf(tree: &Tree, leaf: usize, path: &[(usize, bool, f64)]) -> Option<LeafPlan> {
    let mut features: Vec<u32> = Vec::new();
    let mut zero_fractions: Vec<f64> = Vec::new();
    let mut steps = Vec::with_capacity(path.len());
    for &(node, goes_left, fraction) in path {
        let feature = tree.feature[node];
        let slot = match features.iter().position(|&known| known == feature) {
            Some(slot) => slot,
            None => {
                features.push(feature);
                zero_fractions.push(1.0);
                features.len() - 1
            }
        };
        zero_fractions[slot] *= fraction;
        steps.push(Step {
            node: u32::try_from(node).ok()?,
            slot: u8::try_from(slot).ok()?,
            goes_left,
        });
    }
    let slots = features.len();
    // Step counts are kept in a byte: deeper paths fall back to the recursive algorithm.
    let too_long = steps.len() > usize::from(u8::MAX);
    if too_long || slots > MAX_TABLE_DEPTH || zero_fractions.iter().any(|&zero| zero <= 0.0) {
        return None;
    }
    Some(LeafPlan {
        value: tree.value[leaf],
        zero_product: zero_fractions.iter().product(),
        subset_weights: subset_weights(&zero_fractions),
        features,
        zero_fractions,
        steps,
    })
}

/// `U(A) = Σ_k w(k) e_k({1/z_j : j ∈ A})` for every bitmask `A`, with the Shapley weights
/// `w(k) = k!(d−1−k)!/d!` of `d` players and `e_k` the elementary symmetric polynomials,
/// built mask by mask from the mask without its highest bit.
fn subset_weights(zero_fractions: &[f64]) -> Vec<f64> {
    let players = zero_fractions.len();
    if players == 0 {
        return vec![0.0];
    }
    let shapley_weight: Vec<f64> = (0..players)
        .map(|size| {
            // k!(d−1−k)!/d! = 1 / (d · C(d−1, k)).
            let mut binomial = 1.0;
            for i in 0..size {
                binomial = binomial * (players - 1 - i) as f64 / (i + 1) as f64;
            }
            1.0 / (players as f64 * binomial)
        })
        .collect();
    let masks = 1usize << players;
    let width = players + 1;
    let mut symmetric = vec![0.0; masks * width];
    symmetric[0] = 1.0; // e_0(∅) = 1
    let mut weights = vec![0.0; masks];
    weights[0] = shapley_weight[0];
    for mask in 1..masks {
        let top = usize::BITS as usize - 1 - mask.leading_zeros() as usize;
        let rest = mask & !(1 << top);
        let ratio = 1.0 / zero_fractions[top];
        for k in 0..width {
            let carried = symmetric[rest * width + k];
            let added = if k > 0 {
                ratio * symmetric[rest * width + k - 1]
            } else {
                0.0
            };
            symmetric[mask * width + k] = carried + added;
        }
        weights[mask] = (0..players)
            .map(|k| shapley_weight[k] * symmetric[mask * width + k])
            .sum();
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::trees::test_support::random_tree;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn equals_the_recursive_algorithm_and_adds_up() {
        let mut rng = StdRng::seed_from_u64(17);
        let features = 7;
        let mut ensemble = Ensemble::new(features as usize, vec![0.3]);
        for _ in 0..30 {
            // Few features and deep trees: features repeat on paths.
            let tree = random_tree(&mut rng, features, 7, 0.1);
            ensemble.trees[0].push(tree);
        }
        let fast = FastTreeShap::new(&ensemble, 0);
        for _ in 0..200 {
            let row: Vec<f64> = (0..features)
                .map(|_| {
                    if rng.gen_bool(0.1) {
                        f64::NAN
                    } else {
                        rng.gen_range(0.0..1.0)
                    }
                })
                .collect();
            let expected = ensemble.shap_values(&row, 0);
            let actual = fast.shap_values(&ensemble, &row);
            for (a, e) in actual.iter().zip(&expected) {
                assert!((a - e).abs() < 1e-9, "{a} vs {e}");
            }
            let total = ensemble.expected_value()[0] + actual.iter().sum::<f64>();
            assert!((total - ensemble.predict_raw(&row)[0]).abs() < 1e-9);
        }
    }

    #[test]
    fn subset_weights_of_two_players() {
        // d = 2: w(0) = w(1) = 1/2. U({0}) = 1/2 + 1/2 · 1/z0.
        let weights = subset_weights(&[0.25, 0.5]);
        assert_eq!(weights[0], 0.5);
        assert!((weights[1] - (0.5 + 0.5 * 4.0)).abs() < 1e-12);
        assert!((weights[2] - (0.5 + 0.5 * 2.0)).abs() < 1e-12);
        // Subsets of size 2 have no weight with d = 2 players (k ≤ d−1).
        assert!((weights[3] - (0.5 + 0.5 * 4.0 + 0.5 * 2.0)).abs() < 1e-12);
    }
}
