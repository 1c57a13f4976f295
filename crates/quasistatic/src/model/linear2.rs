//! Two-layer linear network / matrix factorisation regression `f(x) = v^T U x`.
//!
//! Hidden width `h`, inputs in `R^p`. Parameter layout (`d = h (p + 1)`):
//! `theta = (U, v)` with `U` the `h x p` first-layer matrix stored row-major
//! (`U_jk = theta[j p + k]`) followed by `v` in `R^h` (`v_j = theta[h p + j]`).
//! End-to-end weights `w = U^T v`, so `f(x) = w . x`; gradients `d f / d U_jk = v_j x_k`,
//! `d f / d v_j = (U x)_j`. Every `w` is reachable (already with `h = 1`), so the minima are
//! the least-squares solutions: for `n <= p` the model interpolates.
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Batch, Model, Scalar};
use crate::data::Dataset;

/// Two-layer linear network (see module docs for the parameter layout).
#[derive(Clone, Debug)]
pub struct LinearTwoLayer {
    width: usize,
    train: Dataset,
    test: Option<Dataset>,
    teacher: Option<Vec<f64>>,
    init_seed: u64,
    init_scale: f64,
}

impl LinearTwoLayer {
    /// Hidden width `width`, data, optional teacher weights.
    ///
    /// # Panics
    ///
    /// If `width == 0`, there are no features or no training sample, or `test` / `teacher` do
    /// not have `p` features / weights.
    pub fn new(
        width: usize,
        train: Dataset,
        test: Option<Dataset>,
        teacher: Option<Vec<f64>>,
    ) -> Self {
        assert!(width >= 1, "two-layer linear network needs width >= 1");
        assert!(
            train.p >= 1 && train.n >= 1,
            "two-layer linear network needs p >= 1 and n >= 1"
        );
        train.assert_companions(test.as_ref(), teacher.as_deref());
        Self {
            width,
            train,
            test,
            teacher,
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

    /// Hidden width `h`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// `out = U^T v` (length `p`).
    #[inline]
    fn end_to_end<D: Scalar>(&self, theta: &[D], out: &mut [D]) {
        let (h, p) = (self.width, self.train.p);
        let (u, v) = theta.split_at(h * p);
        for o in out.iter_mut() {
            *o = D::zero();
        }
        for (uj, &vj) in u.chunks_exact(p).zip(v) {
            for (o, &ujk) in out.iter_mut().zip(uj) {
                *o += ujk * vj;
            }
        }
    }
}

impl Model for LinearTwoLayer {
    fn name(&self) -> &'static str {
        "linear2"
    }

    fn dim(&self) -> usize {
        self.width * (self.train.p + 1)
    }

    fn n_samples(&self) -> usize {
        self.train.n
    }

    fn targets(&self) -> &[f64] {
        &self.train.y
    }

    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let (h, p) = (self.width, self.train.p);
        let x = self.train.row(i);
        let (u, v) = theta.split_at(h * p);
        let (gu, gv) = grad_f[..h * (p + 1)].split_at_mut(h * p);
        let mut f = D::zero();
        for (j, (uj, guj)) in u.chunks_exact(p).zip(gu.chunks_exact_mut(p)).enumerate() {
            let mut z = D::zero();
            for ((&ujk, g), &xk) in uj.iter().zip(guj.iter_mut()).zip(x) {
                z += ujk * xk;
                *g = v[j] * xk;
            }
            gv[j] = z;
            f += v[j] * z;
        }
        f
    }

    /// `2p` entries for the fused gradient (`w = U^T v` and `c`), or `d` if larger.
    fn scratch_len(&self) -> usize {
        self.dim().max(2 * self.train.p)
    }

