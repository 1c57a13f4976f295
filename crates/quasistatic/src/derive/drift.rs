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
//! Units: `b` is a displacement per optimizer step, `Q` a covariance per optimizer step.

use std::borrow::Cow;

use nalgebra::DMatrix;
use serde::Serialize;

use super::equilibrium::NormalDynamics;
use super::third_order::{contract_pairs, contract_symmetric_set};
use super::{EquilibriumReport, MatrixSummary};
use crate::linalg;
use crate::manifold::noise::scale_rows;
use crate::manifold::{CovarianceOperator, Curvature, Geometry};
use crate::model::Model;
use crate::Result;

/// The tangent noise covariance `Q`.
#[derive(Clone, Debug, Serialize)]
pub struct TangentNoise {
    /// `tr Q` per optimizer step.
    pub trace_per_step: f64,
    /// `tr Q / eta^2`: per unit of slow time `t = eta^2 k`.
    pub trace_per_slow_time: f64,
    /// `Q` per step (rows), for small `d`.
    pub matrix_per_step: Option<Vec<Vec<f64>>>,
}

/// Drift, diffusion and equilibrium at a point (see the module docs).
#[derive(Clone, Debug)]
pub struct Drift {
    /// `b` per step with the exact `S`.
    pub per_step: Vec<f64>,
    /// `b` per step with the leading-order `S`.
    pub per_step_leading: Vec<f64>,
    /// The cross term's part of `b` per step.
    pub cross_per_step: Vec<f64>,
    /// `Q`.
    pub tangent_noise: TangentNoise,
    /// `S`.
    pub equilibrium: EquilibriumReport,
}

fn rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|i| m.row(i).iter().copied().collect())
        .collect()
}

/// The Gram matrix `G = Z^T Z` and its symmetric square root `G^{1/2}` (for [`summarise`]).
fn gram_and_root(z: &DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>) {
    let g = linalg::tr_mul(z, z);
    let ge = ((&g + g.transpose()) * 0.5).symmetric_eigen();
    let mut sq = ge.eigenvectors.clone();
    for (mut col, l) in sq.column_iter_mut().zip(ge.eigenvalues.iter()) {
        col *= l.max(0.0).sqrt();
    }
    let gh = &sq * ge.eigenvectors.transpose();
    (g, gh)
}

/// Summary of `S = Z S~ Z^T`, given `(Z^T Z, (Z^T Z)^{1/2})` from [`gram_and_root`].
fn summarise(
    z: &DMatrix<f64>,
    (g, gh): &(DMatrix<f64>, DMatrix<f64>),
    s_tilde: &DMatrix<f64>,
    small: bool,
) -> MatrixSummary {
    let m = gh * s_tilde * gh;
    let mut eig: Vec<f64> = ((&m + m.transpose()) * 0.5)
        .symmetric_eigen()
        .eigenvalues
        .iter()
        .copied()
        .collect();
    eig.sort_by(|a, b| b.total_cmp(a));
    MatrixSummary {
        trace: (s_tilde * g).trace(),
        eigenvalues: eig,
        matrix: small.then(|| rows(&(z * s_tilde * z.transpose()))),
    }
}

/// Compute drift, tangent noise and equilibrium (see the module docs). `small`: also return
/// `d x d` matrices.
pub fn drift<M: Model>(
    model: &M,
    phi: &[f64],
    curvature: &Curvature,
    covariance: &CovarianceOperator,
    geometry: &Geometry,
    dynamics: &NormalDynamics,
    small: bool,
) -> Result<Drift> {
    let d = phi.len();
    let eta_eff = dynamics.eta_eff();
    let z: Cow<DMatrix<f64>> = match geometry.metric {
        None => Cow::Borrowed(&geometry.basis),
        Some(_) => Cow::Owned(geometry.parameter_basis()),
    };
    let sz = covariance.apply(curvature, &z);
    let sig_n = linalg::tr_mul(&z, &sz);
    let s_exact = dynamics.exact(&geometry.curvatures, &sig_n)?;
    let s_lead = dynamics.leading(&geometry.curvatures, &sig_n);
    let mut d3 = contract_symmetric_set(model, phi, &z, &[&s_exact, &s_lead]);
    let d3_lead = d3.pop().expect("two contractions");
    let d3_exact = d3.pop().expect("two contractions");
    // Cross term: c~ = P~_T D^{1/2} Sigma Z in w; as parameter vectors D^{1/2} c~.
    let mut c = sz;
    if let Some(m) = &geometry.metric {
        scale_rows(&mut c, m);
    }
    c -= linalg::mul(&geometry.basis, &linalg::tr_mul(&geometry.basis, &c));
    let scale = sig_n.abs().max().max(f64::MIN_POSITIVE);
    let cross = if c.abs().max() > 1e-13 * scale {
        if let Some(m) = &geometry.metric {
            scale_rows(&mut c, m);
        }
        let w: Vec<f64> = geometry.curvatures.iter().map(|l| 1.0 / l).collect();
        contract_pairs(model, phi, &c, &z, &w)
    } else {
        vec![0.0; d]
    };
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
    let per_step_leading = velocity(&d3_lead);
    let cross_per_step: Vec<f64> = geometry
        .preconditioned_tangent(&cross)
        .iter()
        .map(|x| -eta_eff * eta_eff * x)
        .collect();
    let q_trace = eta_eff * eta_eff * covariance.tangent_block_trace(curvature, geometry);
    let q_matrix = small.then(|| {
        rows(&(covariance.tangent_block_matrix(curvature, geometry) * (eta_eff * eta_eff)))
    });
    let gram = gram_and_root(&z);
    let diff = (&s_exact - &s_lead).norm() / s_lead.norm().max(f64::MIN_POSITIVE);
    Ok(Drift {
        per_step,
        per_step_leading,
        cross_per_step,
        tangent_noise: TangentNoise {
            trace_per_step: q_trace,
            trace_per_slow_time: f64::NAN,
            matrix_per_step: q_matrix,
        },
        equilibrium: EquilibriumReport {
            dynamics: *dynamics,
            exact: summarise(&z, &gram, &s_exact, small),
            leading: summarise(&z, &gram, &s_lead, small),
            relative_difference: diff,
        },
    })
}
