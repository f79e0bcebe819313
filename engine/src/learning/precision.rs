//! Live precision: of the events the engine alerted on and an analyst judged, the share that
//! were threats — per operator and model version, over a sliding window of the latest
//! verdicts. Below the alarm level (seed 001's 85 %) with enough verdicts in the window, one
//! `precision_drop` drift record is raised; the alarm re-arms when precision recovers.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// A precision alarm to publish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrecisionDrop {
    /// Operator.
    pub operator: String,
    /// Model version.
    pub model_version: String,
    /// Precision in the window.
    pub precision: f64,
    /// Alerting verdicts in the window.
    pub verdicts: usize,
}

#[derive(Debug, Default)]
struct Window {
    outcomes: VecDeque<bool>,
    threats: usize,
    alarmed: bool,
}

/// Live precision per (operator, model version).
#[derive(Debug)]
pub struct LivePrecision {
    window: usize,
    min_verdicts: usize,
    alarm: f64,
    windows: BTreeMap<(String, String), Window>,
}

impl LivePrecision {
    /// Windows of `window` alerting verdicts; judged from `min_verdicts`; alarm below `alarm`.
    pub fn new(window: usize, min_verdicts: usize, alarm: f64) -> Self {
        Self {
            window,
            min_verdicts,
            alarm,
            windows: BTreeMap::new(),
        }
    }

    /// Records a verdict on an event `version` alerted on; returns the alarm when precision
    /// falls below the level.
    pub fn record(&mut self, operator: &str, version: &str, threat: bool) -> Option<PrecisionDrop> {
        let window = self
            .windows
            .entry((operator.to_owned(), version.to_owned()))
            .or_default();
        window.outcomes.push_back(threat);
        window.threats += usize::from(threat);
        if window.outcomes.len() > self.window {
            let dropped = window.outcomes.pop_front().unwrap_or(false);
            window.threats -= usize::from(dropped);
        }
        let verdicts = window.outcomes.len();
        let precision = window.threats as f64 / verdicts as f64;
        metrics::gauge!(crate::telemetry::LIVE_PRECISION, "operator" => operator.to_owned(), "model_version" => version.to_owned())
            .set(precision);
        if verdicts < self.min_verdicts {
            return None;
        }
        if precision >= self.alarm {
            window.alarmed = false;
            return None;
        }
        if window.alarmed {
            return None;
        }
        window.alarmed = true;
        Some(PrecisionDrop {
            operator: operator.to_owned(),
            model_version: version.to_owned(),
            precision,
            verdicts,
        })
    }

    /// Per version of `operator`: precision and alerting verdicts in the window.
    pub fn describe(&self, operator: &str) -> serde_json::Value {
        serde_json::Value::Object(
            self.windows
                .iter()
                .filter(|((name, _), _)| name == operator)
                .map(|((_, version), window)| {
                    let verdicts = window.outcomes.len();
                    (
                        version.clone(),
                        serde_json::json!({
                            "precision": window.threats as f64 / verdicts.max(1) as f64,
                            "verdicts": verdicts,
                            "alarm": window.alarmed,
                        }),
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_fires_once_below_the_level_and_rearms_on_recovery() {
        let mut live = LivePrecision::new(10, 5, 0.85);
        for _ in 0..4 {
            assert_eq!(live.record("flow", "v1", false), None, "too few verdicts");
        }
        let drop = live
            .record("flow", "v1", false)
            .expect("0 % precision alarms");
        assert_eq!((drop.verdicts, drop.precision), (5, 0.0));
        assert_eq!(live.record("flow", "v1", false), None, "once per drop");
        for _ in 0..10 {
            live.record("flow", "v1", true);
        }
        assert_eq!(live.describe("flow")["v1"]["precision"], 1.0);
        assert!(
            live.record("flow", "v1", false).is_none(),
            "0.9 is above 0.85"
        );
        assert!(
            live.record("flow", "v1", false).is_some(),
            "0.8 alarms again"
        );
        assert!(
            live.record("flow", "v2", true).is_none(),
            "versions are separate"
        );
    }
}
