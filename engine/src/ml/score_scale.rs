//! Maps a detector's raw anomaly score to [0, 1] against normal data, so detectors with
//! different units can be weighted and voted on together.
//!
//! The scale keeps the 0.0 %, 0.1 %, … 100 % quantiles of the detector's scores on held-out
//! normal messages. Up to the 99th percentile the normalised score is the interpolated share
//! of normal scores below the value (a percentile rank: 0.95 means "higher than 95 % of
//! normal mail"). Above it, where normal data is too sparse to rank, it rises smoothly toward
//! 1: `0.99 + 0.01 · (1 − exp(−(x − q₉₉) / (q₉₉ − q₅₀)))`, so a score far beyond anything
//! normal still ranks above one just past the 99th percentile. Monotone and continuous.

use serde::{Deserialize, Serialize};

/// Quantile steps stored: 0.1 % resolution.
pub const STEPS: usize = 1000;
/// Percentile rank where the tail formula takes over.
const TAIL_FROM: f64 = 0.99;

/// Quantiles of a detector's scores on normal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreScale {
    /// `STEPS + 1` non-decreasing quantiles, `quantiles[k]` at `k / STEPS`.
    pub quantiles: Vec<f64>,
}

impl ScoreScale {
    /// The scale of `scores` (at least one, all finite).
    pub fn fit(scores: &[f64]) -> Result<Self, String> {
        if scores.is_empty() || scores.iter().any(|s| !s.is_finite()) {
            return Err("score scale needs finite scores".to_owned());
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        let last = (sorted.len() - 1) as f64;
        let quantiles = (0..=STEPS)
            .map(|k| {
                let position = last * k as f64 / STEPS as f64;
                let low = position.floor() as usize;
                let high = position.ceil() as usize;
                sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
            })
            .collect();
        Ok(Self { quantiles })
    }

    /// The score at percentile rank `p` (0–1), interpolated.
    pub fn quantile(&self, p: f64) -> f64 {
        let position = p.clamp(0.0, 1.0) * STEPS as f64;
        let low = position.floor() as usize;
        let high = (low + 1).min(STEPS);
        let fraction = position - low as f64;
        self.quantiles[low] + (self.quantiles[high] - self.quantiles[low]) * fraction
    }

    /// The normalised score of raw score `x`.
    pub fn normalize(&self, x: f64) -> f64 {
        if x.is_nan() {
            return 1.0;
        }
        let tail_start = self.quantile(TAIL_FROM);
        if x > tail_start {
            let spread = (tail_start - self.quantile(0.5)).max(1e-12);
            return TAIL_FROM + (1.0 - TAIL_FROM) * (1.0 - (-(x - tail_start) / spread).exp());
        }
        let tail_step = (TAIL_FROM * STEPS as f64) as usize;
        let table = &self.quantiles[..=tail_step];
        if x < table[0] {
            return 0.0;
        }
        // The last quantile ≤ x; ties resolve to the highest rank holding that value.
        let upper = table.partition_point(|&q| q <= x);
        let low = upper - 1;
        if low >= tail_step {
            return TAIL_FROM;
        }
        let (a, b) = (table[low], table[low + 1]);
        let fraction = if b > a { (x - a) / (b - a) } else { 0.0 };
        (low as f64 + fraction) / STEPS as f64
    }

    /// Checks the stored table.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.quantiles.len() == STEPS + 1
            && self.quantiles.iter().all(|q| q.is_finite())
            && self.quantiles.windows(2).all(|w| w[0] <= w[1]);
        ok.then_some(())
            .ok_or_else(|| "score scale is not 1001 non-decreasing quantiles".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform() -> ScoreScale {
        // 0, 1, …, 1000: quantile k/1000 is exactly k.
        ScoreScale::fit(&(0..=1000).map(f64::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn percentile_ranks_below_the_tail() {
        let scale = uniform();
        assert_eq!(scale.quantile(0.95), 950.0);
        assert_eq!(scale.normalize(-5.0), 0.0);
        assert_eq!(scale.normalize(0.0), 0.0);
        assert!((scale.normalize(500.0) - 0.5).abs() < 1e-12);
        assert!((scale.normalize(950.5) - 0.9505).abs() < 1e-12);
        assert!((scale.normalize(990.0) - 0.99).abs() < 1e-12);
    }

    #[test]
    fn the_tail_is_continuous_monotone_and_below_one() {
        let scale = uniform();
        let spread = 990.0 - 500.0;
        let at = |x: f64| scale.normalize(x);
        assert!((at(990.0 + spread) - (0.99 + 0.01 * (1.0 - (-1f64).exp()))).abs() < 1e-12);
        let mut previous = 0.0;
        for x in (0..4000).map(|k| f64::from(k) * 0.7) {
            let value = at(x);
            assert!(value >= previous && value < 1.0, "{x} {value}");
            previous = value;
        }
        assert!(at(989.999) < at(990.001));
        assert_eq!(at(f64::NAN), 1.0);
    }

    #[test]
    fn ties_and_small_samples() {
        let constant = ScoreScale::fit(&[2.0; 10]).unwrap();
        assert_eq!(constant.normalize(1.0), 0.0);
        assert!(constant.normalize(2.0) <= 0.99);
        assert!(constant.normalize(2.5) > 0.99);
        constant.validate().unwrap();
        assert!(ScoreScale::fit(&[]).is_err());
        assert!(ScoreScale::fit(&[f64::INFINITY]).is_err());
        let mut broken = uniform();
        broken.quantiles.swap(3, 4);
        assert!(broken.validate().is_err());
    }
}
