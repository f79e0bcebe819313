//! `threatflow eval address`: scores a labelled file through [`AddressScorer`] and reports
//! precision, recall and F1 of the flag (risk ≥ `review_at`: review or block), ROC-AUC of the
//! final risk, the same for the block decision and for the Markov risk alone (what
//! calibration adds), recall per generator scenario, and how often calibration boosted.
//! Rows whose address cannot be parsed are counted and left out (the operator dead-letters
//! them).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ml::metrics::{roc_auc, BinaryCounts};
use crate::operators::address::features::LENGTH;
use crate::operators::address::scorer::AddressScorer;
use crate::operators::address::synth::LabeledAddress;
use crate::operators::address::AddressOperatorConfig;

/// Precision, recall and F1 at one threshold, and ROC-AUC of the scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DetectionFigures {
    /// Flagged fraudulent among flagged.
    pub precision: f64,
    /// Flagged fraudulent among fraudulent.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// ROC-AUC of the scores.
    pub auc: f64,
}

impl DetectionFigures {
    fn of(scores: &[f64], labels: &[bool], threshold: f64) -> Self {
        let confusion = BinaryCounts::at_threshold(scores, labels, threshold);
        Self {
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            auc: roc_auc(scores, labels),
        }
    }
}

/// Figures of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressEvaluation {
    /// Rows scored.
    pub rows: usize,
    /// Fraudulent rows among them.
    pub fraudulent: usize,
    /// Rows whose address could not be parsed (left out).
    pub unparseable: usize,
    /// Threshold of the flag (`review_at`).
    pub threshold: f64,
    /// Flag figures: precision.
    pub precision: f64,
    /// Flag figures: recall.
    pub recall: f64,
    /// Flag figures: F1.
    pub f1: f64,
    /// ROC-AUC of the final risk.
    pub auc: f64,
    /// The block decision (risk ≥ `block_at`).
    pub block: DetectionFigures,
    /// The Markov risk alone at the flag threshold (no calibration).
    pub markov_only: DetectionFigures,
    /// Share of rows whose risk calibration raised.
    pub boosted_share: f64,
    /// Legitimate rows whose local part has at most the guardrail's minimum length, and how
    /// many of them were flagged.
    pub short_legitimate: usize,
    /// … flagged.
    pub short_legitimate_flagged: usize,
    /// Share of each scenario's rows flagged (recall for fraudulent scenarios, false-positive
    /// rate for legitimate ones), when the file names scenarios.
    pub flagged_by_scenario: BTreeMap<String, f64>,
}

/// Scores `rows` and computes the figures.
pub fn evaluate(scorer: &AddressScorer, rows: &[LabeledAddress]) -> AddressEvaluation {
    evaluate_pooled(std::iter::once((scorer, rows)))
}

/// Scores each part of the rows with its own scorer (training's out-of-fold models) and
/// computes the figures over all of them; thresholds and guardrail are the first scorer's.
pub fn evaluate_pooled<'a>(
    parts: impl IntoIterator<Item = (&'a AddressScorer, &'a [LabeledAddress])>,
) -> AddressEvaluation {
    let mut settings = None;
    let (mut risks, mut markov, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unparseable, mut boosted, mut short, mut short_flagged) = (0, 0, 0, 0);
    let mut by_scenario: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (scorer, rows) in parts {
        let (thresholds, guardrail) =
            *settings.get_or_insert((scorer.thresholds, scorer.guardrail));
        for row in rows {
            let Ok(assessment) = scorer.score(&row.address) else {
                unparseable += 1;
                continue;
            };
            let flagged = assessment.risk >= thresholds.review_at;
            risks.push(assessment.risk);
            markov.push(assessment.markov_risk);
            labels.push(row.label == 1);
            boosted += usize::from(assessment.boosted());
            if row.label == 0 && assessment.features.row[LENGTH] as usize <= guardrail.min_length {
                short += 1;
                short_flagged += usize::from(flagged);
            }
            if !row.scenario.is_empty() {
                let entry = by_scenario.entry(row.scenario.clone()).or_default();
                entry.0 += 1;
                entry.1 += usize::from(flagged);
            }
        }
    }
    // No parts at all: report against the default thresholds.
    let thresholds = settings.map_or_else(
        || AddressOperatorConfig::default().thresholds(),
        |(thresholds, _)| thresholds,
    );
    let flag = DetectionFigures::of(&risks, &labels, thresholds.review_at);
    AddressEvaluation {
        rows: risks.len(),
        fraudulent: labels.iter().filter(|&&l| l).count(),
        unparseable,
        threshold: thresholds.review_at,
        precision: flag.precision,
        recall: flag.recall,
        f1: flag.f1,
        auc: flag.auc,
        block: DetectionFigures::of(&risks, &labels, thresholds.block_at),
        markov_only: DetectionFigures::of(&markov, &labels, thresholds.review_at),
        boosted_share: boosted as f64 / risks.len().max(1) as f64,
        short_legitimate: short,
        short_legitimate_flagged: short_flagged,
        flagged_by_scenario: by_scenario
            .into_iter()
            .map(|(scenario, (total, flagged))| (scenario, flagged as f64 / total as f64))
            .collect(),
    }
}

impl AddressEvaluation {
    /// Human-readable report.
    pub fn report(&self) -> String {
        let mut text = format!(
            "rows {} (fraudulent {}, unparseable {})\n\
             flag (risk >= {:.2}): precision {:.4} recall {:.4} f1 {:.4}  auc {:.4}\n\
             block: precision {:.4} recall {:.4} f1 {:.4}\n\
             markov only: precision {:.4} recall {:.4} f1 {:.4} auc {:.4}\n\
             calibration boosted {:.1}% of rows; short legitimate local parts flagged {}/{}\n",
            self.rows,
            self.fraudulent,
            self.unparseable,
            self.threshold,
            self.precision,
            self.recall,
            self.f1,
            self.auc,
            self.block.precision,
            self.block.recall,
            self.block.f1,
            self.markov_only.precision,
            self.markov_only.recall,
            self.markov_only.f1,
            self.markov_only.auc,
            100.0 * self.boosted_share,
            self.short_legitimate_flagged,
            self.short_legitimate,
        );
        for (scenario, share) in &self.flagged_by_scenario {
            text.push_str(&format!("  flagged {scenario}: {:.4}\n", share));
        }
        text
    }
}
