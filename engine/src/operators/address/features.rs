//! The feature row of one address: Markov scores of the local part, its character
//! statistics, and what the domain lists and domain hints say.
//!
//! Columns, in row order ([`FEATURES`] holds the names and what each measures):
//! 1–4. `markov_legit_2`, `markov_legit_3`, `markov_fraud_2`, `markov_fraud_3`: mean
//!      log-probability per character of the local part under the legitimate and the
//!      fraudulent 2- and 3-gram models;
//! 5. `markov_log_ratio`: `markov_legit_3 − markov_fraud_3` (> 0: reads like a person's);
//! 6–13. local-part statistics ([`CharStats`]) and `has_tag`;
//! 14–15. `disposable_domain`, `free_mail_domain` (0/1, from the lists);
//! 16–18. offline domain hints ([`DomainHints`]): digits and length of the registrable label,
//!      new TLD.

use crate::operators::address::domains::{DomainClass, DomainHints, DomainLists};
use crate::operators::address::local_part::{CharStats, EmailAddress};
use crate::operators::address::markov::CharNgramModel;

/// Feature names and what each measures, in row order.
pub const FEATURES: [(&str, &str); FEATURE_COUNT] = [
    (
        "markov_legit_2",
        "mean ln P per character under the legitimate 2-gram model",
    ),
    (
        "markov_legit_3",
        "mean ln P per character under the legitimate 3-gram model",
    ),
    (
        "markov_fraud_2",
        "mean ln P per character under the fraudulent 2-gram model",
    ),
    (
        "markov_fraud_3",
        "mean ln P per character under the fraudulent 3-gram model",
    ),
    (
        "markov_log_ratio",
        "markov_legit_3 − markov_fraud_3; positive reads like a person's",
    ),
    ("length", "characters in the local part (without a +tag)"),
    ("digit_ratio", "share of digits in the local part"),
    ("longest_digit_run", "longest run of digits"),
    ("vowel_ratio", "vowels (a e i o u y) among letters"),
    ("longest_consonant_run", "longest run of consonant letters"),
    (
        "entropy",
        "Shannon entropy of the local part's characters, bits",
    ),
    (
        "keyboard_walk",
        "share of characters in QWERTY walks of 3+ touching keys",
    ),
    ("separators", "'.', '_' and '-' in the local part"),
    ("has_tag", "1 when the address carried a +tag sub-address"),
    (
        "disposable_domain",
        "1 when the domain is on the disposable list",
    ),
    (
        "free_mail_domain",
        "1 when the domain is on the free-mail list (and not disposable)",
    ),
    (
        "domain_digit_ratio",
        "share of digits in the registrable domain label",
    ),
    (
        "domain_label_length",
        "length of the registrable domain label",
    ),
    (
        "new_tld",
        "1 when the TLD is neither a legacy gTLD nor a country code",
    ),
];

/// Columns in a row.
pub const FEATURE_COUNT: usize = 19;

/// Column of `markov_log_ratio`.
pub const LOG_RATIO: usize = 4;
/// Column of `markov_legit_3`, the basis of the abnormality score.
pub const LEGIT_3: usize = 1;
/// Column of `length`.
pub const LENGTH: usize = 5;

/// The total log-likelihood ratio (legitimate over fraudulent 3-gram model) of the local
/// part in `row`: the per-character ratio times the symbols predicted (characters + end).
/// This is the evidence the n-gram models give, and it grows with length — three characters
/// say little either way, which the per-character mean hides.
pub fn total_log_ratio(row: &[f64; FEATURE_COUNT]) -> f64 {
    row[LOG_RATIO] * (row[LENGTH] + 1.0)
}

/// Columns that measure how unusual the local part's characters are (the Markov scores).
pub const MARKOV_COLUMNS: std::ops::Range<usize> = 0..5;

