//! Histogram gradient-boosted decision trees (second-order, XGBoost-style), trained in Rust.
//!
//! Objectives: binary logistic, K-class softmax, squared error. Features are binned once into
//! at most `max_bins` quantile bins (missing values get their own bin and a learned default
//! direction); each tree grows depth-wise to `max_depth`, choosing splits by the regularised
//! gain `½[G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)] − γ` from per-node histograms, building
//! only the smaller child's histogram and deriving the larger one by subtraction. Training
//! stops early when the validation loss has not improved for `early_stopping_rounds` rounds,
//! and the ensemble is cut back to its best round.
//!
//! Output: an [`Ensemble`] whose trees use the `x < threshold` rule and carry hessian covers,
//! so its predictions and exact TreeSHAP values come from the shared evaluator.

use serde::{Deserialize, Serialize};

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use crate::ml::binning::{partition_rows, Binning, MISSING_BIN};
use crate::ml::trees::{Ensemble, Tree, LEAF};

/// Smallest hessian used, so leaves of confident rows stay finite.
const MIN_HESSIAN: f64 = 1e-16;
/// Probabilities are clipped to this distance from 0 and 1 in losses.
const PROBABILITY_EPSILON: f64 = 1e-15;

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Objective {
    /// P(label = 1); labels 0 or 1; one output, a log-odds margin.
    BinaryLogistic,
    /// Class probabilities; labels 0..classes; one margin per class.
    Softmax {
        /// Number of classes.
        classes: usize,
    },
    /// A real value; one output.
    SquaredError,
}

impl Objective {
    fn outputs(self) -> usize {
        match self {
            Self::Softmax { classes } => classes,
            Self::BinaryLogistic | Self::SquaredError => 1,
        }
    }
}

/// Training parameters (XGBoost names where they exist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtParams {
    /// The objective.
    pub objective: Objective,
    /// Most boosting rounds.
    pub rounds: usize,
    /// Shrinkage applied to each tree's leaves (eta).
    pub learning_rate: f64,
    /// Deepest split level.
    pub max_depth: usize,
    /// Least hessian sum in a child (min_child_weight).
    pub min_child_weight: f64,
    /// L2 regularisation of leaf weights (lambda).
    pub lambda: f64,
    /// Least loss reduction for a split (gamma).
    pub gamma: f64,
    /// Quantile bins per feature, at most 254.
    pub max_bins: usize,
    /// Rounds without validation improvement before stopping (0: never stop early).
    pub early_stopping_rounds: usize,
    /// Share of the columns each tree may split on (colsample_bytree; 1 = all).
    #[serde(default = "all_of_them")]
    pub column_sample: f64,
    /// Share of the rows each tree is grown on (subsample; 1 = all).
    #[serde(default = "all_of_them")]
    pub row_sample: f64,
    /// Seed of the column and row draws.
    #[serde(default)]
    pub seed: u64,
}

/// Manifests written before sampling existed used every column and row.
fn all_of_them() -> f64 {
    1.0
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            objective: Objective::BinaryLogistic,
            rounds: 300,
            learning_rate: 0.1,
            max_depth: 6,
            min_child_weight: 1.0,
            lambda: 1.0,
            gamma: 0.0,
            max_bins: 128,
            early_stopping_rounds: 30,
            column_sample: 1.0,
            row_sample: 1.0,
            seed: 0,
        }
    }
}

/// A row-major feature matrix with labels and optional sample weights.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    /// `rows × columns` values, row-major; NaN means missing.
    pub features: &'a [f64],
    /// Number of columns.
    pub columns: usize,
    /// One label per row (class index as f64 for softmax).
    pub labels: &'a [f64],
    /// One weight per row (class balancing), or all 1.
    pub weights: Option<&'a [f64]>,
}

impl Dataset<'_> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    pub(crate) fn row(&self, index: usize) -> &[f64] {
        &self.features[index * self.columns..(index + 1) * self.columns]
    }

    pub(crate) fn weight(&self, index: usize) -> f64 {
        self.weights.map_or(1.0, |weights| weights[index])
    }
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum GbdtError {
    /// The data does not fit its declared shape or the objective.
    #[error("invalid training data: {0}")]
    InvalidData(String),
}

/// What training did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainReport {
    /// Rounds kept in the ensemble (the best validation round when stopping early).
    pub best_rounds: usize,
    /// Training loss after each round.
    pub train_loss: Vec<f64>,
    /// Validation loss after each round (empty without validation data).
    pub validation_loss: Vec<f64>,
}

/// Gradient and hessian sums per bin of every feature; the last slot of each is missing.
#[derive(Clone)]
struct Histogram {
    slots: usize,
    sums: Vec<(f64, f64)>,
}

