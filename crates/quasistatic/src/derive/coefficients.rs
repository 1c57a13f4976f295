//! The reusable core of the derivation: the coefficients of the manifold SDE at a point
//! already on the manifold (docs/theory.md sections 2-6).
//!
//! [`coefficients()`] evaluates, at `phi` on `G` (no projection: the caller guarantees that
//! `phi` is a minimum, e.g. the point of a [`crate::manifold::Projection`]):
//!
//! 1. the curvature `H = hess L(phi)` (dense, or `(1/n) J^T J` on the low-rank path), its
//!    normal rank `r`, eigenbasis `V` and curvatures `lambda_1 >= ... >= lambda_r`;
//! 2. for Adam / RMSProp the quasistatic preconditioner `v`, `D = diag(1 / (sqrt(v) + eps))`,
//!    and the geometry of `H~ = D^{1/2} H D^{1/2}` (section 5);
//! 3. the normal equilibrium `S = Z S~ Z^T` (`Z = D^{1/2} V`), exact discrete and leading
//!    order (sections 3-5);
//! 4. the drift per optimizer step
//!    `b = -eta_eff D^{1/2} P~_T D^{1/2} [1/2 D3L[S] + eta_eff D3L[sym(P~_T Sigma~ P~_N H~^+)]]`
//!    and the tangent noise per optimizer step `Q = eta_eff^2 D^{1/2} P~_T Sigma~ P~_T D^{1/2}`,
//!    with a factor `F F^T = Q` on request.
//!
//! `D = I`, `P~ = P`, `H~ = H`, `Sigma~ = Sigma` for SGD, heavy ball and Nesterov;
//! `eta_eff = eta / (1 - beta)` for momentum, `eta` for Adam and RMSProp.
//!
//! **Units.** Everything named "per step" is per optimizer step `k`. The slow time of
//! docs/theory.md is `t = eta^2 k` (`eta` the base learning rate): a drift per unit slow time is
//! `b / eta^2`, a covariance per unit slow time `Q / eta^2` ([`Coefficients::drift_per_slow_time`],
//! [`Coefficients::tangent_noise_trace_per_slow_time`]). `S` is a covariance of parameters
//! (the stationary law of the normal oscillation), with no time unit.
//!
//! [`super::derive`] is: project, [`coefficients()`] at the projected point, then the report
//! (summaries of `S` and `Q`, regularisers, diagnostics, warnings). An integrator of the
//! manifold SDE calls [`coefficients()`] at every step instead, with
//! [`super::DeriveOptions::leading_order`] off and [`super::DeriveOptions::tangent_factor`] on.

use nalgebra::DMatrix;

use super::adam::{self, Preconditioner};
use super::drift::{self, DriftParts};
use super::equilibrium::NormalDynamics;
use super::{DeriveOptions, PathChoice, ThirdOrderRoute};
use crate::manifold::{CovarianceOperator, Curvature, Geometry, GeometryPath};
use crate::model::Model;
use crate::noise::NoiseModel;
use crate::optim::AnyOptimizer;
use crate::{Error, Result};

