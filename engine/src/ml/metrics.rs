//! Evaluation metrics shared by every operator: binary counts, ROC-AUC, ROC and PR curves,
//! operating points chosen from a PR curve, multi-class confusion matrices (per-class precision,
//! recall, macro-F1), and regression errors (R², MAE).
//!
//! Convention everywhere: a score is "the event is positive" (an attack), and the decision
//! at threshold `t` is `score >= t`. Curves list one point per distinct score, from the
//! strictest threshold (highest score) to the loosest, so recall never decreases along them.

use serde::{Deserialize, Serialize};

/// Confusion counts of a binary decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryCounts {
    /// Positives flagged.
    pub true_positives: u64,
    /// Negatives flagged.
    pub false_positives: u64,
    /// Negatives not flagged.
    pub true_negatives: u64,
    /// Positives missed.
    pub false_negatives: u64,
}

impl BinaryCounts {
    /// Counts of `score >= threshold` against `labels` (true = positive).
    pub fn at_threshold(scores: &[f64], labels: &[bool], threshold: f64) -> Self {
        let mut counts = Self::default();
        for (&score, &positive) in scores.iter().zip(labels) {
            counts.add(positive, score >= threshold);
        }
        counts
    }

    /// Adds one decision.
    pub fn add(&mut self, positive: bool, flagged: bool) {
        match (positive, flagged) {
            (true, true) => self.true_positives += 1,
            (false, true) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
            (true, false) => self.false_negatives += 1,
        }
    }

    /// All decisions counted.
    pub fn total(&self) -> u64 {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }

    /// Share of correct decisions.
    pub fn accuracy(&self) -> f64 {
        ratio(self.true_positives + self.true_negatives, self.total())
    }

    /// Flagged events that are positive (1 when nothing is flagged: no false alarm).
    pub fn precision(&self) -> f64 {
        let flagged = self.true_positives + self.false_positives;
        if flagged == 0 {
            return 1.0;
        }
        ratio(self.true_positives, flagged)
    }

    /// Positives flagged (true-positive rate).
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Negatives flagged (false-positive rate).
    pub fn false_positive_rate(&self) -> f64 {
        ratio(
            self.false_positives,
            self.false_positives + self.true_negatives,
        )
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (precision, recall) = (self.precision(), self.recall());
        if precision + recall == 0.0 {
            return 0.0;
        }
        2.0 * precision * recall / (precision + recall)
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        return 0.0;
    }
    numerator as f64 / denominator as f64
}

/// One point of a threshold sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Decision threshold (`score >= threshold` flags).
    pub threshold: f64,
    /// Counts at that threshold.
    pub counts: BinaryCounts,
}

/// The threshold sweep over every distinct score, strictest first.
pub fn threshold_sweep(scores: &[f64], labels: &[bool]) -> Vec<CurvePoint> {
    let mut order: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = order.iter().filter(|&&index| labels[index]).count() as u64;
    let negatives = order.len() as u64 - positives;
    let mut points = Vec::new();
    let (mut true_positives, mut false_positives) = (0u64, 0u64);
    let mut position = 0;
    while position < order.len() {
        let threshold = scores[order[position]];
        // All rows tied at this score flip together.
        while position < order.len() && scores[order[position]] == threshold {
            if labels[order[position]] {
                true_positives += 1;
            } else {
                false_positives += 1;
            }
            position += 1;
        }
        points.push(CurvePoint {
            threshold,
            counts: BinaryCounts {
                true_positives,
                false_positives,
                true_negatives: negatives - false_positives,
                false_negatives: positives - true_positives,
            },
        });
    }
    points
}

/// Area under the ROC curve (trapezoidal over the sweep, so ties count one half).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let sweep = threshold_sweep(scores, labels);
    let (mut area, mut previous_fpr, mut previous_tpr) = (0.0, 0.0, 0.0);
    for point in &sweep {
        let (fpr, tpr) = (point.counts.false_positive_rate(), point.counts.recall());
        area += (fpr - previous_fpr) * (tpr + previous_tpr) / 2.0;
        previous_fpr = fpr;
        previous_tpr = tpr;
    }
    area
}

/// Operating point chosen on a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Decision threshold.
    pub threshold: f64,
    /// Precision at it on the data it was chosen on.
    pub precision: f64,
    /// Recall at it on the data it was chosen on.
    pub recall: f64,
}

impl OperatingPoint {
    fn from_point(point: &CurvePoint) -> Self {
        Self {
            threshold: point.threshold,
            precision: point.counts.precision(),
            recall: point.counts.recall(),
        }
    }
}