impl Histogram {
    fn build(bins: &[Vec<u8>], rows: &[u32], gradients: &[(f64, f64)], slots: usize) -> Self {
        let mut sums = vec![(0.0, 0.0); bins.len() * slots];
        for (column, column_bins) in bins.iter().enumerate() {
            let offset = column * slots;
            for &row in rows {
                let bin = column_bins[row as usize];
                let slot = offset
                    + if bin == MISSING_BIN {
                        slots - 1
                    } else {
                        usize::from(bin)
                    };
                let (gradient, hessian) = gradients[row as usize];
                sums[slot].0 += gradient;
                sums[slot].1 += hessian;
            }
        }
        Self { slots, sums }
    }

    fn subtract(&self, other: &Self) -> Self {
        let sums = self
            .sums
            .iter()
            .zip(&other.sums)
            .map(|(a, b)| (a.0 - b.0, a.1 - b.1))
            .collect();
        Self {
            slots: self.slots,
            sums,
        }
    }
}

/// The best split of a node.
struct Split {
    column: usize,
    /// Rows with bin < cut_index go left.
    cut_index: usize,
    missing_left: bool,
    gain: f64,
}

/// Grows one tree for one output.
struct TreeGrower<'a> {
    params: &'a GbdtParams,
    /// Columns this tree may split on.
    allowed: &'a [bool],
    binning: &'a Binning,
    bins: &'a [Vec<u8>],
    gradients: &'a [(f64, f64)],
    slots: usize,
    tree: Tree,
}

impl TreeGrower<'_> {
    fn leaf_weight(&self, gradient: f64, hessian: f64) -> f64 {
        -gradient / (hessian + self.params.lambda) * self.params.learning_rate
    }

    fn score(&self, gradient: f64, hessian: f64) -> f64 {
        gradient * gradient / (hessian + self.params.lambda)
    }

    fn best_split(&self, histogram: &Histogram, gradient: f64, hessian: f64) -> Option<Split> {
        let parent_score = self.score(gradient, hessian);
        let mut best: Option<Split> = None;
        for (column, cuts) in self.binning.cuts.iter().enumerate() {
            if !self.allowed[column] {
                continue;
            }
            let offset = column * self.slots;
            let (missing_gradient, missing_hessian) = histogram.sums[offset + self.slots - 1];
            let mut left_gradient = 0.0;
            let mut left_hessian = 0.0;
            for cut_index in 1..=cuts.len() {
                let (bin_gradient, bin_hessian) = histogram.sums[offset + cut_index - 1];
                left_gradient += bin_gradient;
                left_hessian += bin_hessian;
                for missing_left in [false, true] {
                    let (gl, hl) = if missing_left {
                        (
                            left_gradient + missing_gradient,
                            left_hessian + missing_hessian,
                        )
                    } else {
                        (left_gradient, left_hessian)
                    };
                    let (gr, hr) = (gradient - gl, hessian - hl);
                    if hl < self.params.min_child_weight || hr < self.params.min_child_weight {
                        continue;
                    }
                    let gain = 0.5 * (self.score(gl, hl) + self.score(gr, hr) - parent_score)
                        - self.params.gamma;
                    if gain > 0.0 && best.as_ref().is_none_or(|split| gain > split.gain) {
                        best = Some(Split {
                            column,
                            cut_index,
                            missing_left,
                            gain,
                        });
                    }
                }
            }
        }
        best
    }

    /// Grows the subtree of `rows` and returns its node index.
    fn grow(&mut self, rows: Vec<u32>, histogram: Histogram, depth: usize) -> u32 {
        let (gradient, hessian) = rows.iter().fold((0.0, 0.0), |(g, h), &row| {
            let (row_gradient, row_hessian) = self.gradients[row as usize];
            (g + row_gradient, h + row_hessian)
        });
        let split = if depth < self.params.max_depth {
            self.best_split(&histogram, gradient, hessian)
        } else {
            None
        };
        let Some(split) = split else {
            return self
                .tree
                .push_leaf(self.leaf_weight(gradient, hessian), hessian);
        };
        let (left_rows, right_rows) = partition_rows(
            &rows,
            &self.bins[split.column],
            split.cut_index,
            split.missing_left,
        );
        // Build the smaller child's histogram; the larger one is the parent minus it.
        let (left_histogram, right_histogram) = if left_rows.len() <= right_rows.len() {
            let small = Histogram::build(self.bins, &left_rows, self.gradients, self.slots);
            let large = histogram.subtract(&small);
            (small, large)
        } else {
            let small = Histogram::build(self.bins, &right_rows, self.gradients, self.slots);
            let large = histogram.subtract(&small);
            (large, small)
        };
        drop(histogram);
        let threshold = self.binning.cuts[split.column][split.cut_index - 1];
        let feature = u32::try_from(split.column).unwrap_or(u32::MAX);
        let node = self.tree.push_node(
            feature,
            threshold,
            LEAF,
            LEAF,
            split.missing_left,
            0.0,
            hessian,
        );
        let left = self.grow(left_rows, left_histogram, depth + 1);
        let right = self.grow(right_rows, right_histogram, depth + 1);
        self.tree.left[node as usize] = left;
        self.tree.right[node as usize] = right;
        node
    }
}