    /// Fused, `O(p (|B| + h))`: `w = U^T v` once, `f_i = w . x_i`,
    /// `c = (1/|B|) sum_k (f_i - y_i - shift_k) x_i`, then `grad_U = v c^T` and `grad_v = U c`.
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let (h, p) = (self.width, self.train.p);
        let (w, c) = scratch[..2 * p].split_at_mut(p);
        self.end_to_end(theta, w);
        let loss = super::linear_readout(&self.train, w, batch, c);
        let (u, v) = theta.split_at(h * p);
        let (gu, gv) = grad[..h * (p + 1)].split_at_mut(h * p);
        for (j, (uj, guj)) in u.chunks_exact(p).zip(gu.chunks_exact_mut(p)).enumerate() {
            let mut uc = D::zero();
            for ((g, &ujk), &ck) in guj.iter_mut().zip(uj).zip(c.iter()) {
                *g = v[j] * ck;
                uc += ujk * ck;
            }
            gv[j] = uc;
        }
        loss
    }

    /// Random start from `init_seed` (fan-in scaling): `U_jk ~ N(0, init_scale^2 / p)` row by
    /// row, then `v_j ~ N(0, init_scale^2 / h)`. A small `init_scale` gives the small
    /// initialisation of the rich regime.
    fn default_start(&self) -> Vec<f64> {
        let (h, p) = (self.width, self.train.p);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.init_seed);
        let u_scale = self.init_scale / (p as f64).sqrt();
        let v_scale = self.init_scale / (h as f64).sqrt();
        (0..self.dim())
            .map(|c| {
                let z: f64 = rng.sample(StandardNormal);
                z * if c < h * p { u_scale } else { v_scale }
            })
            .collect()
    }

    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        let test = self.test.as_ref()?;
        let w = self.end_to_end_weights(theta)?;
        Some(test.linear_mse(&w))
    }

    /// `w = U^T v`.
    fn end_to_end_weights(&self, theta: &[f64]) -> Option<Vec<f64>> {
        let mut w = vec![0.0; self.train.p];
        self.end_to_end(theta, &mut w);
        Some(w)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::derivatives::{self, testing::check_derivatives};

    fn model(n: usize, p: usize, width: usize) -> LinearTwoLayer {
        let data = generate(&SyntheticSpec {
            n,
            n_test: 3,
            p,
            teacher: Teacher::Linear((0..p).map(|k| 1.0 - 0.5 * k as f64).collect()),
            label_noise: 0.2,
            seed: 8,
        });
        LinearTwoLayer::new(width, data.train, data.test, data.teacher).with_init(3, 0.7)
    }

    #[test]
    fn linear2_derivatives() {
        for (n, p, width) in [(3, 4, 3), (5, 2, 1), (2, 3, 2)] {
            let m = model(n, p, width);
            let d = m.dim();
            let th: Vec<f64> = (0..d).map(|c| 0.8 * (1.1 * c as f64 + 0.3).sin()).collect();
            let v: Vec<f64> = (0..d).map(|c| (0.9 * c as f64 + 0.5).cos()).collect();
            let w: Vec<f64> = (0..d).map(|c| (1.7 * c as f64 - 0.2).sin()).collect();
            check_derivatives(&m, &th, &v, &w);
        }
    }

    #[test]
    fn end_to_end_weights_are_u_transpose_v() {
        let m = model(3, 4, 3);
        let th = m.default_start();
        let u = nalgebra::DMatrix::from_row_slice(3, 4, &th[..12]);
        let v = nalgebra::DVector::from_column_slice(&th[12..]);
        let expected = u.transpose() * v;
        let w = m.end_to_end_weights(&th).unwrap();
        for k in 0..4 {
            assert!((w[k] - expected[k]).abs() < 1e-15);
        }
        // The loss is that of the linear predictor w.
        let l = derivatives::loss(&m, &th);
        assert!((l - 0.5 * m.train.linear_mse(&w)).abs() < 1e-15);
        assert!(
            (m.test_error(&th).unwrap() - m.test.as_ref().unwrap().linear_mse(&w)).abs() < 1e-15
        );
        assert_eq!(m.teacher_weights(), Some(&[1.0, 0.5, 0.0, -0.5][..]));
    }

    #[test]
    fn default_start_is_seeded_and_scaled() {
        let m = model(3, 4, 2);
        let a = m.default_start();
        assert_eq!(a, m.default_start());
        assert_ne!(a, m.clone().with_init(4, 0.7).default_start());
        let b = m.clone().with_init(3, 0.07).default_start();
        for (x, y) in a.iter().zip(&b) {
            assert!((0.1 * x - y).abs() < 1e-15);
        }
    }

    #[test]
    fn loss_min_interpolates_or_is_least_squares() {
        assert_eq!(model(3, 4, 2).loss_min(), Some(0.0));
        let m = model(7, 2, 2);
        let l_min = m.loss_min().unwrap();
        // theta with U = (w_ls^T; 0), v = (1, 0) reaches it.
        let w = m.train.least_squares().weights;
        let th = [w[0], w[1], 0.0, 0.0, 1.0, 0.0];
        assert!(l_min > 1e-3 && (derivatives::loss(&m, &th) - l_min).abs() < 1e-14);
    }
}
