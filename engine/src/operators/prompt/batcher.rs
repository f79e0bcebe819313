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

use hdrhistogram::Histogram;

use super::l2::{L2Error, L2Model, Sequence};
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

/// Percentiles kept in process (microseconds; batch sizes in sequences).
#[derive(Debug, Clone)]
pub struct BatcherStats {
    /// Time each sequence waited in the queue.
    pub queue_us: Histogram<u64>,
    /// Inference time of each batch.
    pub inference_us: Histogram<u64>,
    /// Sequences per batch.
    pub batch_size: Histogram<u64>,
}

impl BatcherStats {
    fn new() -> Result<Self, L2Error> {
        let histogram =
            || Histogram::new(3).map_err(|error| L2Error::Inference(format!("histogram: {error}")));
        Ok(Self {
            queue_us: histogram()?,
            inference_us: histogram()?,
            batch_size: histogram()?,
        })
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
        let stats = Arc::new(Mutex::new(BatcherStats::new()?));
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

    /// A copy of the in-process latency percentiles so far.
    pub fn stats(&self) -> BatcherStats {
        self.stats
            .lock()
            .map(|stats| stats.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Clears the in-process percentiles (between load levels of a benchmark).
    pub fn reset_stats(&self) {
        if let (Ok(mut stats), Ok(fresh)) = (self.stats.lock(), BatcherStats::new()) {
            *stats = fresh;
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

fn run(
    mut model: L2Model,
    receiver: mpsc::Receiver<Request>,
    settings: BatcherSettings,
    stats: &Mutex<BatcherStats>,
) {
    let max_batch = settings.max_batch.max(1);
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
        run_batch(&mut model, batch, stats);
    }
}

fn run_batch(model: &mut L2Model, batch: Vec<Request>, stats: &Mutex<BatcherStats>) {
    let started = Instant::now();
    let queue_waits: Vec<Duration> = batch
        .iter()
        .map(|request| started.saturating_duration_since(request.enqueued))
        .collect();
    let sequences: Vec<&Sequence> = batch.iter().map(|request| &request.sequence).collect();
    let result = model.infer(&sequences);
    let inference = started.elapsed();
    metrics::histogram!(telemetry::PROMPT_INFERENCE_DURATION).record(inference.as_secs_f64());
    metrics::histogram!(telemetry::PROMPT_L2_BATCH_SIZE).record(batch.len() as f64);
    for wait in &queue_waits {
        metrics::histogram!(telemetry::PROMPT_QUEUE_DURATION).record(wait.as_secs_f64());
    }
    if let Ok(mut stats) = stats.lock() {
        for wait in &queue_waits {
            stats.queue_us.saturating_record(duration_us(*wait));
        }
        stats.inference_us.saturating_record(duration_us(inference));
        stats.batch_size.saturating_record(batch.len() as u64);
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

fn duration_us(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
