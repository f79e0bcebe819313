//! Alert operator costs, single thread, and the random-forest choice measured: this
//! project's `ml::forest` against linfa's `RandomForest` (linfa-ensemble 0.8.1 over
//! linfa-trees) on the same generated alerts, same tree count, depth and leaf weight.
//!
//! Before timing, the bench prints each forest's macro-F1 on held-out generated alerts, so
//! speed and accuracy come from one run. Differences in method, stated: linfa draws one
//! feature subset per tree (here half the columns) where ours draws √columns per node;
//! linfa needs NaN replaced (−1 here); both are unweighted in this comparison.
//!
//! Run: `cargo bench -p threatflow --bench alert`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use threatflow::events::InputEvent;
use threatflow::ml::artifact::newest_version;
use threatflow::ml::forest::{train_classifier, ForestParams};
use threatflow::ml::gbdt::Dataset;
use threatflow::ml::metrics::ConfusionMatrix;
use threatflow::operators::alert::features::{width, BusinessHours, FeatureEncoder, Prevalence};
use threatflow::operators::alert::model::AlertModel;
use threatflow::operators::alert::synth::{generate, GeneratorConfig, LabeledAlert, DISPOSITIONS};
use threatflow::operators::alert::train::feature_rows;
use threatflow::operators::alert::{AlertOperator, AlertOperatorConfig};
use threatflow::operators::explain_mode::ExplainMode;
use threatflow::operators::{Operator, SourcedEvent};
use threatflow::runtime::PartitionStates;

const BATCH: usize = 500;
const TREES: usize = 60;

/// `cargo test --all-targets` runs each benchmark once in a debug build, where linfa's fit
/// alone takes minutes; the full sizes run only under `cargo bench` (which passes `--bench`).
fn full_size() -> bool {
    std::env::args().any(|argument| argument == "--bench")
}
const DEPTH: usize = 10;
const LEAF_WEIGHT: f64 = 20.0;

fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn alerts(seed: u64, count: usize) -> Vec<LabeledAlert> {
    generate(&GeneratorConfig {
        seed,
        count,
        ..GeneratorConfig::default()
    })
}

fn events(alerts: &[LabeledAlert]) -> Vec<SourcedEvent> {
    alerts
        .iter()
        .enumerate()
        .map(|(index, labeled)| {
            SourcedEvent::at_offset(
                "alerts",
                index as i64,
                InputEvent::Alert(Box::new(labeled.alert.clone())),
            )
        })
        .collect()
}

