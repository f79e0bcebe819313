//! `threatflow-fuzz-decoders`: a long mutation-fuzz run of the input decoder, per input format
//! and per schema (`--runs` inputs each, default 10⁶).
//!
//! Each input starts from a generated valid event (its string values carrying a marker) in
//! the format under test — JSON, raw Avro, Confluent-framed Avro, and all three under `auto` —
//! or from random bytes, and gets 1–4 random mutations: bit flips, byte overwrites, cuts,
//! random insertions, duplicated or deleted runs, splices of another schema's payload, JSON
//! literals swapped for `NaN` / `Infinity` / `1e400` / `null` / strings, deep bracket nesting.
//! The decoder runs under `catch_unwind`. Checked for every input: no panic; a failure has
//! exactly one reason code from the documented list; its detail is at most 300 characters and
//! never contains the marker (details name fields, never values). Prints one JSON line per
//! (format, schema) and a total; exit status 1 on any violation.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use threatflow::config::InputFormat;
use threatflow::dead_letter::DeadLetterReason;
use threatflow::decode::{confluent_frame, encode_input_avro, Decoder};
use threatflow::events::{InputEvent, SchemaKind};
use threatflow::generate::{encode_json, EventGenerator};

/// Put into every string value of the seed events; must never appear in a detail.
const MARKER: &str = "ZQXMARKERZQX";
const MAX_DETAIL_CHARS: usize = 300;
const LIMIT: usize = 256 * 1024;

fn schema_id(kind: SchemaKind) -> u32 {
    match kind {
        SchemaKind::Prompt => 1,
        SchemaKind::Flow => 2,
        SchemaKind::Email => 3,
        SchemaKind::Alert => 4,
        SchemaKind::Address => 5,
    }
}

/// A valid event of `kind` whose string values carry the marker (unmarked when the marked
/// one is not valid any more, e.g. a string field with a closed set of values).
fn marked_event(generator: &mut EventGenerator, kind: SchemaKind) -> InputEvent {
    let event = generator.event(kind);
    let mut value: serde_json::Value =
        serde_json::from_slice(&encode_json(&event)).unwrap_or_default();
    mark_strings(&mut value);
    let marked = serde_json::to_vec(&value).unwrap_or_default();
    Decoder::new(kind, InputFormat::Json, LIMIT, HashMap::new())
        .decode(Some(&marked))
        .unwrap_or(event)
}

fn mark_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => text.push_str(MARKER),
        serde_json::Value::Array(items) => items.iter_mut().for_each(mark_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(mark_strings),
        _ => {}
    }
}

fn encode(event: &InputEvent, format: InputFormat, rng: &mut StdRng) -> Vec<u8> {
    let avro = || encode_input_avro(event).unwrap_or_default();
    match format {
        InputFormat::Json => encode_json(event),
        InputFormat::Avro => avro(),
        InputFormat::Confluent => confluent_frame(schema_id(event.kind()), &avro()),
        InputFormat::Auto => match rng.gen_range(0..3) {
            0 => encode_json(event),
            1 => avro(),
            _ => confluent_frame(schema_id(event.kind()), &avro()),
        },
    }
}

fn mutate(payload: &mut Vec<u8>, other: &[u8], rng: &mut StdRng) {
    let position = |payload: &Vec<u8>, rng: &mut StdRng| rng.gen_range(0..=payload.len());
    match rng.gen_range(0..11) {
        0 if !payload.is_empty() => {
            let at = rng.gen_range(0..payload.len());
            payload[at] ^= 1 << rng.gen_range(0..8);
        }
        1 if !payload.is_empty() => {
            let at = rng.gen_range(0..payload.len());
            payload[at] = rng.gen();
        }
        2 => {
            let at = position(payload, rng);
            payload.truncate(at);
        }
        3 => {
            let at = position(payload, rng);
            let junk: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen()).collect();
            payload.splice(at..at, junk);
        }
        4 if !payload.is_empty() => {
            let start = rng.gen_range(0..payload.len());
            let end = (start + rng.gen_range(1..32)).min(payload.len());
            let run = payload[start..end].to_vec();
            payload.splice(start..start, run);
        }
        5 if !payload.is_empty() => {
            let start = rng.gen_range(0..payload.len());
            let end = (start + rng.gen_range(1..32)).min(payload.len());
            payload.drain(start..end);
        }
        6 if !other.is_empty() => {
            let at = position(payload, rng);
            let cut = rng.gen_range(0..other.len());
            payload.truncate(at);
            payload.extend_from_slice(&other[cut..]);
        }
        7 => replace_json_value(payload, rng),
        8 => {
            let depth = rng.gen_range(100..5_000);
            let at = position(payload, rng);
            let nested: Vec<u8> = std::iter::repeat_n(b'[', depth).collect();
            payload.splice(at..at, nested);
        }
        9 => {
            // Confluent header with a random id over whatever follows.
            let id: u32 = rng.gen_range(0..8);
            let mut framed = vec![0u8];
            framed.extend_from_slice(&id.to_be_bytes());
            framed.extend_from_slice(payload);
            *payload = framed;
        }
        _ => {
            let at = position(payload, rng);
            payload.insert(
                at,
                [b'"', b'{', b'}', b':', b',', 0, 0xff][rng.gen_range(0..7)],
            );
        }
    }
}

