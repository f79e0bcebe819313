//! L2 over a batch of prompts: each prompt's raw view and, when normalization changed it, its
//! normalized view, each cut into windows; a view's probability is its highest window's.
//!
//! Work is spent only where it can change the outcome:
//! - A normalized window identical to one of the raw view's windows (normalization changed
//!   nothing the tokenizer keeps, e.g. case or accents the model folds anyway) is scored once
//!   and counts for both views.
//! - Windows run in two rounds. The first tokenizes and scores each view's first window
//!   only ([`PromptTokenizer::first`]: a long prompt's head, not all of it). A view whose
//!   first window already reaches the settle bar — the L2 threshold, and at least the
//!   probability from which an L2 attack is `high` — is settled: no further window can change
//!   the verdict, the severity or the families. The second round tokenizes the rest of each
//!   unsettled prompt and scores the remaining windows of every unsettled view, except that a prompt whose raw view settled needs nothing more
//!   (the normalized view only matters when the raw one stays below the threshold).
//!
//! Guarantee: verdict, decided-by, severity and families are exactly those of scoring every
//! window (tested); a settled view's probability is then the highest window scored, so it
//! can be lower than the highest of all windows, but never below the settle bar.

use std::time::Instant;

use super::batcher::Batcher;
use super::decision::View;
use super::l2::L2Error;
use super::window::{PromptTokenizer, Sequence};
use crate::telemetry;

/// L2's result for one prompt: the highest window probability of each view scored.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct L2Views {
    /// Raw view's probability.
    pub raw: Option<f64>,
    /// Normalized view's probability, when normalization changed the prompt.
    pub normalized: Option<f64>,
    /// Windows run through the model for this prompt.
    pub windows: usize,
}

/// What the scorer needs of the L2 layer.
pub(crate) struct L2Inputs<'a> {
    pub tokenizer: &'a PromptTokenizer,
    pub batcher: &'a Batcher,
    /// A view whose window reaches this is settled.
    pub settle_at: f64,
    /// Whether settled views stop early (off: every window is scored).
    pub settle_early: bool,
}

/// One prompt's windows and what is known of them.
struct Prompt<'t> {
    raw_text: &'t str,
    normalized_text: Option<&'t str>,
    /// Raw windows known so far (the first alone until [`Prompt::expand`]).
    raw: Vec<Window>,
    /// Normalized windows not identical to a raw window.
    normalized: Vec<Window>,
    /// Raw windows that are also normalized windows.
    shared: Vec<usize>,
    /// Whether either view has windows beyond those known.
    more: bool,
}

struct Window {
    sequence: Sequence,
    probability: Option<f64>,
}

impl Window {
    fn new(sequence: Sequence) -> Self {
        Self {
            sequence,
            probability: None,
        }
    }
}

impl<'t> Prompt<'t> {
    /// A prompt with each view's first window.
    fn first_windows(
        tokenizer: &PromptTokenizer,
        raw_text: &'t str,
        normalized_text: Option<&'t str>,
    ) -> Result<Self, L2Error> {
        let (raw, more) = tokenizer.first(raw_text)?;
        let mut prompt = Self {
            raw_text,
            normalized_text,
            raw: vec![Window::new(raw)],
            normalized: Vec::new(),
            shared: Vec::new(),
            more,
        };
        if let Some(text) = normalized_text {
            let (normalized, normalized_more) = tokenizer.first(text)?;
            prompt.more |= normalized_more;
            prompt.add_normalized(normalized);
        }
        Ok(prompt)
    }

    /// Fills in every window of both views, keeping the probabilities already known.
    fn expand(&mut self, tokenizer: &PromptTokenizer) -> Result<(), L2Error> {
        if !self.more {
            return Ok(());
        }
        let known: Vec<Window> = std::mem::take(&mut self.raw)
            .into_iter()
            .chain(std::mem::take(&mut self.normalized))
            .filter(|window| window.probability.is_some())
            .collect();
        self.raw = tokenizer
            .encode(self.raw_text)?
            .into_iter()
            .map(Window::new)
            .collect();
        self.shared.clear();
        if let Some(text) = self.normalized_text {
            for sequence in tokenizer.encode(text)? {
                self.add_normalized(sequence);
            }
        }
        for window in self.raw.iter_mut().chain(self.normalized.iter_mut()) {
            window.probability = known
                .iter()
                .find(|scored| scored.sequence == window.sequence)
                .and_then(|scored| scored.probability);
        }
        self.more = false;
        Ok(())
    }

