//! The noise covariance `Sigma(phi)` on the manifold (docs/theory.md section 6), as an operator.
//!
//! The derivation needs `Sigma` only through products `Sigma X` with thin matrices (`X` the
//! normal basis, `d x r`), its normal block `V^T Sigma V`, its tangent-normal block
//! `P_T Sigma V`, and the tangent block `P_T Sigma P_T` (kept implicit for large `d`).
//!
//! - Dense path: `Sigma` is [`NoiseModel::covariance`] (a `d x d` matrix).
//! - Low-rank path: from the Jacobian, without `d x d` matrices. Label / mini-batch noise:
//!   `Sigma X = (sigma^2 / (B n)) J^T (J X) + (n - B)/(B (n - 1)) [(1/n) J^T diag(r^2) J X -
//!   g g^T X]` with `g = (1/n) J^T r` (exact, equal to the dense formula); isotropic
//!   `Sigma X = (sigma^2/B) X`; Hessian-shaped `(sigma^2/B) H X` with `H = (1/n) J^T J` (exact
//!   on an interpolating manifold); fixed: the user's matrix.
//!
//! Also here: `diag Sigma(theta)` at any point, cheaply ([`covariance_diagonal`]), which Adam's
//! preconditioner needs.

use nalgebra::DMatrix;

use super::geometry::{Curvature, Geometry};
use crate::linalg;
use crate::model::{derivatives, Model};
use crate::noise::NoiseModel;

/// `Sigma(phi)` as an operator (see the module docs).
#[derive(Clone, Debug)]
pub enum CovarianceOperator {
    /// `Sigma = 0`.
    Zero,
    /// A dense `d x d` covariance.
    Dense(DMatrix<f64>),
    /// `Sigma = c I`.
    Scaled(f64),
    /// Label / mini-batch noise from the Jacobian `J` and residuals `r`.
    Label {
        /// `sigma^2 / (B n)`.
        label_factor: f64,
        /// `(n - B) / (B (n - 1))` (0 for the full batch).
        batch_factor: f64,
    },
    /// `Sigma = c H` with `H = (1/n) J^T J`.
    GaussNewton(f64),
}

impl CovarianceOperator {
    /// The operator for `noise` at `phi`: dense from [`NoiseModel::covariance`] on the dense
    /// path, Jacobian-based on the low-rank path.
    pub fn new<M: Model>(
        model: &M,
        noise: &NoiseModel,
        phi: &[f64],
        curvature: &Curvature,
    ) -> Self {
        match curvature {
            Curvature::Hessian(_) => CovarianceOperator::Dense(noise.covariance(model, phi)),
            Curvature::Jacobian { transposed, .. } => {
                let n = transposed.ncols();
                match noise {
                    NoiseModel::None => CovarianceOperator::Zero,
                    NoiseModel::Label { sigma, batch } => {
                        let b = batch.unwrap_or(n);
                        CovarianceOperator::Label {
                            label_factor: sigma * sigma / (b as f64 * n as f64),
                            batch_factor: if b < n {
                                (n - b) as f64 / (b as f64 * (n - 1) as f64)
                            } else {
                                0.0
                            },
                        }
                    }
                    NoiseModel::Isotropic { sigma, batch } => {
                        CovarianceOperator::Scaled(sigma * sigma / *batch as f64)
                    }
                    NoiseModel::Hessian { sigma, batch } => {
                        CovarianceOperator::GaussNewton(sigma * sigma / *batch as f64)
                    }
                    NoiseModel::Fixed { covariance, .. } => {
                        CovarianceOperator::Dense(covariance.clone())
                    }
                }
            }
        }
    }

    /// `kappa` when `Sigma = kappa H` exactly in the curvature's representation: full-batch
    /// label noise (`kappa = sigma^2 / B`) and Hessian-shaped noise on the
    /// low-rank path, where `H = (1/n) J^T J`. Then `V^T Sigma~ V = kappa Lambda` in the normal
    /// eigenbasis of any metric and the tangent-normal block `P~_T Sigma~ V` vanishes.
    pub fn proportional_to_curvature(&self, curvature: &Curvature) -> Option<f64> {
        let Curvature::Jacobian { transposed, .. } = curvature else {
            return None;
        };
        match self {
            CovarianceOperator::Label {
                label_factor,
                batch_factor,
            } if *batch_factor == 0.0 => Some(label_factor * transposed.ncols() as f64),
            CovarianceOperator::GaussNewton(c) => Some(*c),
            _ => None,
        }
    }

