//! The quasistatic derivation engine (docs/theory.md sections 2-5, 8-9).
//!
//! Two levels:
//!
//! - [`coefficients()`] ([`mod@coefficients`]) is the core: at a point `phi` already on the
//!   manifold it returns the typed [`Coefficients`] of the manifold SDE (drift per step,
//!   normal equilibrium `S`, tangent noise `Q` and a factor of it, the geometry used, Adam's
//!   preconditioner). An integrator calls it at every step.
//! - [`derive()`] takes any point `theta`, projects it onto the manifold of minima
//!   (`phi = Phi(theta)`), evaluates [`coefficients()`] there and summarises them, with
//!   interpretation and diagnostics, as a [`Derivation`] report:
//!
//! - geometry: normal rank, curvatures, gap (dense or low-rank Jacobian path);
//! - the normal equilibrium `S`, exact discrete and leading order ([`equilibrium`]);
//! - for Adam / RMSProp the quasistatic preconditioner `v` ([`adam`]);
//! - the drift per optimizer step ([`drift`]),
//!   `b = -eta_eff D^{1/2} P~_T D^{1/2} [1/2 D3L[S] + eta_eff D3L[sym(P~_T Sigma~ P~_N H~^+)]]`
//!   (`D = I`, `P~ = P` for SGD and momentum; `eta_eff = eta/(1 - beta)`; Adam: `eta_eff = eta`),
//!   and the tangent noise covariance per step `Q = eta_eff^2 D^{1/2} P~_T Sigma~ P~_T D^{1/2}`;
//!   both also per unit of slow time `t = eta^2 k` (divide by `eta^2`, `eta` the base rate);
//! - the implicit regularisers `tr H` and `tr(diag(H)^{1/2})` and the drift's cosine with their
//!   (preconditioned) descent directions ([`regularisers`]);
//! - validity diagnostics and warnings ([`Diagnostics`]).
//!
//! ```
//! use quasistatic::derive::{derive, DeriveOptions};
//! use quasistatic::model::{Profile, Valley};
//! use quasistatic::noise::NoiseModel;
//! use quasistatic::optim::{AnyOptimizer, Schedule, Sgd};
//! let valley = Valley::planar(Profile::Quadratic, 1.0); // a(y) = 1 + y^2
//! let noise = NoiseModel::Label { sigma: 1.0, batch: None };
//! let sgd = AnyOptimizer::Sgd(Sgd { lr: Schedule::Constant(0.1) });
//! let out = derive(&valley, &noise, &sgd, &[0.0, 1.5], &DeriveOptions::default()).unwrap();
//! // docs/theory.md section 7: b_y = -eta^2 sigma^2 a'(y) / (2 (2 - eta a)).
//! let (eta, a, da) = (0.1, 1.0 + 1.5 * 1.5, 2.0 * 1.5);
//! let want = -eta * eta * da / (2.0 * (2.0 - eta * a));
//! assert!((out.drift_per_step[1] - want).abs() < 1e-12);
//! println!("{}", out.table());
//! ```

pub mod adam;
pub mod coefficients;
pub mod drift;
pub mod equilibrium;
pub mod per_sample;
pub mod regularisers;
pub mod stability;
mod table;
pub mod third_order;

#[cfg(test)]
mod tests;

use std::time::Instant;

use nalgebra::DMatrix;
use serde::Serialize;

pub use adam::{AdamOptions, Preconditioner};
pub use coefficients::{coefficients, Coefficients};
pub use drift::{Drift, DriftParts, TangentNoise};
pub use equilibrium::NormalDynamics;
pub use regularisers::{Regulariser, RegulariserReport};

use coefficients::{geometry_path, plan, Plan};

use crate::linalg;
use crate::manifold::{
    project, Finisher, GeometryPath, Projection, ProjectionOptions, RankOptions,
};
use crate::model::Model;
use crate::noise::NoiseModel;
use crate::optim::AnyOptimizer;
use crate::Result;

/// Dense or low-rank geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathChoice {
    /// Dense for `d <=` [`DeriveOptions::dense_up_to`], low-rank above.
    Auto,
    /// Always the dense Hessian.
    Dense,
    /// Always the Jacobian (interpolating manifolds only).
    LowRank,
}

/// How the third-order contractions of the drift are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThirdOrderRoute {
    /// Per-sample Hessian-vector products of the outputs on the low-rank path
    /// ([`per_sample`]: `n` products per contraction, exact up to normal vectors that the
    /// tangent projection removes), full-batch dual-number gradients on the dense path.
    Auto,
    /// Always one full-batch dual-number gradient per normal direction
    /// ([`third_order`]): the reference route.
    FullBatch,
}

