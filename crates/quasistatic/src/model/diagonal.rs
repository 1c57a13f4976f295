//! Diagonal linear network `f(x) = sum_j (u_j^2 - v_j^2) x_j`, `theta = (u, v)`.
//!
//! Parameters `theta = (u_1..u_p, v_1..v_p)` in `R^{2p}`; end-to-end weights
//! `w = u^2 - v^2` (elementwise); loss `L = (1/n) sum_i 1/2 (w . x_i - y_i)^2`. Gradients:
//! `d f / d u_j = 2 u_j x_j`, `d f / d v_j = -2 v_j x_j`. With `n < p` samples the model
//! interpolates and its minima form a manifold of dimension `2p - n`; THEORY.md section 7
//! explains which interpolator label-noise SGD (an l1-type norm) and Adam (l1/2-type) favour.
use super::{Batch, LaneBatch, Model, Scalar};
use crate::data::Dataset;
use crate::lanes::Lanes;
use crate::simulate::LANES;

/// Diagonal linear network (see module docs).
#[derive(Clone, Debug)]
pub struct DiagonalNetwork {
    train: Dataset,
    test: Option<Dataset>,
    teacher: Option<Vec<f64>>,
    floor: f64,
}

impl DiagonalNetwork {
    /// On `train` (`p` features, so `d = 2p`), with optional held-out data and teacher weights.
    ///
    /// # Panics
    ///
    /// If there are no features or no training sample, or `test` / `teacher` do not have `p`
    /// features / weights.
    pub fn new(train: Dataset, test: Option<Dataset>, teacher: Option<Vec<f64>>) -> Self {
        assert!(
            train.p >= 1 && train.n >= 1,
            "diagonal network needs p >= 1 and n >= 1"
        );
        train.assert_companions(test.as_ref(), teacher.as_deref());
        Self {
            train,
            test,
            teacher,
            floor: 1e-2,
        }
    }

    /// Floor added to `u^2` and `v^2` when splitting the minimum-l2 interpolator for the
    /// default start.
    pub fn with_floor(mut self, floor: f64) -> Self {
        self.floor = floor;
        self
    }

    /// Number of features `p` (half the parameter dimension).
    pub fn features(&self) -> usize {
        self.train.p
    }
}