    /// Adds a normalized window, shared when a raw window is the same sequence.
    fn add_normalized(&mut self, sequence: Sequence) {
        match self.raw.iter().position(|raw| raw.sequence == sequence) {
            Some(index) if !self.shared.contains(&index) => self.shared.push(index),
            Some(_) => {}
            None => self.normalized.push(Window::new(sequence)),
        }
    }

    fn raw_probability(&self) -> Option<f64> {
        highest(self.raw.iter().filter_map(|window| window.probability))
    }

    fn normalized_probability(&self) -> Option<f64> {
        self.normalized_text?;
        let own = self
            .normalized
            .iter()
            .filter_map(|window| window.probability);
        let shared = self
            .shared
            .iter()
            .filter_map(|&index| self.raw[index].probability);
        highest(own.chain(shared))
    }
}

fn highest(probabilities: impl Iterator<Item = f64>) -> Option<f64> {
    probabilities.fold(None, |best, p| Some(best.map_or(p, |b: f64| b.max(p))))
}

/// Scores the views of each prompt: `views[i]` is `(raw text, normalized text if changed)`.
pub(crate) fn score(
    l2: &L2Inputs<'_>,
    views: &[(&str, Option<&str>)],
) -> Result<Vec<L2Views>, L2Error> {
    let started = Instant::now();
    let mut prompts = views
        .iter()
        .map(|(raw, normalized)| Prompt::first_windows(l2.tokenizer, raw, *normalized))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tokenize_seconds = started.elapsed().as_secs_f64();
    let mut counts = vec![0_usize; prompts.len()];
    // Round one: each view's first window.
    run_round(l2, &mut prompts, &mut counts, |prompt| {
        (0..prompt.raw.len())
            .map(|i| (View::Raw, i))
            .chain((0..prompt.normalized.len()).map(|i| (View::Normalized, i)))
            .collect()
    })?;
    // Round two: the other windows of unsettled views.
    let settled = |p: Option<f64>| l2.settle_early && p.is_some_and(|p| p >= l2.settle_at);
    let started = Instant::now();
    for prompt in &mut prompts {
        if !settled(prompt.raw_probability()) {
            prompt.expand(l2.tokenizer)?;
        }
    }
    tokenize_seconds += started.elapsed().as_secs_f64();
    metrics::histogram!(telemetry::PROMPT_TOKENIZE_DURATION).record(tokenize_seconds);
    run_round(l2, &mut prompts, &mut counts, |prompt| {
        if settled(prompt.raw_probability()) {
            return Vec::new();
        }
        let mut picks: Vec<(View, usize)> = (0..prompt.raw.len()).map(|i| (View::Raw, i)).collect();
        if !settled(prompt.normalized_probability()) {
            picks.extend((0..prompt.normalized.len()).map(|i| (View::Normalized, i)));
        }
        picks
    })?;
    Ok(prompts
        .iter()
        .zip(counts)
        .map(|(prompt, windows)| L2Views {
            raw: prompt.raw_probability(),
            normalized: prompt.normalized_probability(),
            windows,
        })
        .collect())
}

/// Scores the windows `pick` names for each prompt in one batcher call.
fn run_round(
    l2: &L2Inputs<'_>,
    prompts: &mut [Prompt],
    counts: &mut [usize],
    pick: impl Fn(&Prompt) -> Vec<(View, usize)>,
) -> Result<(), L2Error> {
    let mut owners = Vec::new();
    let mut sequences = Vec::new();
    for (index, prompt) in prompts.iter().enumerate() {
        for (view, window) in pick(prompt) {
            let windows = match view {
                View::Raw => &prompt.raw,
                View::Normalized => &prompt.normalized,
            };
            if windows[window].probability.is_none() {
                sequences.push(windows[window].sequence.clone());
                owners.push((index, view, window));
            }
        }
    }
    if sequences.is_empty() {
        return Ok(());
    }
    let scores = l2.batcher.score(sequences)?;
    for ((index, view, window), probability) in owners.into_iter().zip(scores) {
        let prompt = &mut prompts[index];
        let windows = match view {
            View::Raw => &mut prompt.raw,
            View::Normalized => &mut prompt.normalized,
        };
        windows[window].probability = Some(f64::from(probability));
        counts[index] += 1;
    }
    Ok(())
}
