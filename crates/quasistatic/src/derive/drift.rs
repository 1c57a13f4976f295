//! Drift and diffusion along the manifold per optimizer step (docs/theory.md sections 3, 4, 5).
//!
//! In the normal eigenbasis `V` of `H~` (`H~ = H`, `D = I` for SGD and momentum), with
//! `Z = D^{1/2} V` the normal directions in parameters, `Sig~_N = Z^T Sigma Z` and the
//! tangent-normal block `C~ = P~_T D^{1/2} Sigma Z` (columns `c~_k`):
//!
//! - `S = Z S~ Z^T` with `S~` from [`super::equilibrium`];
//! - `b = -eta_eff D^{1/2} P~_T D^{1/2} [ 1/2 D3L[S] + eta_eff X ]`, with the cross term
//!   `X = D3L[sym(D^{1/2} C~ Lambda^{-1} Z^T)] = sum_k D3L[D^{1/2} c~_k, z_k] / lambda_k`
//!   (the image of `D3L[sym(P_T Sigma P_N H^+)]`); skipped when `C~ = 0` (label, isotropic
//!   noise);
//! - `Q = eta_eff^2 D^{1/2} P~_T Sigma~ P~_T D^{1/2}` per step.
//!
//! Units: `b` is a displacement per optimizer step, `Q` a covariance per optimizer step, `S`
//! a covariance of parameters (no time unit).
//!
//! [`drift`] computes the exact-`S` drift always and, on request ([`DriftParts`]), the
//! leading-order drift, `Q` as a `d x d` matrix and a factor of it: the report of
//! [`super::derive`] needs the first two, an integrator of the manifold SDE the factor.

use std::borrow::Cow;

use nalgebra::DMatrix;
use serde::Serialize;

use super::equilibrium::NormalDynamics;
use super::per_sample;
use super::third_order::{contract_pairs, contract_symmetric_set};
use crate::linalg;
use crate::manifold::noise::scale_rows;
use crate::manifold::{CovarianceOperator, Curvature, Geometry};
use crate::model::Model;
use crate::noise::psd_sqrt;
use crate::Result;

/// The tangent noise covariance `Q`, as reported by [`super::derive`].
#[derive(Clone, Debug, Serialize)]
pub struct TangentNoise {
    /// `tr Q` per optimizer step.
    pub trace_per_step: f64,
    /// `tr Q / eta^2`: per unit of slow time `t = eta^2 k`.
    pub trace_per_slow_time: f64,
    /// `Q` per step (rows), for small `d`.
    pub matrix_per_step: Option<Vec<Vec<f64>>>,
}

/// What [`drift`] computes beyond the exact-`S` drift, `S~` and `tr Q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriftParts {
    /// The drift with the leading-order `S` (`r` more third-order gradients unless both
    /// equilibria are diagonal in the normal eigenbasis, when it is free).
    pub leading: bool,
    /// `Q` as a `d x d` matrix (`O(d^2 r)`).
    pub tangent_matrix: bool,
    /// A factor `F` of `Q` (`F F^T = Q`): forms `Q` when `tr Q > 0` (`O(d^3)`).
    pub tangent_factor: bool,
    /// On the low-rank path, evaluate the contractions from per-sample Hessian-vector
    /// products ([`super::per_sample`]) rather than one full-batch dual-number gradient per
    /// normal direction ([`super::third_order`]); ignored on the dense path.
    pub per_sample: bool,
}

/// Drift, diffusion and equilibrium at a point (see the module docs). Vectors have length
/// `d` (parameter coordinates).
#[derive(Clone, Debug)]
pub struct Drift {
    /// `b` per step with the exact `S`.
    pub per_step: Vec<f64>,
    /// `b` per step with the leading-order `S` (when [`DriftParts::leading`]).
    pub per_step_leading: Option<Vec<f64>>,
    /// The cross term's part of `b` per step, `-eta_eff^2 D^{1/2} P~_T D^{1/2} X`.
    pub cross_per_step: Vec<f64>,
    /// `Z = D^{1/2} V` (`d x r`): the normal eigen-directions in parameters.
    pub normal_basis: DMatrix<f64>,
    /// Exact `S~` (`r x r`): `S = Z S~ Z^T`.
    pub s_exact: DMatrix<f64>,
    /// Leading-order `S~` (`r x r`).
    pub s_leading: DMatrix<f64>,
    /// `tr Q` per step.
    pub tangent_noise_trace: f64,
    /// `Q` per step (`d x d`), when [`DriftParts::tangent_matrix`] or when the factor needed it.
    pub tangent_noise: Option<DMatrix<f64>>,
    /// `F` with `F F^T = Q` per step (when [`DriftParts::tangent_factor`]): the symmetric
    /// square root of `Q` (`d x d`) when `tr Q > 0`, else a single zero column (`Q = 0`).
    pub tangent_factor: Option<DMatrix<f64>>,
}

