//! Gradient noise models (docs/theory.md section 6) and their exact covariances.
//!
//! A noise model turns the full-batch gradient into the stochastic gradient an optimizer
//! sees, `g = grad L(theta) + xi`, and knows `Sigma(theta) = Cov xi` exactly
//! ([`NoiseModel::covariance`]), which the derivation uses. The "real" noises (label noise,
//! mini-batch sampling) are simulated as they happen in training: fresh noisy labels and a
//! fresh batch every step. The Gaussian ones add `xi ~ N(0, Sigma)`.
//!
//! Units: `Sigma` is the covariance of one stochastic gradient (per optimizer step).

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::engine::rng::TrajectoryRng;
use crate::engine::{gather_lane, scatter_lane, Batch, LaneBatch, LANES};
use crate::model::{derivatives, lane_gradients, Model};

/// A gradient noise model.
#[derive(Clone, Debug, PartialEq)]
pub enum NoiseModel {
    /// No noise: full-batch gradient descent.
    None,
    /// Label noise: every step draws fresh labels `y_i + sigma z_i` and a batch of `batch`
    /// samples without replacement (`None` = full batch, `B = n`). With `sigma = 0` it is pure
    /// mini-batch noise; with `batch < n` it is both combined.
    ///
    /// `Sigma = (n - B) / (B (n - 1)) C + (sigma^2 / (B n)) sum_i grad f_i grad f_i^T`, with the
    /// per-sample gradient covariance `C = (1/n) sum_i r_i^2 grad f_i grad f_i^T - grad L grad L^T`
    /// (`r_i = f_i - y_i`). On an interpolating manifold this is `(sigma^2 / B) H`.
    Label {
        /// Standard deviation of the label noise, `>= 0`.
        sigma: f64,
        /// Batch size `B` in `1..=n`; `None` for the full batch.
        batch: Option<usize>,
    },
    /// Isotropic Gaussian: `Sigma = (sigma^2 / B) I`.
    Isotropic {
        /// Scale, `>= 0`.
        sigma: f64,
        /// Divisor `B >= 1` (1 for none).
        batch: usize,
    },
    /// Hessian-shaped Gaussian: `Sigma = (sigma^2 / B) H(theta)`. Sampling uses the positive
    /// part of `H` (negative eigenvalues, possible off the manifold, are clamped to 0) and
    /// factorises a dense Hessian every step: cost `O(d^3)`, meant for small models.
    Hessian {
        /// Scale, `>= 0`.
        sigma: f64,
        /// Divisor `B >= 1` (1 for none).
        batch: usize,
    },
    /// A fixed covariance matrix given by the user (`d x d`, symmetric positive semi-definite).
    Fixed {
        /// The covariance `Sigma`.
        covariance: DMatrix<f64>,
        /// A factor `F` with `F F^T = Sigma` (symmetric square root).
        factor: DMatrix<f64>,
    },
}

/// Symmetric positive-semidefinite square root (negative eigenvalues clamped to 0).
pub fn psd_sqrt(a: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (a + a.transpose()) * 0.5;
    let eig = sym.symmetric_eigen();
    let mut vals = eig.eigenvalues.clone();
    for v in vals.iter_mut() {
        *v = v.max(0.0).sqrt();
    }
    &eig.eigenvectors * DMatrix::from_diagonal(&vals) * eig.eigenvectors.transpose()
}

impl NoiseModel {
    /// A fixed-covariance noise; the factor is the symmetric square root of `covariance`.
    pub fn fixed(covariance: DMatrix<f64>) -> Self {
        let factor = psd_sqrt(&covariance);
        NoiseModel::Fixed { covariance, factor }
    }

