//! Address operator costs, single thread: one address through the scorer (parse, four
//! n-gram scores, statistics, list lookups, calibration), and a batch of address records
//! through the operator (plus building the scored events and explanations).
//!
//! Run: `cargo bench -p threatflow --bench address`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use threatflow::events::{AddressEvent, InputEvent};
use threatflow::ml::artifact::newest_version;
use threatflow::operators::address::model::AddressModel;
use threatflow::operators::address::synth::{generate, AddressSources};
use threatflow::operators::address::{AddressOperator, AddressOperatorConfig};
use threatflow::operators::{Operator, SourcedEvent};
use threatflow::runtime::PartitionStates;

const BATCH: usize = 500;

fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn bench_address(c: &mut Criterion) {
    let model_dir = newest_version(&repository().join("models/address")).expect("address model");
    let model = AddressModel::load(&model_dir).expect("load");
    let sources =
        AddressSources::load(&repository().join("models/address/sources")).expect("sources");
    let addresses: Vec<String> = generate(&sources, 4 * BATCH, 0.4, 123)
        .into_iter()
        .rev()
        .take(BATCH)
        .map(|row| row.address)
        .collect();
    let config = AddressOperatorConfig::default();
    let scorer = config.scorer(model.clone()).expect("scorer");
    let mut group = c.benchmark_group("address");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("scorer, 500 generated addresses", |b| {
        b.iter(|| {
            for address in &addresses {
                black_box(scorer.score(address).expect("parses"));
            }
        })
    });
    let events: Vec<SourcedEvent> = addresses
        .iter()
        .enumerate()
        .map(|(index, address)| {
            SourcedEvent::at_offset(
                "addresses",
                index as i64,
                InputEvent::Address(AddressEvent {
                    event_id: None,
                    address: address.clone(),
                    context: "signup".to_owned(),
                    account: None,
                    observed_ms: None,
                }),
            )
        })
        .collect();
    let mut operator = AddressOperator::with_model(config, model).expect("operator");
    group.bench_function("operator, 500 address records", |b| {
        b.iter(|| {
            black_box(
                operator
                    .score_batch(&events, &mut PartitionStates::new(None))
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_address);
criterion_main!(benches);
