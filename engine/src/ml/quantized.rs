//! The fast inference form of an [`Ensemble`]: quantized thresholds, 8-byte nodes and several
//! rows walked through a tree in lockstep.
//!
//! **Quantized thresholds, exact.** For each feature the distinct split thresholds of the
//! whole ensemble are sorted once; a row's value becomes its bin, the number of thresholds
//! `≤ x` (one binary search per feature per row). Then `x < t ⟺ bin(x) ≤ rank(t)`, so every
//! node compares two `u16`s and routes exactly as the `f64` comparison does (Treelite's
//! quantized thresholds; for imported XGBoost models the thresholds are the importer's exact
//! `f32` split boundaries, so routing stays XGBoost's). A missing value's bin is `u16::MAX`;
//! a node whose missing values go left adds one to the bin (wrapping `MAX` to 0) and to its
//! threshold, so the default direction costs no branch.
//!
//! **Lockstep.** A node is `{feature | default-left bit: u16, threshold bin: u16, left: u32}`,
//! right child at `left + 1`. A leaf points to itself (it "splits" into itself on any bin),
//! so a tree is walked a fixed number of steps — its depth — for [`LANES`] rows at once,
//! without a branch per node: the rows' loads overlap instead of waiting on each other.
//! Rows go in blocks of [`BLOCK_ROWS`], tree-major, so a tree stays in cache for the block.
//!
//! Predictions are bit-identical to [`Ensemble::predict_raw_batch`]: same routing, same order
//! of additions per output (tree sum from zero in the ensemble's order, then the base score).

use crate::ml::packed::PackedEnsemble;
use crate::ml::trees::{Ensemble, Tree, LEAF};

/// Rows per block (their bins stay in L1 while every tree runs over them).
pub const BLOCK_ROWS: usize = 64;
/// Rows walked through a tree together.
pub const LANES: usize = 8;
/// Features with at most this many thresholds are binned by counting, not searching.
const LINEAR_SEARCH_CUTS: usize = 16;
/// The bin of a missing (NaN) value.
const MISSING_BIN: u16 = u16::MAX;
/// Most distinct thresholds per feature: ranks + 2 must stay below [`MISSING_BIN`].
const MAX_CUTS: usize = u16::MAX as usize - 2;
/// Set in [`Node::feature`] when missing values go left.
const DEFAULT_LEFT_BIT: u16 = 1 << 15;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Split feature | [`DEFAULT_LEFT_BIT`]; a leaf holds feature 0.
    feature: u16,
    /// Goes right when `bin + default_left ≥ threshold`; a leaf holds 0 (always "right").
    threshold: u16,
    /// Left child; the right child follows it. A leaf holds its own index − 1.
    left: u32,
}

/// One tree's place in the node array.
#[derive(Debug, Clone, Copy)]
struct TreeRef {
    root: u32,
    output: u32,
    /// Steps from the root to its deepest leaf.
    depth: u32,
}

/// A quantized ensemble; see the module doc.
#[derive(Debug, Clone)]
pub struct QuantizedEnsemble {
    feature_count: usize,
    base_score: Vec<f64>,
    /// Sorted distinct thresholds per feature.
    cuts: Vec<Vec<f64>>,
    /// Features with at least one threshold (the only ones binned).
    split_features: Vec<usize>,
    trees: Vec<TreeRef>,
    nodes: Vec<Node>,
    /// Leaf value per node index (0 for split nodes).
    leaf_values: Vec<f64>,
}