    /// Short name (`none`, `label`, `minibatch`, `isotropic`, `hessian`, `fixed`).
    pub fn name(&self) -> &'static str {
        match self {
            NoiseModel::None => "none",
            NoiseModel::Label { sigma, .. } if *sigma == 0.0 => "minibatch",
            NoiseModel::Label { .. } => "label",
            NoiseModel::Isotropic { .. } => "isotropic",
            NoiseModel::Hessian { .. } => "hessian",
            NoiseModel::Fixed { .. } => "fixed",
        }
    }

    /// Buffers for [`NoiseModel::stochastic_gradient`], sized for `model`.
    pub fn workspace<M: Model>(&self, model: &M) -> NoiseWorkspace {
        let n = model.n_samples();
        NoiseWorkspace {
            permutation: (0..n).collect(),
            shift: vec![0.0; n],
            scratch: vec![0.0; model.scratch_len()],
            z: vec![0.0; model.dim()],
        }
    }

    /// Draw one stochastic gradient at `theta` into `grad` and return the (clean) loss of the
    /// samples used (the training loss for full-batch noises). Allocates nothing, except the
    /// Hessian-shaped noise (dense eigen-decomposition each step).
    #[inline]
    pub fn stochastic_gradient<M: Model>(
        &self,
        model: &M,
        theta: &[f64],
        rng: &mut TrajectoryRng,
        ws: &mut NoiseWorkspace,
        grad: &mut [f64],
    ) -> f64 {
        match self {
            NoiseModel::None => model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch),
            NoiseModel::Label { sigma, batch } => {
                let n = model.n_samples();
                let b = batch.unwrap_or(n);
                let indices = if b < n {
                    // Partial Fisher-Yates: the first b entries are a uniform b-subset.
                    for k in 0..b {
                        let j = rng.random_range(k..n);
                        ws.permutation.swap(k, j);
                    }
                    Some(&ws.permutation[..b])
                } else {
                    None
                };
                let shift = if *sigma > 0.0 {
                    for s in ws.shift[..b].iter_mut() {
                        let z: f64 = rng.sample(StandardNormal);
                        *s = sigma * z;
                    }
                    Some(&ws.shift[..b])
                } else {
                    None
                };
                model.batch_gradient(theta, Batch { indices, shift }, grad, &mut ws.scratch)
            }
            NoiseModel::Isotropic { sigma, batch } => {
                let loss = model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch);
                let scale = sigma / (*batch as f64).sqrt();
                for g in grad.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *g += scale * z;
                }
                loss
            }
            NoiseModel::Hessian { sigma, batch } => {
                let loss = model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch);
                let factor = psd_sqrt(&derivatives::hessian(model, theta));
                let scale = sigma / (*batch as f64).sqrt();
                add_correlated(grad, &factor, scale, rng, &mut ws.z);
                loss
            }
            NoiseModel::Fixed { factor, .. } => {
                let loss = model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch);
                add_correlated(grad, factor, 1.0, rng, &mut ws.z);
                loss
            }
        }
    }

    /// The label-noise `sigma` (`0` for no noise) when every stochastic gradient is the full
    /// batch of `n` samples with (possibly) shifted labels: no noise, or label noise with the
    /// full batch. The engine's register-held group step serves exactly these, drawing the
    /// shifts with the engine's `LaneStreams` (AVX-512) or `fill_lane_label_shifts` and
    /// `draw_lane_label_shifts` (`engine::normal`). `None` for every other noise.
    pub fn full_batch_label_sigma(&self, n: usize) -> Option<f64> {
        match *self {
            NoiseModel::None => Some(0.0),
            NoiseModel::Label { sigma, batch } if batch.unwrap_or(n) == n => Some(sigma),
            _ => None,
        }
    }

    /// Buffers for [`NoiseModel::lane_stochastic_gradients`], sized for `model`.
    pub fn lane_workspace<M: Model>(&self, model: &M) -> LaneNoiseWorkspace {
        let (n, d) = (model.n_samples(), model.dim());
        LaneNoiseWorkspace {
            permutation: (0..LANES).flat_map(|_| 0..n).collect(),
            shift: vec![0.0; n * LANES],
            lane: self.workspace(model),
            theta: vec![0.0; d],
            grad: vec![0.0; d],
        }
    }

    /// [`NoiseModel::stochastic_gradient`] for the trajectories of a group advanced together
    /// (lanes `0..lanes` in use; coordinate-major layout as in [`lane_gradients`]).
    /// Lane `l` draws from `rngs[l]` exactly what it would draw alone, in the same order, so
    /// every lane's gradient and loss are bit-identical to the one-trajectory call. Every
    /// lane draws, used or not (a fixed trip count lets the compiler interleave the eight
    /// independent generators); the numbers of unused lanes are ignored. Label,
    /// mini-batch and isotropic noise evaluate the model once for the group
    /// ([`lane_gradients`]); Hessian-shaped and fixed noise go lane by lane. `scratch` has
    /// length at least [`lane_scratch_len`](crate::model::lane_scratch_len). Allocates nothing (except the
    /// Hessian-shaped noise).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn lane_stochastic_gradients<M: Model>(
        &self,
        model: &M,
        theta: &[f64],
        lanes: usize,
        rngs: &mut [TrajectoryRng; LANES],
        ws: &mut LaneNoiseWorkspace,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let n = model.n_samples();
        match self {
            NoiseModel::None => {
                lane_gradients(model, theta, LaneBatch::full(lanes, n), grad, scratch, loss)
            }
            NoiseModel::Isotropic { sigma, batch } => {
                lane_gradients(model, theta, LaneBatch::full(lanes, n), grad, scratch, loss);
                let scale = sigma / (*batch as f64).sqrt();
                for (l, r) in rngs.iter_mut().enumerate().take(lanes) {
                    for g in grad.iter_mut().skip(l).step_by(LANES) {
                        let z: f64 = r.sample(StandardNormal);
                        *g += scale * z;
                    }
                }
            }
            NoiseModel::Label { sigma, batch } => {
                let b = batch.unwrap_or(n);
                if b < n {
                    for (perm, r) in ws.permutation.chunks_exact_mut(n).zip(rngs.iter_mut()) {
                        // Partial Fisher-Yates, as in `stochastic_gradient`.
                        for k in 0..b {
                            let j = r.random_range(k..n);
                            perm.swap(k, j);
                        }
                    }
                }
                if *sigma > 0.0 {
                    for shift in ws.shift.chunks_exact_mut(LANES).take(b) {
                        for (s, r) in shift.iter_mut().zip(rngs.iter_mut()) {
                            let z: f64 = r.sample(StandardNormal);
                            *s = sigma * z;
                        }
                    }
                }
                let lane_batch = LaneBatch {
                    lanes,
                    size: b,
                    indices: (b < n).then_some(&ws.permutation[..]),
                    stride: n,
                    shift: (*sigma > 0.0).then_some(&ws.shift[..]),
                };
                lane_gradients(model, theta, lane_batch, grad, scratch, loss);
            }
            NoiseModel::Hessian { .. } | NoiseModel::Fixed { .. } => {
                for (l, r) in rngs.iter_mut().enumerate().take(lanes) {
                    gather_lane(theta, l, &mut ws.theta);
                    loss[l] =
                        self.stochastic_gradient(model, &ws.theta, r, &mut ws.lane, &mut ws.grad);
                    scatter_lane(&ws.grad, l, grad);
                }
            }
        }
    }

    /// The exact covariance `Sigma(theta)` of the noise `xi = g - grad L(theta)`.
    pub fn covariance<M: Model>(&self, model: &M, theta: &[f64]) -> DMatrix<f64> {
        let d = model.dim();
        match self {
            NoiseModel::None => DMatrix::zeros(d, d),
            NoiseModel::Label { sigma, batch } => {
                let n = model.n_samples();
                let b = batch.unwrap_or(n);
                let (j, r) = derivatives::jacobian(model, theta);
                let jtj = j.transpose() * &j;
                let mut cov = jtj * (sigma * sigma / (b as f64 * n as f64));
                if b < n {
                    // C = (1/n) sum_i r_i^2 grad f_i grad f_i^T - grad L grad L^T
                    let mut jr = j.clone();
                    for i in 0..n {
                        for k in 0..d {
                            jr[(i, k)] *= r[i];
                        }
                    }
                    let gl = jr.row_sum().transpose() / n as f64;
                    let c = jr.transpose() * &jr / n as f64 - &gl * gl.transpose();
                    cov += c * ((n - b) as f64 / (b as f64 * (n - 1) as f64));
                }
                cov
            }
            NoiseModel::Isotropic { sigma, batch } => {
                DMatrix::identity(d, d) * (sigma * sigma / *batch as f64)
            }
            NoiseModel::Hessian { sigma, batch } => {
                derivatives::hessian(model, theta) * (sigma * sigma / *batch as f64)
            }
            NoiseModel::Fixed { covariance, .. } => covariance.clone(),
        }
    }
}

