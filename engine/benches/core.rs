//! Per-record costs of the streaming core's hot path: decoding each input format, encoding a
//! scored event and a dead letter, and the offset tracker's track / expect / acknowledge.
//! Run: `cargo bench -p threatflow --bench core`. Figures go to BENCHMARKS.md as medians.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use threatflow::config::{InputFormat, OutputConfig, OutputFormat};
use threatflow::decode::{confluent_frame, encode_input_avro, Decoder};
use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow::offsets::{OffsetTracker, TopicPartition};
use threatflow::operators::{passthrough::PassthroughOperator, Operator, Outcome, SourcedEvent};
use threatflow::runtime::PartitionStates;
use threatflow::scored::SourceCoordinates;

const BATCH: usize = 500;

fn decode(criterion: &mut Criterion) {
    let mut generator = EventGenerator::new(1);
    let mut group = criterion.benchmark_group("decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    for kind in [SchemaKind::Flow, SchemaKind::Alert] {
        let events: Vec<_> = (0..BATCH).map(|_| generator.event(kind)).collect();
        let json: Vec<Vec<u8>> = events.iter().map(encode_json).collect();
        let avro: Vec<Vec<u8>> = events
            .iter()
            .map(|event| encode_input_avro(event).unwrap())
            .collect();
        let framed: Vec<Vec<u8>> = avro.iter().map(|datum| confluent_frame(7, datum)).collect();
        let ids = HashMap::from([(7, kind)]);
        for (name, format, payloads) in [
            ("json", InputFormat::Json, &json),
            ("avro", InputFormat::Avro, &avro),
            ("confluent", InputFormat::Confluent, &framed),
        ] {
            let decoder = Decoder::new(kind, format, 1 << 20, ids.clone());
            group.bench_function(format!("{}/{name}", kind.name()), |bencher| {
                bencher.iter(|| {
                    for payload in payloads {
                        black_box(decoder.decode(Some(payload)).ok());
                    }
                })
            });
        }
    }
    group.finish();
}

fn score_and_encode(criterion: &mut Criterion) {
    let mut generator = EventGenerator::new(2);
    let events: Vec<SourcedEvent> = (0..BATCH)
        .map(|offset| {
            let source = SourceCoordinates {
                topic: "flows".into(),
                partition: 0,
                offset: offset as i64,
                timestamp_ms: Some(1),
            };
            SourcedEvent {
                event_id: source.derived_event_id(),
                source,
                event: generator.event(SchemaKind::Flow),
            }
        })
        .collect();
    let mut operator = PassthroughOperator;
    let mut group = criterion.benchmark_group("emit");
    group.throughput(Throughput::Elements(BATCH as u64));
    for format in [OutputFormat::Json, OutputFormat::Avro] {
        let encoder = threatflow::encode::OutputEncoder::new(&OutputConfig {
            format,
            dead_letter_topic: "dlq".into(),
            confluent_ids: BTreeMap::new(),
            pseudonym_key: String::new(),
        })
        .unwrap();
        group.bench_function(
            format!("passthrough_score_and_encode/{format:?}"),
            |bencher| {
                bencher.iter(|| {
                    for outcome in operator
                        .score_batch(&events, &mut PartitionStates::new(None))
                        .unwrap()
                    {
                        if let Outcome::Scored { scored, .. } = outcome {
                            black_box(encoder.encode_scored(&scored).ok());
                        }
                    }
                })
            },
        );
    }
    group.finish();
}

fn offsets(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("offsets");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("track_expect_ack_take", |bencher| {
        let tracker = OffsetTracker::new();
        let partition = TopicPartition::new("flows", 0);
        let mut next_offset = 0i64;
        bencher.iter(|| {
            let inputs: Vec<_> = (0..BATCH)
                .filter_map(|_| {
                    next_offset += 1;
                    tracker.track(&partition, next_offset)
                })
                .collect();
            // Acknowledge in reverse, the worst order for the contiguous prefix.
            for input in inputs.iter().rev() {
                tracker.set_output_count(input, 1);
                tracker.acknowledge(input);
            }
            black_box(tracker.take_committable());
        })
    });
    group.finish();
}

criterion_group!(benches, decode, score_and_encode, offsets);
criterion_main!(benches);
