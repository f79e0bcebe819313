//! Rate-limited logging of dead letters: a burst of bad input must not flood the log (or bury
//! a console's progress display) with one line per record.
//!
//! The first dead letter of each (topic, reason) in an interval is logged at once, with its
//! coordinates; the rest are counted and summarised in one line per interval with counts by
//! topic and reason. Lines never carry the payload or the detail (which names fields only,
//! but is still meant for the dead-letter record). The metric
//! `threatflow_dead_letters_total` counts every record; this only limits the log.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Interval of the summary line; also how often the same (topic, reason) is logged in full.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Window {
    started: Instant,
    /// (topic, reason) → dead letters in this interval.
    counts: BTreeMap<(String, &'static str), u64>,
}

/// Shared by every worker of the engine.
#[derive(Debug)]
pub struct DeadLetterLog {
    interval: Duration,
    window: Mutex<Window>,
}

impl Default for DeadLetterLog {
    fn default() -> Self {
        Self::new(SUMMARY_INTERVAL)
    }
}

/// What [`DeadLetterLog::record`] decided for one dead letter.
#[derive(Debug, PartialEq, Eq)]
pub enum LogDecision {
    /// First of its (topic, reason) in this interval: log it in full.
    LogLine,
    /// Counted into the next summary.
    Counted,
}

impl DeadLetterLog {
    /// A log that summarises every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            window: Mutex::new(Window {
                started: Instant::now(),
                counts: BTreeMap::new(),
            }),
        }
    }

    /// Counts one dead letter; logs it when it is the first of its kind in the interval, and
    /// the summary of the previous interval when that one is over.
    pub fn record(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        reason: &'static str,
        bytes: usize,
    ) -> LogDecision {
        let mut window = self.lock();
        self.summarise_if_due(&mut window);
        let count = window.counts.entry((topic.to_owned(), reason)).or_insert(0);
        *count += 1;
        if *count == 1 {
            tracing::warn!(
                topic,
                partition,
                offset,
                reason,
                bytes,
                "input dead-lettered (further ones of this topic and reason are summarised every {} s)",
                self.interval.as_secs()
            );
            LogDecision::LogLine
        } else {
            LogDecision::Counted
        }
    }

    /// Logs the summary if the interval is over (called from the poll loop too, so a burst's
    /// summary appears even when no more dead letters follow).
    pub fn flush_if_due(&self) {
        let mut window = self.lock();
        self.summarise_if_due(&mut window);
    }

    fn summarise_if_due(&self, window: &mut Window) {
        if window.started.elapsed() < self.interval {
            return;
        }
        let counts = std::mem::take(&mut window.counts);
        window.started = Instant::now();
        let total: u64 = counts.values().sum();
        // Only worth a line when something was counted beyond the lines already logged.
        if total > counts.len() as u64 {
            let by_topic_and_reason: Vec<String> = counts
                .iter()
                .map(|((topic, reason), count)| format!("{topic}/{reason}={count}"))
                .collect();
            tracing::warn!(
                total,
                interval_s = self.interval.as_secs(),
                counts = by_topic_and_reason.join(" "),
                "dead letters in the last interval"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        crate::sync::lock(&self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_of_each_topic_and_reason_per_interval_is_a_line() {
        let log = DeadLetterLog::new(Duration::from_secs(3600));
        assert_eq!(
            log.record("a", 0, 1, "undecodable", 10),
            LogDecision::LogLine
        );
        for offset in 2..1000 {
            assert_eq!(
                log.record("a", 0, offset, "undecodable", 10),
                LogDecision::Counted
            );
        }
        assert_eq!(log.record("a", 0, 5, "oversized", 10), LogDecision::LogLine);
        assert_eq!(
            log.record("b", 0, 5, "undecodable", 10),
            LogDecision::LogLine
        );
    }

    #[test]
    fn a_new_interval_logs_again() {
        let log = DeadLetterLog::new(Duration::ZERO);
        assert_eq!(
            log.record("a", 0, 1, "undecodable", 10),
            LogDecision::LogLine
        );
        assert_eq!(
            log.record("a", 0, 2, "undecodable", 10),
            LogDecision::LogLine
        );
    }
}