/// Trains an ensemble on `train`, stopping early on `validation` when given.
pub fn train(
    params: &GbdtParams,
    train: &Dataset<'_>,
    validation: Option<&Dataset<'_>>,
) -> Result<(Ensemble, TrainReport), GbdtError> {
    check(params, train)?;
    if let Some(validation) = validation {
        check(params, validation)?;
    }
    let outputs = params.objective.outputs();
    let max_bins = params.max_bins.clamp(2, usize::from(MISSING_BIN) - 1);
    let binning = Binning::fit(train, max_bins);
    let bins = binning.transform(train);
    // One slot per bin plus the missing slot at the end.
    let slots = max_bins + 1;
    let mut ensemble = Ensemble::new(train.columns, base_score(params.objective, train));
    let mut train_margins: Vec<f64> = (0..train.rows())
        .flat_map(|_| ensemble.base_score.clone())
        .collect();
    let mut validation_margins: Vec<f64> = validation
        .map(|data| {
            (0..data.rows())
                .flat_map(|_| ensemble.base_score.clone())
                .collect()
        })
        .unwrap_or_default();
    let all_rows: Vec<u32> = (0..u32::try_from(train.rows()).unwrap_or(u32::MAX)).collect();
    let mut report = TrainReport::default();
    let mut best_loss = f64::INFINITY;
    let mut best_rounds = 0;
    let mut rng = StdRng::seed_from_u64(params.seed);
    for round in 0..params.rounds {
        let mut round_trees = Vec::with_capacity(outputs);
        for output in 0..outputs {
            let gradients = gradients(params.objective, train, &train_margins, output);
            let allowed = draw_columns(&mut rng, train.columns, params.column_sample);
            let rows = draw_rows(&mut rng, &all_rows, params.row_sample);
            let histogram = Histogram::build(&bins, &rows, &gradients, slots);
            let mut grower = TreeGrower {
                params,
                allowed: &allowed,
                binning: &binning,
                bins: &bins,
                gradients: &gradients,
                slots,
                tree: Tree::default(),
            };
            grower.grow(rows, histogram, 0);
            round_trees.push(grower.tree);
        }
        // Margins are updated after all K trees of the round, as softmax boosting requires.
        for (output, tree) in round_trees.into_iter().enumerate() {
            for row in 0..train.rows() {
                train_margins[row * outputs + output] += tree.predict(train.row(row));
            }
            if let Some(validation) = validation {
                for row in 0..validation.rows() {
                    validation_margins[row * outputs + output] += tree.predict(validation.row(row));
                }
            }
            ensemble.trees[output].push(tree);
        }
        report
            .train_loss
            .push(loss(params.objective, train, &train_margins));
        let Some(validation) = validation else {
            best_rounds = round + 1;
            continue;
        };
        let validation_loss = loss(params.objective, validation, &validation_margins);
        report.validation_loss.push(validation_loss);
        if validation_loss < best_loss {
            best_loss = validation_loss;
            best_rounds = round + 1;
        } else if params.early_stopping_rounds > 0
            && round + 1 - best_rounds >= params.early_stopping_rounds
        {
            break;
        }
    }
    for trees in &mut ensemble.trees {
        trees.truncate(best_rounds);
    }
    report.best_rounds = best_rounds;
    Ok((ensemble, report))
}

/// The columns one tree may use: `share` of them (at least one), drawn without replacement.
fn draw_columns(rng: &mut StdRng, columns: usize, share: f64) -> Vec<bool> {
    if share >= 1.0 {
        return vec![true; columns];
    }
    let take = ((columns as f64 * share).round() as usize).clamp(1, columns);
    let mut allowed = vec![false; columns];
    for column in sample(rng, columns, take) {
        allowed[column] = true;
    }
    allowed
}

/// The rows one tree grows on: each kept with probability `share` (all when `share` ≥ 1).
fn draw_rows(rng: &mut StdRng, rows: &[u32], share: f64) -> Vec<u32> {
    if share >= 1.0 {
        return rows.to_vec();
    }
    rows.iter()
        .copied()
        .filter(|_| rng.gen::<f64>() < share)
        .collect()
}

