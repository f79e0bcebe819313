//! The address operator's calibration health, read from its scored events by the drift watch
//! (seed 003's figures and alert levels):
//! - **boost rate** (alert above 80 %): share of addresses whose risk the calibration raised;
//! - **suppression rate** (above 10 %): share of addresses the Markov risk puts at review or
//!   above (the default review level, 0.5) and the calibration would have cleared — the
//!   calibration is boost-only, so this is disagreement it cannot act on;
//! - **mean suppression** (above 0.15): by how much it would have lowered the risk, averaged
//!   over all addresses (0 where it would not);
//! - **calibration usage** (below 50 %): share of addresses whose own Markov columns the
//!   calibration saw (the length guardrail above 0; short local parts are pulled to the
//!   training means).
//!
//! Measured on the shipped model (operator tests): the 1,233 real addresses of
//! `models/address/sources` give boost rate 0.137, suppression rate 0.021, mean suppression
//! 0.017, usage 0.82 — no alarm; 1,000 machine-made ones (the generator's name + digit-burst
//! scenario) a boost rate of 0.844 — an alarm.

use crate::operators::table::{DriftSpec, HealthFigure, HealthSpec};
use crate::scored::Scored;

/// The figures, in [`values`] order.
pub static FIGURES: [HealthFigure; 4] = [
    HealthFigure {
        name: "boost_rate",
        level: 0.80,
        alert_above: true,
    },
    HealthFigure {
        name: "suppression_rate",
        level: 0.10,
        alert_above: true,
    },
    HealthFigure {
        name: "mean_suppression",
        level: 0.15,
        alert_above: true,
    },
    HealthFigure {
        name: "calibration_usage",
        level: 0.50,
        alert_above: false,
    },
];

/// The Markov risk at which an address is flagged for review (the operator's default).
const REVIEW_AT: f64 = 0.5;

/// One scored address's values (`None` where it says nothing about a figure).
pub fn values(scored: &Scored) -> Vec<Option<f64>> {
    let (Some(&markov), Some(&calibrated), Some(&guardrail)) = (
        scored.scores.get("markov_risk"),
        scored.scores.get("calibrated_probability"),
        scored.scores.get("guardrail"),
    ) else {
        return vec![None; FIGURES.len()];
    };
    let suppressed = markov >= REVIEW_AT && calibrated < REVIEW_AT;
    vec![
        Some(f64::from(u8::from(calibrated > markov))),
        Some(f64::from(u8::from(suppressed))),
        Some(if suppressed { markov - calibrated } else { 0.0 }),
        Some(f64::from(u8::from(guardrail > 0.0))),
    ]
}

/// The address operator's drift watch: score drift and calibration health.
pub const DRIFT: DriftSpec = DriftSpec {
    row: super::drift::drift_row,
    health: Some(HealthSpec {
        values,
        figures: &FIGURES,
    }),
};
