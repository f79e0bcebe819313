//! Character n-gram (Markov) models of address local parts.
//!
//! A model of order `n` predicts each character from the `n − 1` before it. The local part
//! is padded with `n − 1` start symbols `^` and closed with the end symbol `$`, so short
//! and long local parts are both scored on how they start and end. Characters outside
//! `a–z 0–9 . _ -` share one symbol `?`.
//!
//! Smoothing is hierarchical (interpolated Dirichlet / MacKay–Peto): the unigram uses add-one,
//! and each longer context backs off to the next shorter one,
//! `P(c | h) = (count(h c) + α · P(c | h′)) / (count(h) + α)`, `h′` = `h` without its oldest
//! character, so an unseen n-gram gets the probability its shorter context gives it, never 0.
//! The score is the mean natural-log probability per predicted symbol (characters + end).
//!
//! Stored form: the n-gram counts of every length 1..=n as a map from the n-gram text (last
//! character predicted) to its count — small, readable JSON. In memory the counts are dense
//! arrays over the 42 symbols (42³ cells for order 3), so scoring does no hashing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The symbols: start, end, the characters addresses use, and "other".
const SYMBOLS: &[u8; 42] = b"^$abcdefghijklmnopqrstuvwxyz0123456789._-?";
const SYMBOL_COUNT: usize = SYMBOLS.len();
const START: usize = 0;
const END: usize = 1;
const OTHER: usize = SYMBOL_COUNT - 1;
/// Symbols a model predicts (all but the start symbol).
const PREDICTABLE: f64 = (SYMBOL_COUNT - 1) as f64;

fn symbol_of(c: char) -> usize {
    match c {
        'a'..='z' => 2 + (c as usize - 'a' as usize),
        '0'..='9' => 28 + (c as usize - '0' as usize),
        '.' => 38,
        '_' => 39,
        '-' => 40,
        _ => OTHER,
    }
}

/// `^^…local$` as symbol ids, for a model of `order`.
fn symbols(local: &str, order: usize) -> Vec<usize> {
    let mut out = vec![START; order - 1];
    out.extend(local.chars().map(symbol_of));
    out.push(END);
    out
}

/// Index of the context `symbols` (oldest first) among contexts of its length.
fn context_index(context: &[usize]) -> usize {
    context
        .iter()
        .fold(0, |index, &symbol| index * SYMBOL_COUNT + symbol)
}

/// Stored form of a [`CharNgramModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredNgrams {
    /// n.
    pub order: usize,
    /// α of the back-off smoothing.
    pub concentration: f64,
    /// Count of each n-gram of length 1..=n, keyed by its text.
    pub ngrams: BTreeMap<String, u32>,
}

/// A smoothed character n-gram model; see the module doc.
#[derive(Debug, Clone, PartialEq)]
pub struct CharNgramModel {
    order: usize,
    concentration: f64,
    /// `counts[k][context · S + symbol]` for contexts of length `k`.
    counts: Vec<Vec<u32>>,
    /// `totals[k][context]`.
    totals: Vec<Vec<u64>>,
}

impl CharNgramModel {
    fn empty(order: usize, concentration: f64) -> Self {
        assert!((1..=4).contains(&order), "order {order} outside 1..=4");
        let counts = (0..order)
            .map(|k| vec![0; SYMBOL_COUNT.pow(k as u32 + 1)])
            .collect();
        let totals = (0..order)
            .map(|k| vec![0; SYMBOL_COUNT.pow(k as u32)])
            .collect();
        Self {
            order,
            concentration,
            counts,
            totals,
        }
    }

    fn add(&mut self, context: &[usize], symbol: usize, count: u32) {
        let k = context.len();
        let index = context_index(context);
        self.counts[k][index * SYMBOL_COUNT + symbol] += count;
        self.totals[k][index] += u64::from(count);
    }

