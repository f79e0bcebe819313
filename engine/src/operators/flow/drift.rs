//! What the drift watch compares for flows: the 41 NSL-KDD input fields as they arrive (the
//! three symbolic ones as categories, the 38 continuous ones as numbers), and the reference
//! sample of a model version drawn from its training rows (`drift_reference.json`).

use std::path::Path;

use super::dataset::LabelledFlow;
use crate::drift::{category_code, FeatureKind};
use crate::events::{FlowEvent, InputEvent};
use crate::ml::artifact::{ArtifactRef, ModelError};

pub use crate::drift::REFERENCE_ROWS;

/// Watched features: name and test, in row order.
pub fn features() -> Vec<(String, FeatureKind)> {
    FlowEvent::SYMBOLIC_NAMES
        .iter()
        .map(|name| ((*name).to_owned(), FeatureKind::Categorical))
        .chain(
            FlowEvent::NUMERIC_NAMES
                .iter()
                .map(|name| ((*name).to_owned(), FeatureKind::Numeric)),
        )
        .collect()
}

fn row(flow: &FlowEvent) -> Vec<f64> {
    flow.symbolic_features()
        .iter()
        .map(|value| category_code(value))
        .chain(flow.numeric_features())
        .collect()
}

/// The watched values of one event (`None` for another record kind).
pub fn drift_row(event: &InputEvent) -> Option<Vec<f64>> {
    match event {
        InputEvent::Flow(flow) => Some(row(flow)),
        _ => None,
    }
}

/// Writes the reference sample of `training` rows (at most
/// [`crate::drift::REFERENCE_ROWS`], drawn with `seed`) into `directory` and returns the
/// manifest's reference to it.
pub fn write_reference(
    training: &[&LabelledFlow],
    seed: u64,
    directory: &Path,
) -> Result<ArtifactRef, ModelError> {
    let rows: Vec<Vec<f64>> = training.iter().map(|flow| row(&flow.event)).collect();
    crate::drift::write_reference(directory, &features(), rows, seed)
}