/// The row the calibration sees: the Markov columns pulled toward `anchor` (their training
/// means) by `1 − guardrail`. With the guardrail at 0 (a short local part) the calibration
/// reads them as average and decides on the other features; otherwise an unusual 2-letter
/// name would come back through the calibration after the guardrail took it out of the
/// Markov risk.
pub fn guarded_row(
    row: &[f64; FEATURE_COUNT],
    anchor: &[f64],
    guardrail: f64,
) -> [f64; FEATURE_COUNT] {
    let mut guarded = *row;
    for (column, mean) in MARKOV_COLUMNS.zip(anchor) {
        guarded[column] = mean + guardrail * (row[column] - mean);
    }
    guarded
}

/// Feature names in row order.
pub fn feature_names() -> Vec<String> {
    FEATURES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// The four n-gram models the Markov columns come from.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovModels {
    /// Legitimate local parts, order 2.
    pub legit_2: CharNgramModel,
    /// Legitimate local parts, order 3.
    pub legit_3: CharNgramModel,
    /// Fraudulent local parts, order 2.
    pub fraud_2: CharNgramModel,
    /// Fraudulent local parts, order 3.
    pub fraud_3: CharNgramModel,
}

/// One address's feature row and what it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressFeatures {
    /// The row, [`FEATURES`] order.
    pub row: [f64; FEATURE_COUNT],
    /// Which list the domain is on.
    pub domain_class: DomainClass,
}

impl AddressFeatures {
    /// Computes the row of `address`.
    pub fn compute(address: &EmailAddress, markov: &MarkovModels, lists: &DomainLists) -> Self {
        let local = address.local.as_str();
        let legit_3 = markov.legit_3.mean_log_likelihood(local);
        let fraud_3 = markov.fraud_3.mean_log_likelihood(local);
        let stats = CharStats::of(local);
        let domain_class = lists.classify(&address.domain);
        let hints = DomainHints::of(&address.domain);
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        let row = [
            markov.legit_2.mean_log_likelihood(local),
            legit_3,
            markov.fraud_2.mean_log_likelihood(local),
            fraud_3,
            legit_3 - fraud_3,
            stats.length as f64,
            stats.digit_ratio,
            stats.longest_digit_run as f64,
            stats.vowel_ratio,
            stats.longest_consonant_run as f64,
            stats.entropy,
            stats.keyboard_walk,
            stats.separators as f64,
            flag(address.has_tag),
            flag(domain_class == DomainClass::Disposable),
            flag(domain_class == DomainClass::Free),
            hints.label_digit_ratio,
            hints.label_length as f64,
            flag(hints.new_tld),
        ];
        Self { row, domain_class }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::address::domains::DomainList;
    use crate::operators::address::local_part::parse_address;

    #[test]
    fn row_has_every_column_in_order() {
        let legit = ["john.smith", "mary", "peter_jones"];
        let fraud = ["xk7qz9v2", "qwerty123", "zzxq8812"];
        let markov = MarkovModels {
            legit_2: CharNgramModel::fit(2, 1.0, legit),
            legit_3: CharNgramModel::fit(3, 1.0, legit),
            fraud_2: CharNgramModel::fit(2, 1.0, fraud),
            fraud_3: CharNgramModel::fit(3, 1.0, fraud),
        };
        let lists = DomainLists {
            disposable: DomainList::parse("mailinator.com"),
            free: DomainList::parse("gmail.com"),
        };
        let address = parse_address("John.Smith+x@gmail.com").unwrap();
        let features = AddressFeatures::compute(&address, &markov, &lists);
        assert_eq!(feature_names().len(), FEATURE_COUNT);
        assert_eq!(features.domain_class, DomainClass::Free);
        let row = features.row;
        assert!(row[LOG_RATIO] > 0.0, "a training name reads as legitimate");
        assert_eq!(row[LOG_RATIO], row[LEGIT_3] - row[3]);
        assert_eq!(row[LENGTH], 10.0);
        assert_eq!(row[12], 1.0); // one '.'
        assert_eq!(row[13], 1.0); // +x
        assert_eq!((row[14], row[15]), (0.0, 1.0));
        let throwaway = parse_address("xk7qz9v2@x.mailinator.com").unwrap();
        let row = AddressFeatures::compute(&throwaway, &markov, &lists).row;
        assert!(row[LOG_RATIO] < 0.0);
        assert_eq!((row[14], row[15]), (1.0, 0.0));
    }
}
