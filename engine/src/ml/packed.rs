//! The inference form of an [`Ensemble`]: every tree's nodes packed into one array of
//! 16-byte nodes, siblings adjacent, evaluated tree-major over blocks of rows.
//!
//! Why: the training form keeps one array per node field, so a node visit touches five cache
//! lines, and row-major evaluation reloads every tree per row. Here a visit reads one 16-byte
//! node, and a block of [`BLOCK_ROWS`] rows runs through a tree while it is in cache (the
//! layout and blocking XGBoost's CPU predictor uses). Predictions are bit-identical to
//! [`Ensemble::predict_raw`]: same comparisons, same order of additions per output
//! (tree sum from zero, then the base score).

use crate::ml::trees::{Ensemble, Tree, LEAF};

/// Rows evaluated together per tree.
pub const BLOCK_ROWS: usize = 64;

/// Marks a leaf in [`PackedNode::feature`].
const LEAF_FEATURE: u32 = u32::MAX;
/// Set in [`PackedNode::feature`] when missing values go left.
const DEFAULT_LEFT_BIT: u32 = 1 << 31;

#[derive(Debug, Clone, Copy)]
struct PackedNode {
    /// Split threshold, or the leaf value for a leaf.
    threshold: f64,
    /// Split feature | [`DEFAULT_LEFT_BIT`], or [`LEAF_FEATURE`].
    feature: u32,
    /// Index of the left child; the right child follows it.
    left: u32,
}

/// A packed ensemble; see the module doc.
#[derive(Debug, Clone)]
pub struct PackedEnsemble {
    feature_count: usize,
    base_score: Vec<f64>,
    /// Root index and output of every tree, in the ensemble's order per output.
    roots: Vec<(u32, usize)>,
    nodes: Vec<PackedNode>,
}

impl PackedEnsemble {
    /// Packs `ensemble`.
    pub fn new(ensemble: &Ensemble) -> Self {
        let mut nodes = Vec::new();
        let mut roots = Vec::new();
        for (output, trees) in ensemble.trees.iter().enumerate() {
            for tree in trees {
                if tree.is_empty() {
                    continue;
                }
                let root = nodes.len();
                nodes.push(PackedNode {
                    threshold: 0.0,
                    feature: LEAF_FEATURE,
                    left: 0,
                });
                pack(tree, 0, root, &mut nodes);
                roots.push((root as u32, output));
            }
        }
        Self {
            feature_count: ensemble.feature_count,
            base_score: ensemble.base_score.clone(),
            roots,
            nodes,
        }
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
        // Sums start at zero and the base is added last: the training form's order.
        let mut margins = vec![0.0; row_count * outputs];
        for block_start in (0..row_count).step_by(BLOCK_ROWS) {
            let block_end = (block_start + BLOCK_ROWS).min(row_count);
            for &(root, output) in &self.roots {
                for row_index in block_start..block_end {
                    let row = &rows[row_index * width..(row_index + 1) * width];
                    margins[row_index * outputs + output] += self.leaf_value(root, row);
                }
            }
        }
        for (index, margin) in margins.iter_mut().enumerate() {
            *margin += self.base_score[index % outputs];
        }
        margins
    }

    fn leaf_value(&self, root: u32, row: &[f64]) -> f64 {
        let mut index = root as usize;
        loop {
            let node = self.nodes[index];
            if node.feature == LEAF_FEATURE {
                return node.threshold;
            }
            let feature = (node.feature & !DEFAULT_LEFT_BIT) as usize;
            let value = row.get(feature).copied().unwrap_or(f64::NAN);
            let goes_left = if value.is_nan() {
                node.feature & DEFAULT_LEFT_BIT != 0
            } else {
                value < node.threshold
            };
            index = node.left as usize + usize::from(!goes_left);
        }
    }
}

/// Writes `tree`'s node `node` into the reserved slot `slot`, its children into a fresh
/// adjacent pair, depth-first.
fn pack(tree: &Tree, node: usize, slot: usize, nodes: &mut Vec<PackedNode>) {
    if tree.left[node] == LEAF {
        nodes[slot] = PackedNode {
            threshold: tree.value[node],
            feature: LEAF_FEATURE,
            left: 0,
        };
        return;
    }
    let left_slot = nodes.len();
    let placeholder = PackedNode {
        threshold: 0.0,
        feature: LEAF_FEATURE,
        left: 0,
    };
    nodes.push(placeholder);
    nodes.push(placeholder);
    let default_left = if tree.default_left[node] {
        DEFAULT_LEFT_BIT
    } else {
        0
    };
    nodes[slot] = PackedNode {
        threshold: tree.threshold[node],
        feature: tree.feature[node] | default_left,
        left: left_slot as u32,
    };
    pack(tree, tree.left[node] as usize, left_slot, nodes);
    pack(tree, tree.right[node] as usize, left_slot + 1, nodes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::trees::test_support::random_tree;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn packed_predictions_equal_the_training_form_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(5);
        let features = 6;
        let mut ensemble = Ensemble::new(features, vec![0.1, -0.2, 0.3]);
        for output in 0..3 {
            for _ in 0..25 {
                let tree = random_tree(&mut rng, features as u32, 5, 0.2);
                ensemble.trees[output].push(tree);
            }
        }
        let packed = PackedEnsemble::new(&ensemble);
        let rows: Vec<f64> = (0..(BLOCK_ROWS * 2 + 7) * features)
            .map(|_| {
                if rng.gen_bool(0.1) {
                    f64::NAN
                } else {
                    rng.gen_range(0.0..1.0)
                }
            })
            .collect();
        assert_eq!(
            packed.predict_raw_batch(&rows),
            ensemble.predict_raw_batch(&rows)
        );
    }
}