/// `grad += scale * F z` with `z ~ N(0, I)`; `z` is a buffer of length `d`.
#[inline]
fn add_correlated(
    grad: &mut [f64],
    factor: &DMatrix<f64>,
    scale: f64,
    rng: &mut TrajectoryRng,
    z: &mut [f64],
) {
    for zi in z.iter_mut() {
        *zi = rng.sample(StandardNormal);
    }
    let d = grad.len();
    for (i, g) in grad.iter_mut().enumerate() {
        let mut acc = 0.0;
        for (k, &zk) in z.iter().enumerate().take(d) {
            acc += factor[(i, k)] * zk;
        }
        *g += scale * acc;
    }
}

/// Reusable buffers of a group's noise (see [`NoiseModel::lane_stochastic_gradients`]).
#[derive(Clone, Debug)]
pub struct LaneNoiseWorkspace {
    /// Per-lane sample permutations, lane `l`'s at `[l n, (l + 1) n)`.
    permutation: Vec<usize>,
    /// Label shifts, coordinate-major.
    shift: Vec<f64>,
    /// One trajectory's workspace, for the noises that go lane by lane.
    lane: NoiseWorkspace,
    /// One lane's parameters and gradient.
    theta: Vec<f64>,
    grad: Vec<f64>,
}

/// Reusable buffers of one trajectory's noise.
#[derive(Clone, Debug)]
pub struct NoiseWorkspace {
    permutation: Vec<usize>,
    shift: Vec<f64>,
    scratch: Vec<f64>,
    z: Vec<f64>,
}

#[cfg(test)]
mod tests;
