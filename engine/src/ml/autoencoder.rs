//! A small dense autoencoder: `x → tanh(W₁x + b₁) → W₂h + b₂ ≈ x`, trained with Adam on
//! mini-batches to minimise the mean squared reconstruction error. The anomaly score of a row
//! is that error; its per-column parts say which features the model could not reconstruct
//! (the explanation of an autoencoder score).
//!
//! Why by hand: no maintained Rust crate offers a trainable MLP without a deep-learning
//! runtime (burn, candle, tch pull a framework or libtorch); one hidden layer over ~80 standardised
//! columns is a few hundred lines, checked below against finite-difference gradients and
//! known low-rank data. Deterministic: same rows, parameters and seed, same weights.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Training parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderParams {
    /// Units of the bottleneck layer.
    pub hidden: usize,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per Adam step.
    pub batch_size: usize,
    /// Adam step size.
    pub learning_rate: f64,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
}

impl Default for AutoencoderParams {
    fn default() -> Self {
        Self {
            hidden: 12,
            epochs: 60,
            batch_size: 64,
            learning_rate: 0.003,
            seed: 7,
        }
    }
}

/// A trained autoencoder (weights row-major: `w1[j * inputs + i]`, `w2[i * hidden + j]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoencoder {
    /// Input (and output) width.
    pub inputs: usize,
    /// Bottleneck width.
    pub hidden: usize,
    /// Encoder weights, `hidden × inputs`.
    pub w1: Vec<f64>,
    /// Encoder biases.
    pub b1: Vec<f64>,
    /// Decoder weights, `inputs × hidden`.
    pub w2: Vec<f64>,
    /// Decoder biases.
    pub b2: Vec<f64>,
}

/// Gradients of the loss, same layout as the weights.
struct Gradients {
    w1: Vec<f64>,
    b1: Vec<f64>,
    w2: Vec<f64>,
    b2: Vec<f64>,
}

impl Gradients {
    fn zeros(model: &Autoencoder) -> Self {
        Self {
            w1: vec![0.0; model.w1.len()],
            b1: vec![0.0; model.b1.len()],
            w2: vec![0.0; model.w2.len()],
            b2: vec![0.0; model.b2.len()],
        }
    }
}

/// Adam's running moments for one parameter vector.
struct Moments {
    first: Vec<f64>,
    second: Vec<f64>,
}

impl Moments {
    fn new(len: usize) -> Self {
        Self {
            first: vec![0.0; len],
            second: vec![0.0; len],
        }
    }

    fn step(&mut self, weights: &mut [f64], gradient: &[f64], rate: f64, t: i32) {
        const BETA1: f64 = 0.9;
        const BETA2: f64 = 0.999;
        const EPSILON: f64 = 1e-8;
        let correction1 = 1.0 - BETA1.powi(t);
        let correction2 = 1.0 - BETA2.powi(t);
        for (((w, g), m), v) in weights
            .iter_mut()
            .zip(gradient)
            .zip(&mut self.first)
            .zip(&mut self.second)
        {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *w -= rate * (*m / correction1) / ((*v / correction2).sqrt() + EPSILON);
        }
    }
}

impl Autoencoder {
    /// Glorot-uniform initial weights, zero biases.
    fn initial(inputs: usize, hidden: usize, rng: &mut StdRng) -> Self {
        let limit = (6.0 / (inputs + hidden) as f64).sqrt();
        let mut uniform =
            |n: usize| -> Vec<f64> { (0..n).map(|_| rng.gen_range(-limit..limit)).collect() };
        Self {
            inputs,
            hidden,
            w1: uniform(hidden * inputs),
            b1: vec![0.0; hidden],
            w2: uniform(inputs * hidden),
            b2: vec![0.0; inputs],
        }
    }

    fn encode(&self, row: &[f64]) -> Vec<f64> {
        (0..self.hidden)
            .map(|j| {
                let weights = &self.w1[j * self.inputs..(j + 1) * self.inputs];
                let sum: f64 = weights.iter().zip(row).map(|(w, x)| w * x).sum();
                (sum + self.b1[j]).tanh()
            })
            .collect()
    }

