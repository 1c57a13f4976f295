//! Diagonal linear network `f(x) = sum_j (u_j^2 - v_j^2) x_j`, `theta = (u, v)`.
//!
//! Parameters `theta = (u_1..u_p, v_1..v_p)` in `R^{2p}`; end-to-end weights
//! `w = u^2 - v^2` (elementwise); loss `L = (1/n) sum_i 1/2 (w . x_i - y_i)^2`. Gradients:
//! `d f / d u_j = 2 u_j x_j`, `d f / d v_j = -2 v_j x_j`. With `n < p` samples the model
//! interpolates and its minima form a manifold of dimension `2p - n`; docs/theory.md section 7
//! explains which interpolator label-noise SGD (an l1-type norm) and Adam (l1/2-type) favour.
use super::{Batch, LaneBatch, LaneKernel, Model, Scalar};
use crate::data::Dataset;
use crate::engine::lanes::{unroll, Lanes};
use crate::engine::LANES;

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
    fn lane_kernel(&self) -> Option<&dyn LaneKernel> {
        Some(self)
    }

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

impl LaneKernel for DiagonalNetwork {
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
    /// Compiled for AVX-512 or AVX2 when the CPU has them (see [`crate::engine::lanes`]).
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
}

impl DiagonalNetwork {
    crate::engine::lanes::lane_kernel_versions!(
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
            None => {
                assert!(batch.size <= self.train.n && xs.len() >= self.train.n * p);
                self.lane_passes(
                    theta,
                    batch,
                    |k, j| {
                        debug_assert!(k < batch.size && j < p);
                        // SAFETY: `lane_passes` calls `x(k, j)` with `k < batch.size <= n` and
                        // `j < p` only, and `xs` holds `n p` values (asserted above).
                        Lanes::splat(unsafe { *xs.get_unchecked(k * p + j) })
                    },
                    |k| Lanes::splat(ys[k]),
                    grad,
                    scratch,
                    loss,
                )
            }
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

    /// The two passes of [`DiagonalNetwork::lane_kernel`], with the arithmetic of
    /// [`DiagonalNetwork::batch_gradient`] operation by operation.
    ///
    /// 1. Per batch position `k`: `f = w . x` with the scalar version's four partial sums, and
    ///    the residual weight `f - y - shift_k` (kept in `scratch`). Positions go in tiles of
    ///    [`FORWARD_TILE`]: each loaded `w_j` serves the tile's positions, and the tile's
    ///    `4 FORWARD_TILE` partial sums are independent chains in flight together.
    /// 2. Per coordinate `j`: `c_j = sum_k weight_k x_kj`, summed over `k` in order, in tiles of
    ///    [`BACKWARD_TILE`] coordinates: each loaded `weight_k` serves the tile, whose sums are
    ///    independent chains held in registers (rather than one update of every `c_j` per
    ///    position, which the compiler vectorises across coordinates with shuffles).
    ///
    /// Every tile is a fixed-size array indexed by constants after unrolling, with no bounds
    /// check inside its loops, so its sums stay in registers (a possible panic inside the
    /// loop made the compiler also store every sum to the stack at every iteration).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn lane_passes(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        x: impl Fn(usize, usize) -> Lanes + Copy,
        y: impl Fn(usize) -> Lanes,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let (p, b) = (self.train.p, batch.size);
        let (w, rest) = scratch.split_at_mut(p * LANES);
        let (w, _) = w.as_chunks_mut::<LANES>();
        let (weights, _) = rest[..b * LANES].as_chunks_mut::<LANES>();
        let (u, _) = theta[..p * LANES].as_chunks::<LANES>();
        let (v, _) = theta[p * LANES..2 * p * LANES].as_chunks::<LANES>();
        // One flat element-wise loop (a loop over lane vectors was vectorised across
        // coordinates, with gathers).
        for ((wj, &uj), &vj) in w
            .as_flattened_mut()
            .iter_mut()
            .zip(u.as_flattened())
            .zip(v.as_flattened())
        {
            *wj = uj * uj - vj * vj;
        }
        let w = &*w;
        let mut lo = Lanes::ZERO;
        // The residual weight of position `k` from its output `f` (a plain loop over each
        // tile's outputs: a closure called from the tile would not be inlined, and would
        // then run without the caller's vector instruction set).
        let mut k0 = 0;
        while k0 < b {
            let len = if k0 + FORWARD_TILE <= b {
                FORWARD_TILE
            } else {
                1
            };
            let mut fs = [Lanes::ZERO; FORWARD_TILE];
            if len == FORWARD_TILE {
                fs = forward_tile::<FORWARD_TILE>(w, x, k0);
            } else {
                fs[0] = forward_tile::<1>(w, x, k0)[0];
            }
            for (s, &f) in fs.iter().enumerate().take(len) {
                let k = k0 + s;
                let r = f - y(k);
                lo += r * r * 0.5;
                weights[k] = (r - batch.shifts_at(k)).0;
            }
            k0 += len;
        }
        let weights = &*weights;
        let two_inv = 2.0 / b as f64;
        let (gu, gv) = grad[..2 * p * LANES].split_at_mut(p * LANES);
        let (gu, _) = gu.as_chunks_mut::<LANES>();
        let (gv, _) = gv.as_chunks_mut::<LANES>();
        let mut j0 = 0;
        while j0 + BACKWARD_TILE <= p {
            let c = backward_tile::<BACKWARD_TILE>(weights, x, j0);
            finish(&c, j0, two_inv, (u, v), (&mut *gu, &mut *gv));
            j0 += BACKWARD_TILE;
        }
        for j in j0..p {
            let c = backward_tile::<1>(weights, x, j);
            finish(&c, j, two_inv, (u, v), (&mut *gu, &mut *gv));
        }
        *loss = (lo * (1.0 / b as f64)).0;
    }
}

