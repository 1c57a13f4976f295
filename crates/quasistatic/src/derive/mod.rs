//! The quasistatic derivation engine (docs/theory.md sections 2-5, 8-9).
//!
//! [`derive`] takes a model, a noise model, an optimizer and any point `theta`, projects
//! `theta` onto the manifold of minima (`phi = Phi(theta)`), and returns the manifold dynamics
//! at `phi` as a [`Derivation`]:
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
pub mod drift;
pub mod equilibrium;
pub mod regularisers;
mod table;
pub mod third_order;

#[cfg(test)]
mod tests;

use std::time::Instant;

use serde::Serialize;

pub use adam::{AdamOptions, Preconditioner};
pub use drift::{Drift, TangentNoise};
pub use equilibrium::NormalDynamics;
pub use regularisers::{Regulariser, RegulariserReport};

use crate::manifold::{
    project, CovarianceOperator, Curvature, Finisher, GeometryPath, Projection, ProjectionOptions,
    RankOptions,
};
use crate::model::Model;
use crate::noise::NoiseModel;
use crate::optim::AnyOptimizer;
use crate::{Error, Result};

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

/// What the optimizer means for the derivation.
struct Plan {
    dynamics: NormalDynamics,
    eta: f64,
    /// `(beta2, eps)` for Adam and RMSProp.
    adaptive: Option<(f64, f64)>,
}

fn plan(optimizer: &AnyOptimizer) -> Result<Plan> {
    let eta = optimizer.schedule().base();
    let no_decay = |wd: f64, field: &str| -> Result<()> {
        if wd != 0.0 {
            return Err(Error::invalid(
                field,
                wd,
                "0: weight decay removes the manifold of minima, the quasistatic derivation needs one",
            ));
        }
        Ok(())
    };
    if eta.is_nan() || eta <= 0.0 {
        return Err(Error::invalid(
            "optimizer.lr",
            eta,
            "a positive learning rate",
        ));
    }
    Ok(match optimizer {
        AnyOptimizer::Sgd(_) => Plan {
            dynamics: NormalDynamics::Sgd { lr: eta },
            eta,
            adaptive: None,
        },
        AnyOptimizer::HeavyBall(o) => {
            no_decay(o.weight_decay, "optimizer.weight_decay")?;
            Plan {
                dynamics: NormalDynamics::HeavyBall {
                    lr: eta,
                    beta: o.beta,
                },
                eta,
                adaptive: None,
            }
        }
        AnyOptimizer::Nesterov(o) => {
            no_decay(o.weight_decay, "optimizer.weight_decay")?;
            Plan {
                dynamics: NormalDynamics::Nesterov {
                    lr: eta,
                    beta: o.beta,
                },
                eta,
                adaptive: None,
            }
        }
        AnyOptimizer::Adam(o) => {
            no_decay(o.weight_decay, "optimizer.weight_decay")?;
            let dynamics = if o.beta1 == 0.0 {
                NormalDynamics::Sgd { lr: eta }
            } else {
                NormalDynamics::HeavyBall {
                    lr: eta * (1.0 - o.beta1),
                    beta: o.beta1,
                }
            };
            Plan {
                dynamics,
                eta,
                adaptive: Some((o.beta2, o.eps)),
            }
        }
        AnyOptimizer::RmsProp(o) => Plan {
            dynamics: NormalDynamics::Sgd { lr: eta },
            eta,
            adaptive: Some((o.alpha, o.eps)),
        },
        AnyOptimizer::Lion(_) => return Err(Error::invalid(
            "optimizer.kind",
            "lion",
            "sgd, heavy_ball, nesterov, adam, adamw or rmsprop: Lion moves every coordinate by \
                 exactly lr in the sign of its momentum, a map that is not differentiable, so its \
                 normal oscillation has no linear (Lyapunov) equilibrium and the quasistatic \
                 derivation does not apply; simulate it instead",
        )),
    })
}