/// The manifold dynamics at one point `phi` of `G` (see the module docs). Vectors have length
/// `d` and are in parameter coordinates; matrices are nalgebra matrices (`d x r`, `r x r` or
/// `d x d` as stated).
#[derive(Clone, Debug)]
pub struct Coefficients {
    /// The manifold point `phi`.
    pub point: Vec<f64>,
    /// Dense Hessian or low-rank Jacobian representation of the curvature.
    pub path: GeometryPath,
    /// The base learning rate `eta` (`t = eta^2 k` is the slow time).
    pub eta: f64,
    /// The linear normal recursion whose equilibrium is `S` (in `w = D^{-1/2} theta` for Adam /
    /// RMSProp: heavy ball at rate `eta (1 - beta1)`, momentum `beta1`; SGD at `eta` for
    /// RMSProp or `beta1 = 0`).
    pub dynamics: NormalDynamics,
    /// `eta_eff = lr / (1 - beta)` of [`Coefficients::dynamics`] (`eta / (1 - beta)` for
    /// momentum, `eta` for Adam and RMSProp).
    pub eta_eff: f64,
    /// The curvature `H(phi)` the geometry was computed from.
    pub curvature: Curvature,
    /// The geometry of `H` itself: normal rank `r`, orthonormal normal eigenbasis `V`
    /// (`d x r`), curvatures `lambda_i`, spectrum and gap; `P_T`, `P_N`, `H^+`.
    pub hessian_geometry: Geometry,
    /// The geometry the drift was computed in: of `H~ = D^{1/2} H D^{1/2}` in the metric
    /// `D^{1/2}` for Adam / RMSProp (basis orthonormal in `w`), equal to
    /// [`Coefficients::hessian_geometry`] otherwise.
    pub geometry: Geometry,
    /// Adam's / RMSProp's quasistatic preconditioner: `v = diag E_eq[g g^T]` (the fixed point
    /// of docs/theory.md section 5) and `D^{1/2} = (sqrt(v) + eps)^{-1/2}`.
    pub preconditioner: Option<Preconditioner>,
    /// `Z = D^{1/2} V` (`d x r`): the normal eigen-directions of [`Coefficients::geometry`] as
    /// parameter vectors (`Z = V` without a preconditioner).
    pub normal_basis: DMatrix<f64>,
    /// Exact discrete-time normal equilibrium in the eigenbasis, `S~` (`r x r`), so that
    /// `S = Z S~ Z^T` ([`Coefficients::s_exact_matrix`]). SGD:
    /// `S~_ij = eta Sig~_ij / (lambda_i + lambda_j - eta lambda_i lambda_j)`, `Sig~ = Z^T Sigma Z`;
    /// momentum and Nesterov: docs/theory.md section 4 and [`super::equilibrium`].
    pub s_exact: DMatrix<f64>,
    /// Leading-order normal equilibrium `S~_ij = eta_eff Sig~_ij / (lambda_i + lambda_j)`
    /// (`r x r`; `H S + S H = eta_eff P_N Sigma P_N`), `S = Z S~ Z^T`.
    pub s_leading: DMatrix<f64>,
    /// Drift per optimizer step with the exact `S`:
    /// `b = -eta_eff D^{1/2} P~_T D^{1/2} [1/2 D3L[S] + eta_eff X]`, `X` the cross term
    /// `D3L[sym(P~_T Sigma~ P~_N H~^+)]` mapped to parameters.
    pub drift: Vec<f64>,
    /// The same with the leading-order `S` (when [`DeriveOptions::leading_order`]).
    pub drift_leading: Option<Vec<f64>>,
    /// The cross term's part of [`Coefficients::drift`] per step, `-eta_eff^2 D^{1/2} P~_T
    /// D^{1/2} X` (0 when `Sigma` has no tangent-normal block: label, isotropic noise).
    pub drift_cross: Vec<f64>,
    /// `tr Q` per optimizer step, `Q = eta_eff^2 D^{1/2} P~_T Sigma~ P~_T D^{1/2}`.
    pub tangent_noise_trace: f64,
    /// `Q` per optimizer step (`d x d`), when `d <=` [`DeriveOptions::matrices_up_to`] or
    /// when [`Coefficients::tangent_factor`] needed it.
    pub tangent_noise: Option<DMatrix<f64>>,
    /// A factor `F` of `Q` per optimizer step, `F F^T = Q` (when
    /// [`DeriveOptions::tangent_factor`]): the symmetric square root of `Q` (`d x d`) when
    /// `tr Q > 0`, a single zero column (`d x 1`) when `tr Q <= 0` (`Q = 0`: label or
    /// Hessian-shaped noise on an interpolating manifold). An integrator over `h` optimizer
    /// steps adds `sqrt(h) F z`, `z ~ N(0, I)`.
    pub tangent_factor: Option<DMatrix<f64>>,
}

impl Coefficients {
    /// Number of parameters `d`.
    pub fn dim(&self) -> usize {
        self.point.len()
    }

    /// Normal rank `r` (`m = d - r` is the manifold dimension).
    pub fn normal_rank(&self) -> usize {
        self.hessian_geometry.rank
    }

    /// The exact normal equilibrium `S = Z S~ Z^T` as a `d x d` matrix (`O(d^2 r)`).
    pub fn s_exact_matrix(&self) -> DMatrix<f64> {
        &self.normal_basis * &self.s_exact * self.normal_basis.transpose()
    }

    /// The leading-order normal equilibrium `S = Z S~ Z^T` as a `d x d` matrix.
    pub fn s_leading_matrix(&self) -> DMatrix<f64> {
        &self.normal_basis * &self.s_leading * self.normal_basis.transpose()
    }