/// The strictest threshold whose recall reaches `min_recall` (fewest alerts for that recall).
pub fn threshold_for_recall(sweep: &[CurvePoint], min_recall: f64) -> Option<OperatingPoint> {
    sweep
        .iter()
        .find(|point| point.counts.recall() >= min_recall)
        .map(OperatingPoint::from_point)
}

/// The loosest threshold whose precision is at least `min_precision` (most recall at that
/// precision).
pub fn threshold_for_precision(sweep: &[CurvePoint], min_precision: f64) -> Option<OperatingPoint> {
    sweep
        .iter()
        .filter(|point| point.counts.true_positives > 0)
        .filter(|point| point.counts.precision() >= min_precision)
        .max_by(|a, b| a.counts.recall().total_cmp(&b.counts.recall()))
        .map(OperatingPoint::from_point)
}

/// The threshold with the best F1 (the strictest one on ties).
pub fn threshold_best_f1(sweep: &[CurvePoint]) -> Option<OperatingPoint> {
    sweep
        .iter()
        .fold(None::<&CurvePoint>, |best, point| match best {
            Some(best) if best.counts.f1() >= point.counts.f1() => Some(best),
            _ => Some(point),
        })
        .map(OperatingPoint::from_point)
}

/// The threshold minimising `fp_cost · FP + fn_cost · FN` (the strictest one on ties).
pub fn threshold_min_cost(
    sweep: &[CurvePoint],
    false_positive_cost: f64,
    false_negative_cost: f64,
) -> Option<OperatingPoint> {
    let cost = |point: &CurvePoint| {
        false_positive_cost * point.counts.false_positives as f64
            + false_negative_cost * point.counts.false_negatives as f64
    };
    sweep
        .iter()
        .fold(None::<&CurvePoint>, |best, point| match best {
            Some(best) if cost(best) <= cost(point) => Some(best),
            _ => Some(point),
        })
        .map(OperatingPoint::from_point)
}

/// A K-class confusion matrix: `counts[truth][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Class names, in index order.
    pub classes: Vec<String>,
    /// Row = true class, column = predicted class.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An empty matrix over `classes`.
    pub fn new(classes: Vec<String>) -> Self {
        let size = classes.len();
        Self {
            classes,
            counts: vec![vec![0; size]; size],
        }
    }

    /// Counts one prediction; indices out of range are ignored.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if let Some(cell) = self
            .counts
            .get_mut(truth)
            .and_then(|row| row.get_mut(predicted))
        {
            *cell += 1;
        }
    }

    /// Recall of class `index` (0 when it has no rows).
    pub fn recall(&self, index: usize) -> f64 {
        let row = &self.counts[index];
        ratio(row[index], row.iter().sum())
    }

    /// Precision of class `index` (0 when it was never predicted).
    pub fn precision(&self, index: usize) -> f64 {
        let predicted: u64 = self.counts.iter().map(|row| row[index]).sum();
        ratio(self.counts[index][index], predicted)
    }

    /// F1 of class `index` (0 when precision and recall are both 0).
    pub fn f1(&self, index: usize) -> f64 {
        let (precision, recall) = (self.precision(index), self.recall(index));
        if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        }
    }

    /// Unweighted mean of the per-class F1 scores.
    pub fn macro_f1(&self) -> f64 {
        let classes = self.classes.len();
        if classes == 0 {
            return 0.0;
        }
        (0..classes).map(|index| self.f1(index)).sum::<f64>() / classes as f64
    }

    /// Rows of class `index`.
    pub fn support(&self, index: usize) -> u64 {
        self.counts[index].iter().sum()
    }

    /// Share of rows on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let diagonal: u64 = (0..self.classes.len()).map(|i| self.counts[i][i]).sum();
        let total: u64 = self.counts.iter().flatten().sum();
        ratio(diagonal, total)
    }
}

/// Coefficient of determination `1 − SSE/SST` of `predicted` against `truth` (0 when the
/// truth is constant).
pub fn r_squared(truth: &[f64], predicted: &[f64]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let total: f64 = truth.iter().map(|value| (value - mean).powi(2)).sum();
    let residual: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(value, guess)| (value - guess).powi(2))
        .sum();
    if total == 0.0 {
        0.0
    } else {
        1.0 - residual / total
    }
}

