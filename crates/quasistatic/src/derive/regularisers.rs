//! Interpretation of the drift as descent on an implicit regulariser (docs/theory.md section 5,
//! label-noise check): SGD's drift is `-(eta^2 c / 4) P_T grad tr H`, Adam's
//! `-(eta^2 sqrt(c) / 2) D^{1/2} P~_T D^{1/2} grad tr(diag(H)^{1/2})`.
//!
//! Gradients of the regularisers:
//!
//! - dense path: `grad_a tr H = sum_k D3L[e_k, e_k, a]` and
//!   `grad tr(diag(H)^{1/2}) = sum_k D3L[e_k, e_k, .] / (2 sqrt(H_kk))` (`d` third-order
//!   gradients, in parallel; bit-identical for any number of threads);
//! - low-rank path (interpolating manifold): on `G`, `H_kk = (1/n) sum_i (d_k f_i)^2 +` terms
//!   multiplied by residuals, whose gradients lie in `span{grad f_i} = N` and are removed by
//!   every tangent projection used here (`P_T`, or `D^{1/2} P~_T D^{1/2}`, since
//!   `D^{1/2} grad f_i` is in `range H~`). So the gradients are replaced by
//!   `(2/n) sum_i hess f_i grad f_i` and `(1/n) sum_i hess f_i (w * grad f_i)`,
//!   `w_k = H_kk^{-1/2}`: `n` per-sample Hessian-vector products ([`num_dual::Dual64`]).
//!   They equal the true gradients *up to a normal vector*.
//!
//! `tr(diag(H)^{1/2})` is not differentiable where some `H_kk = 0`; its direction is then not
//! reported.

use serde::Serialize;

use super::third_order::ordered_block_sums;
use crate::manifold::{Curvature, Geometry};
use crate::model::derivatives::{self, GradientWorkspace, SampleHvpWorkspace};
use crate::model::Model;

/// Which regulariser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Regulariser {
    /// `tr H` (label-noise SGD / momentum).
    TraceHessian,
    /// `tr(diag(H)^{1/2}) = sum_k sqrt(H_kk)` (label-noise Adam).
    TraceSqrtDiagHessian,
}

impl Regulariser {
    /// `"tr H"` or `"tr(diag(H)^1/2)"`.
    pub fn label(&self) -> &'static str {
        match self {
            Regulariser::TraceHessian => "tr H",
            Regulariser::TraceSqrtDiagHessian => "tr(diag(H)^1/2)",
        }
    }
}

/// A regulariser's value, its descent direction on the manifold and how the drift aligns
/// with it.
#[derive(Clone, Debug, Serialize)]
pub struct RegulariserReport {
    /// Which regulariser.
    pub regulariser: Regulariser,
    /// Its value at `phi`.
    pub value: f64,
    /// Whether the direction is preconditioned, `-D^{1/2} P~_T D^{1/2} grad R` (Adam, RMSProp),
    /// rather than `-P_T grad R`.
    pub preconditioned: bool,
    /// `|direction|` (`None` where not differentiable).
    pub direction_norm: Option<f64>,
    /// Cosine between the drift (exact `S`) and the direction: 1 means "the optimizer here is
    /// (preconditioned) gradient descent on this regulariser".
    pub cosine: Option<f64>,
    /// `<b, dir> / |dir|^2` (per optimizer step): the drift is about `coefficient * direction`.
    pub coefficient: Option<f64>,
    /// The direction itself (only for `d <=` [`super::DeriveOptions::vectors_up_to`]).
    pub direction: Option<Vec<f64>>,
    /// Why a value is missing, if one is.
    pub note: Option<String>,
}

