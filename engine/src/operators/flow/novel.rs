//! Novel-attack calibration: attack-probability scores for validation rows as a model would
//! give them to attack types it never saw, for choosing the decision and team thresholds.
//!
//! Why: a random validation split of the training file holds only attack types the model
//! trained on, which it separates almost perfectly, so every threshold looks right there
//! (recall ≥ 95% holds at p = 0.999, precision ≥ 98% at p = 0.01). In production, as in
//! NSL-KDD's own test set, many attacks are new variants that score lower. Thresholds chosen
//! on scores of unseen attack types reflect that, without ever looking at test data.
//!
//! How: the training file's attack names are dealt into [`FOLDS`] groups (largest first,
//! round-robin, so each group mixes big and small names); for each group a binary model is
//! trained without that group's names (same parameters, the rounds early stopping chose) and
//! scores the validation rows of those names plus every `FOLDS`-th validation normal. Each
//! validation row thus gets exactly one out-of-family score. Each attack name contributes at
//! most [`MAX_ROWS_PER_NAME`] rows, so one flood type cannot decide the thresholds.

use std::collections::BTreeMap;

use crate::ml::gbdt::{self, Dataset, GbdtParams};

/// Groups of attack names held out in turn.
pub const FOLDS: usize = 4;
/// Most calibration rows per attack name.
pub const MAX_ROWS_PER_NAME: usize = 150;

/// A labelled, encoded split: rows (row-major), attack flag and attack name per row.
pub struct LabelledRows<'a> {
    /// Feature rows, row-major.
    pub features: &'a [f64],
    /// Columns per row.
    pub columns: usize,
    /// 1.0 for attacks.
    pub is_attack: &'a [f64],
    /// Label per row (`normal` or the attack name).
    pub names: Vec<&'a str>,
}

/// Out-of-family scores and labels of the calibration rows.
pub struct NovelScores {
    /// P(attack) per calibration row.
    pub scores: Vec<f64>,
    /// Whether each row is an attack.
    pub labels: Vec<bool>,
    /// Attack names per group, for the manifest.
    pub groups: Vec<Vec<String>>,
}

/// Deals attack names into groups, largest first, round-robin.
fn attack_groups(train: &LabelledRows<'_>) -> Vec<Vec<String>> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in train.names.iter().filter(|name| **name != "normal") {
        *counts.entry(name).or_default() += 1;
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut groups = vec![Vec::new(); FOLDS];
    for (position, (name, _)) in names.into_iter().enumerate() {
        groups[position % FOLDS].push(name.to_owned());
    }
    groups
}

/// Computes the out-of-family scores; `rounds` is the binary model's early-stopped length.
pub fn novel_attack_scores(
    params: &GbdtParams,
    rounds: usize,
    train: &LabelledRows<'_>,
    validation: &LabelledRows<'_>,
) -> Result<NovelScores, gbdt::GbdtError> {
    let groups = attack_groups(train);
    let fold_params = GbdtParams {
        rounds: rounds.max(1),
        early_stopping_rounds: 0,
        ..params.clone()
    };
    let columns = train.columns;
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    let mut normal_position = 0usize;
    let mut rows_per_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (fold, group) in groups.iter().enumerate() {
        let held_out = |name: &str| group.iter().any(|held| held == name);
        let mut features = Vec::new();
        let mut targets = Vec::new();
        for (index, name) in train.names.iter().enumerate() {
            if !held_out(name) {
                features.extend_from_slice(&train.features[index * columns..(index + 1) * columns]);
                targets.push(train.is_attack[index]);
            }
        }
        let (model, _) = gbdt::train(
            &fold_params,
            &Dataset {
                features: &features,
                columns,
                labels: &targets,
                weights: None,
            },
            None,
        )?;
        for (index, name) in validation.names.iter().enumerate() {
            let take = if *name == "normal" {
                normal_position += 1;
                (normal_position - 1) % FOLDS == fold
            } else if held_out(name) {
                let taken = rows_per_name.entry(name).or_default();
                *taken += 1;
                *taken <= MAX_ROWS_PER_NAME
            } else {
                false
            };
            if take {
                let row = &validation.features[index * columns..(index + 1) * columns];
                scores.push(gbdt::sigmoid(model.predict_raw(row)[0]));
                labels.push(validation.is_attack[index] > 0.5);
            }
        }
    }
    Ok(NovelScores {
        scores,
        labels,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_spread_large_names_and_cover_every_attack_once() {
        let names = vec![
            "normal", "neptune", "neptune", "neptune", "smurf", "smurf", "satan", "ipsweep",
            "back", "nmap", "normal",
        ];
        let rows = LabelledRows {
            features: &[],
            columns: 0,
            is_attack: &[],
            names,
        };
        let groups = attack_groups(&rows);
        assert_eq!(groups.len(), FOLDS);
        assert_eq!(groups[0][0], "neptune");
        assert_eq!(groups[1][0], "smurf");
        let mut all: Vec<&String> = groups.iter().flatten().collect();
        all.sort();
        assert_eq!(
            all,
            ["back", "ipsweep", "neptune", "nmap", "satan", "smurf"]
        );
    }
}