impl Model for DiagonalNetwork {
    fn name(&self) -> &'static str {
        "diagonal"
    }

    fn dim(&self) -> usize {
        2 * self.train.p
    }

    fn n_samples(&self) -> usize {
        self.train.n
    }

    fn targets(&self) -> &[f64] {
        &self.train.y
    }

    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let p = self.train.p;
        let (u, v) = theta.split_at(p);
        let (gu, gv) = grad_f[..2 * p].split_at_mut(p);
        let mut f = D::zero();
        for (j, &xj) in self.train.row(i).iter().enumerate() {
            f += (u[j] * u[j] - v[j] * v[j]) * xj;
            gu[j] = u[j] * (2.0 * xj);
            gv[j] = v[j] * (-2.0 * xj);
        }
        f
    }

    /// Fused, `O(p (|B| + 1))`: `w = u^2 - v^2` once (in `scratch[..p]`), `f_i = w . x_i`,
    /// `c = (1/|B|) sum_k (f_i - y_i - shift_k) x_i` accumulated in `grad[..p]`, then
    /// `grad_u = 2 u c`, `grad_v = -2 v c`.
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let p = self.train.p;
        let (u, v) = theta.split_at(p);
        let w = &mut scratch[..p];
        for (wj, (&uj, &vj)) in w.iter_mut().zip(u.iter().zip(v)) {
            *wj = uj * uj - vj * vj;
        }
        let (c, gv) = grad[..2 * p].split_at_mut(p);
        for cj in c.iter_mut() {
            *cj = D::zero();
        }
        let b = batch.len(self.train.n);
        let mut loss = D::zero();
        for k in 0..b {
            let i = batch.sample(k);
            let x = self.train.row(i);
            // Four independent partial sums: breaks the serial dependency chain of the dot
            // product (the hot spot of this model), in a fixed order (deterministic).
            let mut acc = [D::zero(); 4];
            let (mut wc, mut xc) = (w.chunks_exact(4), x.chunks_exact(4));
            for (wq, xq) in (&mut wc).zip(&mut xc) {
                for l in 0..4 {
                    acc[l] += wq[l] * xq[l];
                }
            }
            let mut f = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            for (&wj, &xj) in wc.remainder().iter().zip(xc.remainder()) {
                f += wj * xj;
            }
            let r = f - self.train.y[i];
            loss += r * r * 0.5;
            let weight = r - batch.shift_at(k);
            for (cj, &xj) in c.iter_mut().zip(x) {
                *cj += weight * xj;
            }
        }
        let two_inv = 2.0 / b as f64;
        for j in 0..p {
            let cj = c[j] * two_inv;
            gv[j] = -(v[j] * cj);
            c[j] = u[j] * cj;
        }
        loss * (1.0 / b as f64)
    }

    /// The default's length, and at least `(p + n) LANES`: the lanes' `w = u^2 - v^2` and
    /// their residual weights `f_i - y_i - shift_k` of every batch position.
    fn lane_scratch_len(&self) -> usize {
        let by_lane = 2 * self.dim() + self.train.n + self.scratch_len();
        by_lane.max((self.train.p + self.train.n) * LANES)
    }

    /// All lanes in one vectorised pass (T3's case is the full batch; mini-batches gather the
    /// lanes' inputs), with the arithmetic of [`DiagonalNetwork::batch_gradient`] operation by
    /// operation (its four partial sums of the dot product, and every `c_j` summed over the
    /// batch in the same order), so results are bit-identical to the lane-by-lane default.
    /// Compiled for AVX-512 or AVX2 when the CPU has them (see [`crate::lanes`]).
    #[inline(always)]
    fn lane_gradients(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        self.lane_kernel_widest(theta, batch, grad, scratch, loss)
    }

    /// The minimum-l2-norm least-squares weights `w0 = X^+ y` (for `n <= p` the minimum-norm
    /// interpolator `X^T (X X^T)^{-1} y`), split as `u = sqrt(max(w0, 0) + floor)`,
    /// `v = sqrt(max(-w0, 0) + floor)`, so that `u^2 - v^2 = w0`: a minimum of the loss.
    fn default_start(&self) -> Vec<f64> {
        let w0 = self.train.least_squares().weights;
        let u = w0.iter().map(|&w| (w.max(0.0) + self.floor).sqrt());
        let v = w0.iter().map(|&w| ((-w).max(0.0) + self.floor).sqrt());
        u.chain(v).collect()
    }

    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        let test = self.test.as_ref()?;
        let w = self.end_to_end_weights(theta)?;
        Some(test.linear_mse(&w))
    }

    /// `w = u^2 - v^2`.
    fn end_to_end_weights(&self, theta: &[f64]) -> Option<Vec<f64>> {
        let (u, v) = theta.split_at(self.train.p);
        Some(u.iter().zip(v).map(|(a, b)| a * a - b * b).collect())
    }

    fn teacher_weights(&self) -> Option<&[f64]> {
        self.teacher.as_deref()
    }

    /// Every `w` is reachable, so `L_min` is the linear least-squares residual: exactly 0 when
    /// `n <= p` and the inputs have full row rank (interpolation), the residual otherwise.
    fn loss_min(&self) -> Option<f64> {
        Some(self.train.linear_loss_min())
    }
}

impl DiagonalNetwork {
    crate::lanes::lane_kernel_versions!(
        lane_kernel,
        lane_kernel_avx512,
        lane_kernel_avx2,
        lane_kernel_widest
    );