/// Options of [`derive`]. `Default` gives sensible values for every field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeriveOptions {
    /// Projection onto the manifold.
    pub projection: ProjectionOptions,
    /// Normal-rank decision.
    pub rank: RankOptions,
    /// Dense or low-rank path (default [`PathChoice::Auto`]).
    pub path: PathChoice,
    /// Largest `d` for the dense path under [`PathChoice::Auto`] (default 400).
    pub dense_up_to: usize,
    /// Largest residual `|f_i - y_i|` accepted at `phi` on the low-rank path (default `1e-7`).
    pub residual_tolerance: f64,
    /// Report `d x d` matrices (`S`, `Q`) only for `d <=` this (default 50).
    pub matrices_up_to: usize,
    /// Report regulariser direction vectors only for `d <=` this (default 10 000).
    pub vectors_up_to: usize,
    /// Warn when (normal relaxation time) / (time to drift a unit) exceeds this (default 0.1).
    pub separation_warning: f64,
    /// Adam / RMSProp preconditioner iteration.
    pub adam: AdamOptions,
    /// Compute the regulariser interpretation (default true; costs `d` third-order gradients
    /// on the dense path, `2n` per-sample Hessian-vector products on the low-rank path).
    pub regularisers: bool,
    /// [`coefficients()`] also computes the drift with the leading-order `S` (default true;
    /// free when both equilibria are diagonal in the normal eigenbasis, `r` third-order
    /// gradients otherwise). [`derive()`] computes it whatever this says: its report shows it.
    pub leading_order: bool,
    /// [`coefficients()`] (and [`derive_with_coefficients`]) also return a factor `F` of the
    /// tangent noise, `F F^T = Q` per step, for an integrator of the manifold SDE (default
    /// false; forms `Q` as a `d x d` matrix when `tr Q > 0`, `O(d^3)`).
    pub tangent_factor: bool,
    /// Route of the third-order contractions (default [`ThirdOrderRoute::Auto`]).
    pub third_order: ThirdOrderRoute,
}

impl Default for DeriveOptions {
    fn default() -> Self {
        Self {
            projection: ProjectionOptions::default(),
            rank: RankOptions::default(),
            path: PathChoice::Auto,
            dense_up_to: 400,
            residual_tolerance: 1e-7,
            matrices_up_to: 50,
            vectors_up_to: 10_000,
            separation_warning: 0.1,
            adam: AdamOptions::default(),
            regularisers: true,
            leading_order: true,
            tangent_factor: false,
            third_order: ThirdOrderRoute::Auto,
        }
    }
}

/// A symmetric `d x d` matrix summarised: trace, nonzero eigenvalues, and the matrix itself
/// for small `d` (rows).
#[derive(Clone, Debug, Serialize)]
pub struct MatrixSummary {
    /// Trace.
    pub trace: f64,
    /// Eigenvalues on its support (descending; at most the normal rank of them).
    pub eigenvalues: Vec<f64>,
    /// The matrix, row by row, when `d <=` [`DeriveOptions::matrices_up_to`].
    pub matrix: Option<Vec<Vec<f64>>>,
}

/// Geometry at `phi`, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct GeometryReport {
    /// Dense or low-rank.
    pub path: GeometryPath,
    /// Number of parameters `d`.
    pub dim: usize,
    /// Normal rank `r`.
    pub normal_rank: usize,
    /// Manifold dimension `m = d - r`.
    pub manifold_dim: usize,
    /// Normal eigenvalues of `H` (descending).
    pub curvatures: Vec<f64>,
    /// Normal eigenvalues of `H~ = D^{1/2} H D^{1/2}` (Adam / RMSProp only).
    pub preconditioned_curvatures: Option<Vec<f64>>,
    /// `lambda_r / |lambda_{r+1}|` of `H`.
    pub gap: f64,
    /// The first computed eigenvalues of `H` below the split (at most 5), for inspection.
    pub below_split: Vec<f64>,
    /// `tr H` at `phi`.
    pub trace_hessian: f64,
}

/// The normal equilibrium, exact and leading order.
#[derive(Clone, Debug, Serialize)]
pub struct EquilibriumReport {
    /// The linear normal recursion solved (in `w` coordinates for Adam / RMSProp).
    pub dynamics: NormalDynamics,
    /// Exact discrete-time `S`.
    pub exact: MatrixSummary,
    /// Leading-order `S` (`L_H(S) = eta_eff P_N Sigma P_N`).
    pub leading: MatrixSummary,
    /// `|S_exact - S_leading|_F / |S_leading|_F` in the normal eigenbasis (`O(eta lambda)`).
    pub relative_difference: f64,
}

