//! Matrix sensing: recover a low-rank `m x n` matrix `M*` from `N` linear measurements
//! `y_i = <A_i, M*>` through a factorisation.
//!
//! **Asymmetric** (`U in R^{m x r}`, `V in R^{n x r}`): `f_i = <A_i, U V^T>`. Parameter
//! layout (`d = (m + n) r`): `U` row-major, then `V` row-major (`U_ak = theta[a r + k]`,
//! `V_bk = theta[m r + b r + k]`). Gradients: `grad_U f_i = A_i V`, `grad_V f_i = A_i^T U`.
//!
//! **Symmetric** (`m = n`, `U in R^{n x r}`): `f_i = <A_i, U U^T>`, `theta = U` row-major
//! (`d = n r`), `grad_U f_i = (A_i + A_i^T) U`.
//!
//! `<A, B> = sum_ab A_ab B_ab`. The model generates its own data from `seed` (the draw order
//! is on [`MatrixSensingSpec`]): the measurement matrices have independent standard normal
//! entries, so `E <A_i, M>^2 = ||M||_F^2` and the expected loss is
//! `1/2 ||U V^T - M*||_F^2` (the usual restricted-isometry normalisation); the ground truth
//! is `M* = U* V*^T` (symmetric: `U* U*^T`) with `U*` of `true_rank` columns and entries
//! `N(0, 1/m)` (`V*`: `N(0, 1/n)`), so its `true_rank` non-zero singular values are about 1.
//!
//! The end-to-end weights are the entries of `U V^T`, row-major (so the observable
//! `weight_l1` is the entrywise `l1` norm `sum_ab |(U V^T)_ab|`, not the nuclear norm, and
//! `teacher_distance` is `||U V^T - M*||_F^2`); the teacher's are those of `M*`.
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Batch, Model, Scalar};
use crate::data::Dataset;

/// The sizes and seed of a generated matrix-sensing problem.
///
/// Draw order from `Xoshiro256PlusPlus::seed_from_u64(seed)`: the `measurements` matrices
/// `A_i`, each row-major (`m n` standard normals); then `U*` row-major (`m x true_rank`,
/// standard normals times `1/sqrt(m)`); then, unless symmetric, `V*` row-major
/// (`n x true_rank`, times `1/sqrt(n)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatrixSensingSpec {
    /// Rows `m >= 1`.
    pub rows: usize,
    /// Columns `n >= 1` (equal to `rows` when symmetric).
    pub cols: usize,
    /// Rank `r` of the factorisation, in `1..=min(m, n)`.
    pub rank: usize,
    /// Rank of the ground truth, in `1..=min(m, n)`.
    pub true_rank: usize,
    /// Number of measurements `N >= 1`.
    pub measurements: usize,
    /// `f_i = <A_i, U U^T>` instead of `<A_i, U V^T>`.
    pub symmetric: bool,
    /// Seed of the measurements and of the ground truth.
    pub seed: u64,
}

/// Matrix sensing (see the module docs for the parameter layout).
#[derive(Clone, Debug)]
pub struct MatrixSensing {
    spec: MatrixSensingSpec,
    /// `A_i` row-major as the rows of `x` (`p = m n`), `y_i = <A_i, M*>`.
    data: Dataset,
    /// `M*` row-major.
    truth: Vec<f64>,
    /// `U*` (`m x true_rank`) and, unless symmetric, `V*` (`n x true_rank`), row-major.
    truth_factors: (Vec<f64>, Vec<f64>),
    init_seed: u64,
    init_scale: f64,
}

