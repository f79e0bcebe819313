//! What the drift watch compares for emails: the message's numeric columns — recipients,
//! sizes, attachments, threat keywords — computed with the default feature settings, so the
//! values depend on the message alone. The time-of-day columns are left out (a window of live
//! mail covers hours, the reference weeks), and so are the TF-IDF buckets (their scale is a
//! version's IDF). The reference sample of a version is drawn from its fitting messages
//! (`drift_reference.json`).

use std::path::Path;
use std::sync::OnceLock;

use super::features::{FeatureExtractor, FeatureSettings, NUMERIC_FEATURES};
use super::message::MailMessage;
use crate::drift::FeatureKind;
use crate::events::InputEvent;
use crate::ml::artifact::{ArtifactRef, ModelError};

/// Numeric columns not watched (time of day).
const UNWATCHED: [&str; 3] = ["hour_sin", "hour_cos", "off_hours"];

fn watched() -> impl Iterator<Item = (usize, &'static str)> {
    NUMERIC_FEATURES
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, name)| !UNWATCHED.contains(name))
}

/// Watched features: name and test, in row order.
pub fn features() -> Vec<(String, FeatureKind)> {
    watched()
        .map(|(_, name)| (name.to_owned(), FeatureKind::Numeric))
        .collect()
}

fn extractor() -> &'static FeatureExtractor {
    static EXTRACTOR: OnceLock<FeatureExtractor> = OnceLock::new();
    EXTRACTOR.get_or_init(|| {
        FeatureExtractor::new(&FeatureSettings::default())
            .expect("the default feature settings are valid")
    })
}

/// The watched values of one message.
pub fn row(message: &MailMessage) -> Vec<f64> {
    let extracted = extractor().extract(message, message.date_ms.unwrap_or(0));
    watched()
        .map(|(column, _)| extracted.numeric[column])
        .collect()
}

/// The watched values of one event (`None` for another kind, or mail that does not parse).
pub fn drift_row(event: &InputEvent) -> Option<Vec<f64>> {
    match event {
        InputEvent::Email(email) => MailMessage::from_event(email).ok().map(|m| row(&m)),
        _ => None,
    }
}

/// Writes the reference sample of `training` messages into `directory`.
pub fn write_reference<'a>(
    training: impl Iterator<Item = &'a MailMessage>,
    seed: u64,
    directory: &Path,
) -> Result<ArtifactRef, ModelError> {
    let rows = training.map(row).collect();
    crate::drift::write_reference(directory, &features(), rows, seed)
}