/// Time scales and stability (docs/theory.md section 8). Times are in optimizer steps.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnostics {
    /// Base learning rate `eta`.
    pub eta: f64,
    /// `eta_eff` (`eta / (1 - beta)`; Adam: `eta`).
    pub eta_eff: f64,
    /// `lr * lambda_max` of the normal recursion (preconditioned curvature for Adam).
    pub lr_lambda_max: f64,
    /// Its stability bound (2, `2 (1 + beta)`, `2 (1 + beta)/(1 + 2 beta)`).
    pub stability_bound: f64,
    /// Normal relaxation time `1 / (eta_eff lambda_min)` in steps.
    pub normal_relaxation_steps: f64,
    /// Time to drift a unit distance, `1 / |b|`, in steps.
    pub drift_unit_steps: f64,
    /// `normal_relaxation_steps / drift_unit_steps` (small is good).
    pub separation_ratio: f64,
    /// Adam / RMSProp: `tau_v = 1 / (1 - beta2)` in steps.
    pub tau_v: Option<f64>,
    /// Adam / RMSProp: `tau_x / tau_v` (small is needed for a quasistatic `v`).
    pub tau_x_over_tau_v: Option<f64>,
}

/// Everything [`derive`] found at one point. Vectors are in parameter coordinates; "per step"
/// means per optimizer step, "per slow time" per unit of `t = eta^2 k`.
#[derive(Clone, Debug, Serialize)]
pub struct Derivation {
    /// Model name.
    pub model: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Noise name.
    pub noise: String,
    /// The point given.
    pub start: Vec<f64>,
    /// The manifold point `phi = Phi(start)`.
    pub point: Vec<f64>,
    /// How `phi` was found.
    pub projection: Projection,
    /// Geometry at `phi`.
    pub geometry: GeometryReport,
    /// Normal equilibrium `S`.
    pub equilibrium: EquilibriumReport,
    /// Adam / RMSProp preconditioner.
    pub preconditioner: Option<Preconditioner>,
    /// Drift per step with the exact `S` (the main result).
    pub drift_per_step: Vec<f64>,
    /// Drift per step with the leading-order `S`.
    pub drift_per_step_leading: Vec<f64>,
    /// The tangent-normal cross term's part of `drift_per_step`.
    pub drift_cross_per_step: Vec<f64>,
    /// `drift_per_step / eta^2`.
    pub drift_per_slow_time: Vec<f64>,
    /// Drift per step in the model's manifold coordinates (where it has them), by finite
    /// differences of `manifold_coordinates` along the drift.
    pub drift_manifold_coordinates: Option<Vec<f64>>,
    /// Tangent noise `Q`.
    pub tangent_noise: TangentNoise,
    /// Implicit regularisers.
    pub regularisers: Vec<RegulariserReport>,
    /// Time scales.
    pub diagnostics: Diagnostics,
    /// Warnings about the validity of the quasistatic picture here.
    pub warnings: Vec<String>,
    /// Wall time of the derivation in seconds.
    pub seconds: f64,
}

/// Derive the quasistatic manifold dynamics of `optimizer` with `noise` on `model` at
/// `Phi(theta)` (see the module docs). `theta` may be any point; it is projected first, then
/// [`coefficients()`] are evaluated at the projected point and summarised in the report.
///
/// Errors: [`Error::Numerical`](crate::Error::Numerical) when the projection does not
/// converge, the normal rank is ambiguous, the normal recursion is unstable (`eta lambda_max`
/// beyond the bound), or Adam's fixed point does not converge;
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for weight decay or a non-positive
/// learning rate.
pub fn derive<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    theta: &[f64],
    options: &DeriveOptions,
) -> Result<Derivation> {
    derive_with_coefficients(model, noise, optimizer, theta, options).map(|(report, _)| report)
}

/// [`derive()`], also returning the [`Coefficients`] at `phi = Phi(theta)` that the report was
/// built from (the leading-order drift always included; the factor of `Q` as
/// [`DeriveOptions::tangent_factor`] says).
pub fn derive_with_coefficients<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    theta: &[f64],
    options: &DeriveOptions,
) -> Result<(Derivation, Coefficients)> {
    let t0 = Instant::now();
    let plan = plan(optimizer)?;
    let path = geometry_path(options, model);
    let mut popts = options.projection.clone();
    if popts.finisher.is_none() {
        popts.finisher = Some(match path {
            GeometryPath::Dense => Finisher::Newton,
            GeometryPath::LowRank => Finisher::GaussNewton,
        });
    }
    let projection = project(model, theta, &popts)?;
    let c = coefficients::at_point(
        model,
        noise,
        &plan,
        path,
        projection.point.clone(),
        options,
        true,
    )?;
    let report = report(
        model, noise, optimizer, theta, &plan, projection, &c, options, t0,
    );
    Ok((report, c))
}