impl QuantizedEnsemble {
    /// The quantized form of `ensemble`, or `None` when it does not fit: more than 32,767
    /// features, more than 65,533 distinct thresholds on one feature, or a NaN threshold.
    pub fn new(ensemble: &Ensemble) -> Option<Self> {
        let feature_count = ensemble.feature_count;
        if feature_count >= usize::from(DEFAULT_LEFT_BIT) {
            return None;
        }
        let mut cuts = vec![Vec::new(); feature_count];
        for tree in ensemble.trees.iter().flatten() {
            for node in 0..tree.left.len() {
                if tree.left[node] != LEAF {
                    let threshold = tree.threshold[node];
                    if threshold.is_nan() {
                        return None;
                    }
                    cuts.get_mut(tree.feature[node] as usize)?.push(threshold);
                }
            }
        }
        for feature_cuts in &mut cuts {
            feature_cuts.sort_by(f64::total_cmp);
            // -0.0 and 0.0 split alike (`x < t` is the same comparison): one cut.
            feature_cuts.dedup_by(|a, b| a == b);
            if feature_cuts.len() > MAX_CUTS {
                return None;
            }
        }
        let mut quantized = Self {
            feature_count,
            base_score: ensemble.base_score.clone(),
            split_features: (0..feature_count)
                .filter(|&feature| !cuts[feature].is_empty())
                .collect(),
            cuts,
            trees: Vec::new(),
            nodes: Vec::new(),
            leaf_values: Vec::new(),
        };
        // Index 0 stays unused, so that every leaf's "own index − 1" exists.
        quantized.reserve_pair_slot();
        for (output, trees) in ensemble.trees.iter().enumerate() {
            for tree in trees.iter().filter(|tree| !tree.is_empty()) {
                let root = quantized.nodes.len();
                quantized.reserve_pair_slot();
                let depth = quantized.pack(tree, 0, root);
                quantized.trees.push(TreeRef {
                    root: root as u32,
                    output: output as u32,
                    depth,
                });
            }
        }
        Some(quantized)
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.base_score.len()
    }

    /// Raw margins of a row-major batch (`rows × feature_count`), output-major per row:
    /// `margins[row * outputs + output]`.
    pub fn predict_raw_batch(&self, rows: &[f64]) -> Vec<f64> {
        let width = self.feature_count.max(1);
        let row_count = rows.len() / width;
        let outputs = self.outputs();
        let mut margins = vec![0.0; row_count * outputs];
        let mut bins = vec![0u16; BLOCK_ROWS * width];
        for block_start in (0..row_count).step_by(BLOCK_ROWS) {
            let block_rows = BLOCK_ROWS.min(row_count - block_start);
            let block = &rows[block_start * width..(block_start + block_rows) * width];
            self.bin_rows(block, &mut bins[..block_rows * width]);
            let block_margins =
                &mut margins[block_start * outputs..(block_start + block_rows) * outputs];
            self.predict_block(&bins[..block_rows * width], block_margins);
        }
        for (index, margin) in margins.iter_mut().enumerate() {
            *margin += self.base_score[index % outputs];
        }
        margins
    }

    /// Each value's bin: thresholds `≤ x`, or [`MISSING_BIN`] for NaN. Features no split
    /// reads keep bin 0.
    fn bin_rows(&self, rows: &[f64], bins: &mut [u16]) {
        let width = self.feature_count.max(1);
        for (row, row_bins) in rows.chunks_exact(width).zip(bins.chunks_exact_mut(width)) {
            for &feature in &self.split_features {
                let value = row[feature];
                let cuts = &self.cuts[feature];
                row_bins[feature] = if value.is_nan() {
                    MISSING_BIN
                } else if cuts.len() <= LINEAR_SEARCH_CUTS {
                    // Short lists: a branch-free count beats a binary search's mispredictions.
                    cuts.iter().map(|cut| u16::from(*cut <= value)).sum()
                } else {
                    cuts.partition_point(|cut| *cut <= value) as u16
                };
            }
        }
    }

