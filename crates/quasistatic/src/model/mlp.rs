//! Fully connected network (multi-layer perceptron) of any depth, with a scalar output.
//!
//! Hidden widths `h_1, ..., h_L` (`L >= 1`), inputs `a_0 = x in R^p` (`h_0 = p`), a smooth
//! activation `s` applied entrywise:
//!
//! ```text
//! z_l = W_l a_{l-1} + b_l,   a_l = s(z_l)   (l = 1..L),   f(x) = c . a_L + b_out
//! ```
//!
//! (standard parameterisation, no width factors). Parameter layout: for `l = 1..L` the
//! `h_l x h_{l-1}` matrix `W_l` row-major, then (with biases) `b_l`; then the output weights
//! `c in R^{h_L}`, then (with biases) the output bias `b_out`. So
//! `d = sum_l h_l (h_{l-1} + bias) + h_L + bias` with `bias` 1 or 0.
//!
//! Gradients by back-propagation: `delta_L = c ⊙ s'(z_L)`,
//! `delta_{l-1} = (W_l^T delta_l) ⊙ s'(z_{l-1})`, and `d f / d (W_l)_ij = (delta_l)_i
//! (a_{l-1})_j`, `d f / d (b_l)_i = (delta_l)_i`, `d f / d c = a_L`, `d f / d b_out = 1`. Every
//! operation (the activations included) is a num-dual operation, so evaluating the one
//! generic code path with dual numbers gives exact derivatives of every order.
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Activation, Batch, Model, Scalar};
use crate::data::Dataset;

/// A smooth activation of an [`Mlp`] (non-smooth ones such as ReLU are not offered: the
/// derived dynamics needs third derivatives of the loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpActivation {
    /// `tanh` (as [`Activation::Tanh`]).
    Tanh,
    /// GELU, tanh approximation `s(z) = z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))` (as
    /// [`Activation::Gelu`]; analytic, so every derivative exists and is exact).
    Gelu,
    /// `ln(1 + e^z)`, evaluated stably (as [`Activation::Softplus`]).
    Softplus,
    /// The logistic function `1 / (1 + e^-z)`, evaluated without overflow.
    Sigmoid,
    /// The identity `s(z) = z`.
    Linear,
}

impl MlpActivation {
    /// `(s(z), s'(z))`, generic over the scalar.
    #[inline]
    pub fn value_and_derivative<D: Scalar>(self, z: D) -> (D, D) {
        match self {
            MlpActivation::Tanh => Activation::Tanh.value_and_derivative(z),
            MlpActivation::Gelu => Activation::Gelu.value_and_derivative(z),
            MlpActivation::Softplus => Activation::Softplus.value_and_derivative(z),
            MlpActivation::Sigmoid => {
                // Both branches are the same analytic function; the branch only keeps exp
                // from overflowing.
                let s = if z.re() >= 0.0 {
                    ((-z).exp() + 1.0).recip()
                } else {
                    let e = z.exp();
                    e / (e + 1.0)
                };
                (s, s * (D::one() - s))
            }
            MlpActivation::Linear => (z, D::one()),
        }
    }
}

/// Fully connected network (see the module docs for the parameter layout).
#[derive(Clone, Debug)]
pub struct Mlp {
    widths: Vec<usize>,
    activation: MlpActivation,
    bias: bool,
    train: Dataset,
    test: Option<Dataset>,
    init_seed: u64,
    init_scale: f64,
}

impl Mlp {
    /// Hidden widths (`widths[0]` nearest the input), activation, biases or not, data.
    ///
    /// # Panics
    ///
    /// If `widths` is empty or has a zero, there are no features or no training sample, or
    /// `test` has a different number of features (configuration checks these first).
    pub fn new(
        widths: Vec<usize>,
        activation: MlpActivation,
        bias: bool,
        train: Dataset,
        test: Option<Dataset>,
    ) -> Self {
        assert!(
            !widths.is_empty() && widths.iter().all(|&h| h >= 1),
            "MLP needs at least one hidden layer, each of width >= 1"
        );
        assert!(train.p >= 1 && train.n >= 1, "MLP needs p >= 1 and n >= 1");
        train.assert_companions(test.as_ref(), None);
        Self {
            widths,
            activation,
            bias,
            train,
            test,
            init_seed: 0,
            init_scale: 1.0,
        }
    }

