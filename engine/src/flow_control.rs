//! Flow control of the input partitions: which topics are paused, and how much input may be
//! in flight per binding.
//!
//! A binding's partitions are paused (Kafka `pause`, never a blocked poll) while any of:
//! - *backlog*: its worker's queue is full ([`crate::dispatch`]);
//! - *inflight*: more inputs are read but not fully acknowledged than its **in-flight
//!   budget** = max(`pipeline.min_inflight_events`, consumed rate × `pipeline.max_inflight_ms`).
//!   This bounds what a crash re-processes to about `max_inflight_ms` of input at the rate
//!   the binding actually sustains (plus one commit interval), whatever the operator's speed:
//!   a prompt binding at 400/s holds ~400 inputs, a flow binding at 6k/s ~6k;
//! - *stopped*: an output topic of the binding cannot be written ([`Health::stop_binding`]).
//!
//! The rate is an exponentially weighted average of completed inputs per second, sampled every
//! [`RATE_SAMPLE`] while the binding has work; an idle binding keeps its last estimate, so a
//! burst after a quiet spell starts at the previous speed. The batch limit follows the budget
//! (half of it), so one batch is scored while the next fills.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::dispatch::Dispatcher;
use crate::health::Health;
use crate::offsets::OffsetTracker;
use crate::telemetry;

/// How often the consumed rate is sampled.
pub const RATE_SAMPLE: Duration = Duration::from_secs(1);
/// Weight of the newest rate sample in the average.
const RATE_SMOOTHING: f64 = 0.5;

/// Why a topic is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseCause {
    /// The worker's queue is full.
    Backlog,
    /// Over the in-flight budget.
    Inflight,
    /// An output topic cannot be written.
    Stopped,
}

impl PauseCause {
    fn label(self) -> &'static str {
        match self {
            Self::Backlog => "backlog",
            Self::Inflight => "inflight",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Default)]
struct TopicFlow {
    rate_per_second: f64,
    last_completed: u64,
    paused: Option<PauseCause>,
}

/// The poll loop's flow control state.
pub struct FlowControl {
    topics: HashMap<String, TopicFlow>,
    max_inflight: Duration,
    min_inflight: usize,
    last_sample: Instant,
    assignment_epoch: u64,
}

impl FlowControl {
    /// Flow control for `topics` with the pipeline's in-flight settings.
    pub fn new(topics: &[String], max_inflight: Duration, min_inflight: usize) -> Self {
        Self {
            topics: topics
                .iter()
                .map(|topic| (topic.clone(), TopicFlow::default()))
                .collect(),
            max_inflight,
            min_inflight,
            last_sample: Instant::now(),
            assignment_epoch: 0,
        }
    }

    /// The in-flight budget at `rate_per_second`.
    pub fn budget(&self, rate_per_second: f64) -> usize {
        inflight_budget(rate_per_second, self.max_inflight, self.min_inflight)
    }