    /// Adds every tree's leaf to the margins of a block of binned rows.
    fn predict_block(&self, bins: &[u16], margins: &mut [f64]) {
        let width = self.feature_count.max(1);
        let outputs = self.outputs();
        let rows = bins.len() / width;
        for tree in &self.trees {
            let output = tree.output as usize;
            let mut lane_start = 0;
            while lane_start + LANES <= rows {
                let lanes: [&[u16]; LANES] = std::array::from_fn(|lane| {
                    let start = (lane_start + lane) * width;
                    &bins[start..start + width]
                });
                let mut at = [tree.root; LANES];
                for _ in 0..tree.depth {
                    for (index, row_bins) in at.iter_mut().zip(lanes) {
                        *index = self.step(*index, row_bins);
                    }
                }
                for (lane, index) in at.iter().enumerate() {
                    margins[(lane_start + lane) * outputs + output] +=
                        self.leaf_values[*index as usize];
                }
                lane_start += LANES;
            }
            for row in lane_start..rows {
                let row_bins = &bins[row * width..(row + 1) * width];
                let mut index = tree.root;
                for _ in 0..tree.depth {
                    index = self.step(index, row_bins);
                }
                margins[row * outputs + output] += self.leaf_values[index as usize];
            }
        }
    }

    /// One step down from node `index` for a row's bins (`feature_count` of them).
    #[inline(always)]
    fn step(&self, index: u32, row_bins: &[u16]) -> u32 {
        debug_assert!((index as usize) < self.nodes.len());
        // SAFETY: `pack` writes every child index (and a leaf's own index) inside `nodes`,
        // and walks start at a root inside it, so `index` is always in bounds.
        let node = unsafe { *self.nodes.get_unchecked(index as usize) };
        let default_left = node.feature >> 15;
        let feature = usize::from(node.feature & !DEFAULT_LEFT_BIT);
        debug_assert!(feature < row_bins.len());
        // SAFETY: `new` only packs split features below `feature_count` (leaves hold 0), and
        // every caller passes exactly `feature_count` bins (`feature_count ≥ 1`).
        let bin = unsafe { *row_bins.get_unchecked(feature) }.wrapping_add(default_left);
        node.left + u32::from(bin >= node.threshold)
    }

    fn reserve_pair_slot(&mut self) {
        self.nodes.push(Node {
            feature: 0,
            threshold: 0,
            left: 0,
        });
        self.leaf_values.push(0.0);
    }

    /// Writes `tree`'s node `node` into slot `slot`, its children into a fresh adjacent pair,
    /// depth-first; returns the depth below it.
    fn pack(&mut self, tree: &Tree, node: usize, slot: usize) -> u32 {
        if tree.left[node] == LEAF {
            // Threshold 0 sends every bin right, to `left + 1`: itself.
            self.nodes[slot] = Node {
                feature: 0,
                threshold: 0,
                left: slot as u32 - 1,
            };
            self.leaf_values[slot] = tree.value[node];
            return 0;
        }
        let left_slot = self.nodes.len();
        self.reserve_pair_slot();
        self.reserve_pair_slot();
        let feature = tree.feature[node] as usize;
        let threshold = tree.threshold[node];
        // rank(t) = cuts below t; x < t ⟺ bin(x) ≤ rank(t) ⟺ bin(x) < rank(t) + 1.
        let rank = self.cuts[feature].partition_point(|cut| *cut < threshold) as u16;
        let default_left = u16::from(tree.default_left[node]);
        self.nodes[slot] = Node {
            feature: feature as u16 | (default_left << 15),
            threshold: rank + 1 + default_left,
            left: left_slot as u32,
        };
        let left_depth = self.pack(tree, tree.left[node] as usize, left_slot);
        let right_depth = self.pack(tree, tree.right[node] as usize, left_slot + 1);
        1 + left_depth.max(right_depth)
    }
}

/// The fastest exact batch form an ensemble has: quantized, else packed (`f64` thresholds).
#[derive(Debug, Clone)]
pub enum BatchEvaluator {
    /// See [`QuantizedEnsemble`].
    Quantized(QuantizedEnsemble),
    /// For ensembles without a quantized form (see [`QuantizedEnsemble::new`]).
    Packed(PackedEnsemble),
}