    /// Seed and scale of the default (random) start.
    pub fn with_init(mut self, seed: u64, scale: f64) -> Self {
        self.init_seed = seed;
        self.init_scale = scale;
        self
    }

    /// Hidden widths `h_1, ..., h_L`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The activation.
    pub fn activation(&self) -> MlpActivation {
        self.activation
    }

    /// Whether the layers have biases.
    pub fn bias(&self) -> bool {
        self.bias
    }

    /// Width of layer `l` (`h_0 = p`).
    #[inline]
    fn width(&self, l: usize) -> usize {
        if l == 0 {
            self.train.p
        } else {
            self.widths[l - 1]
        }
    }

    /// Scalars of the per-sample buffer: `a_0 = x` (`p`) and, per hidden layer, `a_l` and
    /// `s'(z_l)` (which the backward pass overwrites with `delta_l`).
    fn buffer_len(&self) -> usize {
        self.train.p + 2 * self.widths.iter().sum::<usize>()
    }

    /// Forward pass of input `x`: fills `buf` (see [`Mlp::buffer_len`]: `a_0`, then per
    /// layer `a_l` and `s'(z_l)`) and returns `f(x)`.
    fn forward<D: Scalar>(&self, theta: &[D], x: &[f64], buf: &mut [D]) -> D {
        let p = self.train.p;
        let bias = usize::from(self.bias);
        for (b, &xj) in buf.iter_mut().zip(x) {
            *b = D::from(xj);
        }
        // Parameter offset of layer l, and positions of a_{l-1} and a_l in `buf`.
        let (mut offset, mut prev, mut pos) = (0, 0, p);
        for l in 1..=self.widths.len() {
            let (h, cols) = (self.width(l), self.width(l - 1));
            let (before, after) = buf.split_at_mut(pos);
            let input = &before[prev..prev + cols];
            let (act, rest) = after.split_at_mut(h);
            let deriv = &mut rest[..h];
            let w = &theta[offset..offset + h * cols];
            let b = &theta[offset + h * cols..offset + h * cols + bias * h];
            for i in 0..h {
                let mut z = if self.bias { b[i] } else { D::zero() };
                for (&wij, &aj) in w[i * cols..(i + 1) * cols].iter().zip(input) {
                    z += wij * aj;
                }
                let (s, ds) = self.activation.value_and_derivative(z);
                act[i] = s;
                deriv[i] = ds;
            }
            offset += h * (cols + bias);
            prev = pos;
            pos += 2 * h;
        }
        let hl = self.width(self.widths.len());
        let pos = prev;
        let c = &theta[offset..offset + hl];
        let last = &buf[pos..pos + hl];
        let mut f = if self.bias {
            theta[offset + hl]
        } else {
            D::zero()
        };
        for (&ci, &ai) in c.iter().zip(last) {
            f += ci * ai;
        }
        f
    }