    /// [`Model::lane_gradients`]'s body: the batch's inputs as closures, `x(k, j)` = the lanes'
    /// feature `j` at batch position `k`, `y(k)` their targets.
    #[inline(always)]
    fn lane_kernel(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let (p, xs, ys) = (self.train.p, &self.train.x[..], &self.train.y[..]);
        match batch.indices {
            None => self.lane_passes(
                theta,
                batch,
                |k, j| Lanes::splat(xs[k * p + j]),
                |k| Lanes::splat(ys[k]),
                grad,
                scratch,
                loss,
            ),
            Some(ix) => {
                let sample = |l: usize, k: usize| ix[l * batch.stride + k];
                self.lane_passes(
                    theta,
                    batch,
                    |k, j| Lanes::gather(batch.lanes, |l| xs[sample(l, k) * p + j]),
                    |k| Lanes::gather(batch.lanes, |l| ys[sample(l, k)]),
                    grad,
                    scratch,
                    loss,
                )
            }
        }
    }

    /// The two passes of [`DiagonalNetwork::lane_kernel`]. First, per batch position `k`,
    /// `f = w . x` with the four partial sums of [`DiagonalNetwork::batch_gradient`] and the
    /// residual weight `f - y - shift_k` (kept in `scratch`); then, per coordinate `j`,
    /// `c_j = sum_k weight_k x_kj` summed over `k` in order, as the scalar version's
    /// accumulation does (a sum held in registers rather than one update of every `c_j` per
    /// sample, which the compiler vectorises across coordinates with shuffles).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn lane_passes(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        x: impl Fn(usize, usize) -> Lanes,
        y: impl Fn(usize) -> Lanes,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let (p, b) = (self.train.p, batch.size);
        let (w, rest) = scratch.split_at_mut(p * LANES);
        let weights = &mut rest[..b * LANES];
        let (u, v) = theta[..2 * p * LANES].split_at(p * LANES);
        let at = |s: &[f64], j: usize| Lanes::load(&s[j * LANES..(j + 1) * LANES]);
        for (j, wj) in w.chunks_exact_mut(LANES).enumerate() {
            let (uj, vj) = (at(u, j), at(v, j));
            (uj * uj - vj * vj).store(wj);
        }
        let w = &*w;
        let quads = p / 4;
        let mut lo = Lanes::ZERO;
        for (k, wk) in weights.chunks_exact_mut(LANES).enumerate() {
            let mut acc = [Lanes::ZERO; 4];
            for q in 0..quads {
                for (l, a) in acc.iter_mut().enumerate() {
                    let j = 4 * q + l;
                    *a += at(w, j) * x(k, j);
                }
            }
            let mut f = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            for j in 4 * quads..p {
                f += at(w, j) * x(k, j);
            }
            let r = f - y(k);
            lo += r * r * 0.5;
            (r - batch.shifts_at(k)).store(wk);
        }
        let weights = &*weights;
        let two_inv = 2.0 / b as f64;
        let (gu, gv) = grad[..2 * p * LANES].split_at_mut(p * LANES);
        let mut finish = |j: usize, c: Lanes| {
            let cj = c * two_inv;
            (-(at(v, j) * cj)).store(&mut gv[j * LANES..(j + 1) * LANES]);
            (at(u, j) * cj).store(&mut gu[j * LANES..(j + 1) * LANES]);
        };
        // Four coordinates at a time: four independent sums in flight.
        for q in 0..quads {
            let mut c = [Lanes::ZERO; 4];
            for k in 0..b {
                let wk = at(weights, k);
                for (t, ct) in c.iter_mut().enumerate() {
                    *ct += wk * x(k, 4 * q + t);
                }
            }
            for (t, &ct) in c.iter().enumerate() {
                finish(4 * q + t, ct);
            }
        }
        for j in 4 * quads..p {
            let mut c = Lanes::ZERO;
            for k in 0..b {
                c += at(weights, k) * x(k, j);
            }
            finish(j, c);
        }
        *loss = (lo * (1.0 / b as f64)).0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::derivatives::{self, testing::check_derivatives};
    use nalgebra::{DMatrix, DVector};

    fn data(n: usize, p: usize, label_noise: f64) -> crate::data::Data {
        generate(&SyntheticSpec {
            n,
            n_test: 4,
            p,
            teacher: Teacher::Sparse { k: 1, value: 1.0 },
            label_noise,
            seed: 17,
        })
    }

