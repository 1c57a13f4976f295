//! Local geometry of the manifold of minima at a point `phi` (docs/theory.md section 1).
//!
//! At `phi` on `G`: `H = hess L(phi)`, normal space `N = range H`, tangent space `T = ker H`,
//! projections `P_N`, `P_T = I - P_N`, pseudo-inverse `H^+`. Everything is represented through
//! an orthonormal eigenbasis `V` (`d x r`) of `H` on `N` and its eigenvalues `lambda_1 >= ... >=
//! lambda_r > 0`: `P_N x = V V^T x`, `P_T x = x - V V^T x`, `H^+ x = V diag(1/lambda) V^T x`.
//! No `d x d` matrix is formed except on the dense path.
//!
//! Two paths compute `V`:
//! - **dense** ([`Curvature::Hessian`]): the `d x d` Hessian from `d` Hessian-vector products,
//!   symmetrised and eigen-decomposed. Cost `O(d^2 n + d^3)`; any model, interpolating or not.
//! - **low rank** ([`Curvature::Jacobian`]): on an interpolating manifold (all residuals 0),
//!   `H = (1/n) J^T J` with `J` the `n x d` Jacobian of the per-sample outputs, so `N` is the row
//!   space of `J`. The `n x n` Gram matrix `(1/n) J J^T = U Lambda U^T` gives the eigenpairs of
//!   `H`: `V = J^T U Lambda^{-1/2} / sqrt(n)`. Cost `O(n^2 d)`, memory `O(n d)`: fit for
//!   `d = 10^5`, `n <= 200`.
//!
//! **Metric.** Adam's section-5 change of variables `w = D^{-1/2} theta` needs the same objects
//! for `H~ = D^{1/2} H D^{1/2}`; pass `metric = Some(D^{1/2})` (the diagonal as a vector). The
//! basis `V` then spans `range H~` and is orthonormal in `w`.
//!
//! **Rank.** The split between normal and tangent eigenvalues is placed at the largest ratio of
//! consecutive eigenvalues (`lambda_k / |lambda_{k+1}|`, the denominator floored at
//! `lambda_max * 1e-16`); the ratio at the split is reported as the *gap*, and a gap below
//! [`RankOptions::min_gap`] is refused as ambiguous (unless the rank is given explicitly).

use std::borrow::Cow;

use nalgebra::{DMatrix, DVector};
use serde::Serialize;

use crate::linalg;
use crate::model::{derivatives, Model};
use crate::{Error, Result};

/// How the normal rank is decided.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RankOptions {
    /// Smallest acceptable ratio `lambda_r / |lambda_{r+1}|` across the split (default `1e3`).
    pub min_gap: f64,
    /// Force the normal rank `r` (the gap is still reported, never checked).
    pub rank: Option<usize>,
}

impl Default for RankOptions {
    fn default() -> Self {
        Self {
            min_gap: 1e3,
            rank: None,
        }
    }
}

/// Which representation of the curvature a [`Geometry`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GeometryPath {
    /// Dense `d x d` Hessian.
    Dense,
    /// Jacobian of the per-sample outputs, `H = (1/n) J^T J` (interpolating manifolds).
    LowRank,
}

impl GeometryPath {
    /// `"dense"` or `"low_rank"`.
    pub fn name(&self) -> &'static str {
        match self {
            GeometryPath::Dense => "dense",
            GeometryPath::LowRank => "low_rank",
        }
    }
}

/// The curvature of the loss at a manifold point, in one of two representations.
#[derive(Clone, Debug)]
pub enum Curvature {
    /// The dense, symmetrised Hessian `H(phi)` (`d x d`).
    Hessian(DMatrix<f64>),
    /// The Jacobian `J` (`n x d`, rows `grad f_i(phi)`), stored transposed, and residuals
    /// `r_i = f_i(phi) - y_i`; `H = (1/n) J^T J` holds when the residuals vanish.
    Jacobian {
        /// `J^T` (`d x n`): column `i` is `grad f_i(phi)`.
        transposed: DMatrix<f64>,
        /// `r_i = f_i(phi) - y_i`.
        residuals: Vec<f64>,
    },
}