    /// Backward pass after [`Mlp::forward`]: adds `weight * grad f` to `out` (length `d`).
    /// Overwrites the `s'(z_l)` in `buf` with `weight * delta_l`.
    fn backward<D: Scalar>(&self, theta: &[D], buf: &mut [D], weight: D, out: &mut [D]) {
        let p = self.train.p;
        let bias = usize::from(self.bias);
        let depth = self.widths.len();
        // Offsets of the layers' parameters and of `a_l` in `buf`.
        let layer_offset = |l: usize| -> usize {
            (1..l)
                .map(|k| self.width(k) * (self.width(k - 1) + bias))
                .sum()
        };
        let act_pos = |l: usize| -> usize {
            if l == 0 {
                0
            } else {
                p + 2 * self.widths[..l - 1].iter().sum::<usize>()
            }
        };
        let out_offset = layer_offset(depth + 1);
        let hl = self.width(depth);
        // Output layer.
        let last = act_pos(depth);
        for k in 0..hl {
            out[out_offset + k] += weight * buf[last + k];
        }
        if self.bias {
            out[out_offset + hl] += weight;
        }
        // delta_L = weight c ⊙ s'(z_L), in place of s'(z_L).
        for k in 0..hl {
            let dk = last + hl + k;
            buf[dk] = buf[dk] * theta[out_offset + k] * weight;
        }
        for l in (1..=depth).rev() {
            let (h, cols) = (self.width(l), self.width(l - 1));
            let offset = layer_offset(l);
            let pos = act_pos(l);
            let prev = act_pos(l - 1);
            let (lo, hi) = buf.split_at_mut(pos);
            let delta = &hi[h..2 * h];
            let input = &lo[prev..prev + cols];
            for i in 0..h {
                let di = delta[i];
                let row = &mut out[offset + i * cols..offset + (i + 1) * cols];
                for (o, &aj) in row.iter_mut().zip(input) {
                    *o += di * aj;
                }
                if self.bias {
                    out[offset + h * cols + i] += di;
                }
            }
            // delta_{l-1} = (W_l^T delta_l) ⊙ s'(z_{l-1}), in place of s'(z_{l-1}).
            if l > 1 {
                let w = &theta[offset..offset + h * cols];
                let prev_deriv = &mut lo[prev + cols..prev + 2 * cols];
                for (j, pd) in prev_deriv.iter_mut().enumerate() {
                    let mut s = D::zero();
                    for (i, &di) in delta.iter().enumerate() {
                        s += w[i * cols + j] * di;
                    }
                    *pd *= s;
                }
            }
        }
    }

    /// Network output `f(x)` for an input row `x` (length `p`; allocates its buffer).
    pub fn predict<D: Scalar>(&self, theta: &[D], x: &[f64]) -> D {
        let mut buf = vec![D::zero(); self.buffer_len()];
        self.forward(theta, x, &mut buf)
    }
}