impl MatrixSensing {
    /// Generate the problem of `spec` (see [`MatrixSensingSpec`] for the draw order).
    ///
    /// # Panics
    ///
    /// If a size is 0, a rank exceeds `min(m, n)`, or `symmetric` with `m != n`
    /// (configuration checks these first).
    pub fn generate(spec: MatrixSensingSpec) -> Self {
        let (m, n) = (spec.rows, spec.cols);
        assert!(m >= 1 && n >= 1, "matrix sensing needs rows, cols >= 1");
        assert!(
            (1..=m.min(n)).contains(&spec.rank) && (1..=m.min(n)).contains(&spec.true_rank),
            "matrix sensing needs ranks in 1..=min(rows, cols)"
        );
        assert!(spec.measurements >= 1, "matrix sensing needs measurements");
        assert!(
            !spec.symmetric || m == n,
            "symmetric sensing needs rows = cols"
        );
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(spec.seed);
        let mut draw = |len: usize, scale: f64| -> Vec<f64> {
            (0..len)
                .map(|_| scale * rng.sample::<f64, _>(StandardNormal))
                .collect()
        };
        let a = draw(spec.measurements * m * n, 1.0);
        let rs = spec.true_rank;
        let u = draw(m * rs, 1.0 / (m as f64).sqrt());
        let v = if spec.symmetric {
            Vec::new()
        } else {
            draw(n * rs, 1.0 / (n as f64).sqrt())
        };
        let right = if spec.symmetric { &u } else { &v };
        let mut truth = vec![0.0; m * n];
        for ia in 0..m {
            for ib in 0..n {
                truth[ia * n + ib] = (0..rs).map(|k| u[ia * rs + k] * right[ib * rs + k]).sum();
            }
        }
        let y = a
            .chunks_exact(m * n)
            .map(|ai| ai.iter().zip(&truth).map(|(x, t)| x * t).sum())
            .collect();
        Self {
            spec,
            data: Dataset::new(a, y, m * n),
            truth,
            truth_factors: (u, v),
            init_seed: 0,
            init_scale: 0.01,
        }
    }

    /// Seed and scale of the default (random) start.
    pub fn with_init(mut self, seed: u64, scale: f64) -> Self {
        self.init_seed = seed;
        self.init_scale = scale;
        self
    }

    /// The problem's sizes and seed.
    pub fn spec(&self) -> &MatrixSensingSpec {
        &self.spec
    }

    /// The ground truth `M*`, row-major.
    pub fn ground_truth(&self) -> &[f64] {
        &self.truth
    }

    /// The parameters of the ground truth's own factors (`U = (U*, 0)`, `V = (V*, 0)` padded
    /// with zero columns to rank `r`), a point of the manifold of minima; `None` when
    /// `rank < true_rank`.
    pub fn ground_truth_point(&self) -> Option<Vec<f64>> {
        let (r, rs) = (self.spec.rank, self.spec.true_rank);
        if r < rs {
            return None;
        }
        let pad = |f: &[f64], rows: usize| -> Vec<f64> {
            let mut out = vec![0.0; rows * r];
            for a in 0..rows {
                out[a * r..a * r + rs].copy_from_slice(&f[a * rs..(a + 1) * rs]);
            }
            out
        };
        let mut theta = pad(&self.truth_factors.0, self.spec.rows);
        if !self.spec.symmetric {
            theta.extend(pad(&self.truth_factors.1, self.spec.cols));
        }
        Some(theta)
    }

    /// `U` and the right factor (`V`, or `U` when symmetric) of `theta`.
    #[inline]
    fn factors<'a, D>(&self, theta: &'a [D]) -> (&'a [D], &'a [D]) {
        let mr = self.spec.rows * self.spec.rank;
        if self.spec.symmetric {
            (&theta[..mr], &theta[..mr])
        } else {
            theta[..self.dim()].split_at(mr)
        }
    }

    /// `out = U R^T` (`m x n` row-major), `R` the right factor.
    fn product<D: Scalar>(&self, theta: &[D], out: &mut [D]) {
        let (n, r) = (self.spec.cols, self.spec.rank);
        let (u, right) = self.factors(theta);
        for (ua, oa) in u.chunks_exact(r).zip(out.chunks_exact_mut(n)) {
            for (o, rb) in oa.iter_mut().zip(right.chunks_exact(r)) {
                let mut s = D::zero();
                for (&x, &y) in ua.iter().zip(rb) {
                    s += x * y;
                }
                *o = s;
            }
        }
    }
}