    /// `Sigma X` for a `d x k` matrix `X`.
    pub fn apply(&self, curvature: &Curvature, x: &DMatrix<f64>) -> DMatrix<f64> {
        match self {
            CovarianceOperator::Zero => DMatrix::zeros(x.nrows(), x.ncols()),
            CovarianceOperator::Dense(s) => s * x,
            CovarianceOperator::Scaled(c) => x * *c,
            CovarianceOperator::GaussNewton(c) => curvature.apply(x) * *c,
            CovarianceOperator::Label {
                label_factor,
                batch_factor,
            } => {
                let Curvature::Jacobian {
                    transposed: jt,
                    residuals,
                } = curvature
                else {
                    unreachable!("label operator is built only on the low-rank path")
                };
                let n = jt.ncols() as f64;
                let jx = linalg::tr_mul(jt, x);
                let mut out = linalg::mul(jt, &jx) * *label_factor;
                if *batch_factor > 0.0 {
                    let mut weighted = jx.clone();
                    for (i, mut row) in weighted.row_iter_mut().enumerate() {
                        row *= residuals[i] * residuals[i] / n;
                    }
                    let r = nalgebra::DVector::from_column_slice(residuals);
                    let g = jt * &r / n;
                    let gx = g.tr_mul(x);
                    out += (linalg::mul(jt, &weighted) - &g * gx) * *batch_factor;
                }
                out
            }
        }
    }

    /// `Sigma~ X = D^{1/2} Sigma D^{1/2} X` in the geometry's metric (`Sigma X` without one).
    pub fn apply_in_metric(
        &self,
        curvature: &Curvature,
        geometry: &Geometry,
        x: &DMatrix<f64>,
    ) -> DMatrix<f64> {
        match &geometry.metric {
            None => self.apply(curvature, x),
            Some(m) => {
                let mut y = x.clone();
                scale_rows(&mut y, m);
                let mut out = self.apply(curvature, &y);
                scale_rows(&mut out, m);
                out
            }
        }
    }

    /// The tangent block `P~_T Sigma~ P~_T` mapped to parameters, `D^{1/2} P~_T Sigma~ P~_T D^{1/2}`
    /// (`P_T Sigma P_T` without a metric), as a dense matrix. Cost `O(d^2 r)`: small `d` only.
    pub fn tangent_block_matrix(&self, curvature: &Curvature, geometry: &Geometry) -> DMatrix<f64> {
        let d = geometry.dim;
        let pt = DMatrix::identity(d, d) - geometry.normal_projection_matrix();
        let a = self.apply_in_metric(curvature, geometry, &pt);
        let mut q = geometry.tangent_projection_matrix(&a);
        q = (&q + q.transpose()) * 0.5;
        if let Some(m) = &geometry.metric {
            scale_rows(&mut q, m);
            let mut qt = q.transpose();
            scale_rows(&mut qt, m);
            q = qt;
        }
        q
    }

    /// Trace of `D^{1/2} P~_T Sigma~ P~_T D^{1/2}` without `d x d` matrices where the structure
    /// allows: 0 for noise proportional to `H` on an interpolating manifold (label, mini-batch,
    /// Hessian-shaped: `P~_T H~ = 0`), `c tr(D P~_T D P~_T)` expanded in `V` for isotropic
    /// noise, and the dense block otherwise.
    pub fn tangent_block_trace(&self, curvature: &Curvature, geometry: &Geometry) -> f64 {
        match self {
            CovarianceOperator::Zero => 0.0,
            CovarianceOperator::Label { .. } | CovarianceOperator::GaussNewton(_)
                if matches!(curvature, Curvature::Jacobian { .. }) =>
            {
                0.0
            }
            CovarianceOperator::Scaled(c) => {
                // tr(D P D P) with P = I - V V^T, D = diag(metric^2):
                // tr(D^2) - 2 tr(V^T D^2 V) + tr((V^T D V)^2).
                let d = geometry.dim;
                let dd: Vec<f64> = match &geometry.metric {
                    None => vec![1.0; d],
                    Some(m) => m.iter().map(|x| x * x).collect(),
                };
                let v = &geometry.basis;
                let mut dv = v.clone();
                scale_rows(&mut dv, &dd);
                let vdv = linalg::tr_mul(v, &dv);
                let mut ddv = dv.clone();
                scale_rows(&mut ddv, &dd);
                let t1: f64 = dd.iter().map(|x| x * x).sum();
                let t2 = linalg::tr_mul(v, &ddv).trace();
                let t3 = (&vdv * &vdv).trace();
                c * (t1 - 2.0 * t2 + t3)
            }
            _ => self.tangent_block_matrix(curvature, geometry).trace(),
        }
    }
}

/// Multiply row `i` of `x` by `s[i]`.
pub fn scale_rows(x: &mut DMatrix<f64>, s: &[f64]) {
    for (i, mut row) in x.row_iter_mut().enumerate() {
        row *= s[i];
    }
}