/// Compute drift, tangent noise and equilibrium (see the module docs).
pub fn drift<M: Model>(
    model: &M,
    phi: &[f64],
    curvature: &Curvature,
    covariance: &CovarianceOperator,
    geometry: &Geometry,
    dynamics: &NormalDynamics,
    parts: DriftParts,
) -> Result<Drift> {
    let d = phi.len();
    let eta_eff = dynamics.eta_eff();
    let z: Cow<DMatrix<f64>> = match geometry.metric {
        None => Cow::Borrowed(&geometry.basis),
        Some(_) => Cow::Owned(geometry.parameter_basis()),
    };
    // Sigma = kappa H on the per-sample route: the normal block is kappa Lambda and the
    // tangent-normal block vanishes, without products with Sigma.
    let proportional = match curvature {
        Curvature::Jacobian { .. } if parts.per_sample => {
            covariance.proportional_to_curvature(curvature)
        }
        _ => None,
    };
    let (sig_n, c, has_cross) = match proportional {
        Some(kappa) => {
            let sig_n = DMatrix::from_diagonal(&nalgebra::DVector::from_iterator(
                geometry.rank,
                geometry.curvatures.iter().map(|l| kappa * l),
            ));
            (sig_n, DMatrix::zeros(d, 0), false)
        }
        None => {
            let sz = covariance.apply(curvature, &z);
            let sig_n = linalg::tr_mul(&z, &sz);
            // Cross term: c~ = P~_T D^{1/2} Sigma Z in w; as parameter vectors D^{1/2} c~.
            let mut c = sz;
            if let Some(m) = &geometry.metric {
                scale_rows(&mut c, m);
            }
            c -= linalg::mul(&geometry.basis, &linalg::tr_mul(&geometry.basis, &c));
            let scale = sig_n.abs().max().max(f64::MIN_POSITIVE);
            let has_cross = c.abs().max() > 1e-13 * scale;
            if has_cross {
                if let Some(m) = &geometry.metric {
                    scale_rows(&mut c, m);
                }
            }
            (sig_n, c, has_cross)
        }
    };
    let s_exact = dynamics.exact(&geometry.curvatures, &sig_n)?;
    let s_lead = dynamics.leading(&geometry.curvatures, &sig_n);
    let inv_curvatures: Vec<f64> = geometry.curvatures.iter().map(|l| 1.0 / l).collect();
    let ss: Vec<&DMatrix<f64>> = if parts.leading {
        vec![&s_exact, &s_lead]
    } else {
        vec![&s_exact]
    };
    let (mut d3, cross) = match curvature {
        Curvature::Jacobian { transposed, .. } if parts.per_sample => {
            let pairs = has_cross.then_some((&c, inv_curvatures.as_slice()));
            let (d3, cross) =
                per_sample::contractions(model, phi, transposed, geometry, &z, &ss, pairs);
            (d3, cross.unwrap_or_else(|| vec![0.0; d]))
        }
        _ => {
            let d3 = contract_symmetric_set(model, phi, &z, &ss);
            let cross = if has_cross {
                contract_pairs(model, phi, &c, &z, &inv_curvatures)
            } else {
                vec![0.0; d]
            };
            (d3, cross)
        }
    };
    let d3_lead = if parts.leading { d3.pop() } else { None };
    let d3_exact = d3.pop().expect("the exact contraction");
    let velocity = |d3: &[f64]| -> Vec<f64> {
        let force: Vec<f64> = d3
            .iter()
            .zip(&cross)
            .map(|(a, x)| 0.5 * a + eta_eff * x)
            .collect();
        geometry
            .preconditioned_tangent(&force)
            .iter()
            .map(|x| -eta_eff * x)
            .collect()
    };
    let per_step = velocity(&d3_exact);
    let per_step_leading = d3_lead.as_deref().map(velocity);
    let cross_per_step: Vec<f64> = geometry
        .preconditioned_tangent(&cross)
        .iter()
        .map(|x| -eta_eff * eta_eff * x)
        .collect();
    let q_trace = eta_eff * eta_eff * covariance.tangent_block_trace(curvature, geometry);
    let noisy = q_trace > 0.0;
    let q_matrix = (parts.tangent_matrix || (parts.tangent_factor && noisy))
        .then(|| covariance.tangent_block_matrix(curvature, geometry) * (eta_eff * eta_eff));
    let tangent_factor = parts.tangent_factor.then(|| match &q_matrix {
        Some(q) if noisy => psd_sqrt(q),
        _ => DMatrix::zeros(d, 1),
    });
    Ok(Drift {
        per_step,
        per_step_leading,
        cross_per_step,
        normal_basis: z.into_owned(),
        s_exact,
        s_leading: s_lead,
        tangent_noise_trace: q_trace,
        tangent_noise: q_matrix,
        tangent_factor,
    })
}
