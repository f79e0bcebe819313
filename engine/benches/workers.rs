//! Workers per binding: the flow and alert operators with explanations on (the defaults),
//! scored by 1 and by 2 worker threads in the same run — each worker with its own scorer and
//! partition state over the binding's one shared model slot, exactly as the pipeline builds
//! them (`OperatorSpec::start`), minus Kafka. Each worker scores its own partition's batches of
//! 500 events; throughput is events over wall time for all workers together.
//!
//! Run: `cargo bench -p threatflow --bench workers` (with `ORT_DYLIB_PATH` set, the prompt
//! operator too). The 2-vs-1 ratio is the scaling figure (BENCHMARKS.md, "Workers per
//! binding").

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use threatflow::events::{InputEvent, SchemaKind};
use threatflow::generate::EventGenerator;
use threatflow::operators::flow::dataset::read_nsl_kdd;
use threatflow::operators::{BindingRuntime, OperatorContext, OperatorKind, SourcedEvent};
use threatflow::runtime::PartitionStates;

const BATCH: usize = 500;
/// Batches each worker scores per measured iteration.
const BATCHES_PER_WORKER: usize = 4;

fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn start(operator: &str) -> BindingRuntime {
    let models = repository().join("models");
    let operators = threatflow::config::OperatorSections::default();
    let context = OperatorContext {
        model_dir: &models,
        operators: &operators,
        input_topic: "bench",
        kafka: None,
        pinned_version_dir: None,
    };
    let kind = OperatorKind::named(operator).expect("operator");
    (kind.spec().start)(&context).expect("operator starts with the shipped model")
}

/// A batch of `kind` events for `partition`.
fn events(kind: SchemaKind, partition: i32) -> Vec<SourcedEvent> {
    let inputs: Vec<InputEvent> = match kind {
        SchemaKind::Flow => read_nsl_kdd(&repository().join("models/flow/data/KDDTest+.txt"))
            .unwrap()
            .into_iter()
            .skip(partition as usize * BATCH)
            .take(BATCH)
            .map(|row| InputEvent::Flow(Box::new(row.event)))
            .collect(),
        _ => {
            let mut generator = EventGenerator::new(7 + partition as u64);
            (0..BATCH).map(|_| generator.event(kind)).collect()
        }
    };
    inputs
        .into_iter()
        .enumerate()
        .map(|(offset, event)| {
            let mut sourced = SourcedEvent::at_offset("bench", offset as i64, event);
            sourced.source.partition = partition;
            sourced
        })
        .collect()
}

/// Wall time of `workers` threads each scoring `BATCHES_PER_WORKER` batches, `iterations` times.
fn run(runtime: &BindingRuntime, kind: SchemaKind, workers: usize, iterations: u64) -> Duration {
    let batches: Vec<Vec<SourcedEvent>> = (0..workers).map(|w| events(kind, w as i32)).collect();
    let mut scorers: Vec<_> = (0..workers)
        .map(|_| ((runtime.new_worker)(), PartitionStates::new(runtime.state)))
        .collect();
    let started = Instant::now();
    for _ in 0..iterations {
        std::thread::scope(|scope| {
            for ((scorer, state), batch) in scorers.iter_mut().zip(&batches) {
                scope.spawn(move || {
                    let mut batch = batch.clone();
                    for round in 0..BATCHES_PER_WORKER {
                        // Later offsets each round, so keyed state keeps folding.
                        for event in &mut batch {
                            event.source.offset += (round * BATCH) as i64;
                        }
                        black_box(scorer.score_batch(&batch, state).unwrap());
                    }
                });
            }
        });
    }
    started.elapsed()
}

fn workers(criterion: &mut Criterion) {
    let mut operators = vec![("flow", SchemaKind::Flow), ("alert", SchemaKind::Alert)];
    // The prompt operator needs ONNX Runtime (`ORT_DYLIB_PATH` or scripts/setup.sh's copy):
    // its workers share one session and batcher, so this measures whether a second worker
    // helps (it feeds the batcher while the first waits) or only contends.
    if threatflow::operators::prompt::l2::resolve_library("").exists() {
        operators.push(("prompt", SchemaKind::Prompt));
    }
    for (operator, kind) in operators {
        let runtime = start(operator);
        let mut group = criterion.benchmark_group(format!("workers_{operator}"));
        group.sample_size(10);
        for workers in [1usize, 2] {
            group.throughput(Throughput::Elements(
                (workers * BATCHES_PER_WORKER * BATCH) as u64,
            ));
            group.bench_function(format!("{workers}_workers"), |bencher| {
                bencher.iter_custom(|iterations| run(&runtime, kind, workers, iterations))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, workers);
criterion_main!(benches);
