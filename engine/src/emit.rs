//! The emitter: produces output records and turns broker acknowledgements into offset progress.
//!
//! Guarantee: every record handed to [`Emitter::send`] is acknowledged by the broker, retried,
//! or handed to the [`RefusalHandler`] — never dropped silently. Delivery reports arrive on
//! librdkafka's polling thread (the [`ThreadedProducer`]); a success acknowledges the input in
//! the [`OffsetTracker`]. Failures are classified ([`classify`]):
//! - *transient* (broker down, timeouts, leader changes): counted, logged without payload,
//!   queued for another send after a backoff; the partition's commits wait meanwhile;
//! - *record refused* (too large for the producer or the broker, invalid record): retrying
//!   cannot help, so the handler may replace the record with a dead letter for its input
//!   (sent for the same input, so the input is acknowledged once that is delivered); a dead
//!   letter itself is never replaced: its topic is then treated as unwritable;
//! - *topic unwritable* (authorization, invalid or unknown topic): the handler stops the
//!   input's binding and marks the engine not ready; the record is not retried and its input
//!   stays uncommitted.
//!
//! The same classification applies when librdkafka refuses a record at enqueue.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::sync::Weak;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};

use crate::offsets::{OffsetTracker, TrackedInput};
use crate::telemetry;

/// Pause before re-sending a record whose delivery failed; doubles up to [`MAX_RETRY_BACKOFF`].
const FIRST_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Upper bound of the retry backoff: long enough not to hammer a sick broker, short enough to
/// resume quickly once it heals.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);
/// Pause when librdkafka's local queue is full; its polling thread drains it meanwhile.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);

/// Travels with each produced record and comes back in its delivery report.
#[derive(Debug, Clone)]
pub struct DeliveryToken {
    /// The input this record belongs to; `None` for timer records not tied to an input.
    pub input: Option<TrackedInput>,
    /// Failed attempts so far, for the backoff.
    pub attempts: u32,
    /// For a dead letter, its reason code: counted in `threatflow_dead_letters_total` when the
    /// broker acknowledges it, so the metric counts records written, not records attempted.
    pub dead_letter_reason: Option<&'static str>,
}

/// How a produce failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// May succeed later: retry with backoff.
    Transient,
    /// This record can never be written (too large, invalid): replace it or give up on it.
    RecordRefused,
    /// The topic cannot be written by this engine (authorization, invalid or unknown topic).
    TopicUnwritable,
}

/// Classifies a produce error (at enqueue or in a delivery report).
pub fn classify(error: &KafkaError) -> FailureClass {
    let code = match error {
        KafkaError::MessageProduction(code) => *code,
        _ => return FailureClass::Transient,
    };
    match code {
        RDKafkaErrorCode::MessageSizeTooLarge
        | RDKafkaErrorCode::MessageBatchTooLarge
        | RDKafkaErrorCode::InvalidRecord => FailureClass::RecordRefused,
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed
        | RDKafkaErrorCode::InvalidTopic
        | RDKafkaErrorCode::UnknownTopic
        | RDKafkaErrorCode::PolicyViolation => FailureClass::TopicUnwritable,
        _ => FailureClass::Transient,
    }
}

/// A record to send in place of one that was refused.
#[derive(Debug)]
pub struct Replacement {
    /// Reason code of the dead letter it is.
    pub reason: &'static str,
    /// Destination topic (the dead-letter topic).
    pub topic: String,
    /// Record key.
    pub key: Vec<u8>,
    /// Record value.
    pub payload: Vec<u8>,
}

/// Decides what happens to records the broker or librdkafka refuses for good.
pub trait RefusalHandler: Send + Sync {
    /// `topic` refused this record (too large, invalid): return a replacement (a dead letter
    /// for the input, without its payload) or `None` to give up on the record, leaving its
    /// input uncommitted. Never called for a dead letter (that goes to `topic_unwritable`).
    fn record_refused(
        &self,
        topic: &str,
        token: &DeliveryToken,
        error: &KafkaError,
    ) -> Option<Replacement>;