    fn decode(&self, code: &[f64]) -> Vec<f64> {
        (0..self.inputs)
            .map(|i| {
                let weights = &self.w2[i * self.hidden..(i + 1) * self.hidden];
                weights.iter().zip(code).map(|(w, h)| w * h).sum::<f64>() + self.b2[i]
            })
            .collect()
    }

    /// The reconstruction of `row`.
    pub fn reconstruct(&self, row: &[f64]) -> Vec<f64> {
        self.decode(&self.encode(row))
    }

    /// Squared reconstruction error per column.
    pub fn column_errors(&self, row: &[f64]) -> Vec<f64> {
        self.reconstruct(row)
            .iter()
            .zip(row)
            .map(|(y, x)| (y - x) * (y - x))
            .collect()
    }

    /// Mean squared reconstruction error: the anomaly score.
    pub fn score(&self, row: &[f64]) -> f64 {
        self.column_errors(row).iter().sum::<f64>() / self.inputs as f64
    }

    /// Adds the gradient of `row`'s loss (mean squared error) into `gradients`.
    fn accumulate(&self, row: &[f64], gradients: &mut Gradients) {
        let code = self.encode(row);
        let output = self.decode(&code);
        let scale = 2.0 / self.inputs as f64;
        let output_delta: Vec<f64> = output
            .iter()
            .zip(row)
            .map(|(y, x)| scale * (y - x))
            .collect();
        let mut code_delta = vec![0.0; self.hidden];
        for (i, delta) in output_delta.iter().enumerate() {
            gradients.b2[i] += delta;
            for j in 0..self.hidden {
                gradients.w2[i * self.hidden + j] += delta * code[j];
                code_delta[j] += delta * self.w2[i * self.hidden + j];
            }
        }
        for j in 0..self.hidden {
            let pre = code_delta[j] * (1.0 - code[j] * code[j]);
            gradients.b1[j] += pre;
            let weights = &mut gradients.w1[j * self.inputs..(j + 1) * self.inputs];
            for (w, x) in weights.iter_mut().zip(row) {
                *w += pre * x;
            }
        }
    }