impl Curvature {
    /// The dense Hessian at `phi` (`d` Hessian-vector products).
    pub fn dense<M: Model>(model: &M, phi: &[f64]) -> Self {
        Curvature::Hessian(derivatives::hessian(model, phi))
    }

    /// The Jacobian representation at `phi`. Fails unless the manifold interpolates there:
    /// `max_i |r_i| <= residual_tolerance`, since otherwise `H != (1/n) J^T J`.
    pub fn low_rank<M: Model>(model: &M, phi: &[f64], residual_tolerance: f64) -> Result<Self> {
        let (transposed, residuals) = derivatives::jacobian_transposed(model, phi);
        let worst = residuals.iter().fold(0.0f64, |m, r| m.max(r.abs()));
        if worst > residual_tolerance {
            return Err(Error::Numerical(format!(
                "low-rank (Jacobian) geometry needs an interpolating manifold, but the largest \
                 residual |f_i - y_i| at the projected point is {worst:.3e} > {residual_tolerance:.1e}; \
                 use the dense path"
            )));
        }
        Ok(Curvature::Jacobian {
            transposed,
            residuals,
        })
    }

    /// Which path this is.
    pub fn path(&self) -> GeometryPath {
        match self {
            Curvature::Hessian(_) => GeometryPath::Dense,
            Curvature::Jacobian { .. } => GeometryPath::LowRank,
        }
    }

    /// Number of parameters `d`.
    pub fn dim(&self) -> usize {
        match self {
            Curvature::Hessian(h) => h.nrows(),
            Curvature::Jacobian { transposed, .. } => transposed.nrows(),
        }
    }

    /// `H X` for a `d x k` matrix `X`.
    pub fn apply(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        match self {
            Curvature::Hessian(h) => h * x,
            Curvature::Jacobian { transposed, .. } => {
                let n = transposed.ncols() as f64;
                linalg::mul(transposed, &linalg::tr_mul(transposed, x)) / n
            }
        }
    }

    /// `diag H`.
    pub fn diagonal(&self) -> Vec<f64> {
        match self {
            Curvature::Hessian(h) => h.diagonal().iter().copied().collect(),
            Curvature::Jacobian { transposed, .. } => {
                let n = transposed.ncols() as f64;
                let mut out = vec![0.0; transposed.nrows()];
                for col in transposed.column_iter() {
                    for (o, g) in out.iter_mut().zip(col.iter()) {
                        *o += g * g;
                    }
                }
                out.iter().map(|x| x / n).collect()
            }
        }
    }

    /// The geometry of `H` (or of `H~ = D^{1/2} H D^{1/2}` when `metric = Some(D^{1/2})`).
    pub fn geometry(&self, metric: Option<&[f64]>, options: &RankOptions) -> Result<Geometry> {
        let d = self.dim();
        match self {
            Curvature::Hessian(h) => {
                let mut ht = h.clone();
                if let Some(m) = metric {
                    for j in 0..d {
                        for i in 0..d {
                            ht[(i, j)] *= m[i] * m[j];
                        }
                    }
                }
                let ht = (&ht + ht.transpose()) * 0.5;
                let eig = ht.symmetric_eigen();
                let order = descending(eig.eigenvalues.as_slice());
                let spectrum: Vec<f64> = order.iter().map(|&k| eig.eigenvalues[k]).collect();
                let (rank, gap) = decide_rank(&spectrum, d, options)?;
                let mut basis = DMatrix::zeros(d, rank);
                for (c, &k) in order.iter().take(rank).enumerate() {
                    basis.set_column(c, &eig.eigenvectors.column(k));
                }
                Ok(Geometry {
                    path: GeometryPath::Dense,
                    dim: d,
                    rank,
                    curvatures: spectrum[..rank].to_vec(),
                    spectrum,
                    gap,
                    basis,
                    sample_basis: None,
                    metric: metric.map(|m| m.to_vec()),
                })
            }
            Curvature::Jacobian { transposed, .. } => {
                let n = transposed.ncols();
                let jt: Cow<DMatrix<f64>> = match metric {
                    None => Cow::Borrowed(transposed),
                    Some(m) => {
                        let mut jt = transposed.clone();
                        for mut col in jt.column_iter_mut() {
                            for (x, mk) in col.iter_mut().zip(m) {
                                *x *= mk;
                            }
                        }
                        Cow::Owned(jt)
                    }
                };
                let gram = linalg::tr_mul(&jt, &jt) / n as f64;
                let gram = (&gram + gram.transpose()) * 0.5;
                let eig = gram.symmetric_eigen();
                let order = descending(eig.eigenvalues.as_slice());
                let spectrum: Vec<f64> = order.iter().map(|&k| eig.eigenvalues[k]).collect();
                let (rank, gap) = decide_rank(&spectrum, d, options)?;
                let mut u = DMatrix::zeros(n, rank);
                let mut sample_basis = DMatrix::zeros(n, rank);
                for (c, &k) in order.iter().take(rank).enumerate() {
                    let scale = 1.0 / (spectrum[c] * n as f64).sqrt();
                    sample_basis.set_column(c, &eig.eigenvectors.column(k));
                    u.set_column(c, &(eig.eigenvectors.column(k) * scale));
                }
                let basis = linalg::mul(&jt, &u);
                Ok(Geometry {
                    path: GeometryPath::LowRank,
                    dim: d,
                    rank,
                    curvatures: spectrum[..rank].to_vec(),
                    spectrum,
                    gap,
                    basis,
                    sample_basis: Some(sample_basis),
                    metric: metric.map(|m| m.to_vec()),
                })
            }
        }
    }
}