    /// `topic` cannot be written at all: stop the input's binding, report not ready.
    fn topic_unwritable(&self, topic: &str, token: &DeliveryToken, error: &KafkaError);
}

/// A record to (re-)send, owned.
#[derive(Debug)]
struct RetryRecord {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    token: DeliveryToken,
    /// When the record may be sent again.
    due: Instant,
}

/// Producer context: acknowledgements into the tracker, failures into the retry queue or the
/// refusal handler.
pub struct EmitterContext {
    tracker: Arc<OffsetTracker>,
    retries: Sender<RetryRecord>,
    refusals: Arc<dyn RefusalHandler>,
}

impl ClientContext for EmitterContext {}

impl ProducerContext for EmitterContext {
    type DeliveryOpaque = Box<DeliveryToken>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                if let Some(input) = &token.input {
                    self.tracker.acknowledge(input);
                    if let Some(reason) = token.dead_letter_reason {
                        metrics::counter!(
                            telemetry::DEAD_LETTERS,
                            "reason" => reason,
                            "topic" => input.partition.topic.clone()
                        )
                        .increment(1);
                    }
                }
            }
            Err((error, message)) => {
                metrics::counter!(telemetry::PRODUCE_ERRORS, "topic" => message.topic().to_owned())
                    .increment(1);
                if classify(error) != FailureClass::Transient {
                    refuse(
                        &*self.refusals,
                        &self.retries,
                        message.topic(),
                        &token,
                        error,
                    );
                    return;
                }
                tracing::warn!(
                    topic = message.topic(),
                    %error,
                    attempts = token.attempts + 1,
                    "output delivery failed; will retry"
                );
                let retry = RetryRecord {
                    topic: message.topic().to_owned(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    token: DeliveryToken {
                        input: token.input.clone(),
                        attempts: token.attempts + 1,
                        dead_letter_reason: token.dead_letter_reason,
                    },
                    due: Instant::now() + retry_backoff(token.attempts),
                };
                // The receiver lives as long as the emitter; if it is gone the process is
                // shutting down and the input stays uncommitted, to be re-read: not lost.
                let _receiver_alive = self.retries.send(retry);
            }
        }
    }
}

/// Produces output records; cheap to share between worker threads.
pub struct Emitter {
    producer: Arc<ThreadedProducer<EmitterContext>>,
}

impl Emitter {
    /// Creates the producer from `client_config` and starts the retry thread; records refused
    /// for good go to `refusals`.
    pub fn new(
        client_config: &ClientConfig,
        tracker: Arc<OffsetTracker>,
        refusals: Arc<dyn RefusalHandler>,
    ) -> Result<Self, KafkaError> {
        let (retries, retry_queue) = mpsc::channel();
        let context = EmitterContext {
            tracker,
            retries,
            refusals,
        };
        let producer: Arc<ThreadedProducer<EmitterContext>> =
            Arc::new(client_config.create_with_context(context)?);
        let retry_producer = Arc::downgrade(&producer);
        // Detached: it ends by itself when the producer (and with it the queue's sender,
        // held by the context) is dropped.
        std::thread::Builder::new()
            .name("threatflow-retry".into())
            .spawn(move || run_retries(retry_queue, retry_producer))
            .map_err(|error| KafkaError::ClientCreation(error.to_string()))?;
        Ok(Self { producer })
    }

    /// Enqueues one record; waits (briefly, repeatedly) while librdkafka's queue is full, so
    /// a slow broker slows the operators down instead of growing memory.
    pub fn send(&self, topic: &str, key: Option<&[u8]>, payload: &[u8], token: DeliveryToken) {
        send_with_backpressure::<[u8]>(&self.producer, topic, key, payload, token);
    }