/// Batch positions per tile of the forward pass of [`DiagonalNetwork::lane_passes`]: `4 x 4`
/// partial sums in flight (16 of AVX-512's 32 registers).
const FORWARD_TILE: usize = 4;

/// Coordinates per tile of the backward pass of [`DiagonalNetwork::lane_passes`].
const BACKWARD_TILE: usize = 8;

/// `f = w . x` of the `S <= 4` positions `k0..k0 + S`, with the
/// four partial sums of [`DiagonalNetwork::batch_gradient`] (`acc_l` over `j = l mod 4` in
/// order, then `(acc_0 + acc_1) + (acc_2 + acc_3)`, then the last `p mod 4` coordinates in
/// order).
#[inline(always)]
fn forward_tile<const S: usize>(
    w: &[[f64; LANES]],
    x: impl Fn(usize, usize) -> Lanes,
    k0: usize,
) -> [Lanes; S] {
    const { assert!(S <= 4) };
    let mut acc = [[Lanes::ZERO; 4]; S];
    let (quads, tail) = w.as_chunks::<4>();
    for (q, wq) in quads.iter().enumerate() {
        // Written out (constant indices): with a loop over the positions the compiler kept
        // the sums on the stack, loaded and stored at every step.
        unroll!(s in [0, 1, 2, 3] {
            if s < S {
                unroll!(l in [0, 1, 2, 3] {
                    acc[s][l] += Lanes(wq[l]) * x(k0 + s, 4 * q + l);
                });
            }
        });
    }
    let mut fs = [Lanes::ZERO; S];
    for s in 0..S {
        let a = acc[s];
        let mut f = (a[0] + a[1]) + (a[2] + a[3]);
        for (t, &wj) in tail.iter().enumerate() {
            f += Lanes(wj) * x(k0 + s, 4 * quads.len() + t);
        }
        fs[s] = f;
    }
    fs
}

/// `c_j = sum_k weight_k x_kj` (over the positions in order) of the `C` coordinates
/// `j0..j0 + C`.
#[inline(always)]
fn backward_tile<const C: usize>(
    weights: &[[f64; LANES]],
    x: impl Fn(usize, usize) -> Lanes,
    j0: usize,
) -> [Lanes; C] {
    let mut c = [Lanes::ZERO; C];
    for (k, &wk) in weights.iter().enumerate() {
        for (t, ct) in c.iter_mut().enumerate() {
            *ct += Lanes(wk) * x(k, j0 + t);
        }
    }
    c
}

/// The gradient entries of coordinates `j0..j0 + C` from their `c_j`:
/// `grad_u_j = u_j (2 c_j / |B|)`, `grad_v_j = -(v_j (2 c_j / |B|))`.
#[inline(always)]
fn finish<const C: usize>(
    c: &[Lanes; C],
    j0: usize,
    two_inv: f64,
    (u, v): (&[[f64; LANES]], &[[f64; LANES]]),
    (gu, gv): (&mut [[f64; LANES]], &mut [[f64; LANES]]),
) {
    for (t, &ct) in c.iter().enumerate() {
        let (j, cj) = (j0 + t, ct * two_inv);
        gv[j] = (-(Lanes(v[j]) * cj)).0;
        gu[j] = (Lanes(u[j]) * cj).0;
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
    /// multiple of 4 or not (remainder of the four partial sums), `n` a multiple of the forward
    /// tile or not, `p` a multiple of the backward tile or not (T3's shape included), all lanes
    /// or some in use.
    #[test]
    fn lane_gradients_are_bit_identical() {
        for (n, p) in [(13, 7), (5, 12), (30, 1), (9, 17), (40, 100)] {
            let m = model(n, p, 0.2);
            for lanes in [LANES, 5] {
                crate::model::lane_testing::assert_lane_gradients_bit_identical(&m, lanes);
                // Every instruction-set version this CPU can run, not only the one picked.
                crate::model::lane_testing::assert_kernel_bit_identical(
                    &m,
                    lanes,
                    |t, b, g, s, l| m.lane_kernel(t, b, g, s, l),
                );
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    crate::model::lane_testing::assert_kernel_bit_identical(
                        &m,
                        lanes,
                        |t, b, g, s, l| {
                            // SAFETY: the CPU has AVX2 and FMA (checked above).
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