fn check(params: &GbdtParams, data: &Dataset<'_>) -> Result<(), GbdtError> {
    if data.columns == 0 || data.features.len() != data.rows() * data.columns {
        return Err(GbdtError::InvalidData(format!(
            "{} values for {} rows × {} columns",
            data.features.len(),
            data.rows(),
            data.columns
        )));
    }
    if data.rows() == 0 {
        return Err(GbdtError::InvalidData("no rows".into()));
    }
    for (name, share) in [
        ("column_sample", params.column_sample),
        ("row_sample", params.row_sample),
    ] {
        if !(share > 0.0 && share <= 1.0) {
            return Err(GbdtError::InvalidData(format!(
                "{name} {share} is not within (0, 1]"
            )));
        }
    }
    if data
        .weights
        .is_some_and(|weights| weights.len() != data.rows())
    {
        return Err(GbdtError::InvalidData(
            "weights and labels differ in length".into(),
        ));
    }
    let valid_label = |label: f64| match params.objective {
        Objective::BinaryLogistic => label == 0.0 || label == 1.0,
        Objective::Softmax { classes } => {
            label >= 0.0 && label.fract() == 0.0 && (label as usize) < classes
        }
        Objective::SquaredError => label.is_finite(),
    };
    if let Some(label) = data.labels.iter().find(|&&label| !valid_label(label)) {
        return Err(GbdtError::InvalidData(format!(
            "label {label} does not fit {:?}",
            params.objective
        )));
    }
    Ok(())
}

fn base_score(objective: Objective, data: &Dataset<'_>) -> Vec<f64> {
    let total_weight: f64 = (0..data.rows()).map(|row| data.weight(row)).sum();
    let weighted_mean = |predicate: &dyn Fn(f64) -> f64| {
        (0..data.rows())
            .map(|row| data.weight(row) * predicate(data.labels[row]))
            .sum::<f64>()
            / total_weight
    };
    match objective {
        Objective::BinaryLogistic => {
            let positive = weighted_mean(&|label| label).clamp(1e-6, 1.0 - 1e-6);
            vec![(positive / (1.0 - positive)).ln()]
        }
        Objective::Softmax { classes } => (0..classes)
            .map(|class| {
                weighted_mean(&|label| f64::from(u8::from(label as usize == class)))
                    .max(1e-6)
                    .ln()
            })
            .collect(),
        Objective::SquaredError => vec![weighted_mean(&|label| label)],
    }
}

/// Softmax of one row's margins.
pub fn softmax(margins: &[f64]) -> Vec<f64> {
    let max = margins.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = margins.iter().map(|margin| (margin - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|value| value / total).collect()
}

/// The logistic function.
pub fn sigmoid(margin: f64) -> f64 {
    1.0 / (1.0 + (-margin).exp())
}

fn gradients(
    objective: Objective,
    data: &Dataset<'_>,
    margins: &[f64],
    output: usize,
) -> Vec<(f64, f64)> {
    let outputs = objective.outputs();
    (0..data.rows())
        .map(|row| {
            let weight = data.weight(row);
            let label = data.labels[row];
            let (gradient, hessian) = match objective {
                Objective::BinaryLogistic => {
                    let probability = sigmoid(margins[row]);
                    (probability - label, probability * (1.0 - probability))
                }
                Objective::Softmax { .. } => {
                    let probabilities = softmax(&margins[row * outputs..(row + 1) * outputs]);
                    let probability = probabilities[output];
                    let target = f64::from(u8::from(label as usize == output));
                    (probability - target, probability * (1.0 - probability))
                }
                Objective::SquaredError => (margins[row] - label, 1.0),
            };
            (weight * gradient, (weight * hessian).max(MIN_HESSIAN))
        })
        .collect()
}

/// Mean loss: log-loss, multi-class log-loss, or mean squared error.
fn loss(objective: Objective, data: &Dataset<'_>, margins: &[f64]) -> f64 {
    let outputs = objective.outputs();
    let total: f64 = (0..data.rows())
        .map(|row| {
            let label = data.labels[row];
            let row_loss = match objective {
                Objective::BinaryLogistic => {
                    let probability =
                        sigmoid(margins[row]).clamp(PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON);
                    -(label * probability.ln() + (1.0 - label) * (1.0 - probability).ln())
                }
                Objective::Softmax { .. } => {
                    let probabilities = softmax(&margins[row * outputs..(row + 1) * outputs]);
                    -probabilities[label as usize].max(PROBABILITY_EPSILON).ln()
                }
                Objective::SquaredError => (margins[row] - label).powi(2),
            };
            data.weight(row) * row_loss
        })
        .sum();
    let total_weight: f64 = (0..data.rows()).map(|row| data.weight(row)).sum();
    total / total_weight
}

#[cfg(test)]
#[path = "gbdt_tests.rs"]
mod tests;