/// Derive the quasistatic manifold dynamics of `optimizer` with `noise` on `model` at
/// `Phi(theta)` (see the module docs). `theta` may be any point; it is projected first.
///
/// Errors: [`Error::Numerical`] when the projection does not converge, the normal rank is
/// ambiguous, the normal recursion is unstable (`eta lambda_max` beyond the bound), or Adam's
/// fixed point does not converge; [`Error::InvalidConfig`] for weight decay or a non-positive
/// learning rate.
pub fn derive<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    theta: &[f64],
    options: &DeriveOptions,
) -> Result<Derivation> {
    let t0 = Instant::now();
    let d = model.dim();
    let plan = plan(optimizer)?;
    let path = match options.path {
        PathChoice::Dense => GeometryPath::Dense,
        PathChoice::LowRank => GeometryPath::LowRank,
        PathChoice::Auto if d <= options.dense_up_to => GeometryPath::Dense,
        PathChoice::Auto => GeometryPath::LowRank,
    };
    let mut popts = options.projection.clone();
    if popts.finisher.is_none() {
        popts.finisher = Some(match path {
            GeometryPath::Dense => Finisher::Newton,
            GeometryPath::LowRank => Finisher::GaussNewton,
        });
    }
    let projection = project(model, theta, &popts)?;
    let phi = projection.point.clone();
    let curvature = match path {
        GeometryPath::Dense => Curvature::dense(model, &phi),
        GeometryPath::LowRank => Curvature::low_rank(model, &phi, options.residual_tolerance)?,
    };
    let covariance = CovarianceOperator::new(model, noise, &phi, &curvature);
    let euclidean = curvature.geometry(None, &options.rank)?;
    let preconditioner = match plan.adaptive {
        None => None,
        Some((_, eps)) => Some(adam::preconditioner(
            model,
            noise,
            &phi,
            &curvature,
            &covariance,
            &euclidean,
            &plan.dynamics,
            eps,
            &options.rank,
            &options.adam,
        )?),
    };
    let geometry = match &preconditioner {
        None => euclidean.clone(),
        Some(p) => p
            .geometry
            .clone()
            .expect("preconditioner carries its geometry"),
    };
    let small = d <= options.matrices_up_to;
    let mut drift = drift::drift(
        model,
        &phi,
        &curvature,
        &covariance,
        &geometry,
        &plan.dynamics,
        small,
    )?;
    let eta2 = plan.eta * plan.eta;
    let drift_per_slow_time: Vec<f64> = drift.per_step.iter().map(|x| x / eta2).collect();
    drift.tangent_noise.trace_per_slow_time = drift.tangent_noise.trace_per_step / eta2;
    let drift_manifold_coordinates = manifold_coordinate_drift(model, &phi, &drift.per_step);

    // Regularisers.
    let diag = curvature.diagonal();
    let trace_hessian: f64 = diag.iter().sum();
    let regularisers = if options.regularisers {
        let (g_tr, g_sq) = regularisers::regulariser_gradients(model, &phi, &curvature);
        let keep = d <= options.vectors_up_to;
        vec![
            regularisers::report(
                Regulariser::TraceHessian,
                trace_hessian,
                Some(&g_tr),
                &geometry,
                &drift.per_step,
                keep,
            ),
            regularisers::report(
                Regulariser::TraceSqrtDiagHessian,
                regularisers::sqrt_diag_value(&diag),
                g_sq.as_deref(),
                &geometry,
                &drift.per_step,
                keep,
            ),
        ]
    } else {
        Vec::new()
    };

    // Diagnostics.
    let eta_eff = plan.dynamics.eta_eff();
    let bnorm = norm(&drift.per_step);
    let normal_relaxation_steps = 1.0 / (eta_eff * geometry.lambda_min());
    let drift_unit_steps = 1.0 / bnorm;
    let tau_v = plan.adaptive.map(|(beta2, _)| 1.0 / (1.0 - beta2));
    let diagnostics = Diagnostics {
        eta: plan.eta,
        eta_eff,
        lr_lambda_max: plan.dynamics.lr() * geometry.lambda_max(),
        stability_bound: plan.dynamics.stability_bound(),
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
    if let Some(p) = &preconditioner {
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
    Ok(Derivation {
        model: model.name().to_string(),
        optimizer: optimizer.name().to_string(),
        noise: noise.name().to_string(),
        start: theta.to_vec(),
        point: phi,
        projection,
        geometry: GeometryReport {
            path,
            dim: d,
            normal_rank: euclidean.rank,
            manifold_dim: euclidean.tangent_dim(),
            curvatures: euclidean.curvatures.clone(),
            preconditioned_curvatures: preconditioner.as_ref().map(|_| geometry.curvatures.clone()),
            gap: euclidean.gap,
            below_split,
            trace_hessian,
        },
        equilibrium: drift.equilibrium.clone(),
        preconditioner,
        drift_per_slow_time,
        drift_per_step: drift.per_step,
        drift_per_step_leading: drift.per_step_leading,
        drift_cross_per_step: drift.cross_per_step,
        drift_manifold_coordinates,
        tangent_noise: drift.tangent_noise,
        regularisers,
        diagnostics,
        warnings,
        seconds: t0.elapsed().as_secs_f64(),
    })
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
