//! The L2 dynamic batcher: one thread owns the ONNX Runtime session; callers queue token
//! sequences and wait for their probabilities.
//!
//! A batch runs when it holds `max_batch` sequences or when its oldest sequence has waited
//! `max_wait`, whichever comes first; sequences already queued when the deadline passes join
//! the batch (they cost no extra wait). The batch is padded to its longest sequence. The
//! queue is bounded (`queue_capacity`): when inference falls behind, callers block instead of
//! growing memory — backpressure reaches the Kafka consumer, which stops fetching.
//!
//! Latencies are recorded apart: time in the queue per sequence and inference time per batch
//! (Prometheus histograms, plus in-process percentiles for `eval` and the load test).
//! Guarantee: every queued sequence gets exactly one reply — a probability or the inference
//! error of its batch; when the thread is gone, callers get an error, never a hang.

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::l2::{L2Error, L2Model};
use super::window::Sequence;
use crate::telemetry;

/// Batching settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatcherSettings {
    /// Most sequences per batch.
    pub max_batch: usize,
    /// Longest time the oldest queued sequence waits for company.
    pub max_wait: Duration,
    /// Sequences that may wait in the queue before callers block.
    pub queue_capacity: usize,
}

struct Request {
    sequence: Sequence,
    enqueued: Instant,
    slot: usize,
    reply: mpsc::Sender<(usize, Result<f32, String>)>,
}

/// In-process samples for `eval`, the load test and benchmarks (Prometheus has the same
/// figures as histograms). At most [`MAX_SAMPLES`] of each are kept since the last reset, so
/// a long-running engine does not grow memory.
#[derive(Debug, Clone, Default)]
pub struct BatcherStats {
    /// Time each sequence waited in the queue, milliseconds.
    pub queue_ms: Vec<f64>,
    /// Inference time of each batch, milliseconds.
    pub inference_ms: Vec<f64>,
    /// Sequences per batch.
    pub batch_sizes: Vec<usize>,
}

/// Samples kept per series.
pub const MAX_SAMPLES: usize = 100_000;

impl BatcherStats {
    fn push<T>(series: &mut Vec<T>, value: T) {
        if series.len() < MAX_SAMPLES {
            series.push(value);
        }
    }

    /// Median of a series (0 when empty).
    pub fn median(series: &[f64]) -> f64 {
        let mut sorted = series.to_vec();
        sorted.sort_by(f64::total_cmp);
        super::eval::percentile(&sorted, 0.5)
    }

    /// Mean sequences per batch (0 when none ran).
    pub fn mean_batch(&self) -> f64 {
        if self.batch_sizes.is_empty() {
            return 0.0;
        }
        self.batch_sizes.iter().sum::<usize>() as f64 / self.batch_sizes.len() as f64
    }
}

/// Handle to the batcher thread; dropping it stops the thread after the queue drains.
pub struct Batcher {
    sender: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Mutex<BatcherStats>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batcher thread, which owns `model`.
    pub fn spawn(model: L2Model, settings: BatcherSettings) -> Result<Self, L2Error> {
        let (sender, receiver) = mpsc::sync_channel(settings.queue_capacity.max(1));
        let stats = Arc::new(Mutex::new(BatcherStats::default()));
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("prompt-l2-batcher".to_owned())
            .spawn(move || run(model, receiver, settings, &thread_stats))
            .map_err(|error| L2Error::Inference(format!("cannot start batcher: {error}")))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            stats,
        })
    }

    /// Queues `sequences` and waits for their attack probabilities, in order.
    pub fn score(&self, sequences: Vec<Sequence>) -> Result<Vec<f32>, L2Error> {
        let count = sequences.len();
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| L2Error::Inference("batcher stopped".to_owned()))?;
        let (reply, replies) = mpsc::channel();
        for (slot, sequence) in sequences.into_iter().enumerate() {
            let request = Request {
                sequence,
                enqueued: Instant::now(),
                slot,
                reply: reply.clone(),
            };
            sender
                .send(request)
                .map_err(|_| L2Error::Inference("batcher thread is gone".to_owned()))?;
        }
        drop(reply);
        let mut probabilities = vec![0.0_f32; count];
        for _ in 0..count {
            let (slot, result) = replies
                .recv()
                .map_err(|_| L2Error::Inference("batcher thread is gone".to_owned()))?;
            probabilities[slot] = result.map_err(L2Error::Inference)?;
        }
        Ok(probabilities)
    }

    /// A copy of the in-process samples so far.
    pub fn stats(&self) -> BatcherStats {
        self.stats
            .lock()
            .map(|stats| stats.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Clears the in-process samples (between load levels of a benchmark).
    pub fn reset_stats(&self) {
        if let Ok(mut stats) = self.stats.lock() {
            *stats = BatcherStats::default();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("prompt l2 batcher thread panicked");
            }
        }
    }
}