    fn model(n: usize, p: usize, label_noise: f64) -> DiagonalNetwork {
        let d = data(n, p, label_noise);
        DiagonalNetwork::new(d.train, d.test, d.teacher)
    }

    #[test]
    fn diagonal_derivatives() {
        let m = model(3, 4, 0.1);
        let th = [0.5, -0.3, 0.8, 0.1, 0.2, 0.6, -0.4, 0.9];
        let v = [0.3, 0.1, -0.4, 0.2, 0.9, -0.5, 0.7, 0.05];
        let w = [-0.2, 0.5, 0.1, 0.7, -0.3, 0.4, 0.25, -0.6];
        check_derivatives(&m, &th, &v, &w);
        let m = model(6, 2, 0.3);
        check_derivatives(&m, &th[..4], &v[..4], &w[..4]);
    }

    /// The vectorised lane gradients equal the scalar fused gradient bit for bit, with `p` a
    /// multiple of 4 or not (remainder of the four partial sums), all lanes or some in use.
    #[test]
    fn lane_gradients_are_bit_identical() {
        for (n, p) in [(13, 7), (5, 12), (30, 1)] {
            let m = model(n, p, 0.2);
            for lanes in [LANES, 5] {
                crate::lanes::testing::assert_lane_gradients_bit_identical(&m, lanes);
                // Every instruction-set version this CPU can run, not only the one picked.
                crate::lanes::testing::assert_kernel_bit_identical(&m, lanes, |t, b, g, s, l| {
                    m.lane_kernel(t, b, g, s, l)
                });
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    crate::lanes::testing::assert_kernel_bit_identical(
                        &m,
                        lanes,
                        |t, b, g, s, l| {
                            // SAFETY: the CPU has AVX2 (checked above).
                            unsafe { m.lane_kernel_avx2(t, b, g, s, l) }
                        },
                    );
                }
            }
        }
    }

    #[test]
    fn default_start_is_the_min_norm_interpolator() {
        let m = model(3, 5, 0.2).with_floor(0.05);
        let th = m.default_start();
        assert!(derivatives::loss(&m, &th) < 1e-20);
        assert_eq!(m.loss_min(), Some(0.0));
        // u^2 - v^2 = X^T (X X^T)^{-1} y.
        let x = DMatrix::from_row_slice(3, 5, &m.train.x);
        let y = DVector::from_column_slice(&m.train.y);
        let w0 = x.transpose() * (&x * x.transpose()).lu().solve(&y).unwrap();
        let w = m.end_to_end_weights(&th).unwrap();
        for j in 0..5 {
            assert!((w[j] - w0[j]).abs() < 1e-12, "{j}: {} vs {}", w[j], w0[j]);
            // The floor: min(u_j^2, v_j^2) = floor.
            assert!((th[j].powi(2).min(th[5 + j].powi(2)) - 0.05).abs() < 1e-12);
        }
    }

    #[test]
    fn overdetermined_start_and_loss_min() {
        let m = model(8, 3, 0.3);
        let th = m.default_start();
        let mut g = vec![0.0; 6];
        let l = derivatives::gradient(&m, &th, &mut g);
        let l_min = m.loss_min().unwrap();
        assert!(l_min > 1e-3 && (l - l_min).abs() < 1e-13, "{l} vs {l_min}");
        assert!(g.iter().all(|gk| gk.abs() < 1e-12), "{g:?}");
    }

    #[test]
    fn teacher_and_test_error() {
        let m = model(3, 4, 0.0);
        assert_eq!(m.teacher_weights(), Some(&[1.0, 0.0, 0.0, 0.0][..]));
        // The teacher itself (u_1 = 1, v = 0) has zero test error.
        let th = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(m.test_error(&th).unwrap() < 1e-30);
        let zero = [0.0; 8];
        let test = data(3, 4, 0.0).test.unwrap();
        let mse = test.y.iter().map(|y| y * y).sum::<f64>() / 4.0;
        assert!((m.test_error(&zero).unwrap() - mse).abs() < 1e-14);
    }
}