/// Indices sorting `values` in descending order.
fn descending(values: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx
}

/// Normal rank and gap from a descending spectrum of which only the first `spectrum.len()`
/// eigenvalues were computed (the rest, up to `dim`, are exactly 0).
fn decide_rank(spectrum: &[f64], dim: usize, options: &RankOptions) -> Result<(usize, f64)> {
    let lmax = spectrum.first().copied().unwrap_or(0.0);
    if lmax.is_nan() || lmax <= 0.0 || !lmax.is_finite() {
        return Err(Error::Numerical(format!(
            "the Hessian has no positive eigenvalue (lambda_max = {lmax:.3e}): no normal space at this point"
        )));
    }
    let floor = lmax * 1e-16;
    let below = |k: usize| -> f64 {
        // |lambda_{k+1}| with k the (1-based) rank candidate.
        spectrum.get(k).map_or(0.0, |l| l.abs()).max(floor)
    };
    let ratio = |r: usize| spectrum[r - 1] / below(r);
    let rank = match options.rank {
        Some(r) => {
            if r == 0 || r >= dim || r > spectrum.len() {
                return Err(Error::Numerical(format!(
                    "forced normal rank {r} is impossible: need 1 <= r < d = {dim} and r <= {} computed eigenvalues",
                    spectrum.len()
                )));
            }
            r
        }
        None => {
            let mut best = 1;
            for r in 1..=spectrum.len() {
                if spectrum[r - 1] <= 0.0 {
                    break;
                }
                if ratio(r) > ratio(best) {
                    best = r;
                }
            }
            best
        }
    };
    let gap = ratio(rank);
    if rank >= dim {
        return Err(Error::Numerical(format!(
            "the Hessian has full rank d = {dim} (smallest eigenvalue {:.3e}): the minimum is isolated, \
             there is no manifold (tangent dimension 0)",
            spectrum[dim - 1]
        )));
    }
    if options.rank.is_none() && gap < options.min_gap {
        let lo = rank.saturating_sub(3);
        let hi = (rank + 3).min(spectrum.len());
        return Err(Error::Numerical(format!(
            "ambiguous normal rank: the best split (r = {rank}) has eigenvalue ratio \
             lambda_{rank} / |lambda_{}| = {gap:.3e} < min_gap = {:.1e}; eigenvalues {}..{}: {:?}. \
             Project more accurately or set the rank explicitly",
            rank + 1,
            options.min_gap,
            lo + 1,
            hi,
            &spectrum[lo..hi]
        )));
    }
    Ok((rank, gap))
}

