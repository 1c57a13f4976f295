//! Adam's (and RMSProp's) quasistatic preconditioner (docs/theory.md section 5).
//!
//! `v` averages `g * g` over `1/(1 - beta2)` steps; treated as quasistatic it solves the
//! fixed-point equation
//!
//! `v = diag(H S H) + diag(E_u Sigma(phi + u)) + diag(E[t t^T])`,
//! `t = 1/2 P_T D3L[u, u]`, `u ~ N(0, S)`,
//!
//! where `S = S(v)` is the exact normal equilibrium of heavy ball (rate `eta (1 - beta1)`,
//! momentum `beta1`; SGD for RMSProp) in the coordinates `w = D^{-1/2} theta`,
//! `D = diag(1 / (sqrt(v) + eps))`. Each iteration recomputes the geometry of
//! `H~ = D^{1/2} H D^{1/2}`, `S`, and the three terms:
//!
//! - `diag(H S H)` exactly, from `H Z` with `S = Z diag(s) Z^T`;
//! - `E_u Sigma(phi + u)`: `diag Sigma(phi)` plus (option `second_order_noise`) the symmetric
//!   sigma-point correction `sum_k [diag Sigma(phi + sqrt(s_k) z_k) + diag Sigma(phi - sqrt(s_k)
//!   z_k) - 2 diag Sigma(phi)] / 2`, which equals `1/2 D^2 diag Sigma[S]` up to fourth
//!   derivatives (exact when `Sigma` is quadratic in `u`);
//! - `E[t t^T]` by Isserlis: with `m = P_T D3L[S]` and `w_kl = P_T D3L[z_k, z_l]`,
//!   `diag E[t t^T] = 1/4 (m*m + 2 sum_kl s_k s_l w_kl * w_kl)`; the fluctuation sum needs
//!   `r (r + 1) / 2` third-order gradients and is skipped (mean part only) above
//!   `max_fluctuation_pairs`.
//!
//! The iteration stops when the relative change of every `sqrt(v_a) + eps` (hence of `D`) is
//! below `tolerance`.

use nalgebra::DMatrix;
use serde::Serialize;

use super::equilibrium::NormalDynamics;
use super::third_order::{contract_pairs, contract_symmetric};
use crate::linalg;
use crate::manifold::{covariance_diagonal, CovarianceOperator, Curvature, Geometry, RankOptions};
use crate::model::Model;
use crate::noise::NoiseModel;
use crate::{Error, Result};

/// Options of the fixed-point iteration for `v`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdamOptions {
    /// Maximum iterations (default 200).
    pub max_iterations: usize,
    /// Relative change of `sqrt(v) + eps` at which to stop (default `1e-10`).
    pub tolerance: f64,
    /// Include the sigma-point second-order correction of `E_u Sigma(phi + u)` (default true).
    pub second_order_noise: bool,
    /// Largest number of pairs `(k, l)` for the fluctuation part of `E[t t^T]` (default 500).
    pub max_fluctuation_pairs: usize,
}

impl Default for AdamOptions {
    fn default() -> Self {
        Self {
            max_iterations: 200,
            tolerance: 1e-10,
            second_order_noise: true,
            max_fluctuation_pairs: 500,
        }
    }
}

/// The converged preconditioner.
#[derive(Clone, Debug, Serialize)]
pub struct Preconditioner {
    /// Fixed-point iterations used.
    pub iterations: usize,
    /// Final relative change of `sqrt(v) + eps`.
    pub residual: f64,
    /// The quasistatic second moment `v` (per coordinate).
    pub v: Vec<f64>,
    /// `D^{1/2} = (sqrt(v) + eps)^{-1/2}`.
    pub metric: Vec<f64>,
    /// Coordinates with `eps >= sqrt(v_a)`: their step size is set by `eps`.
    pub eps_dominated: Vec<usize>,
    /// Components of the final `v`: `diag(H S H)`.
    pub v_curvature: Vec<f64>,
    /// Components of the final `v`: `diag E_u Sigma(phi + u)`.
    pub v_noise: Vec<f64>,
    /// Components of the final `v`: `diag E[t t^T]`.
    pub v_tangent: Vec<f64>,
    /// Whether the second-order noise correction was included.
    pub second_order_noise: bool,
    /// Whether the fluctuation part of `E[t t^T]` was included.
    pub fluctuation_included: bool,
    /// The geometry of `H~` in the final metric (not serialised).
    #[serde(skip)]
    pub geometry: Option<Geometry>,
}