/// Replaces the value after a random `":` in JSON text with a hostile literal.
fn replace_json_value(payload: &mut Vec<u8>, rng: &mut StdRng) {
    let colons: Vec<usize> = payload
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair == b"\":")
        .map(|(index, _)| index + 2)
        .collect();
    let Some(&start) = colons.get(rng.gen_range(0..colons.len().max(1))) else {
        return;
    };
    let end = payload[start..]
        .iter()
        .position(|byte| *byte == b',' || *byte == b'}')
        .map_or(payload.len(), |offset| start + offset);
    let literal: &[u8] = [
        b"NaN".as_slice(),
        b"Infinity",
        b"-Infinity",
        b"1e400",
        b"null",
        b"\"ZQXMARKERZQX password=1\"",
        b"-1",
        b"18446744073709551616",
        b"[]",
        b"{}",
        b"true",
    ][rng.gen_range(0..11)];
    payload.splice(start..end, literal.iter().copied());
}

#[derive(Default)]
struct Tally {
    runs: u64,
    accepted: u64,
    reasons: BTreeMap<&'static str, u64>,
    panics: u64,
    violations: Vec<String>,
}

fn main() {
    let mut runs: u64 = 1_000_000;
    let mut seed: u64 = 1;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--runs" => runs = value.parse().unwrap_or(runs),
            "--seed" => seed = value.parse().unwrap_or(seed),
            _ => {
                eprintln!("threatflow-fuzz-decoders [--runs 1000000] [--seed 1]");
                std::process::exit(2);
            }
        }
    }
    std::panic::set_hook(Box::new(|_| {}));
    let ids: HashMap<u32, SchemaKind> = SchemaKind::ALL
        .iter()
        .map(|&kind| (schema_id(kind), kind))
        .collect();
    let codes: Vec<&str> = DeadLetterReason::ALL
        .iter()
        .map(|reason| reason.code())
        .collect();
    let formats = [
        ("json", InputFormat::Json),
        ("avro", InputFormat::Avro),
        ("confluent", InputFormat::Confluent),
        ("auto", InputFormat::Auto),
    ];
    let started = std::time::Instant::now();
    let (mut total_runs, mut total_panics, mut total_violations) = (0u64, 0u64, 0usize);
    for (format_name, format) in formats {
        for kind in SchemaKind::ALL {
            let decoder = Decoder::new(kind, format, LIMIT, ids.clone());
            let mut rng = StdRng::seed_from_u64(
                seed ^ (u64::from(schema_id(kind)) << 8) ^ format_name.len() as u64,
            );
            let mut generator = EventGenerator::new(rng.gen());
            let seeds: Vec<Vec<u8>> = (0..64)
                .map(|_| {
                    let event = marked_event(&mut generator, kind);
                    encode(&event, format, &mut rng)
                })
                .collect();
            let others: Vec<Vec<u8>> = SchemaKind::ALL
                .iter()
                .map(|&other| {
                    let event = marked_event(&mut generator, other);
                    encode(&event, format, &mut rng)
                })
                .collect();
            let mut tally = Tally::default();
            for _ in 0..runs {
                let mut payload = if rng.gen_ratio(1, 20) {
                    (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect()
                } else {
                    seeds[rng.gen_range(0..seeds.len())].clone()
                };
                let other = &others[rng.gen_range(0..others.len())];
                for _ in 0..rng.gen_range(1..=4) {
                    mutate(&mut payload, other, &mut rng);
                }
                tally.runs += 1;
                match std::panic::catch_unwind(AssertUnwindSafe(|| decoder.decode(Some(&payload))))
                {
                    Err(_) => {
                        tally.panics += 1;
                        if tally.violations.len() < 5 {
                            tally
                                .violations
                                .push(format!("panic on {} bytes", payload.len()));
                        }
                    }
                    Ok(Ok(_)) => tally.accepted += 1,
                    Ok(Err(failure)) => {
                        let code = failure.reason.code();
                        *tally.reasons.entry(code).or_default() += 1;
                        let bad = !codes.contains(&code)
                            || failure.detail.chars().count() > MAX_DETAIL_CHARS
                            || failure.detail.contains(MARKER);
                        if bad && tally.violations.len() < 5 {
                            tally.violations.push(format!("{code}: {}", failure.detail));
                        }
                    }
                }
            }
            total_runs += tally.runs;
            total_panics += tally.panics;
            total_violations += tally.violations.len();
            println!(
                "{}",
                serde_json::json!({
                    "format": format_name,
                    "schema": kind.name(),
                    "runs": tally.runs,
                    "accepted": tally.accepted,
                    "reasons": tally.reasons,
                    "panics": tally.panics,
                    "violations": tally.violations,
                })
            );
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "total_runs": total_runs,
            "panics": total_panics,
            "violations": total_violations,
            "elapsed_secs": started.elapsed().as_secs_f64(),
        })
    );
    if total_panics > 0 || total_violations > 0 {
        std::process::exit(1);
    }
}