impl Model for Mlp {
    fn name(&self) -> &'static str {
        "mlp"
    }

    fn dim(&self) -> usize {
        let bias = usize::from(self.bias);
        let hidden: usize = (1..=self.widths.len())
            .map(|l| self.width(l) * (self.width(l - 1) + bias))
            .sum();
        hidden + self.width(self.widths.len()) + bias
    }

    fn n_samples(&self) -> usize {
        self.train.n
    }

    fn targets(&self) -> &[f64] {
        &self.train.y
    }

    /// Forward and backward pass with weight 1 (allocates the activations' buffer,
    /// `p + 2 sum_l h_l` scalars; the fused [`Model::batch_gradient`] uses its scratch).
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let mut buf = vec![D::zero(); self.buffer_len()];
        let f = self.forward(theta, self.train.row(i), &mut buf);
        let d = self.dim();
        for g in grad_f[..d].iter_mut() {
            *g = D::zero();
        }
        self.backward(theta, &mut buf, D::one(), grad_f);
        f
    }

    /// The activations' buffer, `p + 2 sum_l h_l` scalars, or `d` if larger.
    fn scratch_len(&self) -> usize {
        self.buffer_len().max(self.dim())
    }

    /// Fused: per sample, the forward pass, then the backward pass started with the residual
    /// weight `f_i - y_i - shift_k` adds straight into `grad` (no per-sample gradient, no
    /// allocation); `1/|B|` applied once at the end.
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let d = self.dim();
        for g in grad[..d].iter_mut() {
            *g = D::zero();
        }
        let buf = &mut scratch[..self.buffer_len()];
        let b = batch.len(self.train.n);
        let mut loss = D::zero();
        for k in 0..b {
            let i = batch.sample(k);
            let f = self.forward(theta, self.train.row(i), buf);
            let r = f - self.train.y[i];
            loss += r * r * 0.5;
            self.backward(theta, buf, r - batch.shift_at(k), grad);
        }
        let inv = 1.0 / b as f64;
        for g in grad[..d].iter_mut() {
            *g *= inv;
        }
        loss * inv
    }

    /// Random start from `init_seed`, in parameter order: `(W_l)_ij ~ N(0, init_scale^2 /
    /// h_{l-1})` (fan-in, LeCun-style), biases 0, `c_k ~ N(0, init_scale^2 / h_L)`.
    fn default_start(&self) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.init_seed);
        let mut out = Vec::with_capacity(self.dim());
        let mut draw = |sd: f64| sd * rng.sample::<f64, _>(StandardNormal);
        for l in 1..=self.widths.len() {
            let (h, cols) = (self.width(l), self.width(l - 1));
            let sd = self.init_scale / (cols as f64).sqrt();
            out.extend((0..h * cols).map(|_| draw(sd)));
            if self.bias {
                out.extend(std::iter::repeat_n(0.0, h));
            }
        }
        let hl = self.width(self.widths.len());
        let sd = self.init_scale / (hl as f64).sqrt();
        out.extend((0..hl).map(|_| draw(sd)));
        if self.bias {
            out.push(0.0);
        }
        out
    }

    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        let test = self.test.as_ref()?;
        let mut buf = vec![0.0; self.buffer_len()];
        let sum: f64 = (0..test.n)
            .map(|i| {
                let r = self.forward(theta, test.row(i), &mut buf) - test.y[i];
                r * r
            })
            .sum();
        Some(sum / test.n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::derivatives::{self, testing::check_derivatives};
    use num_dual::{Dual64, HyperHyperDual64};

    const ALL: [MlpActivation; 5] = [
        MlpActivation::Tanh,
        MlpActivation::Gelu,
        MlpActivation::Softplus,
        MlpActivation::Sigmoid,
        MlpActivation::Linear,
    ];

    fn model(widths: &[usize], activation: MlpActivation, bias: bool) -> Mlp {
        let data = generate(&SyntheticSpec {
            n: 4,
            n_test: 3,
            p: 3,
            teacher: Teacher::TanhNetwork { width: 2, seed: 1 },
            label_noise: 0.1,
            seed: 21,
        });
        Mlp::new(widths.to_vec(), activation, bias, data.train, data.test).with_init(5, 0.9)
    }

    #[test]
    fn mlp_derivatives() {
        for act in ALL {
            for (widths, bias) in [
                (&[3][..], true),
                (&[3, 2][..], false),
                (&[2, 3, 2][..], true),
            ] {
                let m = model(widths, act, bias);
                let d = m.dim();
                let th: Vec<f64> = (0..d).map(|c| 0.9 * (1.3 * c as f64 + 0.2).sin()).collect();
                let v: Vec<f64> = (0..d).map(|c| (0.7 * c as f64 + 1.0).cos()).collect();
                let w: Vec<f64> = (0..d).map(|c| (2.1 * c as f64 - 0.5).sin()).collect();
                check_derivatives(&m, &th, &v, &w);
                check_derivatives(&m, &m.default_start(), &v, &w);
            }
        }
    }

    #[test]
    fn dimension_follows_the_layout() {
        // p = 3: W_1 3x3 + b_1 3, W_2 2x3 + b_2 2, c 2 + b_out 1.
        assert_eq!(model(&[3, 2], MlpActivation::Tanh, true).dim(), 12 + 8 + 3);
        assert_eq!(model(&[3, 2], MlpActivation::Tanh, false).dim(), 9 + 6 + 2);
    }

    /// The output against an independent evaluation written out from the formula, with the
    /// parameters read in the documented layout.
    #[test]
    fn output_follows_the_formula_and_layout() {
        let m = model(&[3, 2], MlpActivation::Sigmoid, true);
        let th: Vec<f64> = (0..m.dim())
            .map(|c| 0.5 * (0.77 * c as f64).cos())
            .collect();
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let x = m.train.row(2);
        let a1: Vec<f64> = (0..3)
            .map(|i| sig(th[9 + i] + (0..3).map(|j| th[3 * i + j] * x[j]).sum::<f64>()))
            .collect();
        let a2: Vec<f64> = (0..2)
            .map(|i| sig(th[18 + i] + (0..3).map(|j| th[12 + 3 * i + j] * a1[j]).sum::<f64>()))
            .collect();
        let f = th[20] * a2[0] + th[21] * a2[1] + th[22];
        assert!((m.predict(&th, x) - f).abs() < 1e-15);
        let mut g = vec![0.0; m.dim()];
        assert!((m.output_and_grad(&th, 2, &mut g) - f).abs() < 1e-15);
        // Linear activation, no bias: f = c^T W_2 W_1 x.
        let m = model(&[2, 2], MlpActivation::Linear, false);
        let th: Vec<f64> = (0..m.dim()).map(|c| (1.1 * c as f64 - 0.4).sin()).collect();
        let w1 = nalgebra::DMatrix::from_row_slice(2, 3, &th[..6]);
        let w2 = nalgebra::DMatrix::from_row_slice(2, 2, &th[6..10]);
        let c = nalgebra::DMatrix::from_row_slice(1, 2, &th[10..12]);
        let x = nalgebra::DVector::from_column_slice(m.train.row(1));
        let f = (c * w2 * w1 * x)[0];
        assert!((m.predict(&th, m.train.row(1)) - f).abs() < 1e-14);
    }

    /// `s'` is the derivative of `s` and its second derivative is `s'''`'s counterpart
    /// (nested duals), for the activations added here, on both branches of the sigmoid.
    #[test]
    fn sigmoid_and_linear_derivatives() {
        for act in [MlpActivation::Sigmoid, MlpActivation::Linear] {
            for z in [-800.0, -30.0, -1.5, -1e-9, 0.0, 1e-9, 0.7, 30.0, 800.0] {
                let (s, ds) = act.value_and_derivative(Dual64::new(z, 1.0));
                assert!(s.re.is_finite() && ds.re.is_finite());
                assert!((s.eps - ds.re).abs() < 1e-14, "{act:?} at {z}");
                let zz = HyperHyperDual64::new(z, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0);
                let (s3, ds3) = act.value_and_derivative(zz);
                assert!(
                    (s3.eps1eps2eps3 - ds3.eps1eps2).abs() < 1e-12,
                    "{act:?} at {z}"
                );
            }
        }
        let sig = |z: f64| MlpActivation::Sigmoid.value_and_derivative(z).0;
        assert_eq!(sig(0.0), 0.5);
        assert!((sig(2.0) - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-16);
        assert!(sig(-800.0) >= 0.0 && sig(800.0) == 1.0);
    }

    #[test]
    fn default_start_is_seeded_and_scaled() {
        let m = model(&[3, 2], MlpActivation::Tanh, true);
        let a = m.default_start();
        assert_eq!(a.len(), m.dim());
        assert_eq!(a, m.default_start());
        assert_ne!(a, m.clone().with_init(6, 0.9).default_start());
        let b = m.clone().with_init(5, 1.8).default_start();
        for (x, y) in a.iter().zip(&b) {
            assert!((2.0 * x - y).abs() < 1e-15);
        }
        // Biases start at zero.
        assert!(a[9..12].iter().chain(&a[18..20]).all(|&x| x == 0.0) && a[22] == 0.0);
    }

    #[test]
    fn test_error_matches_predictions() {
        let m = model(&[3, 2], MlpActivation::Gelu, true);
        let th = m.default_start();
        let test = m.test.as_ref().unwrap();
        let expected: f64 = (0..test.n)
            .map(|i| (m.predict(&th, test.row(i)) - test.y[i]).powi(2))
            .sum::<f64>()
            / test.n as f64;
        assert!((m.test_error(&th).unwrap() - expected).abs() < 1e-15);
        let l = derivatives::loss(&m, &th);
        let direct: f64 = (0..4)
            .map(|i| 0.5 * (m.predict(&th, m.train.row(i)) - m.train.y[i]).powi(2) / 4.0)
            .sum();
        assert!((l - direct).abs() < 1e-14);
    }
}