impl BatchEvaluator {
    /// The evaluator of `ensemble`.
    pub fn new(ensemble: &Ensemble) -> Self {
        match QuantizedEnsemble::new(ensemble) {
            Some(quantized) => Self::Quantized(quantized),
            None => Self::Packed(PackedEnsemble::new(ensemble)),
        }
    }

    /// Raw margins of a row-major batch, as [`Ensemble::predict_raw_batch`] (bit-identical).
    pub fn predict_raw_batch(&self, rows: &[f64]) -> Vec<f64> {
        match self {
            Self::Quantized(quantized) => quantized.predict_raw_batch(rows),
            Self::Packed(packed) => packed.predict_raw_batch(rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::trees::test_support::random_tree;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random_rows(rng: &mut StdRng, count: usize, features: usize) -> Vec<f64> {
        (0..count * features)
            .map(|_| match rng.gen_range(0..10) {
                0 => f64::NAN,
                // Values exactly on a threshold grid and signed zeros exercise `x < t` ties.
                1 => f64::from(rng.gen_range(0..4)) / 4.0,
                2 => -0.0,
                _ => rng.gen_range(-0.2..1.2),
            })
            .collect()
    }

    #[test]
    fn quantized_predictions_equal_the_training_form_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(11);
        let features = 6;
        let mut ensemble = Ensemble::new(features, vec![0.1, -0.2, 0.3]);
        for output in 0..3 {
            for _ in 0..40 {
                let mut tree = random_tree(&mut rng, features as u32, 7, 0.2);
                // Thresholds on the grid the rows also hit, and some at zero.
                for threshold in &mut tree.threshold {
                    if rng.gen_bool(0.3) {
                        *threshold = f64::from(rng.gen_range(0..4)) / 4.0;
                    }
                }
                ensemble.trees[output].push(tree);
            }
        }
        ensemble.trees[1].push(Tree::leaf(0.25, 1.0));
        let quantized = QuantizedEnsemble::new(&ensemble).unwrap();
        for count in [0, 1, LANES - 1, BLOCK_ROWS, BLOCK_ROWS * 3 + LANES + 3] {
            let rows = random_rows(&mut rng, count, features);
            assert_eq!(
                quantized.predict_raw_batch(&rows),
                ensemble.predict_raw_batch(&rows),
                "{count} rows"
            );
        }
    }

    #[test]
    fn an_imported_xgboost_model_routes_exactly_as_xgboost() {
        let directory =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/flow/xgboost/fixture");
        let model = crate::ml::xgboost::import_json(
            &std::fs::read_to_string(directory.join("binary.json")).unwrap(),
        )
        .unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(directory.join("expected.json")).unwrap(),
        )
        .unwrap();
        let rows: Vec<f64> = expected["rows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().clone())
            .map(|value| value.as_f64().unwrap_or(f64::NAN))
            .collect();
        let quantized = QuantizedEnsemble::new(&model.ensemble).unwrap();
        let margins = quantized.predict_raw_batch(&rows);
        assert_eq!(margins, model.ensemble.predict_raw_batch(&rows));
        // XGBoost sums in f32: equal to its margins within that rounding.
        for (ours, theirs) in margins
            .iter()
            .zip(expected["binary_margin"].as_array().unwrap())
        {
            assert!(
                (ours - theirs.as_f64().unwrap()).abs() < 1e-4,
                "{ours} vs {theirs}"
            );
        }
    }

    #[test]
    fn too_many_features_or_a_nan_threshold_have_no_quantized_form() {
        let mut ensemble = Ensemble::new(2, vec![0.0]);
        let mut tree = Tree::default();
        tree.push_node(1, f64::NAN, 1, 2, true, 0.0, 2.0);
        tree.push_leaf(1.0, 1.0);
        tree.push_leaf(2.0, 1.0);
        ensemble.trees[0].push(tree);
        assert!(QuantizedEnsemble::new(&ensemble).is_none());
        assert!(QuantizedEnsemble::new(&Ensemble::new(40_000, vec![0.0])).is_none());
    }
}