/// Fault injection for reliability tests: with this environment variable set to N, every L2
/// batch after the first N fails as if ONNX Runtime had (the error goes through the same path
/// as a real inference error). Unset in production.
pub const FAULT_INJECTION_ENV: &str = "THREATFLOW_FAULT_INJECT_L2_FAILURE_AFTER_BATCHES";

fn run(
    mut model: L2Model,
    receiver: mpsc::Receiver<Request>,
    settings: BatcherSettings,
    stats: &Mutex<BatcherStats>,
) {
    let max_batch = settings.max_batch.max(1);
    let mut fail_after: Option<u64> = std::env::var(FAULT_INJECTION_ENV)
        .ok()
        .and_then(|value| value.trim().parse().ok());
    if let Some(batches) = fail_after {
        tracing::warn!(
            batches,
            "l2 fault injection on: batches after this many fail"
        );
    }
    while let Ok(first) = receiver.recv() {
        let deadline = first.enqueued + settings.max_wait;
        let mut batch = Vec::with_capacity(max_batch);
        batch.push(first);
        while batch.len() < max_batch {
            let now = Instant::now();
            let next = if now >= deadline {
                receiver.try_recv().ok()
            } else {
                match receiver.recv_timeout(deadline - now) {
                    Ok(request) => Some(request),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => None,
                }
            };
            match next {
                Some(request) => batch.push(request),
                None => break,
            }
        }
        let inject_failure = match fail_after.as_mut() {
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        };
        run_batch(&mut model, batch, stats, inject_failure);
    }
}

fn run_batch(
    model: &mut L2Model,
    batch: Vec<Request>,
    stats: &Mutex<BatcherStats>,
    inject_failure: bool,
) {
    let started = Instant::now();
    let queue_waits: Vec<Duration> = batch
        .iter()
        .map(|request| started.saturating_duration_since(request.enqueued))
        .collect();
    let sequences: Vec<&Sequence> = batch.iter().map(|request| &request.sequence).collect();
    let result = if inject_failure {
        Err(L2Error::Inference("injected fault (test)".to_owned()))
    } else {
        model.infer(&sequences)
    };
    let inference = started.elapsed();
    metrics::histogram!(telemetry::PROMPT_INFERENCE_DURATION).record(inference.as_secs_f64());
    metrics::histogram!(telemetry::PROMPT_L2_BATCH_SIZE).record(batch.len() as f64);
    for wait in &queue_waits {
        metrics::histogram!(telemetry::PROMPT_QUEUE_DURATION).record(wait.as_secs_f64());
    }
    if let Ok(mut stats) = stats.lock() {
        for wait in &queue_waits {
            BatcherStats::push(&mut stats.queue_ms, wait.as_secs_f64() * 1000.0);
        }
        BatcherStats::push(&mut stats.inference_ms, inference.as_secs_f64() * 1000.0);
        BatcherStats::push(&mut stats.batch_sizes, batch.len());
    }
    match result {
        Ok(probabilities) => {
            for (request, probability) in batch.into_iter().zip(probabilities) {
                // A caller that gave up (dropped its receiver) is not an error here.
                let _ = request.reply.send((request.slot, Ok(probability)));
            }
        }
        Err(error) => {
            metrics::counter!(telemetry::PROMPT_L2_ERRORS).increment(batch.len() as u64);
            tracing::error!(%error, sequences = batch.len(), "prompt l2 batch failed");
            let message = error.to_string();
            for request in batch {
                let _ = request.reply.send((request.slot, Err(message.clone())));
            }
        }
    }
}
