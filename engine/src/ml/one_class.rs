//! One-class SVM (Schölkopf et al. 2001) with a Gaussian kernel, fitted with `linfa-svm` and
//! stored as plain numbers: support vectors, their coefficients, ρ and the kernel width.
//!
//! Decision value `f(x) = Σᵢ αᵢ · exp(−‖x − sᵢ‖² / width) − ρ` is positive inside the learned
//! support of normal data; the anomaly score is `−f(x)` (higher = more anomalous). `ν` bounds
//! the share of training rows left outside (and is a lower bound of the support-vector share).
//!
//! Why stored by hand: linfa's `Svm` keeps its support vectors private and has no stable file
//! format; the operator needs a model file with a sha256 in a manifest. The stored form is
//! checked against linfa's own decision values in the tests below. Training cost is quadratic
//! in rows (a dense kernel matrix), so callers fit on a bounded sample.

use linfa::prelude::*;
use linfa_svm::Svm;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// A fitted one-class SVM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneClassSvm {
    /// Row width.
    pub inputs: usize,
    /// Gaussian kernel width (`exp(−‖x − y‖² / width)`).
    pub kernel_width: f64,
    /// ρ, the offset of the decision function.
    pub rho: f64,
    /// Support vectors, row-major `support_count × inputs`.
    pub support: Vec<f64>,
    /// Their coefficients αᵢ.
    pub coefficients: Vec<f64>,
    /// `ν` it was fitted with.
    pub nu: f64,
}

impl OneClassSvm {
    /// Fits on `rows` (`n × inputs`) with share `nu` and kernel width `kernel_width`.
    pub fn fit(rows: &Array2<f64>, nu: f64, kernel_width: f64) -> Result<Self, String> {
        if rows.nrows() < 2 || !(0.0 < nu && nu <= 1.0) || kernel_width <= 0.0 {
            return Err("one-class SVM needs two rows, 0 < nu ≤ 1 and a positive width".into());
        }
        let dataset = DatasetBase::from(rows.clone());
        let model: Svm<f64, bool> = Svm::<f64, Pr>::params()
            .nu_weight(nu)
            .gaussian_kernel(kernel_width)
            .fit(&dataset)
            .map_err(|error| error.to_string())?;
        let mut support = Vec::new();
        let mut coefficients = Vec::new();
        for (row, &alpha) in rows.outer_iter().zip(&model.alpha) {
            if alpha.abs() > 1e-12 {
                support.extend(row.iter().copied());
                coefficients.push(alpha);
            }
        }
        Ok(Self {
            inputs: rows.ncols(),
            kernel_width,
            rho: model.rho,
            support,
            coefficients,
            nu,
        })
    }

    /// `f(x)`: positive inside the normal region.
    pub fn decision(&self, row: &[f64]) -> f64 {
        let mut sum = 0.0;
        for (vector, alpha) in self
            .support
            .chunks_exact(self.inputs)
            .zip(&self.coefficients)
        {
            let distance: f64 = vector.iter().zip(row).map(|(s, x)| (s - x) * (s - x)).sum();
            sum += alpha * (-distance / self.kernel_width).exp();
        }
        sum - self.rho
    }

    /// Anomaly score `−f(x)`.
    pub fn score(&self, row: &[f64]) -> f64 {
        -self.decision(row)
    }

    /// Number of support vectors.
    pub fn support_count(&self) -> usize {
        self.coefficients.len()
    }

    /// Checks the stored shapes.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.inputs > 0
            && self.support.len() == self.coefficients.len() * self.inputs
            && self.kernel_width > 0.0
            && self.rho.is_finite()
            && self
                .support
                .iter()
                .chain(&self.coefficients)
                .all(|v| v.is_finite());
        ok.then_some(())
            .ok_or_else(|| "one-class SVM does not match its shape".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn blob(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((n, 2), |_| rng.gen_range(-1.0..1.0))
    }

    #[test]
    fn stored_form_reproduces_linfas_decision_values() {
        let rows = blob(150, 1);
        let dataset = DatasetBase::from(rows.clone());
        let linfa: Svm<f64, bool> = Svm::<f64, Pr>::params()
            .nu_weight(0.1)
            .gaussian_kernel(0.5)
            .fit(&dataset)
            .unwrap();
        let ours = OneClassSvm::fit(&rows, 0.1, 0.5).unwrap();
        for row in blob(40, 2).outer_iter().chain(
            Array2::from_shape_vec((2, 2), vec![3.0, 3.0, 0.0, 0.0])
                .unwrap()
                .outer_iter(),
        ) {
            let expected = linfa.weighted_sum(&row) - linfa.rho;
            let got = ours.decision(row.as_slice().unwrap());
            assert!((expected - got).abs() < 1e-9, "{expected} vs {got}");
            assert_eq!(linfa.predict(row), got >= 0.0);
        }
        ours.validate().unwrap();
    }

    #[test]
    fn nu_bounds_the_outside_share_and_far_points_score_high() {
        // Roughly Gaussian rows (sums of uniforms), dense at the centre.
        let mut rng = StdRng::seed_from_u64(3);
        let rows = Array2::from_shape_fn((300, 2), |_| {
            (0..4).map(|_| rng.gen_range(-0.5..0.5)).sum::<f64>()
        });
        let model = OneClassSvm::fit(&rows, 0.05, 4.0).unwrap();
        let outside = rows
            .outer_iter()
            .filter(|r| model.decision(r.as_slice().unwrap()) < -1e-9)
            .count();
        // ν is an upper bound of the training share outside (libsvm's ν-property), up to ties.
        assert!(outside as f64 <= 0.05 * 300.0 + 2.0, "{outside}");
        assert!(model.support_count() as f64 >= 0.05 * 300.0 - 1.0);
        assert!(model.score(&[4.0, 4.0]) > model.score(&[1.0, 1.0]));
        assert!(model.score(&[1.0, 1.0]) > model.score(&[0.0, 0.0]));
        assert!(model.score(&[4.0, 4.0]) > 0.0 && model.score(&[0.0, 0.0]) < 0.0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(OneClassSvm::fit(&blob(1, 1), 0.1, 1.0).is_err());
        assert!(OneClassSvm::fit(&blob(10, 1), 0.0, 1.0).is_err());
        assert!(OneClassSvm::fit(&blob(10, 1), 0.1, 0.0).is_err());
    }
}