/// Mean absolute error of `predicted` against `truth`.
pub fn mean_absolute_error(truth: &[f64], predicted: &[f64]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    truth
        .iter()
        .zip(predicted)
        .map(|(value, guess)| (value - guess).abs())
        .sum::<f64>()
        / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_precision_recall_and_macro_f1() {
        let mut matrix = ConfusionMatrix::new(vec!["a".into(), "b".into()]);
        // a: 3 right, 1 called b; b: 1 right, 1 called a.
        for (truth, predicted) in [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 0)] {
            matrix.add(truth, predicted);
        }
        assert_eq!(matrix.precision(0), 0.75);
        assert_eq!(matrix.recall(0), 0.75);
        assert_eq!(matrix.precision(1), 0.5);
        assert_eq!(matrix.recall(1), 0.5);
        assert!((matrix.macro_f1() - 0.625).abs() < 1e-12);
    }

    /// Coefficient of determination and mean absolute error against known values.
    #[test]
    fn r2_and_mae_known_values() {
        let truth = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(r_squared(&truth, &truth), 1.0);
        assert_eq!(r_squared(&truth, &[2.5; 4]), 0.0);
        // SSE 1.0 over SST 5.0.
        assert!((r_squared(&truth, &[1.5, 2.5, 2.5, 3.5]) - 0.8).abs() < 1e-12);
        assert_eq!(mean_absolute_error(&truth, &[1.5, 2.5, 2.5, 3.5]), 0.5);
    }

    #[test]
    fn auc_of_perfect_random_and_inverted_rankings() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &labels), 0.5);
    }

    #[test]
    fn auc_equals_the_pairwise_ranking_probability() {
        // Mann-Whitney: P(score of a positive > score of a negative) + ½ P(tie).
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.7, 0.2, 0.9];
        let labels = [false, false, true, true, true, false, false, true];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for (i, &positive_score) in scores.iter().enumerate().filter(|(i, _)| labels[*i]) {
            for (j, &negative_score) in scores.iter().enumerate().filter(|(j, _)| !labels[*j]) {
                let _ = (i, j);
                pairs += 1.0;
                if positive_score > negative_score {
                    wins += 1.0;
                } else if positive_score == negative_score {
                    wins += 0.5;
                }
            }
        }
        assert!((roc_auc(&scores, &labels) - wins / pairs).abs() < 1e-12);
    }

    #[test]
    fn sweep_points_and_operating_points() {
        let scores = [0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.1];
        let labels = [true, true, false, true, true, false, true, false];
        let sweep = threshold_sweep(&scores, &labels);
        assert_eq!(sweep.len(), 8);
        let last = sweep.last().unwrap().counts;
        assert_eq!((last.true_positives, last.false_positives), (5, 3));

        let recall_point = threshold_for_recall(&sweep, 0.8).unwrap();
        assert_eq!(recall_point.threshold, 0.6); // 4 of 5 positives at >= 0.6
        let precise = threshold_for_precision(&sweep, 0.99).unwrap();
        assert_eq!(precise.threshold, 0.9); // the two top scores are both positive
        let best = threshold_best_f1(&sweep).unwrap();
        assert_eq!(best.threshold, 0.3); // tp 5, fp 2: F1 0.83 beats 0.8 at 0.6
                                         // Misses cost ten times a false alarm: flag down to the last positive.
        let cheap = threshold_min_cost(&sweep, 1.0, 10.0).unwrap();
        assert_eq!(cheap.threshold, 0.3);
        // False alarms cost ten times a miss: stop before the first negative.
        let quiet = threshold_min_cost(&sweep, 10.0, 1.0).unwrap();
        assert_eq!(quiet.threshold, 0.9);
    }

    #[test]
    fn counts_and_rates() {
        let counts =
            BinaryCounts::at_threshold(&[0.9, 0.2, 0.6, 0.1], &[true, true, false, false], 0.5);
        assert_eq!(counts.true_positives, 1);
        assert_eq!(counts.false_negatives, 1);
        assert_eq!(counts.false_positives, 1);
        assert_eq!(counts.accuracy(), 0.5);
        assert_eq!(counts.f1(), 0.5);
    }

    #[test]
    fn confusion_matrix_recall_and_accuracy() {
        let mut matrix = ConfusionMatrix::new(vec!["a".into(), "b".into()]);
        matrix.add(0, 0);
        matrix.add(0, 1);
        matrix.add(1, 1);
        matrix.add(7, 0); // out of range: ignored
        assert_eq!(matrix.recall(0), 0.5);
        assert_eq!(matrix.recall(1), 1.0);
        assert!((matrix.accuracy() - 2.0 / 3.0).abs() < 1e-12);
    }
}
