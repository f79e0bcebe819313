//! What the drift watch compares for addresses: the local part's character statistics, the
//! domain's offline hints and the domain itself (a category: a new throwaway domain taking a
//! share of sign-ups is a shift) — values of the address alone, not of the model's n-gram
//! tables. The reference sample of a version is drawn from its training addresses
//! (`drift_reference.json`).

use std::path::Path;

use super::domains::DomainHints;
use super::local_part::{parse_address, CharStats};
use crate::drift::{category_code, FeatureKind};
use crate::events::InputEvent;
use crate::ml::artifact::{ArtifactRef, ModelError};

/// Watched values, in row order.
const FEATURES: [(&str, FeatureKind); 13] = [
    ("domain", FeatureKind::Categorical),
    ("length", FeatureKind::Numeric),
    ("digit_ratio", FeatureKind::Numeric),
    ("longest_digit_run", FeatureKind::Numeric),
    ("vowel_ratio", FeatureKind::Numeric),
    ("longest_consonant_run", FeatureKind::Numeric),
    ("entropy", FeatureKind::Numeric),
    ("keyboard_walk", FeatureKind::Numeric),
    ("separators", FeatureKind::Numeric),
    ("has_tag", FeatureKind::Numeric),
    ("domain_digit_ratio", FeatureKind::Numeric),
    ("domain_label_length", FeatureKind::Numeric),
    ("new_tld", FeatureKind::Numeric),
];

/// Watched features: name and test, in row order.
pub fn features() -> Vec<(String, FeatureKind)> {
    FEATURES
        .iter()
        .map(|(name, kind)| ((*name).to_owned(), *kind))
        .collect()
}

/// The watched values of one address (`None` when it does not parse: the operator rejects
/// it).
pub fn row(text: &str) -> Option<Vec<f64>> {
    let address = parse_address(text).ok()?;
    let stats = CharStats::of(&address.local);
    let hints = DomainHints::of(&address.domain);
    Some(vec![
        category_code(&address.domain),
        stats.length as f64,
        stats.digit_ratio,
        stats.longest_digit_run as f64,
        stats.vowel_ratio,
        stats.longest_consonant_run as f64,
        stats.entropy,
        stats.keyboard_walk,
        stats.separators as f64,
        f64::from(u8::from(address.has_tag)),
        hints.label_digit_ratio,
        hints.label_length as f64,
        f64::from(u8::from(hints.new_tld)),
    ])
}

/// The watched values of one event: an address record, or an email's sender.
pub fn drift_row(event: &InputEvent) -> Option<Vec<f64>> {
    match event {
        InputEvent::Address(address) => row(&address.address),
        InputEvent::Email(email) => row(&email.from),
        _ => None,
    }
}

/// Writes the reference sample of `training` addresses into `directory`.
pub fn write_reference<'a>(
    training: impl Iterator<Item = &'a str>,
    seed: u64,
    directory: &Path,
) -> Result<ArtifactRef, ModelError> {
    let rows = training.filter_map(row).collect();
    crate::drift::write_reference(directory, &features(), rows, seed)
}