/// The report of [`derive`] from the coefficients at the projected point.
#[allow(clippy::too_many_arguments)]
fn report<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    theta: &[f64],
    plan: &Plan,
    projection: Projection,
    c: &Coefficients,
    options: &DeriveOptions,
    t0: Instant,
) -> Derivation {
    let d = c.dim();
    let phi = &c.point;
    let euclidean = &c.hessian_geometry;
    let geometry = &c.geometry;
    let small = d <= options.matrices_up_to;
    let drift_leading = c
        .drift_leading
        .clone()
        .expect("derive computes the leading-order drift");
    let drift_manifold_coordinates = manifold_coordinate_drift(model, phi, &c.drift);

    // Regularisers.
    let diag = c.curvature.diagonal();
    let trace_hessian: f64 = diag.iter().sum();
    let regularisers = if options.regularisers {
        let (g_tr, g_sq) = regularisers::regulariser_gradients(model, phi, &c.curvature);
        let keep = d <= options.vectors_up_to;
        vec![
            regularisers::report(
                Regulariser::TraceHessian,
                trace_hessian,
                Some(&g_tr),
                geometry,
                &c.drift,
                keep,
            ),
            regularisers::report(
                Regulariser::TraceSqrtDiagHessian,
                regularisers::sqrt_diag_value(&diag),
                g_sq.as_deref(),
                geometry,
                &c.drift,
                keep,
            ),
        ]
    } else {
        Vec::new()
    };

    // Diagnostics.
    let eta_eff = c.eta_eff;
    let bnorm = norm(&c.drift);
    let normal_relaxation_steps = 1.0 / (eta_eff * geometry.lambda_min());
    let drift_unit_steps = 1.0 / bnorm;
    let tau_v = plan.adaptive.map(|(beta2, _)| 1.0 / (1.0 - beta2));
    let diagnostics = Diagnostics {
        eta: c.eta,
        eta_eff,
        lr_lambda_max: c.dynamics.lr() * geometry.lambda_max(),
        stability_bound: c.dynamics.stability_bound(),
        normal_relaxation_steps,
        drift_unit_steps,
        separation_ratio: normal_relaxation_steps * bnorm,
        tau_v,
        tau_x_over_tau_v: tau_v.map(|tv| normal_relaxation_steps / tv),
    };
    let mut warnings = Vec::new();
    if diagnostics.separation_ratio > options.separation_warning {
        warnings.push(format!(
            "weak time-scale separation: normal relaxation {:.3e} steps vs {:.3e} steps to drift a unit \
             (ratio {:.3e} > {}); the quasistatic picture is doubtful",
            normal_relaxation_steps, drift_unit_steps, diagnostics.separation_ratio, options.separation_warning
        ));
    }
    if diagnostics.lr_lambda_max > 0.5 * diagnostics.stability_bound {
        warnings.push(format!(
            "lr * lambda_max = {:.4} is more than half the stability bound {:.4}: large finite-eta corrections",
            diagnostics.lr_lambda_max, diagnostics.stability_bound
        ));
    }
    if let (Some(r), Some(tv)) = (diagnostics.tau_x_over_tau_v, tau_v) {
        if r > 0.1 {
            let rho = normal_relaxation_steps / (normal_relaxation_steps + tv);
            warnings.push(format!(
                "Adam's v is not quasistatic: tau_x / tau_v = {r:.3e} (tau_v = {tv:.3e} steps); expect the true \
                 drift slower by a factor of about 1 - rho = {:.3} (empirical rule, docs/theory.md section 9); scale \
                 1 - beta2 with eta^2 to stay quasistatic",
                1.0 - rho
            ));
        }
    }
    if let Some(p) = &c.preconditioner {
        if !p.eps_dominated.is_empty() {
            warnings.push(format!(
                "Adam: {} coordinate(s) have sqrt(v) <= eps (e.g. {:?}): the drift along them depends on eps \
                 (axis-aligned manifold, docs/theory.md section 9)",
                p.eps_dominated.len(),
                &p.eps_dominated[..p.eps_dominated.len().min(8)]
            ));
        }
        if !p.fluctuation_included {
            warnings.push(
                "Adam: E[t t^T] in v includes only its mean part (too many normal pairs for the fluctuation part)"
                    .into(),
            );
        }
    }
    if euclidean.gap < 1e6 {
        warnings.push(format!(
            "normal/tangent eigenvalue gap is only {:.3e}: the rank decision (r = {}) is fragile",
            euclidean.gap, euclidean.rank
        ));
    }
    let below_split: Vec<f64> = euclidean
        .spectrum
        .iter()
        .skip(euclidean.rank)
        .take(5)
        .copied()
        .collect();

    // Summaries of S and Q.
    let z = &c.normal_basis;
    // Z^T Z = I for an orthonormal Z (no metric) on the low-rank path, where Z = J^T U
    // Lambda^{-1/2} / sqrt(n) makes it so by construction; the product otherwise.
    let gram = match (&geometry.metric, &geometry.sample_basis) {
        (None, Some(_)) => {
            let r = z.ncols();
            (DMatrix::identity(r, r), DMatrix::identity(r, r))
        }
        _ => gram_and_root(z),
    };
    let equilibrium = EquilibriumReport {
        dynamics: c.dynamics,
        exact: MatrixSummary::of_normal(z, &gram, &c.s_exact, small),
        leading: MatrixSummary::of_normal(z, &gram, &c.s_leading, small),
        relative_difference: (&c.s_exact - &c.s_leading).norm()
            / c.s_leading.norm().max(f64::MIN_POSITIVE),
    };
    let tangent_noise = TangentNoise {
        trace_per_step: c.tangent_noise_trace,
        trace_per_slow_time: c.tangent_noise_trace_per_slow_time(),
        matrix_per_step: if small {
            c.tangent_noise.as_ref().map(rows)
        } else {
            None
        },
    };
    Derivation {
        model: model.name().to_string(),
        optimizer: optimizer.name().to_string(),
        noise: noise.name().to_string(),
        start: theta.to_vec(),
        point: phi.clone(),
        projection,
        geometry: GeometryReport {
            path: c.path,
            dim: d,
            normal_rank: euclidean.rank,
            manifold_dim: euclidean.tangent_dim(),
            curvatures: euclidean.curvatures.clone(),
            preconditioned_curvatures: c
                .preconditioner
                .as_ref()
                .map(|_| geometry.curvatures.clone()),
            gap: euclidean.gap,
            below_split,
            trace_hessian,
        },
        equilibrium,
        preconditioner: c.preconditioner.clone(),
        drift_per_slow_time: c.drift_per_slow_time(),
        drift_per_step: c.drift.clone(),
        drift_per_step_leading: drift_leading,
        drift_cross_per_step: c.drift_cross.clone(),
        drift_manifold_coordinates,
        tangent_noise,
        regularisers,
        diagnostics,
        warnings,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// A matrix as rows.
fn rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|i| m.row(i).iter().copied().collect())
        .collect()
}

