//! What the drift watch compares for alerts: values read from the alert itself — never from
//! the entity history (that is state, not input) and never the time of day (a window of
//! live alerts covers hours, the reference weeks, so hour and weekday would always differ).
//! Severity and SIEM source are categories; the counts and sizes are numbers. The reference
//! sample of a version is drawn from its fitting rows (`drift_reference.json`).

use std::path::Path;

use super::features::{kill_chain_stage, public_network_count};
use crate::drift::{category_code, FeatureKind};
use crate::events::{AlertEvent, InputEvent};
use crate::ml::artifact::{ArtifactRef, ModelError};

/// Watched values, in row order.
const FEATURES: [(&str, FeatureKind); 14] = [
    ("severity", FeatureKind::Categorical),
    ("siem_source", FeatureKind::Categorical),
    ("tactic_count", FeatureKind::Numeric),
    ("technique_count", FeatureKind::Numeric),
    ("kill_chain_stage", FeatureKind::Numeric),
    ("ioc_count", FeatureKind::Numeric),
    ("asset_count", FeatureKind::Numeric),
    ("asset_criticality", FeatureKind::Numeric),
    ("user_count", FeatureKind::Numeric),
    ("host_count", FeatureKind::Numeric),
    ("ip_count", FeatureKind::Numeric),
    ("public_network_count", FeatureKind::Numeric),
    ("event_count_log", FeatureKind::Numeric),
    ("duration_minutes_log", FeatureKind::Numeric),
];

/// Watched features: name and test, in row order.
pub fn features() -> Vec<(String, FeatureKind)> {
    FEATURES
        .iter()
        .map(|(name, kind)| ((*name).to_owned(), *kind))
        .collect()
}

/// The watched values of one alert.
pub fn row(alert: &AlertEvent) -> Vec<f64> {
    let minutes = (alert.last_seen_ms - alert.first_seen_ms).max(0) as f64 / 60_000.0;
    vec![
        category_code(&alert.severity.to_ascii_lowercase()),
        category_code(&alert.siem_source.to_ascii_lowercase()),
        alert.tactics.len() as f64,
        alert.techniques.len() as f64,
        // Missing without tactics: NaN is left out of the test.
        kill_chain_stage(&alert.tactics).map_or(f64::NAN, |stage| stage as f64),
        f64::from(alert.ioc_count),
        f64::from(alert.asset_count),
        alert.asset_criticality,
        alert.users.len() as f64,
        alert.hosts.len() as f64,
        alert.ips.len() as f64,
        public_network_count(&alert.ips) as f64,
        f64::from(alert.event_count.max(0)).ln_1p(),
        minutes.ln_1p(),
    ]
}

/// The watched values of one event (`None` for another record kind).
pub fn drift_row(event: &InputEvent) -> Option<Vec<f64>> {
    match event {
        InputEvent::Alert(alert) => Some(row(alert)),
        _ => None,
    }
}

/// Writes the reference sample of `training` alerts into `directory`.
pub fn write_reference(
    training: &[&AlertEvent],
    seed: u64,
    directory: &Path,
) -> Result<ArtifactRef, ModelError> {
    let rows = training.iter().map(|alert| row(alert)).collect();
    crate::drift::write_reference(directory, &features(), rows, seed)
}