impl Model for MatrixSensing {
    fn name(&self) -> &'static str {
        "matrix_sensing"
    }

    fn dim(&self) -> usize {
        let s = &self.spec;
        if s.symmetric {
            s.rows * s.rank
        } else {
            (s.rows + s.cols) * s.rank
        }
    }

    fn n_samples(&self) -> usize {
        self.data.n
    }

    fn targets(&self) -> &[f64] {
        &self.data.y
    }

    /// Asymmetric: `grad_U = A V` first, `f = <U, A V>`, then `grad_V = A^T U`. Symmetric:
    /// `grad_U = A U`, `f = <U, A U>`, then `grad_U += A^T U`. `O(m n r)`, in place.
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let (m, n, r) = (self.spec.rows, self.spec.cols, self.spec.rank);
        let a = self.data.row(i);
        let (u, right) = self.factors(theta);
        let (gu, gv) = grad_f[..self.dim()].split_at_mut(m * r);
        // grad_U = A R.
        for (aa, ga) in a.chunks_exact(n).zip(gu.chunks_exact_mut(r)) {
            for g in ga.iter_mut() {
                *g = D::zero();
            }
            for (&ab, rb) in aa.iter().zip(right.chunks_exact(r)) {
                for (g, &x) in ga.iter_mut().zip(rb) {
                    *g += x * ab;
                }
            }
        }
        let mut f = D::zero();
        for (&x, &g) in u.iter().zip(gu.iter()) {
            f += x * g;
        }
        // A^T U, into grad_V (asymmetric) or added to grad_U (symmetric).
        let target: &mut [D] = if self.spec.symmetric { gu } else { gv };
        if !self.spec.symmetric {
            for g in target.iter_mut() {
                *g = D::zero();
            }
        }
        for (aa, ua) in a.chunks_exact(n).zip(u.chunks_exact(r)) {
            for (&ab, gb) in aa.iter().zip(target.chunks_exact_mut(r)) {
                for (g, &x) in gb.iter_mut().zip(ua) {
                    *g += x * ab;
                }
            }
        }
        f
    }

    /// `2 m n` (`U R^T` and `G`), or `d` if larger.
    fn scratch_len(&self) -> usize {
        (2 * self.spec.rows * self.spec.cols).max(self.dim())
    }

    /// Fused, `O(|B| m n + m n r)` (the default is `O(|B| m n r)`): `M = U R^T` once, the
    /// outputs `<A_i, M>`, `G = (1/|B|) sum_k (f_i - y_i - shift_k) A_i`, then
    /// `grad_U = G V`, `grad_V = G^T U` (symmetric: `grad_U = (G + G^T) U`).
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let (m, n, r) = (self.spec.rows, self.spec.cols, self.spec.rank);
        let (prod, rest) = scratch.split_at_mut(m * n);
        let g = &mut rest[..m * n];
        self.product(theta, prod);
        let loss = super::linear_readout(&self.data, prod, batch, g);
        let (u, right) = self.factors(theta);
        let (gu, gv) = grad[..self.dim()].split_at_mut(m * r);
        // grad_U = G R.
        for (ga, gra) in g.chunks_exact(n).zip(gu.chunks_exact_mut(r)) {
            for x in gra.iter_mut() {
                *x = D::zero();
            }
            for (&gab, rb) in ga.iter().zip(right.chunks_exact(r)) {
                for (x, &y) in gra.iter_mut().zip(rb) {
                    *x += gab * y;
                }
            }
        }
        // G^T U, into grad_V or added to grad_U.
        let target: &mut [D] = if self.spec.symmetric { gu } else { gv };
        if !self.spec.symmetric {
            for x in target.iter_mut() {
                *x = D::zero();
            }
        }
        for (ga, ua) in g.chunks_exact(n).zip(u.chunks_exact(r)) {
            for (&gab, tb) in ga.iter().zip(target.chunks_exact_mut(r)) {
                for (x, &y) in tb.iter_mut().zip(ua) {
                    *x += gab * y;
                }
            }
        }
        loss
    }

    /// Small random start from `init_seed`: every entry of `U` (then `V`) `~ N(0,
    /// init_scale^2)`, in parameter order (the small initialisation under which gradient
    /// methods find low-rank solutions).
    fn default_start(&self) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.init_seed);
        (0..self.dim())
            .map(|_| self.init_scale * rng.sample::<f64, _>(StandardNormal))
            .collect()
    }

    /// The entries of `U V^T` (symmetric: `U U^T`), row-major.
    fn end_to_end_weights(&self, theta: &[f64]) -> Option<Vec<f64>> {
        let mut out = vec![0.0; self.spec.rows * self.spec.cols];
        self.product(theta, &mut out);
        Some(out)
    }

    /// The entries of `M*`, row-major.
    fn teacher_weights(&self) -> Option<&[f64]> {
        Some(&self.truth)
    }

    /// 0 when `rank >= true_rank` (the ground truth is reachable and the measurements are
    /// noiseless); unknown otherwise.
    fn loss_min(&self) -> Option<f64> {
        (self.spec.rank >= self.spec.true_rank).then_some(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::derivatives::{self, testing::check_derivatives};

    fn spec(symmetric: bool) -> MatrixSensingSpec {
        MatrixSensingSpec {
            rows: 3,
            cols: if symmetric { 3 } else { 4 },
            rank: 2,
            true_rank: 1,
            measurements: 5,
            symmetric,
            seed: 7,
        }
    }

    #[test]
    fn matrix_sensing_derivatives() {
        for symmetric in [false, true] {
            let m = MatrixSensing::generate(spec(symmetric)).with_init(2, 0.5);
            let d = m.dim();
            assert_eq!(d, if symmetric { 6 } else { 14 });
            let th: Vec<f64> = (0..d).map(|c| 0.8 * (1.1 * c as f64 + 0.3).sin()).collect();
            let v: Vec<f64> = (0..d).map(|c| (0.9 * c as f64 + 0.5).cos()).collect();
            let w: Vec<f64> = (0..d).map(|c| (1.7 * c as f64 - 0.2).sin()).collect();
            check_derivatives(&m, &th, &v, &w);
            check_derivatives(&m, &m.default_start(), &v, &w);
        }
    }

    /// The outputs against an independent evaluation (nalgebra) of `<A_i, U V^T>`, and the
    /// end-to-end weights are the entries of `U V^T`.
    #[test]
    fn outputs_are_inner_products_with_the_factor_product() {
        for symmetric in [false, true] {
            let s = spec(symmetric);
            let m = MatrixSensing::generate(s).with_init(1, 0.7);
            let th = m.default_start();
            let u = nalgebra::DMatrix::from_row_slice(s.rows, s.rank, &th[..s.rows * s.rank]);
            let v = if symmetric {
                u.clone()
            } else {
                nalgebra::DMatrix::from_row_slice(s.cols, s.rank, &th[s.rows * s.rank..])
            };
            let prod = &u * v.transpose();
            let e2e = m.end_to_end_weights(&th).unwrap();
            let mut g = vec![0.0; m.dim()];
            for i in 0..s.measurements {
                let a = nalgebra::DMatrix::from_row_slice(s.rows, s.cols, m.data.row(i));
                let f = m.output_and_grad(&th, i, &mut g);
                assert!((f - a.dot(&prod)).abs() < 1e-14);
            }
            for ia in 0..s.rows {
                for ib in 0..s.cols {
                    assert!((e2e[ia * s.cols + ib] - prod[(ia, ib)]).abs() < 1e-15);
                }
            }
        }
    }

    /// At the ground truth's factors (padded with a zero column) the loss and the gradient
    /// vanish; the teacher is `M*` and has rank `true_rank`.
    #[test]
    fn loss_is_zero_at_the_ground_truth() {
        for symmetric in [false, true] {
            let m = MatrixSensing::generate(spec(symmetric));
            let th = m.ground_truth_point().unwrap();
            let mut g = vec![0.0; m.dim()];
            let l = derivatives::gradient(&m, &th, &mut g);
            assert!(l < 1e-28, "loss {l}");
            assert!(g.iter().all(|x| x.abs() < 1e-13), "{g:?}");
            assert_eq!(m.loss_min(), Some(0.0));
            let e2e = m.end_to_end_weights(&th).unwrap();
            for (a, b) in e2e.iter().zip(m.teacher_weights().unwrap()) {
                assert!((a - b).abs() < 1e-15);
            }
            let s = nalgebra::DMatrix::from_row_slice(m.spec.rows, m.spec.cols, m.ground_truth())
                .singular_values();
            assert!(s[0] > 0.05 && s[1] < 1e-12, "{s}");
            // Another factorisation of M*: U -> U Q, V -> V Q for an orthogonal Q (a rotation
            // of the two columns), still a minimum.
            let (c, sn) = (0.6, 0.8);
            let rotated: Vec<f64> = th
                .chunks_exact(2)
                .flat_map(|row| [c * row[0] - sn * row[1], sn * row[0] + c * row[1]])
                .collect();
            assert!(derivatives::loss(&m, &rotated) < 1e-28);
        }
        let under = MatrixSensing::generate(MatrixSensingSpec {
            rank: 1,
            true_rank: 2,
            ..spec(false)
        });
        assert_eq!(under.ground_truth_point(), None);
        assert_eq!(under.loss_min(), None);
    }

    /// The normalisation: with standard normal `A_i`, `(1/N) sum <A_i, M>^2` estimates
    /// `||M||_F^2` (here `M = M*`, so the estimate is `(1/N) sum y_i^2`). Each term is
    /// `||M||_F^2` times a chi-square with one degree of freedom, so the relative standard
    /// deviation is `sqrt(2 / N) = 0.022` for `N = 4000`; tolerance 0.11 (five of them).
    #[test]
    fn measurements_are_normalised_to_the_frobenius_norm() {
        let m = MatrixSensing::generate(MatrixSensingSpec {
            rows: 5,
            cols: 6,
            rank: 3,
            true_rank: 3,
            measurements: 4000,
            symmetric: false,
            seed: 3,
        });
        let frob2: f64 = m.ground_truth().iter().map(|x| x * x).sum();
        let mean: f64 = m.targets().iter().map(|y| y * y).sum::<f64>() / 4000.0;
        assert!((mean / frob2 - 1.0).abs() < 0.11, "{mean} vs {frob2}");
        // At theta = 0 the loss is (1/N) sum 1/2 y_i^2.
        let l0 = derivatives::loss(&m, &vec![0.0; m.dim()]);
        assert!((l0 - 0.5 * mean).abs() < 1e-12);
    }

    /// The identity behind docs/theory.md's nuclear-norm remark: over Gaussian `A_i`,
    /// `E ||grad f_i||^2 = m ||V||_F^2 + n ||U||_F^2` (asymmetric) and `2 (n + 1) ||U||_F^2`
    /// (symmetric: `E (A_ab + A_ba)^2` is 2 off the diagonal, 4 on it). The average over `N`
    /// measurements has a relative standard deviation below `sqrt(2 / (N m)) = 0.014` for
    /// `N = 2000`, `m = 5` (each of the `N m` rows of `A_i V` adds an independent quadratic
    /// form); tolerance 0.07 (five of them).
    #[test]
    fn mean_squared_output_gradient_matches_its_expectation() {
        for symmetric in [false, true] {
            let s = MatrixSensingSpec {
                rows: 5,
                cols: if symmetric { 5 } else { 6 },
                rank: 3,
                true_rank: 2,
                measurements: 2000,
                symmetric,
                seed: 9,
            };
            let m = MatrixSensing::generate(s).with_init(3, 0.8);
            let th = m.default_start();
            let mut g = vec![0.0; m.dim()];
            let mean: f64 = (0..s.measurements)
                .map(|i| {
                    m.output_and_grad(&th, i, &mut g);
                    g.iter().map(|x| x * x).sum::<f64>()
                })
                .sum::<f64>()
                / s.measurements as f64;
            let mr = s.rows * s.rank;
            let norm2 = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
            let expected = if symmetric {
                2.0 * (s.rows as f64 + 1.0) * norm2(&th)
            } else {
                s.rows as f64 * norm2(&th[mr..]) + s.cols as f64 * norm2(&th[..mr])
            };
            assert!(
                (mean / expected - 1.0).abs() < 0.07,
                "symmetric {symmetric}: {mean} vs {expected}"
            );
        }
    }

    #[test]
    fn generation_and_default_start_are_seeded_and_scaled() {
        let a = MatrixSensing::generate(spec(false));
        let b = MatrixSensing::generate(spec(false));
        assert_eq!(a.data, b.data);
        let c = MatrixSensing::generate(MatrixSensingSpec {
            seed: 8,
            ..spec(false)
        });
        assert_ne!(a.data, c.data);
        let s1 = a.clone().with_init(4, 0.01).default_start();
        let s2 = a.clone().with_init(4, 0.1).default_start();
        assert_ne!(s1, a.clone().with_init(5, 0.01).default_start());
        for (x, y) in s1.iter().zip(&s2) {
            assert!((10.0 * x - y).abs() < 1e-15);
        }
    }
}