/// Normal/tangent geometry at a manifold point (see the module docs).
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Dense or low-rank path.
    pub path: GeometryPath,
    /// Number of parameters `d`.
    pub dim: usize,
    /// Normal rank `r = d - m` (`m` the manifold dimension).
    pub rank: usize,
    /// Orthonormal eigenvectors of `H` (or `H~`) on the normal space, `d x r`, columns in the
    /// order of [`Geometry::curvatures`].
    pub basis: DMatrix<f64>,
    /// Low-rank path: the orthonormal eigenvectors `U` (`n x r`) of the Gram matrix
    /// `(1/n) J~ J~^T` (`J~ = J D^{1/2}`) that give the basis, `V = J~^T U Lambda^{-1/2} /
    /// sqrt(n)`; so `J~ V = sqrt(n) U Lambda^{1/2}` (the basis in sample coordinates). `None`
    /// on the dense path.
    pub sample_basis: Option<DMatrix<f64>>,
    /// Normal eigenvalues `lambda_1 >= ... >= lambda_r > 0`.
    pub curvatures: Vec<f64>,
    /// Every computed eigenvalue, descending (`d` of them on the dense path, `n` on the
    /// low-rank path, where the other `d - n` are exactly 0).
    pub spectrum: Vec<f64>,
    /// `lambda_r / |lambda_{r+1}|` (denominator floored at `lambda_max 1e-16`).
    pub gap: f64,
    /// `D^{1/2}` when this is the geometry of `H~ = D^{1/2} H D^{1/2}`.
    pub metric: Option<Vec<f64>>,
}

impl Geometry {
    /// Manifold (tangent) dimension `m = d - r`.
    pub fn tangent_dim(&self) -> usize {
        self.dim - self.rank
    }

    /// Largest normal curvature `lambda_max`.
    pub fn lambda_max(&self) -> f64 {
        self.curvatures[0]
    }

    /// Smallest normal curvature `lambda_min` on `N`.
    pub fn lambda_min(&self) -> f64 {
        self.curvatures[self.rank - 1]
    }

    /// Normal coordinates `V^T x` (length `r`).
    pub fn normal_coordinates(&self, x: &[f64]) -> Vec<f64> {
        self.basis
            .tr_mul(&DVector::from_column_slice(x))
            .as_slice()
            .to_vec()
    }

    /// `P_N x = V V^T x`.
    pub fn normal_projection(&self, x: &[f64]) -> Vec<f64> {
        let c = self.basis.tr_mul(&DVector::from_column_slice(x));
        (&self.basis * c).as_slice().to_vec()
    }

    /// `P_T x = x - V V^T x`.
    pub fn tangent_projection(&self, x: &[f64]) -> Vec<f64> {
        let pn = self.normal_projection(x);
        x.iter().zip(&pn).map(|(a, b)| a - b).collect()
    }

    /// `P_T X` for a `d x k` matrix.
    pub fn tangent_projection_matrix(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x - linalg::mul(&self.basis, &linalg::tr_mul(&self.basis, x))
    }

    /// `H^+ x = V diag(1/lambda) V^T x`.
    pub fn pseudo_inverse(&self, x: &[f64]) -> Vec<f64> {
        let mut c = self.basis.tr_mul(&DVector::from_column_slice(x));
        for (ci, l) in c.iter_mut().zip(&self.curvatures) {
            *ci /= l;
        }
        (&self.basis * c).as_slice().to_vec()
    }

    /// Dense `P_N` (`d x d`; small `d` only).
    pub fn normal_projection_matrix(&self) -> DMatrix<f64> {
        &self.basis * self.basis.transpose()
    }

    /// Dense `H^+` (`d x d`; small `d` only).
    pub fn pseudo_inverse_matrix(&self) -> DMatrix<f64> {
        let mut vl = self.basis.clone();
        for (mut col, l) in vl.column_iter_mut().zip(&self.curvatures) {
            col /= *l;
        }
        vl * self.basis.transpose()
    }

    /// The metric diagonal `D^{1/2}` applied to `x` (identity without a metric).
    pub fn metric_apply(&self, x: &[f64]) -> Vec<f64> {
        match &self.metric {
            None => x.to_vec(),
            Some(m) => x.iter().zip(m).map(|(a, b)| a * b).collect(),
        }
    }

    /// The "preconditioned tangent projection" `D^{1/2} P~_T D^{1/2} x` (for SGD, `P_T x`):
    /// the map docs/theory.md section 5 applies to a force to get a tangent velocity.
    pub fn preconditioned_tangent(&self, x: &[f64]) -> Vec<f64> {
        let y = self.metric_apply(x);
        let t = self.tangent_projection(&y);
        self.metric_apply(&t)
    }