    /// The drift per unit of slow time `t = eta^2 k`: `b / eta^2`.
    pub fn drift_per_slow_time(&self) -> Vec<f64> {
        let eta2 = self.eta * self.eta;
        self.drift.iter().map(|x| x / eta2).collect()
    }

    /// `tr Q / eta^2`: the tangent noise per unit of slow time `t = eta^2 k`.
    pub fn tangent_noise_trace_per_slow_time(&self) -> f64 {
        self.tangent_noise_trace / (self.eta * self.eta)
    }
}

/// What the optimizer means for the derivation.
pub(super) struct Plan {
    /// The normal recursion.
    pub(super) dynamics: NormalDynamics,
    /// The base learning rate.
    pub(super) eta: f64,
    /// `(beta2, eps)` for Adam and RMSProp (`alpha` is RMSProp's `beta2`).
    pub(super) adaptive: Option<(f64, f64)>,
}

/// The optimizer's normal recursion; refuses weight decay, a non-positive rate and Lion.
pub(super) fn plan(optimizer: &AnyOptimizer) -> Result<Plan> {
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

/// The geometry path for `model` under `options`: a model that is not a regression
/// ([`Model::is_regression`]) has no Jacobian representation and always takes the dense one.
pub(super) fn geometry_path<M: Model>(options: &DeriveOptions, model: &M) -> GeometryPath {
    let d = model.dim();
    if !model.is_regression() {
        return GeometryPath::Dense;
    }
    match options.path {
        PathChoice::Dense => GeometryPath::Dense,
        PathChoice::LowRank => GeometryPath::LowRank,
        PathChoice::Auto if d <= options.dense_up_to => GeometryPath::Dense,
        PathChoice::Auto => GeometryPath::LowRank,
    }
}

/// The coefficients of the manifold dynamics of `optimizer` with `noise` on `model` at `phi`,
/// a point already on the manifold of minima (see the module docs). No projection happens
/// here: `phi` is used as given. Of `options`, the projection, regulariser and reporting
/// fields are not used; [`DeriveOptions::leading_order`] and [`DeriveOptions::tangent_factor`]
/// choose the optional parts, [`DeriveOptions::matrices_up_to`] whether `Q` is formed.
///
/// Errors: as [`super::derive`] without the projection's ([`Error::Numerical`] for an
/// ambiguous rank, an unstable normal recursion, a non-interpolating point on the low-rank
/// path or Adam's fixed point not converging; [`Error::InvalidConfig`] for weight decay, a
/// non-positive learning rate or Lion), and [`Error::Numerical`] when `phi` does not have
/// `d` coordinates.
///
/// ```
/// use quasistatic::derive::{coefficients, DeriveOptions};
/// use quasistatic::model::{Profile, Valley};
/// use quasistatic::noise::NoiseModel;
/// use quasistatic::optim::{AnyOptimizer, Schedule, Sgd};
/// let valley = Valley::planar(Profile::Quadratic, 1.0); // a(y) = 1 + y^2, G = {x = 0}
/// let noise = NoiseModel::Label { sigma: 1.0, batch: None };
/// let sgd = AnyOptimizer::Sgd(Sgd { lr: Schedule::Constant(0.1) });
/// let c = coefficients(&valley, &noise, &sgd, &[0.0, 1.5], &DeriveOptions::default()).unwrap();
/// // docs/theory.md section 7: S = eta sigma^2 / (2 - eta a), b_y = -eta^2 sigma^2 a'(y) / (2 (2 - eta a)).
/// let (eta, a, da) = (0.1, 1.0 + 1.5 * 1.5, 2.0 * 1.5);
/// assert!((c.s_exact_matrix()[(0, 0)] - eta / (2.0 - eta * a)).abs() < 1e-12);
/// assert!((c.drift[1] + eta * eta * da / (2.0 * (2.0 - eta * a))).abs() < 1e-12);
/// assert_eq!(c.normal_rank(), 1);
/// ```
pub fn coefficients<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    phi: &[f64],
    options: &DeriveOptions,
) -> Result<Coefficients> {
    let d = model.dim();
    if phi.len() != d {
        return Err(Error::Numerical(format!(
            "coefficients: the point has {} coordinates, the model {d} parameters",
            phi.len()
        )));
    }
    let plan = plan(optimizer)?;
    at_point(
        model,
        noise,
        &plan,
        geometry_path(options, model),
        phi.to_vec(),
        options,
        options.leading_order,
    )
}