/// Solve the fixed point for `v` (see the module docs). `euclidean` is the geometry of `H`
/// itself (for `P_T` in `t`).
#[allow(clippy::too_many_arguments)]
pub fn preconditioner<M: Model>(
    model: &M,
    noise: &NoiseModel,
    phi: &[f64],
    curvature: &Curvature,
    covariance: &CovarianceOperator,
    euclidean: &Geometry,
    dynamics: &NormalDynamics,
    eps: f64,
    rank: &RankOptions,
    options: &AdamOptions,
) -> Result<Preconditioner> {
    let d = phi.len();
    let base = covariance_diagonal(model, noise, phi);
    let mut v: Vec<f64> = base.iter().map(|x| x.max(0.0)).collect();
    let mut residual = f64::INFINITY;
    let mut omega: f64 = 1.0;
    let mut iterations = 0;
    let mut fluctuation_included = false;
    let (mut vc, mut vn, mut vt) = (vec![0.0; d], base.clone(), vec![0.0; d]);
    let mut geometry = None;
    while iterations < options.max_iterations {
        iterations += 1;
        let metric: Vec<f64> = v.iter().map(|x| 1.0 / (x.sqrt() + eps).sqrt()).collect();
        let geom = curvature.geometry(Some(&metric), rank)?;
        let z = geom.parameter_basis();
        let sz = covariance.apply(curvature, &z);
        let sig_n = linalg::tr_mul(&z, &sz);
        let s_tilde = dynamics.exact(&geom.curvatures, &sig_n)?;
        // S = Z S~ Z^T = sum_k s_k dirs_k dirs_k^T.
        let (d3s, s, dirs) = contract_symmetric(model, phi, &z, &s_tilde);
        // diag(H S H).
        let hz = curvature.apply(&dirs);
        for (a, c) in vc.iter_mut().enumerate() {
            *c = (0..s.len()).map(|k| s[k] * hz[(a, k)] * hz[(a, k)]).sum();
        }
        // diag E_u Sigma(phi + u).
        vn.copy_from_slice(&base);
        if options.second_order_noise {
            for (k, &sk) in s.iter().enumerate() {
                if sk <= 0.0 {
                    continue;
                }
                let h = sk.sqrt();
                let plus: Vec<f64> = (0..d).map(|a| phi[a] + h * dirs[(a, k)]).collect();
                let minus: Vec<f64> = (0..d).map(|a| phi[a] - h * dirs[(a, k)]).collect();
                let dp = covariance_diagonal(model, noise, &plus);
                let dm = covariance_diagonal(model, noise, &minus);
                for a in 0..d {
                    vn[a] += 0.5 * (dp[a] + dm[a] - 2.0 * base[a]);
                }
            }
        }
        // diag E[t t^T], t = 1/2 P_T D3L[u, u].
        let m = euclidean.tangent_projection(&d3s);
        for (a, t) in vt.iter_mut().enumerate() {
            *t = 0.25 * m[a] * m[a];
        }
        let r = s.len();
        fluctuation_included = r * (r + 1) / 2 <= options.max_fluctuation_pairs;
        if fluctuation_included {
            for k in 0..r {
                for l in k..r {
                    let w = s[k] * s[l];
                    if w == 0.0 {
                        continue;
                    }
                    let a = DMatrix::from_column_slice(d, 1, dirs.column(k).as_slice());
                    let b = DMatrix::from_column_slice(d, 1, dirs.column(l).as_slice());
                    let wkl =
                        euclidean.tangent_projection(&contract_pairs(model, phi, &a, &b, &[1.0]));
                    let mult = if k == l { 1.0 } else { 2.0 };
                    for (t, x) in vt.iter_mut().zip(&wkl) {
                        *t += 0.25 * 2.0 * mult * w * x * x;
                    }
                }
            }
        }
        let v_new: Vec<f64> = (0..d).map(|a| (vc[a] + vn[a] + vt[a]).max(0.0)).collect();
        let previous = residual;
        residual = (0..d)
            .map(|a| (v_new[a].sqrt() - v[a].sqrt()).abs() / (v_new[a].sqrt() + eps))
            .fold(0.0, f64::max);
        // Damped update in sqrt(v): plain iteration (omega = 1) while the residual falls;
        // halve omega whenever it grows (the map can oscillate when some coordinates of v
        // collapse), down to 1/1024. The fixed point is the same for every omega.
        if residual > previous {
            omega = (omega * 0.5).max(1.0 / 1024.0);
        }
        v = (0..d)
            .map(|a| {
                let r = (1.0 - omega) * v[a].sqrt() + omega * v_new[a].sqrt();
                r * r
            })
            .collect();
        geometry = Some(geom);
        if residual <= options.tolerance {
            break;
        }
    }
    if residual.is_nan() || residual > options.tolerance {
        return Err(Error::Numerical(format!(
            "Adam's preconditioner did not converge: after {iterations} fixed-point iterations the relative \
             change of sqrt(v) + eps is {residual:.3e} > tolerance {:.1e}",
            options.tolerance
        )));
    }
    // The geometry must belong to the final v.
    let metric: Vec<f64> = v.iter().map(|x| 1.0 / (x.sqrt() + eps).sqrt()).collect();
    let geom = curvature.geometry(Some(&metric), rank)?;
    let _ = geometry;
    Ok(Preconditioner {
        iterations,
        residual,
        eps_dominated: (0..d).filter(|&a| eps >= v[a].sqrt()).collect(),
        v,
        metric,
        v_curvature: vc,
        v_noise: vn,
        v_tangent: vt,
        second_order_noise: options.second_order_noise,
        fluctuation_included,
        geometry: Some(geom),
    })
}