/// `diag Sigma(theta)` at any point `theta` (on or off the manifold), in `O(n d)` for label /
/// mini-batch / isotropic / fixed noise. Hessian-shaped noise uses `d` Hessian-vector products
/// when `d <= 2000` and the Gauss–Newton diagonal `(1/n) sum_i (d_a f_i)^2` above (exact on an
/// interpolating manifold).
pub fn covariance_diagonal<M: Model>(model: &M, noise: &NoiseModel, theta: &[f64]) -> Vec<f64> {
    let d = model.dim();
    match noise {
        NoiseModel::None => vec![0.0; d],
        NoiseModel::Label { sigma, batch } => {
            let n = model.n_samples();
            let b = batch.unwrap_or(n);
            let (j, r) = derivatives::jacobian(model, theta);
            let lf = sigma * sigma / (b as f64 * n as f64);
            let bf = if b < n {
                (n - b) as f64 / (b as f64 * (n - 1) as f64)
            } else {
                0.0
            };
            let mut out = vec![0.0; d];
            let mut gl = vec![0.0; d];
            for i in 0..n {
                for (a, o) in out.iter_mut().enumerate() {
                    let jia = j[(i, a)];
                    *o += lf * jia * jia + bf * r[i] * r[i] * jia * jia / n as f64;
                    gl[a] += r[i] * jia / n as f64;
                }
            }
            for (o, g) in out.iter_mut().zip(&gl) {
                *o -= bf * g * g;
            }
            out
        }
        NoiseModel::Isotropic { sigma, batch } => vec![sigma * sigma / *batch as f64; d],
        NoiseModel::Hessian { sigma, batch } => {
            let c = sigma * sigma / *batch as f64;
            if d <= 2000 {
                let h = derivatives::hessian(model, theta);
                h.diagonal().iter().map(|x| c * x).collect()
            } else {
                let (j, _) = derivatives::jacobian(model, theta);
                let n = j.nrows() as f64;
                j.column_iter()
                    .map(|col| c * col.norm_squared() / n)
                    .collect()
            }
        }
        NoiseModel::Fixed { covariance, .. } => covariance.diagonal().iter().copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifold::geometry::RankOptions;
    use crate::model::{Profile, Valley};

    /// The Jacobian-based label / mini-batch operator equals the dense covariance of
    /// `NoiseModel::covariance`, off the manifold too (1e-12), and the cheap diagonal equals the
    /// dense diagonal (1e-12).
    #[test]
    fn jacobian_operator_matches_dense_covariance() {
        let m = Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Sin2, 0.8).with_random_rotation(4);
        let theta = [0.2, -0.1, 0.3, 0.7, -0.4];
        let x = DMatrix::from_fn(5, 2, |i, j| (i as f64 + 1.0) * 0.3 - j as f64 * 0.5);
        for noise in [
            NoiseModel::Label {
                sigma: 0.7,
                batch: None,
            },
            NoiseModel::Label {
                sigma: 0.7,
                batch: Some(2),
            },
            NoiseModel::Label {
                sigma: 0.0,
                batch: Some(1),
            },
            NoiseModel::Isotropic {
                sigma: 0.5,
                batch: 2,
            },
        ] {
            let (transposed, residuals) = derivatives::jacobian_transposed(&m, &theta);
            let curv = Curvature::Jacobian {
                transposed,
                residuals,
            };
            let op = CovarianceOperator::new(&m, &noise, &theta, &curv);
            let dense = noise.covariance(&m, &theta);
            let err = (op.apply(&curv, &x) - &dense * &x).abs().max();
            assert!(err < 1e-12, "{noise:?}: {err}");
            let diag = covariance_diagonal(&m, &noise, &theta);
            for a in 0..5 {
                assert!((diag[a] - dense[(a, a)]).abs() < 1e-12);
            }
        }
    }

    /// The implicit isotropic tangent trace equals the dense one, with and without a metric.
    #[test]
    fn isotropic_tangent_trace() {
        let m = Valley::new(vec![1.0, 2.0], 3, Profile::Quadratic, 0.8).with_random_rotation(5);
        let phi = m.to_theta(&[0.0, 0.0, 0.3, 0.7, -0.4]);
        let noise = NoiseModel::Isotropic {
            sigma: 0.5,
            batch: 1,
        };
        let dense = Curvature::dense(&m, &phi);
        let metric = [0.5, 1.5, 1.0, 2.0, 0.8];
        for met in [None, Some(&metric[..])] {
            let g = dense.geometry(met, &RankOptions::default()).unwrap();
            let op = CovarianceOperator::Scaled(0.25);
            let t = op.tangent_block_trace(&dense, &g);
            let full = CovarianceOperator::new(&m, &noise, &phi, &dense)
                .tangent_block_matrix(&dense, &g)
                .trace();
            assert!((t - full).abs() < 1e-12, "{t} vs {full}");
        }
    }
}
