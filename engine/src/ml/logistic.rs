//! Binary logistic regression on standardised features, fitted with `linfa-logistic`
//! (L-BFGS, L2 penalty) and stored as plain numbers, so scoring needs neither linfa nor
//! ndarray: `p = σ(b + Σ wᵢ · (xᵢ − μᵢ) / sᵢ)`.
//!
//! Standardising first makes the penalty treat every feature alike and makes each term
//! `wᵢ · (xᵢ − μᵢ) / sᵢ` a readable contribution in log-odds against the training mean — the
//! explanation the address operator shows. A constant column gets scale 1 and weight ~0.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// A fitted model; see the module doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardizedLogistic {
    /// Training mean of each feature.
    pub means: Vec<f64>,
    /// Training standard deviation of each feature (1 where it was 0).
    pub scales: Vec<f64>,
    /// Weight of each standardised feature (log-odds per standard deviation).
    pub weights: Vec<f64>,
    /// Log-odds at the training mean.
    pub intercept: f64,
    /// L2 penalty it was fitted with.
    pub l2_penalty: f64,
}

/// `1 / (1 + e^−z)`.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl StandardizedLogistic {
    /// Fits `labels` (true = positive) on `rows` with L2 penalty `l2_penalty`.
    pub fn fit(rows: &[Vec<f64>], labels: &[bool], l2_penalty: f64) -> Result<Self, String> {
        let width = rows.first().map_or(0, Vec::len);
        if rows.is_empty() || width == 0 || rows.len() != labels.len() {
            return Err("logistic regression needs rows, columns and one label per row".into());
        }
        if rows
            .iter()
            .any(|row| row.len() != width || row.iter().any(|x| !x.is_finite()))
        {
            return Err("logistic regression rows must be finite and equally wide".into());
        }
        let n = rows.len() as f64;
        let means: Vec<f64> = (0..width)
            .map(|j| rows.iter().map(|row| row[j]).sum::<f64>() / n)
            .collect();
        let scales: Vec<f64> = (0..width)
            .map(|j| {
                let variance = rows
                    .iter()
                    .map(|row| (row[j] - means[j]).powi(2))
                    .sum::<f64>()
                    / n;
                if variance > 0.0 {
                    variance.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let matrix = Array2::from_shape_fn((rows.len(), width), |(i, j)| {
            (rows[i][j] - means[j]) / scales[j]
        });
        let targets = Array1::from_iter(labels.iter().copied());
        let fitted = LogisticRegression::default()
            .alpha(l2_penalty)
            .max_iterations(500)
            .gradient_tolerance(1e-6)
            .fit(&Dataset::new(matrix, targets))
            .map_err(|error| format!("logistic regression fit failed: {error}"))?;
        // linfa calls the larger class "positive"; turn the model round when that is `false`.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Self {
            means,
            scales,
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
            l2_penalty,
        })
    }

    /// Columns the model expects.
    pub fn width(&self) -> usize {
        self.weights.len()
    }

    /// Each feature's term in the log-odds: `wᵢ · (xᵢ − μᵢ) / sᵢ`.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(&self.means)
            .zip(&self.scales)
            .zip(&self.weights)
            .map(|(((x, mean), scale), weight)| weight * (x - mean) / scale)
            .collect()
    }

    /// Probability of the positive class.
    pub fn probability(&self, row: &[f64]) -> f64 {
        sigmoid(self.intercept + self.contributions(row).iter().sum::<f64>())
    }

    /// Checks the stored numbers are usable.
    pub fn validate(&self, width: usize) -> Result<(), String> {
        let lengths_ok =
            self.means.len() == width && self.scales.len() == width && self.weights.len() == width;
        let numbers_ok = self
            .means
            .iter()
            .chain(&self.weights)
            .chain(std::iter::once(&self.intercept))
            .all(|x| x.is_finite())
            && self.scales.iter().all(|s| s.is_finite() && *s > 0.0);
        if lengths_ok && numbers_ok {
            Ok(())
        } else {
            Err(format!(
                "logistic model does not fit {width} columns or holds non-finite numbers"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Rows drawn from a known model `logit = 2·x0 − 1·x1 + 0·x2 − 0.5` recover its weights.
    #[test]
    fn recovers_known_weights() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let row: Vec<f64> = (0..3).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let logit = 2.0 * row[0] - row[1] - 0.5;
            labels.push(rng.gen_bool(sigmoid(logit)));
            rows.push(row);
        }
        let model = StandardizedLogistic::fit(&rows, &labels, 1e-3).unwrap();
        // Back to raw units: w_raw = w / s, b_raw = b − Σ w·μ/s.
        let raw: Vec<f64> = (0..3).map(|j| model.weights[j] / model.scales[j]).collect();
        assert!((raw[0] - 2.0).abs() < 0.15, "{raw:?}");
        assert!((raw[1] + 1.0).abs() < 0.1, "{raw:?}");
        assert!(raw[2].abs() < 0.1, "{raw:?}");
        let intercept = model.intercept
            - (0..3)
                .map(|j| model.weights[j] * model.means[j] / model.scales[j])
                .sum::<f64>();
        assert!((intercept + 0.5).abs() < 0.1, "{intercept}");
        let p = model.probability(&[1.0, 0.0, 0.0]);
        assert!((p - sigmoid(1.5)).abs() < 0.03, "{p}");
        model.validate(3).unwrap();
    }

    #[test]
    fn orientation_does_not_depend_on_which_class_is_larger() {
        // Positives the minority, then the majority: the weight of x keeps its sign.
        for positives_from in [8.0, 2.0] {
            let rows: Vec<Vec<f64>> = (0..100).map(|i| vec![f64::from(i) / 10.0]).collect();
            let labels: Vec<bool> = rows.iter().map(|row| row[0] >= positives_from).collect();
            let model = StandardizedLogistic::fit(&rows, &labels, 0.1).unwrap();
            assert!(model.weights[0] > 0.0, "from {positives_from}: {model:?}");
            assert!(model.probability(&[9.5]) > 0.5 && model.probability(&[0.5]) < 0.5);
        }
    }

    #[test]
    fn refuses_unusable_input() {
        assert!(StandardizedLogistic::fit(&[], &[], 1.0).is_err());
        assert!(StandardizedLogistic::fit(&[vec![f64::NAN]], &[true], 1.0).is_err());
        assert!(
            StandardizedLogistic::fit(&[vec![1.0], vec![2.0, 3.0]], &[true, false], 1.0).is_err()
        );
    }
}