    /// Re-evaluates every topic: pauses or resumes its partitions, adjusts its batch limit.
    /// `assignment_epoch` changes after each rebalance; pauses are then re-applied, since
    /// newly assigned partitions start unpaused.
    pub fn update<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        dispatcher: &Dispatcher,
        tracker: &OffsetTracker,
        health: &Health,
        assignment_epoch: u64,
    ) {
        let progress = tracker.progress_by_topic();
        let stopped = health.stopped_bindings();
        let sample_due = self.last_sample.elapsed() >= RATE_SAMPLE;
        let elapsed = self.last_sample.elapsed().as_secs_f64();
        if sample_due {
            self.last_sample = Instant::now();
        }
        let reassigned = assignment_epoch != self.assignment_epoch;
        self.assignment_epoch = assignment_epoch;
        let mut to_pause: HashSet<String> = HashSet::new();
        let mut to_resume: HashSet<String> = HashSet::new();
        let min_inflight = self.min_inflight;
        let max_inflight = self.max_inflight;
        for (topic, flow) in self.topics.iter_mut() {
            let (in_flight, completed) = progress.get(topic).copied().unwrap_or((0, 0));
            if sample_due {
                // The counter restarts when partitions are reassigned; a drop is no progress.
                let done = completed.saturating_sub(flow.last_completed);
                let busy = in_flight > 0 || done > 0;
                if busy && elapsed > 0.0 {
                    let sample = done as f64 / elapsed;
                    flow.rate_per_second = if flow.rate_per_second == 0.0 {
                        sample
                    } else {
                        RATE_SMOOTHING * sample + (1.0 - RATE_SMOOTHING) * flow.rate_per_second
                    };
                }
                flow.last_completed = completed;
            }
            let budget = inflight_budget(flow.rate_per_second, max_inflight, min_inflight);
            dispatcher.set_batch_limit(topic, budget.div_ceil(2));
            metrics::gauge!(telemetry::INFLIGHT_BUDGET, "topic" => topic.clone())
                .set(budget as f64);
            let cause = if stopped.contains_key(topic) {
                Some(PauseCause::Stopped)
            } else if dispatcher.is_blocked(topic) {
                Some(PauseCause::Backlog)
            } else if in_flight >= budget {
                Some(PauseCause::Inflight)
            } else {
                None
            };
            match (flow.paused, cause) {
                (None, Some(_)) => {
                    to_pause.insert(topic.clone());
                }
                (Some(_), None) => {
                    to_resume.insert(topic.clone());
                }
                (Some(_), Some(_)) if reassigned => {
                    to_pause.insert(topic.clone());
                }
                // librdkafka keeps a partition's pause flag across revoke and re-assign: a
                // partition paused before a rebalance comes back paused even if we resumed
                // "everything" while it was not assigned. After every rebalance the wanted
                // state is applied to the whole new assignment.
                (None, None) if reassigned => {
                    to_resume.insert(topic.clone());
                }
                _ => {}
            }
            if flow.paused != cause {
                if let Some(previous) = flow.paused {
                    metrics::gauge!(telemetry::PAUSED_PARTITIONS, "topic" => topic.clone(), "cause" => previous.label()).set(0.0);
                }
                if let Some(now) = cause {
                    metrics::gauge!(telemetry::PAUSED_PARTITIONS, "topic" => topic.clone(), "cause" => now.label()).set(1.0);
                }
            }
            flow.paused = cause;
        }
        if to_pause.is_empty() && to_resume.is_empty() {
            return;
        }
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let select = |topics: &HashSet<String>| {
            let mut list = TopicPartitionList::new();
            for element in assignment.elements() {
                if topics.contains(element.topic()) {
                    list.add_partition(element.topic(), element.partition());
                }
            }
            list
        };
        if !to_pause.is_empty() {
            let list = select(&to_pause);
            if list.count() > 0 {
                if let Err(error) = consumer.pause(&list) {
                    tracing::warn!(%error, "pausing partitions failed");
                }
            }
        }
        if !to_resume.is_empty() {
            let list = select(&to_resume);
            if list.count() > 0 {
                if let Err(error) = consumer.resume(&list) {
                    tracing::warn!(%error, "resuming partitions failed");
                }
            }
        }
    }

    /// Whether `topic` is paused now, and why.
    pub fn paused(&self, topic: &str) -> Option<PauseCause> {
        self.topics.get(topic).and_then(|flow| flow.paused)
    }
}

/// max(`min_inflight`, `rate_per_second` × `max_inflight`).
fn inflight_budget(rate_per_second: f64, max_inflight: Duration, min_inflight: usize) -> usize {
    let by_rate = (rate_per_second * max_inflight.as_secs_f64()).round() as usize;
    by_rate.max(min_inflight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_about_max_inflight_of_input_with_a_floor() {
        let flow = FlowControl::new(&["t".to_owned()], Duration::from_millis(1000), 100);
        assert_eq!(flow.budget(0.0), 100);
        assert_eq!(flow.budget(400.0), 400);
        assert_eq!(flow.budget(6_400.0), 6_400);
        let half = FlowControl::new(&["t".to_owned()], Duration::from_millis(500), 10);
        assert_eq!(half.budget(6_400.0), 3_200);
    }
}
