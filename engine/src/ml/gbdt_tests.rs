//! Known-answer tests of the GBDT trainer on synthetic data with a known decision rule.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

struct Synthetic {
    features: Vec<f64>,
    labels: Vec<f64>,
}

/// `rows` rows of `columns` uniform features; labels from `rule`.
fn synthetic(
    seed: u64,
    rows: usize,
    columns: usize,
    rule: impl Fn(&[f64], &mut StdRng) -> f64,
) -> Synthetic {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(rows * columns);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..columns).map(|_| rng.gen_range(0.0..1.0)).collect();
        labels.push(rule(&row, &mut rng));
        features.extend(row);
    }
    Synthetic { features, labels }
}

fn dataset(data: &Synthetic, columns: usize) -> Dataset<'_> {
    Dataset {
        features: &data.features,
        columns,
        labels: &data.labels,
        weights: None,
    }
}

/// Rank-based ROC AUC.
fn auc(scores: &[f64], labels: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels.iter().filter(|&&label| label == 1.0).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let rank_sum: f64 = order
        .iter()
        .enumerate()
        .filter(|(_, &index)| labels[index] == 1.0)
        .map(|(rank, _)| rank as f64 + 1.0)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

fn params(objective: Objective) -> GbdtParams {
    GbdtParams {
        objective,
        rounds: 60,
        max_depth: 4,
        max_bins: 32,
        ..GbdtParams::default()
    }
}

#[test]
fn binary_model_learns_an_interaction_and_its_shap_values_add_up() {
    // Label depends on an interaction of two features, with 5% label noise; others are noise.
    let rule = |row: &[f64], rng: &mut StdRng| {
        let clean = (row[0] > 0.5) != (row[1] > 0.5);
        f64::from(u8::from(clean != rng.gen_bool(0.05)))
    };
    let train_data = synthetic(1, 3_000, 5, rule);
    let test_data = synthetic(2, 1_000, 5, rule);
    let (model, report) = train(
        &params(Objective::BinaryLogistic),
        &dataset(&train_data, 5),
        Some(&dataset(&test_data, 5)),
    )
    .unwrap();
    assert!(
        report.train_loss.first() > report.train_loss.last(),
        "{report:?}"
    );
    let scores: Vec<f64> = test_data
        .features
        .chunks(5)
        .map(|row| model.predict_raw(row)[0])
        .collect();
    let test_auc = auc(&scores, &test_data.labels);
    assert!(test_auc > 0.9, "AUC {test_auc}");
    let base = model.expected_value()[0];
    for row in test_data.features.chunks(5).take(50) {
        let phi = model.shap_values(row, 0);
        let total = base + phi.iter().sum::<f64>();
        assert!((total - model.predict_raw(row)[0]).abs() < 1e-6);
        // The two informative features dominate the explanation.
        let informative = phi[0].abs() + phi[1].abs();
        let noise: f64 = phi[2..].iter().map(|value| value.abs()).sum();
        assert!(informative > noise, "{phi:?}");
    }
}

#[test]
fn softmax_model_separates_three_regions() {
    let rule = |row: &[f64], _: &mut StdRng| {
        if row[0] < 0.33 {
            0.0
        } else if row[1] < 0.5 {
            1.0
        } else {
            2.0
        }
    };
    let train_data = synthetic(3, 2_000, 3, rule);
    let test_data = synthetic(4, 500, 3, rule);
    let objective = Objective::Softmax { classes: 3 };
    let (model, _) = train(&params(objective), &dataset(&train_data, 3), None).unwrap();
    let correct = test_data
        .features
        .chunks(3)
        .zip(&test_data.labels)
        .filter(|(row, &label)| {
            let probabilities = softmax(&model.predict_raw(row));
            let predicted = (0..3)
                .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
                .unwrap();
            predicted as f64 == label
        })
        .count();
    assert!(
        correct as f64 / 500.0 > 0.95,
        "accuracy {}",
        correct as f64 / 500.0
    );
}

#[test]
fn regression_fits_a_linear_target() {
    let rule = |row: &[f64], _: &mut StdRng| 3.0 * row[0] - 2.0 * row[1];
    let train_data = synthetic(5, 2_000, 2, rule);
    let test_data = synthetic(6, 500, 2, rule);
    let mut regression = params(Objective::SquaredError);
    regression.rounds = 200;
    let (model, _) = train(&regression, &dataset(&train_data, 2), None).unwrap();
    let mean = test_data.labels.iter().sum::<f64>() / 500.0;
    let (residual, total) = test_data.features.chunks(2).zip(&test_data.labels).fold(
        (0.0, 0.0),
        |(residual, total), (row, &label)| {
            (
                residual + (model.predict_raw(row)[0] - label).powi(2),
                total + (label - mean).powi(2),
            )
        },
    );
    let r2 = 1.0 - residual / total;
    assert!(r2 > 0.97, "R² {r2}");
}

#[test]
fn early_stopping_keeps_the_best_round_when_labels_are_noise() {
    let rule = |_: &[f64], rng: &mut StdRng| f64::from(u8::from(rng.gen_bool(0.5)));
    let train_data = synthetic(7, 1_000, 4, rule);
    let valid_data = synthetic(8, 1_000, 4, rule);
    let mut noisy = params(Objective::BinaryLogistic);
    noisy.rounds = 200;
    noisy.early_stopping_rounds = 10;
    let (model, report) = train(
        &noisy,
        &dataset(&train_data, 4),
        Some(&dataset(&valid_data, 4)),
    )
    .unwrap();
    assert!(report.validation_loss.len() < 200, "did not stop early");
    assert_eq!(model.trees[0].len(), report.best_rounds);
    let best = report.validation_loss[report.best_rounds - 1];
    assert!(report.validation_loss.iter().all(|&loss| loss >= best));
}

#[test]
fn missing_values_learn_a_default_direction() {
    // Feature 0 is missing exactly for the positive rows.
    let mut rng = StdRng::seed_from_u64(9);
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..1_000 {
        let positive = rng.gen_bool(0.3);
        features.push(if positive {
            f64::NAN
        } else {
            rng.gen_range(0.0..1.0)
        });
        features.push(rng.gen_range(0.0..1.0));
        labels.push(f64::from(u8::from(positive)));
    }
    let data = Dataset {
        features: &features,
        columns: 2,
        labels: &labels,
        weights: None,
    };
    let (model, _) = train(&params(Objective::BinaryLogistic), &data, None).unwrap();
    assert!(sigmoid(model.predict_raw(&[f64::NAN, 0.5])[0]) > 0.9);
    assert!(sigmoid(model.predict_raw(&[0.5, 0.5])[0]) < 0.1);
}

#[test]
fn malformed_data_is_refused() {
    let features = [0.0, 1.0, 2.0];
    let labels = [0.0, 1.0];
    let data = Dataset {
        features: &features,
        columns: 2,
        labels: &labels,
        weights: None,
    };
    assert!(train(&GbdtParams::default(), &data, None).is_err());
    let features = [0.0, 1.0];
    let labels = [0.0, 3.0];
    let data = Dataset {
        features: &features,
        columns: 1,
        labels: &labels,
        weights: None,
    };
    assert!(train(
        &GbdtParams {
            objective: Objective::Softmax { classes: 3 },
            ..GbdtParams::default()
        },
        &data,
        None
    )
    .is_err());
}

#[test]
fn column_and_row_sampling_are_seeded_and_bounded() {
    // The label depends on column 0 only; with half the columns per tree, some trees cannot
    // see it and must split on the others (or not at all).
    let data = synthetic(3, 600, 6, |row, _| f64::from(u8::from(row[0] > 0.5)));
    let sampled = GbdtParams {
        column_sample: 0.5,
        row_sample: 0.7,
        seed: 11,
        early_stopping_rounds: 0,
        rounds: 20,
        ..params(Objective::BinaryLogistic)
    };
    let (first, _) = train(&sampled, &dataset(&data, 6), None).unwrap();
    let (again, _) = train(&sampled, &dataset(&data, 6), None).unwrap();
    assert_eq!(first, again, "same seed, same ensemble");
    let (other_seed, _) = train(
        &GbdtParams {
            seed: 12,
            ..sampled.clone()
        },
        &dataset(&data, 6),
        None,
    )
    .unwrap();
    assert_ne!(first, other_seed);
    let splits_on = |tree: &crate::ml::trees::Tree| -> std::collections::BTreeSet<u32> {
        (0..tree.feature.len())
            .filter(|&node| tree.left[node] != crate::ml::trees::LEAF)
            .map(|node| tree.feature[node])
            .collect()
    };
    let trees = &first.trees[0];
    assert!(
        trees.iter().all(|tree| splits_on(tree).len() <= 3),
        "3 of 6 columns per tree"
    );
    assert!(trees.iter().any(|tree| !splits_on(tree).contains(&0)));
    let scores: Vec<f64> = (0..600)
        .map(|row| first.predict_raw(&data.features[row * 6..(row + 1) * 6])[0])
        .collect();
    assert!(auc(&scores, &data.labels) > 0.95);
    for share in [0.0, 1.5, f64::NAN] {
        let bad = GbdtParams {
            column_sample: share,
            ..sampled.clone()
        };
        assert!(train(&bad, &dataset(&data, 6), None).is_err(), "{share}");
    }
}
