//! Diagonal linear network `f(x) = sum_j (u_j^2 - v_j^2) x_j`, `theta = (u, v)`.
//!
//! Parameters `theta = (u_1..u_p, v_1..v_p)` in `R^{2p}`; end-to-end weights
//! `w = u^2 - v^2` (elementwise); loss `L = (1/n) sum_i 1/2 (w . x_i - y_i)^2`. Gradients:
//! `d f / d u_j = 2 u_j x_j`, `d f / d v_j = -2 v_j x_j`. With `n < p` samples the model
//! interpolates and its minima form a manifold of dimension `2p - n`; THEORY.md section 7
//! explains which interpolator label-noise SGD (an l1-type norm) and Adam (l1/2-type) favour.
use super::{Batch, Model, Scalar};
use crate::data::Dataset;

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