/// The Gram matrix `G = Z^T Z` and its symmetric square root `G^{1/2}` (for
/// [`MatrixSummary::of_normal`]).
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

impl MatrixSummary {
    /// Summary of `S = Z S~ Z^T`, given `(Z^T Z, (Z^T Z)^{1/2})` from [`gram_and_root`]: the
    /// trace `tr(S~ Z^T Z)`, the eigenvalues of `(Z^T Z)^{1/2} S~ (Z^T Z)^{1/2}` (those of `S`
    /// on its support) and, when `small`, `S` itself.
    fn of_normal(
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
}

/// Euclidean norm.
pub(crate) fn norm(x: &[f64]) -> f64 {
    x.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// `d y / d theta . b` for the model's manifold coordinates `y`, by a central difference
/// along `b` (step `1e-6 / |b|`, linear maps exact).
fn manifold_coordinate_drift<M: Model>(model: &M, phi: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let bn = norm(b);
    if bn == 0.0 {
        return model.manifold_coordinates(phi).map(|y| vec![0.0; y.len()]);
    }
    let h = 1e-6 / bn;
    let plus: Vec<f64> = phi.iter().zip(b).map(|(p, x)| p + h * x).collect();
    let minus: Vec<f64> = phi.iter().zip(b).map(|(p, x)| p - h * x).collect();
    let yp = model.manifold_coordinates(&plus)?;
    let ym = model.manifold_coordinates(&minus)?;
    Some(
        yp.iter()
            .zip(&ym)
            .map(|(a, c)| (a - c) / (2.0 * h))
            .collect(),
    )
}