/// Gradients (possibly up to a normal vector, see the module docs) of `tr H` and, where every
/// `H_kk > 0`, of `tr(diag(H)^{1/2})`.
pub fn regulariser_gradients<M: Model>(
    model: &M,
    phi: &[f64],
    curvature: &Curvature,
) -> (Vec<f64>, Option<Vec<f64>>) {
    let d = phi.len();
    let diag = curvature.diagonal();
    let hmax = diag.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let differentiable = diag.iter().all(|&h| h > 1e-12 * hmax);
    let w: Vec<f64> = diag
        .iter()
        .map(|&h| if h > 0.0 { 1.0 / h.sqrt() } else { 0.0 })
        .collect();
    let mut sums = match curvature {
        Curvature::Hessian(_) => {
            // grad tr H = sum_k D3L[e_k, e_k, .], grad tr(diag H)^{1/2} = sum_k w_k/2 D3L[e_k, e_k, .].
            let terms: Vec<usize> = (0..d).collect();
            ordered_block_sums(
                d,
                2,
                &terms,
                || (GradientWorkspace::new(model), vec![0.0; d], vec![0.0; d]),
                |k, (ws, e, out), acc| {
                    e[k] = 1.0;
                    derivatives::third_order_diagonal(model, phi, e, ws, out);
                    e[k] = 0.0;
                    for a in 0..d {
                        acc[0][a] += out[a];
                        acc[1][a] += 0.5 * w[k] * out[a];
                    }
                },
            )
        }
        Curvature::Jacobian { transposed: jt, .. } => {
            let n = jt.ncols();
            // Column i of J^T is grad f_i, contiguous.
            let terms: Vec<usize> = (0..n).collect();
            ordered_block_sums(
                d,
                2,
                &terms,
                || (SampleHvpWorkspace::new(model), vec![0.0; d]),
                |i, (ws, direction), acc| {
                    let g = &jt.as_slice()[i * d..(i + 1) * d];
                    for (t, h) in acc[0].iter_mut().zip(ws.apply(model, phi, i, g)) {
                        *t += 2.0 * h / n as f64;
                    }
                    for ((x, gk), wk) in direction.iter_mut().zip(g).zip(&w) {
                        *x = gk * wk;
                    }
                    for (t, h) in acc[1].iter_mut().zip(ws.apply(model, phi, i, direction)) {
                        *t += h / n as f64;
                    }
                },
            )
        }
    };
    let sq = sums.pop().expect("two sums");
    let tr = sums.pop().expect("two sums");
    (tr, differentiable.then_some(sq))
}

/// Per-sample Hessian-vector product `hess f_i(theta) x` (one [`num_dual::Dual64`] evaluation).
pub fn sample_hvp<M: Model>(model: &M, theta: &[f64], i: usize, x: &[f64]) -> Vec<f64> {
    SampleHvpWorkspace::new(model)
        .apply(model, theta, i, x)
        .to_vec()
}

/// Build the report of one regulariser given its gradient (or `None`), the geometry whose
/// (preconditioned) tangent projection defines descent, and the drift.
pub fn report(
    regulariser: Regulariser,
    value: f64,
    gradient: Option<&[f64]>,
    geometry: &Geometry,
    drift: &[f64],
    keep_vector: bool,
) -> RegulariserReport {
    let preconditioned = geometry.metric.is_some();
    let Some(g) = gradient else {
        return RegulariserReport {
            regulariser,
            value,
            preconditioned,
            direction_norm: None,
            cosine: None,
            coefficient: None,
            direction: None,
            note: Some("not differentiable here: some diagonal Hessian entry vanishes".into()),
        };
    };
    let dir: Vec<f64> = geometry
        .preconditioned_tangent(g)
        .iter()
        .map(|x| -x)
        .collect();
    let dn = dir.iter().map(|x| x * x).sum::<f64>().sqrt();
    let bn = drift.iter().map(|x| x * x).sum::<f64>().sqrt();
    let dot: f64 = dir.iter().zip(drift).map(|(a, b)| a * b).sum();
    let (cosine, coefficient, note) = if dn > 0.0 && bn > 0.0 {
        (Some(dot / (dn * bn)), Some(dot / (dn * dn)), None)
    } else {
        (
            None,
            None,
            Some(format!(
                "zero vector (|direction| = {dn:.3e}, |drift| = {bn:.3e})"
            )),
        )
    };
    RegulariserReport {
        regulariser,
        value,
        preconditioned,
        direction_norm: Some(dn),
        cosine,
        coefficient,
        direction: keep_vector.then_some(dir),
        note,
    }
}

/// Value of `tr(diag(H)^{1/2})` from `diag H`.
pub fn sqrt_diag_value(diag: &[f64]) -> f64 {
    diag.iter().map(|h| h.max(0.0).sqrt()).sum()
}