/// [`coefficients()`] for a planned optimizer and a chosen path; `leading` overrides
/// [`DeriveOptions::leading_order`] (the report of [`super::derive`] always needs it).
pub(super) fn at_point<M: Model>(
    model: &M,
    noise: &NoiseModel,
    plan: &Plan,
    path: GeometryPath,
    phi: Vec<f64>,
    options: &DeriveOptions,
    leading: bool,
) -> Result<Coefficients> {
    let d = phi.len();
    let curvature = match path {
        GeometryPath::Dense => Curvature::dense(model, &phi),
        GeometryPath::LowRank => Curvature::low_rank(model, &phi, options.residual_tolerance)?,
    };
    let covariance = CovarianceOperator::new(model, noise, &phi, &curvature);
    let hessian_geometry = curvature.geometry(None, &options.rank)?;
    let preconditioner = match plan.adaptive {
        None => None,
        Some((_, eps)) => Some(adam::preconditioner(
            model,
            noise,
            &phi,
            &curvature,
            &covariance,
            &hessian_geometry,
            &plan.dynamics,
            eps,
            &options.rank,
            &options.adam,
        )?),
    };
    let geometry = match &preconditioner {
        None => hessian_geometry.clone(),
        Some(p) => p
            .geometry
            .clone()
            .expect("preconditioner carries its geometry"),
    };
    let drift = drift::drift(
        model,
        &phi,
        &curvature,
        &covariance,
        &geometry,
        &plan.dynamics,
        DriftParts {
            leading,
            tangent_matrix: d <= options.matrices_up_to,
            tangent_factor: options.tangent_factor,
            per_sample: options.third_order == ThirdOrderRoute::Auto,
        },
    )?;
    Ok(Coefficients {
        point: phi,
        path,
        eta: plan.eta,
        dynamics: plan.dynamics,
        eta_eff: plan.dynamics.eta_eff(),
        curvature,
        hessian_geometry,
        geometry,
        preconditioner,
        normal_basis: drift.normal_basis,
        s_exact: drift.s_exact,
        s_leading: drift.s_leading,
        drift: drift.per_step,
        drift_leading: drift.per_step_leading,
        drift_cross: drift.cross_per_step,
        tangent_noise_trace: drift.tangent_noise_trace,
        tangent_noise: drift.tangent_noise,
        tangent_factor: drift.tangent_factor,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{derive, derive_with_coefficients};
    use super::*;
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::{DiagonalNetwork, ProductModel, Profile, Valley};
    use crate::optim::{Adam, HeavyBall, Nesterov, RmsProp, Schedule, Sgd};

    fn bits(x: &[f64]) -> Vec<u64> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    fn matrix_bits(m: &DMatrix<f64>) -> Vec<Vec<u64>> {
        (0..m.nrows())
            .map(|i| m.row(i).iter().map(|v| v.to_bits()).collect())
            .collect()
    }

    fn rows_bits(rows: &[Vec<f64>]) -> Vec<Vec<u64>> {
        rows.iter().map(|r| bits(r)).collect()
    }

    fn optimizers() -> Vec<AnyOptimizer> {
        vec![
            AnyOptimizer::Sgd(Sgd {
                lr: Schedule::Constant(0.05),
            }),
            AnyOptimizer::HeavyBall(HeavyBall {
                lr: Schedule::Constant(0.01),
                beta: 0.9,
                weight_decay: 0.0,
            }),
            AnyOptimizer::Nesterov(Nesterov {
                lr: Schedule::Constant(0.02),
                beta: 0.5,
                weight_decay: 0.0,
            }),
            AnyOptimizer::Adam(Adam {
                lr: Schedule::Constant(1e-3),
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            }),
            AnyOptimizer::RmsProp(RmsProp {
                lr: Schedule::Constant(0.01),
                alpha: 0.99,
                eps: 1e-8,
                bias_correction: true,
            }),
        ]
    }

    /// `derive` = project, then `coefficients` at the projected point: its drift (exact and
    /// leading `S`), cross term, `tr Q`, `Q`, `S` (exact and leading, as matrices) and Adam's
    /// `v` are bit for bit those of `coefficients` called at `derive`'s point, and the drift
    /// with the leading order switched off (the integrator's setting, with the factor of `Q`
    /// on) is bit for bit the same exact-`S` drift. Cases: every optimizer, label / isotropic /
    /// Hessian-shaped / fixed (tangent-normal block, so a cross term) noise, off-manifold
    /// starts, a curved manifold (product model), flat rotated valleys with 1 and 3 normal
    /// directions, a diagonal network on the dense and on the low-rank path.
    #[test]
    fn derive_is_coefficients_at_the_projected_point_bit_for_bit() {
        let fixed = NoiseModel::fixed(DMatrix::from_row_slice(2, 2, &[0.2, 0.15, 0.15, 0.2]));
        let label = NoiseModel::Label {
            sigma: 1.0,
            batch: None,
        };
        let isotropic = NoiseModel::Isotropic {
            sigma: 0.5,
            batch: 1,
        };
        let hessian = NoiseModel::Hessian {
            sigma: 0.7,
            batch: 2,
        };
        let valley = Valley::planar(Profile::Quadratic, 1.0).with_angle(0.5);
        let valley5 =
            Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Sin2, 0.8).with_random_rotation(21);
        let product = ProductModel::scalar(2, 1.0);
        let data = generate(&SyntheticSpec {
            n: 5,
            n_test: 0,
            p: 12,
            teacher: Teacher::Sparse { k: 2, value: 1.0 },
            label_noise: 0.0,
            seed: 4,
        });
        let network = DiagonalNetwork::new(data.train, None, data.teacher);
        let integrator = DeriveOptions {
            leading_order: false,
            tangent_factor: true,
            regularisers: false,
            ..DeriveOptions::default()
        };
        let mut checked = 0;
        let mut check = |model: &dyn Fn(&AnyOptimizer, &NoiseModel, &DeriveOptions),
                         noises: &[&NoiseModel],
                         paths: &[PathChoice]| {
            for opt in optimizers() {
                for noise in noises {
                    for &path in paths {
                        let options = DeriveOptions {
                            path,
                            ..DeriveOptions::default()
                        };
                        model(&opt, noise, &options);
                        checked += 1;
                    }
                }
            }
        };
        fn compare<M: Model>(
            model: &M,
            start: &[f64],
            opt: &AnyOptimizer,
            noise: &NoiseModel,
            options: &DeriveOptions,
            integrator: &DeriveOptions,
        ) {
            let report = derive(model, noise, opt, start, options).unwrap();
            let (again, inner) =
                derive_with_coefficients(model, noise, opt, start, options).unwrap();
            assert_eq!(bits(&again.drift_per_step), bits(&report.drift_per_step));
            let c = coefficients(model, noise, opt, &report.point, options).unwrap();
            assert_eq!(c.point, report.point, "no projection inside coefficients");
            assert_eq!(bits(&c.drift), bits(&report.drift_per_step));
            assert_eq!(bits(&c.drift), bits(&inner.drift));
            assert_eq!(
                bits(c.drift_leading.as_ref().unwrap()),
                bits(&report.drift_per_step_leading)
            );
            assert_eq!(bits(&c.drift_cross), bits(&report.drift_cross_per_step));
            assert_eq!(
                bits(&c.drift_per_slow_time()),
                bits(&report.drift_per_slow_time)
            );
            assert_eq!(
                c.tangent_noise_trace.to_bits(),
                report.tangent_noise.trace_per_step.to_bits()
            );
            assert_eq!(
                matrix_bits(&c.s_exact_matrix()),
                rows_bits(report.equilibrium.exact.matrix.as_ref().unwrap())
            );
            assert_eq!(
                matrix_bits(&c.s_leading_matrix()),
                rows_bits(report.equilibrium.leading.matrix.as_ref().unwrap())
            );
            assert_eq!(
                matrix_bits(c.tangent_noise.as_ref().unwrap()),
                rows_bits(report.tangent_noise.matrix_per_step.as_ref().unwrap())
            );
            assert_eq!(c.normal_rank(), report.geometry.normal_rank);
            assert_eq!(
                c.preconditioner.as_ref().map(|p| bits(&p.v)),
                report.preconditioner.as_ref().map(|p| bits(&p.v))
            );
            let fast = coefficients(
                model,
                noise,
                opt,
                &report.point,
                &DeriveOptions {
                    path: options.path,
                    ..integrator.clone()
                },
            )
            .unwrap();
            assert!(fast.drift_leading.is_none());
            assert_eq!(bits(&fast.drift), bits(&report.drift_per_step));
            assert!(fast.tangent_factor.is_some());
        }
        check(
            &|o, n, p| compare(&valley, &valley.to_theta(&[0.2, 1.1]), o, n, p, &integrator),
            &[&label, &isotropic, &hessian],
            &[PathChoice::Auto],
        );
        check(
            &|o, n, p| {
                let start = valley5.to_theta(&[0.05, 0.0, -0.02, 0.7, -0.4]);
                compare(&valley5, &start, o, n, p, &integrator)
            },
            &[&label, &isotropic],
            &[PathChoice::Dense, PathChoice::LowRank],
        );
        check(
            &|o, n, p| compare(&product, &[2.2, 0.6], o, n, p, &integrator),
            &[&label, &fixed],
            &[PathChoice::Auto],
        );
        check(
            &|o, n, p| compare(&network, &network.default_start(), o, n, p, &integrator),
            &[&label],
            &[PathChoice::Dense, PathChoice::LowRank],
        );
        assert_eq!(checked, 5 * (3 + 2 * 2 + 2 + 2));
    }

    /// The factor of `Q`: `F F^T = Q` (1e-12 relative to `tr Q`) where there is tangent noise
    /// (isotropic noise on a rotated valley, fixed noise on the product model, with SGD and
    /// Adam's metric), and a single zero column where `Q = 0` (label noise on the low-rank
    /// path, where `Q` is then not formed at all for `d` above `matrices_up_to`).
    #[test]
    fn tangent_factor_squares_to_q() {
        let options = DeriveOptions {
            tangent_factor: true,
            ..DeriveOptions::default()
        };
        let valley =
            Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Quadratic, 0.8).with_random_rotation(3);
        let phi = valley.to_theta(&[0.0, 0.0, 0.0, 0.7, -0.4]);
        let product = ProductModel::scalar(2, 1.0);
        let fixed = NoiseModel::fixed(DMatrix::from_row_slice(2, 2, &[0.2, 0.15, 0.15, 0.2]));
        let isotropic = NoiseModel::Isotropic {
            sigma: 0.5,
            batch: 1,
        };
        let opts = optimizers();
        let cases = [
            coefficients(&valley, &isotropic, &opts[0], &phi, &options).unwrap(),
            coefficients(&valley, &isotropic, &opts[3], &phi, &options).unwrap(),
            coefficients(&product, &fixed, &opts[1], &[2.0, 0.5], &options).unwrap(),
        ];
        for c in &cases {
            let q = c.tangent_noise.as_ref().unwrap();
            let f = c.tangent_factor.as_ref().unwrap();
            assert!(c.tangent_noise_trace > 0.0);
            let err = (f * f.transpose() - q).abs().max();
            assert!(err < 1e-12 * c.tangent_noise_trace, "{err}");
            // Q is tangent: H Q = 0 (up to round-off).
            let hq = c.curvature.apply(q).abs().max();
            assert!(hq < 1e-12 * c.tangent_noise_trace, "{hq}");
        }
        let label = NoiseModel::Label {
            sigma: 1.0,
            batch: None,
        };
        let low = DeriveOptions {
            path: PathChoice::LowRank,
            matrices_up_to: 1,
            ..options.clone()
        };
        let c = coefficients(&valley, &label, &opts[0], &phi, &low).unwrap();
        assert_eq!(c.tangent_noise_trace, 0.0);
        assert!(c.tangent_noise.is_none());
        assert_eq!(c.tangent_factor, Some(DMatrix::zeros(5, 1)));
    }

    /// Refusals: a point of the wrong length, and (as in `derive`) an unstable rate.
    #[test]
    fn coefficients_refusals() {
        let valley = Valley::planar(Profile::Quadratic, 1.0);
        let label = NoiseModel::Label {
            sigma: 1.0,
            batch: None,
        };
        let sgd = |eta: f64| {
            AnyOptimizer::Sgd(Sgd {
                lr: Schedule::Constant(eta),
            })
        };
        let e = coefficients(
            &valley,
            &label,
            &sgd(0.1),
            &[0.0],
            &DeriveOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("1 coordinates") && e.contains("2 parameters"),
            "{e}"
        );
        let e = coefficients(
            &valley,
            &label,
            &sgd(1.0),
            &[0.0, 1.5],
            &DeriveOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lambda_max") && e.contains(">= 2"), "{e}");
    }
}
