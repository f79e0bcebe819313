//! Score drift and operator health figures over windows of scored events.
//!
//! - **Score drift**: per alerting threshold (`thresholds_crossed`), the share of events over
//!   it. The first full window a model version scores is its reference; each later window is
//!   compared with a two-proportion z-test, Bonferroni-corrected across the thresholds seen
//!   (the same `drift.alpha` as the feature watch). A record per threshold, kind `score`.
//! - **Health**: an operator's own figures with alert levels, averaged over the window (the
//!   address operator's calibration health: boost rate, suppression rate, mean suppression,
//!   calibration usage). A record per figure out of bounds, kind `calibration_health`.

use std::collections::{BTreeMap, BTreeSet};

use statrs::distribution::{ContinuousCDF, Normal};

use crate::operators::table::HealthSpec;
use crate::scored::Scored;

/// One event's contribution to a window.
#[derive(Debug, Clone, Default)]
pub struct ScoreRow {
    /// Thresholds it crossed.
    pub crossed: Vec<String>,
    /// Its health values (the operator's [`HealthSpec::values`]).
    pub health: Vec<Option<f64>>,
}

impl ScoreRow {
    /// The row of `scored` under `health`.
    pub fn of(scored: &Scored, health: Option<&HealthSpec>) -> Self {
        Self {
            crossed: scored.thresholds_crossed.clone(),
            health: health.map(|spec| (spec.values)(scored)).unwrap_or_default(),
        }
    }
}

/// A finding of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreFinding {
    /// `score` or `calibration_health`.
    pub kind: &'static str,
    /// The threshold or the health figure.
    pub name: String,
    /// The window's share (score) or figure (health).
    pub value: f64,
    /// The reference share (score) or the alert level (health).
    pub reference: f64,
    /// p-value (score; 0 for health).
    pub p_value: f64,
    /// Whether it is out of bounds.
    pub drifted: bool,
}

/// One version's windows.
#[derive(Debug)]
pub struct ScoreWatch {
    alpha: f64,
    health: Option<HealthSpec>,
    reference: Option<(usize, BTreeMap<String, usize>)>,
    rows: usize,
    crossed: BTreeMap<String, usize>,
    sums: Vec<(f64, usize)>,
}

impl ScoreWatch {
    /// A watch testing at `alpha` with the operator's `health` figures.
    pub fn new(alpha: f64, health: Option<HealthSpec>) -> Self {
        Self {
            alpha,
            health,
            reference: None,
            rows: 0,
            crossed: BTreeMap::new(),
            sums: Vec::new(),
        }
    }

    /// Adds one event.
    pub fn observe(&mut self, row: &ScoreRow) {
        self.rows += 1;
        for name in &row.crossed {
            *self.crossed.entry(name.clone()).or_default() += 1;
        }
        if self.sums.len() < row.health.len() {
            self.sums.resize(row.health.len(), (0.0, 0));
        }
        for (sum, value) in self.sums.iter_mut().zip(&row.health) {
            if let Some(value) = value {
                sum.0 += value;
                sum.1 += 1;
            }
        }
    }

