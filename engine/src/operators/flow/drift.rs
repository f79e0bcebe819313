//! What the drift watch compares for flows: the 41 NSL-KDD input fields as they arrive (the
//! three symbolic ones as categories, the 38 continuous ones as numbers), and the reference
//! sample of a model version drawn from its training rows (`drift_reference.json`).

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::dataset::LabelledFlow;
use crate::drift::{category_code, FeatureKind, Reference, REFERENCE_FILE};
use crate::events::{FlowEvent, InputEvent};
use crate::ml::artifact::{write_json_ref, ArtifactRef, ModelError};

/// Rows drawn from the training data into a version's reference sample.
pub const REFERENCE_ROWS: usize = 2000;

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

/// Writes the reference sample of `training` rows (at most [`REFERENCE_ROWS`], drawn with
/// `seed`) into `directory` and returns the manifest's reference to it.
pub fn write_reference(
    training: &[&LabelledFlow],
    seed: u64,
    directory: &Path,
) -> Result<ArtifactRef, ModelError> {
    let mut sample: Vec<&&LabelledFlow> = training.iter().collect();
    sample.shuffle(&mut StdRng::seed_from_u64(seed));
    sample.truncate(REFERENCE_ROWS);
    let rows: Vec<Vec<f64>> = sample.iter().map(|flow| row(&flow.event)).collect();
    let (names, kinds): (Vec<String>, Vec<FeatureKind>) = features().into_iter().unzip();
    write_json_ref(
        directory,
        REFERENCE_FILE,
        &Reference::from_rows(&names, &kinds, &rows),
    )
}
