//! Load measurements of the prompt path, for `threatflow bench prompt` (figures go to
//! BENCHMARKS.md, never into pass/fail tests).
//!
//! - [`direct`]: the bare L2 path — tokenize a batch, pad to its longest sequence, run the
//!   session — over fixed consecutive batches of a prompt file, per batch size. The same
//!   batches are what `loadtest/prompt_l2_python.py` runs through Python onnxruntime +
//!   tokenizers, so the two are comparable call for call.
//! - [`open_loop`]: the whole operator path (normalize + L1 + L2 through the dynamic batcher)
//!   under a fixed arrival rate from concurrent callers. Latency is measured from each
//!   prompt's *scheduled* arrival, so a stalled scorer shows up as queueing instead of being
//!   hidden by a closed loop (no coordinated omission).

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::batcher::BatcherStats;
use super::eval::percentile;
use super::l2::{self, L2Error, L2Model, SessionSettings};
use super::PromptScorer;

/// Figures of one batch size on the bare L2 path.
#[derive(Debug, Clone, Serialize)]
pub struct DirectFigures {
    /// Prompts per batch.
    pub batch: usize,
    /// Batches timed.
    pub batches: usize,
    /// Median time per batch (tokenize + infer), milliseconds.
    pub median_batch_ms: f64,
    /// 95th percentile per batch, milliseconds.
    pub p95_batch_ms: f64,
    /// Prompts per second over all timed batches.
    pub prompts_per_second: f64,
}

/// Times tokenize + infer over consecutive batches of `texts`, `repeats` passes per size
/// (after one untimed warm-up batch).
pub fn direct(
    version_dir: &Path,
    settings: &SessionSettings,
    texts: &[String],
    batch_sizes: &[usize],
    repeats: usize,
) -> Result<(String, Vec<DirectFigures>), L2Error> {
    let mut model = L2Model::load(version_dir, settings)?;
    // What the session really runs on: a CUDA request on a host without a usable GPU falls
    // back to the CPU, and a figure labelled with the request would mislead.
    let device = model.device_used().to_owned();
    // `score_directly` takes each prompt's first window: truncation at max_length, as the
    // Python side does.
    let tokenizer = l2::load_tokenizer(version_dir, model.manifest(), 1)?;
    let mut figures = Vec::new();
    for &batch in batch_sizes {
        let batch = batch.max(1);
        let mut timings_ms = Vec::new();
        let mut prompts = 0_usize;
        let mut total = Duration::ZERO;
        let mut score = |chunk: &[String]| -> Result<Duration, L2Error> {
            let started = Instant::now();
            l2::score_directly(&mut model, &tokenizer, chunk)?;
            Ok(started.elapsed())
        };
        if let Some(first) = texts.chunks(batch).next() {
            score(first)?;
        }
        for _ in 0..repeats.max(1) {
            for chunk in texts.chunks_exact(batch) {
                let elapsed = score(chunk)?;
                timings_ms.push(elapsed.as_secs_f64() * 1000.0);
                prompts += chunk.len();
                total += elapsed;
            }
        }
        timings_ms.sort_by(f64::total_cmp);
        figures.push(DirectFigures {
            batch,
            batches: timings_ms.len(),
            median_batch_ms: percentile(&timings_ms, 0.5),
            p95_batch_ms: percentile(&timings_ms, 0.95),
            prompts_per_second: prompts as f64 / total.as_secs_f64().max(1e-9),
        });
    }
    Ok((device, figures))
}

/// Figures of one open-loop load level.
#[derive(Debug, Clone, Serialize)]
pub struct LoadFigures {
    /// Arrival rate offered, prompts per second.
    pub offered_per_second: f64,
    /// Prompts completed per second.
    pub achieved_per_second: f64,
    /// Prompts completed.
    pub prompts: usize,
    /// Latency from scheduled arrival to verdict, median, milliseconds.
    pub p50_ms: f64,
    /// … 95th percentile.
    pub p95_ms: f64,
    /// … 99th percentile.
    pub p99_ms: f64,
    /// Mean sequences per L2 batch at this level.
    pub mean_batch: f64,
    /// Median queue wait in the batcher, milliseconds.
    pub queue_p50_ms: f64,
    /// Median inference time per L2 batch, milliseconds.
    pub inference_p50_ms: f64,
}

/// Offers `texts` (cycled) at `rate` prompts/s for `duration` from `callers` threads, each
/// scoring one prompt per call through the whole operator path.
pub fn open_loop(
    scorer: &PromptScorer,
    texts: &[String],
    rate: f64,
    duration: Duration,
    callers: usize,
) -> Result<LoadFigures, String> {
    if texts.is_empty() || rate <= 0.0 {
        return Err("open-loop load needs prompts and a positive rate".to_owned());
    }
    if let Some(batcher) = scorer.batcher() {
        batcher.reset_stats();
    }
    let total = ((rate * duration.as_secs_f64()).ceil() as usize).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (sender, receiver) = mpsc::channel::<(Instant, usize)>();
    let receiver = Arc::new(Mutex::new(receiver));
    let latencies = Mutex::new(Vec::with_capacity(total));
    let failure = Mutex::new(None::<String>);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..callers.max(1) {
            let receiver = Arc::clone(&receiver);
            let (latencies, failure) = (&latencies, &failure);
            scope.spawn(move || loop {
                let next = receiver
                    .lock()
                    .ok()
                    .and_then(|receiver| receiver.recv().ok());
                let Some((scheduled, index)) = next else {
                    break;
                };
                let text = texts[index % texts.len()].as_str();
                match scorer.assess_batch(&[text]) {
                    Ok(_) => {
                        let latency = scheduled.elapsed().as_secs_f64() * 1000.0;
                        if let Ok(mut latencies) = latencies.lock() {
                            latencies.push(latency);
                        }
                    }
                    Err(error) => {
                        if let Ok(mut failure) = failure.lock() {
                            *failure = Some(error.to_string());
                        }
                    }
                }
            });
        }
        for index in 0..total {
            let scheduled = started + interval.mul_f64(index as f64);
            if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if sender.send((scheduled, index)).is_err() {
                break;
            }
        }
        drop(sender);
    });
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(error) = failure.into_inner().ok().flatten() {
        return Err(error);
    }
    let mut latencies = latencies
        .into_inner()
        .map_err(|_| "latency lock poisoned".to_owned())?;
    latencies.sort_by(f64::total_cmp);
    let (mean_batch, queue_p50_ms, inference_p50_ms) =
        scorer.batcher().map_or((0.0, 0.0, 0.0), |batcher| {
            let stats = batcher.stats();
            (
                stats.mean_batch(),
                BatcherStats::median(&stats.queue_ms),
                BatcherStats::median(&stats.inference_ms),
            )
        });
    Ok(LoadFigures {
        offered_per_second: rate,
        achieved_per_second: latencies.len() as f64 / elapsed.max(1e-9),
        prompts: latencies.len(),
        p50_ms: percentile(&latencies, 0.5),
        p95_ms: percentile(&latencies, 0.95),
        p99_ms: percentile(&latencies, 0.99),
        mean_batch,
        queue_p50_ms,
        inference_p50_ms,
    })
}