    /// Events in the window.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Closes the window: its findings (none for score drift on the reference window).
    pub fn check(&mut self) -> Vec<ScoreFinding> {
        let mut findings = Vec::new();
        if let Some(spec) = &self.health {
            for (index, figure) in spec.figures.iter().enumerate() {
                let Some(&(sum, count)) = self.sums.get(index) else {
                    continue;
                };
                if count == 0 {
                    continue;
                }
                let value = sum / count as f64;
                let drifted = if figure.alert_above {
                    value > figure.level
                } else {
                    value < figure.level
                };
                findings.push(ScoreFinding {
                    kind: "calibration_health",
                    name: figure.name.to_owned(),
                    value,
                    reference: figure.level,
                    p_value: 0.0,
                    drifted,
                });
            }
        }
        match &self.reference {
            None => self.reference = Some((self.rows, std::mem::take(&mut self.crossed))),
            Some((reference_rows, reference)) => {
                let names: BTreeSet<&String> =
                    reference.keys().chain(self.crossed.keys()).collect();
                let corrected = self.alpha / names.len().max(1) as f64;
                for name in names {
                    let a = reference.get(name).copied().unwrap_or(0);
                    let b = self.crossed.get(name).copied().unwrap_or(0);
                    let p_value = two_proportion_p(a, *reference_rows, b, self.rows);
                    findings.push(ScoreFinding {
                        kind: "score",
                        name: name.clone(),
                        value: b as f64 / self.rows.max(1) as f64,
                        reference: a as f64 / (*reference_rows).max(1) as f64,
                        p_value,
                        drifted: p_value < corrected,
                    });
                }
            }
        }
        self.rows = 0;
        self.crossed.clear();
        self.sums.clear();
        findings
    }
}

/// Two-sided p-value of a two-proportion z-test (pooled); 1 when it cannot be computed.
pub fn two_proportion_p(a: usize, n: usize, b: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let pooled = (a + b) as f64 / (n + m) as f64;
    let variance = pooled * (1.0 - pooled) * (1.0 / n as f64 + 1.0 / m as f64);
    if variance <= 0.0 {
        return 1.0;
    }
    let z = (a as f64 / n as f64 - b as f64 / m as f64).abs() / variance.sqrt();
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    2.0 * (1.0 - normal.cdf(z))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::table::HealthFigure;

    fn row(crossed: &[&str], health: &[f64]) -> ScoreRow {
        ScoreRow {
            crossed: crossed.iter().map(|s| (*s).to_owned()).collect(),
            health: health.iter().map(|v| Some(*v)).collect(),
        }
    }

    #[test]
    fn the_two_proportion_test_matches_known_values() {
        // 50/100 vs 50/100: identical. 10/1000 vs 60/1000: z ≈ 6.1, p ≈ 1e-9.
        assert!((two_proportion_p(50, 100, 50, 100) - 1.0).abs() < 1e-12);
        let p = two_proportion_p(10, 1000, 60, 1000);
        assert!(p < 1e-8 && p > 1e-11, "{p}");
        // 45/100 vs 55/100: z = 1.414, p = 0.157.
        assert!((two_proportion_p(45, 100, 55, 100) - 0.1573).abs() < 1e-3);
    }

    #[test]
    fn a_shift_in_alert_share_is_score_drift_and_health_levels_alarm() {
        static FIGURES: [HealthFigure; 1] = [HealthFigure {
            name: "boost_rate",
            level: 0.8,
            alert_above: true,
        }];
        let spec = HealthSpec {
            values: |_| Vec::new(),
            figures: &FIGURES,
        };
        let mut watch = ScoreWatch::new(0.05, Some(spec));
        for i in 0..1000 {
            watch.observe(&row(if i % 20 == 0 { &["review"] } else { &[] }, &[0.1]));
        }
        let first = watch.check();
        assert!(first
            .iter()
            .all(|f| f.kind == "calibration_health" && !f.drifted));
        for i in 0..1000 {
            watch.observe(&row(if i % 20 == 0 { &["review"] } else { &[] }, &[0.1]));
        }
        assert!(watch.check().iter().all(|f| !f.drifted), "same shares");
        for i in 0..1000 {
            watch.observe(&row(if i % 4 == 0 { &["review"] } else { &[] }, &[0.9]));
        }
        let shifted = watch.check();
        let score = shifted.iter().find(|f| f.kind == "score").unwrap();
        assert!(
            score.drifted && (score.value - 0.25).abs() < 1e-9,
            "{score:?}"
        );
        let health = shifted
            .iter()
            .find(|f| f.kind == "calibration_health")
            .unwrap();
        assert!(health.drifted && (health.value - 0.9).abs() < 1e-9);
    }
}