    /// Counts the n-grams of every local part in `locals`.
    pub fn fit<'a>(
        order: usize,
        concentration: f64,
        locals: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut model = Self::empty(order, concentration);
        for local in locals {
            let sequence = symbols(local, order);
            for position in order - 1..sequence.len() {
                for k in 0..order {
                    model.add(&sequence[position - k..position], sequence[position], 1);
                }
            }
        }
        model
    }

    /// n.
    pub fn order(&self) -> usize {
        self.order
    }

    /// `P(symbol | context)` with back-off (context oldest first, length `order − 1`).
    fn probability(&self, context: &[usize], symbol: usize) -> f64 {
        let total = self.totals[0][0] as f64;
        let mut p = (f64::from(self.counts[0][symbol]) + 1.0) / (total + PREDICTABLE);
        for k in 1..self.order {
            let recent = &context[context.len() - k..];
            let index = context_index(recent);
            let count = f64::from(self.counts[k][index * SYMBOL_COUNT + symbol]);
            let total = self.totals[k][index] as f64;
            p = (count + self.concentration * p) / (total + self.concentration);
        }
        p
    }

    /// Mean natural-log probability per predicted symbol of `local` (≤ 0; closer to 0 =
    /// more like the training local parts).
    pub fn mean_log_likelihood(&self, local: &str) -> f64 {
        let sequence = symbols(local, self.order);
        let predicted = sequence.len() - (self.order - 1);
        let total: f64 = (self.order - 1..sequence.len())
            .map(|position| {
                self.probability(
                    &sequence[position + 1 - self.order..position],
                    sequence[position],
                )
                .ln()
            })
            .sum();
        total / predicted as f64
    }

    /// The stored form.
    pub fn to_stored(&self) -> StoredNgrams {
        let mut ngrams = BTreeMap::new();
        for (k, counts) in self.counts.iter().enumerate() {
            for (cell, &count) in counts.iter().enumerate().filter(|(_, &count)| count > 0) {
                let mut text = Vec::with_capacity(k + 1);
                let mut rest = cell;
                for _ in 0..=k {
                    text.push(SYMBOLS[rest % SYMBOL_COUNT]);
                    rest /= SYMBOL_COUNT;
                }
                text.reverse();
                ngrams.insert(String::from_utf8_lossy(&text).into_owned(), count);
            }
        }
        StoredNgrams {
            order: self.order,
            concentration: self.concentration,
            ngrams,
        }
    }

    /// Rebuilds a model from its stored form; refuses n-grams longer than the order or with
    /// symbols outside the alphabet.
    pub fn from_stored(stored: &StoredNgrams) -> Result<Self, String> {
        if !(1..=4).contains(&stored.order) || !stored.concentration.is_finite() {
            return Err(format!("n-gram order {} or α unusable", stored.order));
        }
        let mut model = Self::empty(stored.order, stored.concentration);
        for (text, &count) in &stored.ngrams {
            let ids: Option<Vec<usize>> = text
                .bytes()
                .map(|byte| SYMBOLS.iter().position(|&symbol| symbol == byte))
                .collect();
            match ids {
                Some(ids) if !ids.is_empty() && ids.len() <= stored.order => {
                    let (symbol, context) = ids.split_last().expect("not empty");
                    model.add(context, *symbol, count);
                }
                _ => {
                    return Err(format!(
                        "n-gram {text:?} does not fit an order-{} model",
                        stored.order
                    ))
                }
            }
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_follow_the_back_off_formula() {
        // One training word "ab": order 2 symbols ^ a b $.
        let model = CharNgramModel::fit(2, 2.0, ["ab"]);
        // Unigrams: a, b, $ once each → total 3; P0(a) = (1 + 1) / (3 + 41).
        let p0_a = 2.0 / 44.0;
        // Context ^ seen once, followed by a: P(a | ^) = (1 + 2 · P0(a)) / (1 + 2).
        let p_a = (1.0 + 2.0 * p0_a) / 3.0;
        assert!((model.probability(&[START], symbol_of('a')) - p_a).abs() < 1e-12);
        // Unseen after ^: P(z | ^) = 2 · P0(z) / 3 with P0(z) = 1 / 44.
        let p_z = 2.0 * (1.0 / 44.0) / 3.0;
        assert!((model.probability(&[START], symbol_of('z')) - p_z).abs() < 1e-12);
        // Probabilities over every predictable symbol sum to 1 in every context.
        for context in [START, symbol_of('a'), symbol_of('q')] {
            let sum: f64 = (1..SYMBOL_COUNT)
                .map(|s| model.probability(&[context], s))
                .sum();
            assert!((sum - 1.0).abs() < 1e-12, "context {context}: {sum}");
        }
    }

    #[test]
    fn names_score_higher_under_a_name_model_than_random_strings() {
        let names = [
            "john", "jane", "mary", "michael", "anna", "peter", "susan", "johanna",
        ];
        let model = CharNgramModel::fit(3, 1.0, names);
        assert!(model.mean_log_likelihood("joanna") > model.mean_log_likelihood("xq7zkv"));
        assert!(model.mean_log_likelihood("john") <= 0.0);
        // Foreign characters share the "other" symbol and still score.
        assert!(model.mean_log_likelihood("jöhn").is_finite());
    }

    #[test]
    fn stored_form_round_trips_and_refuses_strangers() {
        let model = CharNgramModel::fit(3, 1.5, ["alice.b", "bob_99", "x-y"]);
        let stored = model.to_stored();
        assert_eq!(stored.ngrams.get("^^a"), Some(&1));
        let json = serde_json::to_string(&stored).unwrap();
        let back = CharNgramModel::from_stored(&serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(back, model);
        let mut bad = stored.clone();
        bad.ngrams.insert("abcd".to_owned(), 1);
        assert!(CharNgramModel::from_stored(&bad).is_err());
        let mut bad = stored;
        bad.ngrams.insert("A".to_owned(), 1);
        assert!(CharNgramModel::from_stored(&bad).is_err());
    }
}