fn operator(criterion: &mut Criterion) {
    let model =
        AlertModel::load(&newest_version(&repository().join("models/alert")).unwrap()).unwrap();
    let batch = events(&alerts(77, BATCH));
    let mut group = criterion.benchmark_group("alert");
    group.throughput(Throughput::Elements(batch.len() as u64));
    // The triage-depth stages side by side: the core rules only (the rule layer before the
    // ATT&CK pack), the shipped rules (core + pack; intel is on in every variant), and the
    // same with correlation into incidents.
    let core_rules = repository().join("models/alert/rules.toml");
    // Explanations: every alert (`explain = "all"`), or only those at final risk ≥ 60 (the
    // default `crossed`).
    let (all, crossed) = (ExplainMode::All, ExplainMode::Crossed);
    let variants = [
        ("operator_explained", 5, all, None, ""),
        ("operator_explained_crossed", 5, crossed, None, ""),
        ("operator_unexplained", 0, all, None, ""),
        (
            "operator_unexplained_core_rules",
            0,
            all,
            Some(core_rules),
            "",
        ),
        (
            "operator_unexplained_correlated",
            0,
            all,
            None,
            "bench.incidents",
        ),
    ];
    for (name, top_contributors, explain, rules_file, incident_topic) in variants {
        let config = AlertOperatorConfig {
            top_contributors,
            explain,
            rules_file,
            incident_topic: incident_topic.to_owned(),
            ..AlertOperatorConfig::default()
        };
        let mut operator = AlertOperator::with_model(config, model.clone()).unwrap();
        let mut states = PartitionStates::new(Some(threatflow::operators::alert::new_history));
        group.bench_function(name, |bench| {
            bench.iter(|| {
                black_box(
                    operator
                        .score_batch(black_box(&batch), &mut states)
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

struct Rows {
    features: Vec<f64>,
    labels: Vec<usize>,
}

fn rows(encoder: &FeatureEncoder, alerts: &[LabeledAlert]) -> Rows {
    Rows {
        features: feature_rows(encoder, alerts),
        labels: alerts
            .iter()
            .map(|a| {
                DISPOSITIONS
                    .iter()
                    .position(|d| *d == a.disposition)
                    .unwrap()
            })
            .collect(),
    }
}

fn linfa_records(rows: &Rows) -> Array2<f64> {
    let filled: Vec<f64> = rows
        .features
        .iter()
        .map(|v| if v.is_nan() { -1.0 } else { *v })
        .collect();
    Array2::from_shape_vec((rows.labels.len(), width()), filled).unwrap()
}

fn macro_f1(predicted: impl Iterator<Item = usize>, truth: &[usize]) -> f64 {
    let mut matrix = ConfusionMatrix::new(DISPOSITIONS.iter().map(|d| (*d).to_owned()).collect());
    for (predicted, &truth) in predicted.zip(truth) {
        matrix.add(truth, predicted);
    }
    matrix.macro_f1()
}

fn forests(criterion: &mut Criterion) {
    let (train_count, test_count) = if full_size() {
        (12_000, 4_000)
    } else {
        (600, 200)
    };
    let train_alerts = alerts(5, train_count);
    let test_alerts = alerts(6, test_count);
    let encoder = FeatureEncoder::new(
        Prevalence::learn(train_alerts.iter().map(|a| &a.alert)),
        BusinessHours::default(),
    );
    let train = rows(&encoder, &train_alerts);
    let test = rows(&encoder, &test_alerts);
    let labels: Vec<f64> = train.labels.iter().map(|&l| l as f64).collect();
    let ours_params = ForestParams {
        trees: TREES,
        max_depth: DEPTH,
        min_leaf_weight: LEAF_WEIGHT,
        ..ForestParams::default()
    };
    let fit_ours = || {
        train_classifier(
            &ours_params,
            &Dataset {
                features: &train.features,
                columns: width(),
                labels: &labels,
                weights: None,
            },
            DISPOSITIONS.len(),
        )
        .unwrap()
    };
    let linfa_train = DatasetBase::new(linfa_records(&train), Array1::from(train.labels.clone()));
    let linfa_test = linfa_records(&test);
    let fit_linfa = || {
        let tree = DecisionTree::params()
            .max_depth(Some(DEPTH))
            .min_weight_leaf(LEAF_WEIGHT as f32);
        EnsembleLearnerParams::new_fixed_rng(tree, StdRng::seed_from_u64(1))
            .ensemble_size(TREES)
            .bootstrap_proportion(1.0)
            .feature_proportion(0.5)
            .fit(&linfa_train)
            .unwrap()
    };

    let ours = fit_ours();
    let ours_f1 = macro_f1(
        test.features.chunks_exact(width()).map(|row| {
            let proba = ours.predict_proba(row);
            (0..proba.len())
                .max_by(|&a, &b| proba[a].total_cmp(&proba[b]))
                .unwrap()
        }),
        &test.labels,
    );
    let linfa_forest = fit_linfa();
    let linfa_predictions: Array1<usize> = linfa_forest.predict(&linfa_test);
    let linfa_f1 = macro_f1(linfa_predictions.iter().copied(), &test.labels);
    eprintln!(
        "held-out macro-F1 on {} generated alerts ({} training): ours {ours_f1:.4}, linfa {linfa_f1:.4}",
        test.labels.len(),
        train.labels.len()
    );

    let mut group = criterion.benchmark_group("random_forest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(train.labels.len() as u64));
    group.bench_function("fit_ours", |bench| bench.iter(|| black_box(fit_ours())));
    group.bench_function("fit_linfa", |bench| bench.iter(|| black_box(fit_linfa())));
    group.throughput(Throughput::Elements(test.labels.len() as u64));
    group.bench_function("predict_ours", |bench| {
        bench.iter(|| {
            for row in test.features.chunks_exact(width()) {
                black_box(ours.predict_proba(row));
            }
        })
    });
    group.bench_function("predict_linfa", |bench| {
        bench.iter(|| black_box::<Array1<usize>>(linfa_forest.predict(&linfa_test)))
    });
    group.finish();
}

criterion_group!(benches, operator, forests);
criterion_main!(benches);