    /// Trains on `rows` (all of width `inputs`).
    pub fn fit(rows: &[Vec<f64>], params: &AutoencoderParams) -> Result<Self, String> {
        let inputs = rows.first().map(Vec::len).ok_or("no training rows")?;
        if rows.iter().any(|row| row.len() != inputs) || inputs == 0 {
            return Err("training rows differ in width".to_owned());
        }
        if params.hidden == 0 || params.batch_size == 0 {
            return Err("hidden and batch_size must be positive".to_owned());
        }
        let mut rng = StdRng::seed_from_u64(params.seed);
        let mut model = Self::initial(inputs, params.hidden, &mut rng);
        let mut moments = [
            Moments::new(model.w1.len()),
            Moments::new(model.b1.len()),
            Moments::new(model.w2.len()),
            Moments::new(model.b2.len()),
        ];
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let mut t = 0;
        for _ in 0..params.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(params.batch_size) {
                let mut gradients = Gradients::zeros(&model);
                for &index in batch {
                    model.accumulate(&rows[index], &mut gradients);
                }
                let n = batch.len() as f64;
                t += 1;
                let rate = params.learning_rate;
                let [m_w1, m_b1, m_w2, m_b2] = &mut moments;
                let mean = |g: Vec<f64>| g.into_iter().map(|v| v / n).collect::<Vec<_>>();
                m_w1.step(&mut model.w1, &mean(gradients.w1), rate, t);
                m_b1.step(&mut model.b1, &mean(gradients.b1), rate, t);
                m_w2.step(&mut model.w2, &mean(gradients.w2), rate, t);
                m_b2.step(&mut model.b2, &mean(gradients.b2), rate, t);
            }
        }
        Ok(model)
    }

    /// Checks the stored shapes (a hand-edited or truncated file is refused at load).
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.w1.len() == self.hidden * self.inputs
            && self.b1.len() == self.hidden
            && self.w2.len() == self.inputs * self.hidden
            && self.b2.len() == self.inputs
            && self
                .w1
                .iter()
                .chain(&self.b1)
                .chain(&self.w2)
                .chain(&self.b2)
                .all(|w| w.is_finite());
        ok.then_some(())
            .ok_or_else(|| "autoencoder weights do not match their shape".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(model: &Autoencoder, row: &[f64]) -> f64 {
        model.score(row)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(1);
        let model = Autoencoder::initial(5, 3, &mut rng);
        let row = [0.3, -1.2, 0.8, 2.0, -0.5];
        let mut gradients = Gradients::zeros(&model);
        model.accumulate(&row, &mut gradients);
        let h = 1e-6;
        let check = |analytic: &[f64], pick: &dyn Fn(&mut Autoencoder) -> &mut Vec<f64>| {
            for (index, &expected) in analytic.iter().enumerate() {
                let mut plus = model.clone();
                pick(&mut plus)[index] += h;
                let mut minus = model.clone();
                pick(&mut minus)[index] -= h;
                let numeric = (loss(&plus, &row) - loss(&minus, &row)) / (2.0 * h);
                assert!((numeric - expected).abs() < 1e-6, "{numeric} vs {expected}");
            }
        };
        check(&gradients.w1, &|m| &mut m.w1);
        check(&gradients.b1, &|m| &mut m.b1);
        check(&gradients.w2, &|m| &mut m.w2);
        check(&gradients.b2, &|m| &mut m.b2);
    }

    /// Rows on a 2-D plane inside 6-D space, plus small noise.
    fn plane_rows(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let a: f64 = rng.gen_range(-1.0..1.0);
                let b: f64 = rng.gen_range(-1.0..1.0);
                let noise = |rng: &mut StdRng| rng.gen_range(-0.01..0.01);
                vec![
                    a + noise(&mut rng),
                    b + noise(&mut rng),
                    0.5 * a - 0.5 * b + noise(&mut rng),
                    -a + noise(&mut rng),
                    0.3 * b + noise(&mut rng),
                    a + b + noise(&mut rng),
                ]
            })
            .collect()
    }

    #[test]
    fn learns_a_low_rank_structure_and_flags_rows_off_it() {
        let rows = plane_rows(800, 2);
        let params = AutoencoderParams {
            hidden: 3,
            epochs: 150,
            ..AutoencoderParams::default()
        };
        let untrained = Autoencoder::initial(6, 3, &mut StdRng::seed_from_u64(params.seed));
        let model = Autoencoder::fit(&rows, &params).unwrap();
        let test = plane_rows(200, 3);
        let mean = |m: &Autoencoder| test.iter().map(|r| m.score(r)).sum::<f64>() / 200.0;
        assert!(mean(&model) < 0.01, "{}", mean(&model));
        assert!(mean(&model) < mean(&untrained) / 10.0);
        // Off the plane: column 5 should be a + b = 0 but is 2.
        let off = [0.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        assert!(model.score(&off) > 20.0 * mean(&model));
        let errors = model.column_errors(&off);
        let worst = (0..6)
            .max_by(|&a, &b| errors[a].total_cmp(&errors[b]))
            .unwrap();
        assert_eq!(worst, 5, "{errors:?}");
        assert_eq!(Autoencoder::fit(&rows, &params).unwrap(), model);
        model.validate().unwrap();
    }

    #[test]
    fn bad_input_and_shapes_are_refused() {
        assert!(Autoencoder::fit(&[], &AutoencoderParams::default()).is_err());
        assert!(
            Autoencoder::fit(&[vec![1.0], vec![1.0, 2.0]], &AutoencoderParams::default()).is_err()
        );
        let mut model =
            Autoencoder::fit(&plane_rows(10, 1), &AutoencoderParams::default()).unwrap();
        model.b2.pop();
        assert!(model.validate().is_err());
    }
}
