//! The raw baseline: an rdkafka consume → produce loop with no decoding, scoring or offset
//! tracking beyond the minimum for at-least-once delivery. It reads the same input topics in
//! a consumer group, writes for each input a small JSON record naming its coordinates (what
//! the output reader accounts by) to the stream's output topic, and every 250 ms flushes the
//! producer and then commits the consumer's positions, so it loses nothing either. Its rate
//! on a broker is the ceiling any engine on that broker can approach.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

/// Set by SIGTERM: finish the current cycle, commit and exit.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// How often produced outputs are flushed and input positions committed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(250);

/// Runs the relay: `args` are `BROKERS GROUP INPUT=OUTPUT...`. Prints `ready` on stdout once
/// it holds partitions.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let [brokers, group, pairs @ ..] = args else {
        anyhow::bail!("usage: relay BROKERS GROUP INPUT=OUTPUT...");
    };
    let output_of: std::collections::HashMap<&str, &str> = pairs
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_terminate as *const () as libc::sighandler_t,
        );
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let inputs: Vec<&str> = output_of.keys().copied().collect();
    consumer.subscribe(&inputs)?;
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()?;
    let mut announced = false;
    let mut last_commit = Instant::now();
    let mut uncommitted = false;
    while !STOP.load(Ordering::SeqCst) {
        if !announced && consumer.assignment().is_ok_and(|list| list.count() > 0) {
            println!("ready");
            announced = true;
        }
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(20)) {
            let Some(output) = output_of.get(message.topic()) else {
                continue;
            };
            let timestamp = match message.timestamp() {
                Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
                Timestamp::NotAvailable => None,
            };
            let record = serde_json::json!({"source": {
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
                "timestamp_ms": timestamp,
            }})
            .to_string();
            let mut pending = BaseRecord::<[u8], str>::to(output).payload(&record);
            if let Some(key) = message.key() {
                pending = pending.key(key);
            }
            loop {
                match producer.send(pending) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        pending = back;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((error, _)) => anyhow::bail!("relay produce failed: {error}"),
                }
            }
            uncommitted = true;
        }
        if uncommitted && last_commit.elapsed() >= COMMIT_INTERVAL {
            producer.flush(Duration::from_secs(30))?;
            consumer.commit_consumer_state(CommitMode::Sync)?;
            uncommitted = false;
            last_commit = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(30))?;
    if uncommitted {
        consumer.commit_consumer_state(CommitMode::Sync)?;
    }
    Ok(())
}