    /// The columns of `D^{1/2} V` (`V` itself without a metric): the normal eigen-directions as
    /// vectors in parameter space.
    pub fn parameter_basis(&self) -> DMatrix<f64> {
        match &self.metric {
            None => self.basis.clone(),
            Some(m) => {
                let mut z = self.basis.clone();
                for (i, mut row) in z.row_iter_mut().enumerate() {
                    row *= m[i];
                }
                z
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Profile, Valley};

    /// Dense and Jacobian geometries of a rotated valley (interpolating, p = 2 normal, q = 3
    /// tangent) agree: same curvatures (1e-12 relative) and the same projections (1e-12).
    #[test]
    fn dense_and_low_rank_geometry_agree() {
        let m = Valley::new(vec![1.0, 2.5], 3, Profile::Quadratic, 0.7).with_random_rotation(11);
        let phi = m.to_theta(&[0.0, 0.0, 0.3, -0.5, 1.2]);
        let opts = RankOptions::default();
        let metric = [0.7, 1.3, 0.9, 1.1, 2.0];
        for met in [None, Some(&metric[..])] {
            let gd = Curvature::dense(&m, &phi).geometry(met, &opts).unwrap();
            let gl = Curvature::low_rank(&m, &phi, 1e-12)
                .unwrap()
                .geometry(met, &opts)
                .unwrap();
            assert_eq!(gd.rank, 2);
            assert_eq!(gl.rank, 2);
            for (a, b) in gd.curvatures.iter().zip(&gl.curvatures) {
                assert!((a - b).abs() < 1e-12 * a, "{a} vs {b}");
            }
            let x = [0.3, -1.0, 0.2, 0.8, 0.5];
            for (a, b) in gd
                .tangent_projection(&x)
                .iter()
                .zip(gl.tangent_projection(&x))
            {
                assert!((a - b).abs() < 1e-12);
            }
            for (a, b) in gd.pseudo_inverse(&x).iter().zip(gl.pseudo_inverse(&x)) {
                assert!((a - b).abs() < 1e-12);
            }
        }
        // Unrotated valley, closed form: curvatures are 1 + c|y|^2 times lambda_i.
        let m = Valley::new(vec![1.0, 2.5], 3, Profile::Quadratic, 0.7);
        let phi = [0.0, 0.0, 0.3, -0.5, 1.2];
        let s = 1.0 + 0.7 * (0.09 + 0.25 + 1.44);
        let g = Curvature::dense(&m, &phi).geometry(None, &opts).unwrap();
        assert!((g.curvatures[0] - 2.5 * s).abs() < 1e-12);
        assert!((g.curvatures[1] - s).abs() < 1e-12);
        assert!(g.gap > 1e12);
    }

    /// An ambiguous spectrum is refused with a message naming the ratio; forcing the rank works.
    #[test]
    fn ambiguous_rank_is_refused() {
        let h = DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 0.3, 0.1, 0.05]));
        let c = Curvature::Hessian(h.clone());
        let err = c
            .geometry(None, &RankOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("full rank"), "{err}");
        let h = DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 0.3, 0.1, 0.0]));
        let g = Curvature::Hessian(h)
            .geometry(None, &RankOptions::default())
            .unwrap();
        assert_eq!(g.rank, 3);
        // A spectrum decaying smoothly by factors of 100 down to the round-off floor.
        let smooth: Vec<f64> = (0..9).map(|k| 10f64.powi(-2 * k)).collect();
        let h = DMatrix::from_diagonal(&DVector::from_vec(smooth));
        let err = Curvature::Hessian(h.clone())
            .geometry(
                None,
                &RankOptions {
                    min_gap: 1e3,
                    rank: None,
                },
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("ambiguous normal rank"), "{err}");
        let g = Curvature::Hessian(h)
            .geometry(
                None,
                &RankOptions {
                    min_gap: 1e3,
                    rank: Some(4),
                },
            )
            .unwrap();
        assert_eq!(g.rank, 4);
        assert!((g.gap - 100.0).abs() < 1e-9);
    }
}
