//! Flow operator costs, single thread: batch prediction with the shipped model set, exact
//! TreeSHAP per event, the whole operator per batch, and the XGBoost-imported model on the
//! rows Python xgboost is timed on (`models/flow/xgboost/compare.sh` runs both side by side).
//!
//! Run: `cargo bench -p threatflow --bench flow`. `THREATFLOW_XGB_BENCH_DIR` points the
//! xgboost group at another model/rows directory (default: the committed parity fixture).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use threatflow::events::InputEvent;
use threatflow::ml::fast_shap::FastTreeShap;
use threatflow::ml::packed::PackedEnsemble;
use threatflow::ml::xgboost::import_json;
use threatflow::operators::explain_mode::ExplainMode;
use threatflow::operators::flow::dataset::read_nsl_kdd;
use threatflow::operators::flow::model::FlowModel;
use threatflow::operators::flow::train::newest_version;
use threatflow::operators::flow::{FlowOperator, FlowOperatorConfig};
use threatflow::operators::{Operator, SourcedEvent};
use threatflow::runtime::PartitionStates;

const BATCH: usize = 500;

fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn test_rows() -> Vec<threatflow::operators::flow::dataset::LabelledFlow> {
    read_nsl_kdd(&repository().join("models/flow/data/KDDTest+.txt"))
        .unwrap()
        .into_iter()
        .step_by(41)
        .take(BATCH)
        .collect()
}

fn shipped_model(criterion: &mut Criterion) {
    let model =
        FlowModel::load(&newest_version(&repository().join("models/flow")).unwrap()).unwrap();
    let rows = test_rows();
    let mut features = Vec::new();
    for row in &rows {
        model.encoder().encode_into(&row.event, &mut features);
    }
    let width = model.manifest.features.len();
    let mut group = criterion.benchmark_group("flow");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("binary_margin", |bencher| {
        bencher.iter(|| black_box(model.binary.predict_raw_batch(black_box(&features))))
    });
    group.bench_function("assess_binary_and_category", |bencher| {
        bencher.iter(|| black_box(model.assess_batch(black_box(&features))))
    });
    group.bench_function("treeshap_recursive", |bencher| {
        bencher.iter(|| {
            for row in features.chunks_exact(width) {
                black_box(model.binary.shap_values(row, 0));
            }
        })
    });
    let tables = FastTreeShap::new(&model.binary, 0);
    group.bench_function("treeshap_tabulated", |bencher| {
        bencher.iter(|| {
            for row in features.chunks_exact(width) {
                black_box(tables.shap_values(&model.binary, row));
            }
        })
    });
    let events: Vec<SourcedEvent> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            SourcedEvent::at_offset(
                "flows",
                index as i64,
                InputEvent::Flow(Box::new(row.event.clone())),
            )
        })
        .collect();
    // Explanations for every flow (`explain = "all"`), for those crossing a team's threshold
    // (the default `crossed`), or none.
    for (name, top, explain) in [
        ("operator_explained", 5, ExplainMode::All),
        ("operator_explained_crossed", 5, ExplainMode::Crossed),
        ("operator_unexplained", 0, ExplainMode::All),
    ] {
        let config = FlowOperatorConfig {
            top_contributors: top,
            explain,
            ..FlowOperatorConfig::default()
        };
        let mut operator = FlowOperator::with_model(config, model.clone()).unwrap();
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                black_box(
                    operator
                        .score_batch(black_box(&events), &mut PartitionStates::new(None))
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

fn xgboost_model(criterion: &mut Criterion) {
    let directory = std::env::var_os("THREATFLOW_XGB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("models/flow/xgboost/fixture"));
    let model =
        import_json(&std::fs::read_to_string(directory.join("binary.json")).unwrap()).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(directory.join("expected.json")).unwrap())
            .unwrap();
    let rows: Vec<f64> = expected["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
        })
        .collect();
    let count = rows.len() / model.ensemble.feature_count;
    let mut group = criterion.benchmark_group("xgboost_import");
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function("predict_margin_batch", |bencher| {
        bencher.iter(|| black_box(model.ensemble.predict_raw_batch(black_box(&rows))))
    });
    let packed = PackedEnsemble::new(&model.ensemble);
    group.bench_function("predict_margin_batch_packed", |bencher| {
        bencher.iter(|| black_box(packed.predict_raw_batch(black_box(&rows))))
    });
    group.finish();
}

criterion_group!(benches, shipped_model, xgboost_model);
criterion_main!(benches);