    /// Waits until every enqueued record is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// Records enqueued in librdkafka and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

/// Backoff before the attempt after `failed_attempts` failures: 100 ms doubling to 5 s.
fn retry_backoff(failed_attempts: u32) -> Duration {
    FIRST_RETRY_BACKOFF
        .saturating_mul(2u32.saturating_pow(failed_attempts.min(16)))
        .min(MAX_RETRY_BACKOFF)
}

/// Re-sends failed records once their backoff has passed, in failure order. Records that
/// failed together become due together, so a burst of failures costs one backoff, not one
/// per record.
fn run_retries(queue: Receiver<RetryRecord>, producer: Weak<ThreadedProducer<EmitterContext>>) {
    while let Ok(record) = queue.recv() {
        let now = Instant::now();
        if record.due > now {
            std::thread::sleep(record.due - now);
        }
        let Some(producer) = producer.upgrade() else {
            return;
        };
        send_with_backpressure(
            &producer,
            &record.topic,
            record.key.as_deref(),
            &record.payload,
            record.token,
        );
    }
}

fn send_with_backpressure<K: ToBytes + ?Sized>(
    producer: &ThreadedProducer<EmitterContext>,
    topic: &str,
    key: Option<&K>,
    payload: &[u8],
    token: DeliveryToken,
) {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(token)).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    let mut refused = 0u32;
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(QUEUE_FULL_PAUSE);
            }
            Err((error, returned)) => {
                metrics::counter!(telemetry::PRODUCE_ERRORS, "topic" => topic.to_owned())
                    .increment(1);
                if classify(&error) != FailureClass::Transient {
                    let context = producer.context();
                    refuse(
                        &*context.refusals,
                        &context.retries,
                        topic,
                        &returned.delivery_opaque,
                        &error,
                    );
                    return;
                }
                // Refused at enqueue for a reason that may pass (e.g. a local queue or
                // metadata state): keep the record and try again with backoff. Blocking here
                // is deliberate: it slows the worker down instead of piling records up.
                tracing::warn!(topic, %error, attempts = refused + 1, "output enqueue failed; will retry");
                record = returned;
                std::thread::sleep(retry_backoff(refused));
                refused = refused.saturating_add(1);
            }
        }
    }
}

/// What happens to a record refused for good, at enqueue or in a delivery report (the
/// caller classified `error` as not transient). A refused record may be replaced once by a dead
/// letter for its input, queued for sending like a retry; a dead letter is never replaced —
/// if its topic cannot take it, that topic is unwritable — so there is no second round.
fn refuse(
    refusals: &dyn RefusalHandler,
    retries: &Sender<RetryRecord>,
    topic: &str,
    token: &DeliveryToken,
    error: &KafkaError,
) {
    let replaceable =
        classify(error) == FailureClass::RecordRefused && token.dead_letter_reason.is_none();
    if !replaceable {
        refusals.topic_unwritable(topic, token, error);
        return;
    }
    if let Some(replacement) = refusals.record_refused(topic, token, error) {
        // The receiver lives as long as the emitter; if it is gone the process is shutting
        // down and the input stays uncommitted, to be re-read: not lost.
        let _receiver_alive = retries.send(RetryRecord {
            topic: replacement.topic,
            key: Some(replacement.key),
            payload: replacement.payload,
            token: DeliveryToken {
                input: token.input.clone(),
                attempts: 0,
                dead_letter_reason: Some(replacement.reason),
            },
            due: Instant::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_errors_are_classified() {
        let production = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            classify(&production(RDKafkaErrorCode::MessageSizeTooLarge)),
            FailureClass::RecordRefused
        );
        assert_eq!(
            classify(&production(RDKafkaErrorCode::TopicAuthorizationFailed)),
            FailureClass::TopicUnwritable
        );
        assert_eq!(
            classify(&production(RDKafkaErrorCode::InvalidTopic)),
            FailureClass::TopicUnwritable
        );
        assert_eq!(
            classify(&production(RDKafkaErrorCode::RequestTimedOut)),
            FailureClass::Transient
        );
        assert_eq!(
            classify(&production(RDKafkaErrorCode::NotLeaderForPartition)),
            FailureClass::Transient
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(retry_backoff(0), Duration::from_millis(100));
        assert_eq!(retry_backoff(1), Duration::from_millis(200));
        assert_eq!(retry_backoff(3), Duration::from_millis(800));
        assert_eq!(retry_backoff(10), MAX_RETRY_BACKOFF);
        assert_eq!(retry_backoff(u32::MAX), MAX_RETRY_BACKOFF);
    }
}
