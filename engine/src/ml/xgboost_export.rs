//! Export of a one-output [`Ensemble`] as an XGBoost 3.x JSON model (`reg:squarederror`, so
//! XGBoost's margin is the base score plus the tree sum, as ours), for running the same trees
//! in Python XGBoost: `threatflow bench trees` times both on one model.
//!
//! XGBoost keeps thresholds and leaves in `f32`, so the exported model is our ensemble with
//! thresholds rounded to `f32`; importing it back ([`crate::ml::xgboost::import_json`]) gives
//! the ensemble that routes every row exactly as XGBoost does.

use serde_json::{json, Value};

use crate::ml::trees::{Ensemble, Tree, LEAF};

/// XGBoost's "no parent" marker for a root.
const NO_PARENT: i64 = 2_147_483_647;

/// The ensemble as XGBoost JSON; `None` for a multi-output ensemble.
pub fn export_json(ensemble: &Ensemble) -> Option<String> {
    let [trees] = ensemble.trees.as_slice() else {
        return None;
    };
    let [base_score] = ensemble.base_score.as_slice() else {
        return None;
    };
    let features = ensemble.feature_count.to_string();
    let exported: Vec<Value> = trees
        .iter()
        .filter(|tree| !tree.is_empty())
        .enumerate()
        .map(|(id, tree)| export_tree(tree, id, &features))
        .collect();
    let count = exported.len();
    let model = json!({
        "learner": {
            "attributes": {},
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": {
                "model": {
                    "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                    "gbtree_model_param": {
                        "num_parallel_tree": "1",
                        "num_trees": count.to_string(),
                    },
                    "iteration_indptr": (0..=count).collect::<Vec<_>>(),
                    "tree_info": vec![0; count],
                    "trees": exported,
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": format!("[{:E}]", *base_score as f32),
                "boost_from_average": "1",
                "num_class": "0",
                "num_feature": features,
                "num_target": "1",
            },
            "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [3, 2, 0],
    });
    Some(model.to_string())
}

fn export_tree(tree: &Tree, id: usize, features: &str) -> Value {
    let nodes = tree.left.len();
    let mut parents = vec![NO_PARENT; nodes];
    for node in 0..nodes {
        if tree.left[node] != LEAF {
            parents[tree.left[node] as usize] = node as i64;
            parents[tree.right[node] as usize] = node as i64;
        }
    }
    let child = |index: u32| if index == LEAF { -1 } else { i64::from(index) };
    let is_leaf = |node: usize| tree.left[node] == LEAF;
    let condition: Vec<f32> = (0..nodes)
        .map(|node| {
            let value = if is_leaf(node) {
                tree.value[node]
            } else {
                tree.threshold[node]
            };
            value as f32
        })
        .collect();
    json!({
        "base_weights": (0..nodes).map(|node| tree.value[node] as f32).collect::<Vec<_>>(),
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": tree.default_left.iter().map(|&left| u8::from(left)).collect::<Vec<_>>(),
        "id": id,
        "left_children": tree.left.iter().map(|&index| child(index)).collect::<Vec<_>>(),
        "loss_changes": vec![0.0f32; nodes],
        "parents": parents,
        "right_children": tree.right.iter().map(|&index| child(index)).collect::<Vec<_>>(),
        "split_conditions": condition,
        "split_indices": (0..nodes)
            .map(|node| if is_leaf(node) { 0 } else { tree.feature[node] })
            .collect::<Vec<_>>(),
        "split_type": vec![0; nodes],
        "sum_hessian": tree.cover.iter().map(|&cover| cover as f32).collect::<Vec<_>>(),
        "tree_param": {
            "num_deleted": "0",
            "num_feature": features,
            "num_nodes": nodes.to_string(),
            "size_leaf_vector": "1",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::trees::test_support::random_tree;
    use crate::ml::xgboost::{f32_split_boundary, import_json, XgbObjective};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn an_exported_ensemble_imports_back_with_f32_thresholds_and_leaves() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut ensemble = Ensemble::new(5, vec![-0.125]);
        for _ in 0..10 {
            ensemble.trees[0].push(random_tree(&mut rng, 5, 5, 0.2));
        }
        let imported = import_json(&export_json(&ensemble).unwrap()).unwrap();
        assert_eq!(imported.objective, XgbObjective::Identity);
        assert_eq!(imported.ensemble.base_score, vec![-0.125]);
        assert_eq!(imported.ensemble.trees[0].len(), 10);
        for (ours, back) in ensemble.trees[0].iter().zip(&imported.ensemble.trees[0]) {
            assert_eq!(ours.left, back.left);
            assert_eq!(ours.right, back.right);
            assert_eq!(ours.default_left, back.default_left);
            for node in 0..ours.left.len() {
                if ours.left[node] == LEAF {
                    assert_eq!(back.value[node], f64::from(ours.value[node] as f32));
                } else {
                    assert_eq!(ours.feature[node], back.feature[node]);
                    let boundary = f32_split_boundary(ours.threshold[node] as f32);
                    assert_eq!(back.threshold[node], boundary);
                }
            }
        }
        assert!(export_json(&Ensemble::new(5, vec![0.0, 0.0])).is_none());
    }
}
