//! Observables recorded along trajectories.
//!
//! Each observable is a function of the parameters alone (no optimizer state), evaluated at
//! checkpoints. Hessian quantities use exact Hessian-vector products. Besides the built-in
//! ones, a user function of the parameters can be recorded as a [`CustomObservable`]: the true
//! ensembles (`simulate`) and the derived dynamics (`sde`) evaluate it like the others,
//! through an [`Observer`].

use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use crate::error::{Error, Result};
use crate::model::derivatives::{self, HvpWorkspace};
use crate::model::Model;

/// The function inside a [`CustomObservable`]: parameters in, one number out.
pub type ObservableFn = dyn Fn(&[f64]) -> f64 + Send + Sync;

/// A user function of the parameters recorded under its own name (see
/// [`Observable::Custom`]).
///
/// Two custom observables are equal when their names are (the name is the column they are
/// recorded under); the function is shared, so cloning is cheap.
#[derive(Clone)]
pub struct CustomObservable {
    name: String,
    f: Arc<ObservableFn>,
}

impl CustomObservable {
    /// Record `f(theta)` as `name`. The name must be non-empty and must not be one that
    /// [`Observable::parse`] accepts (it would clash with a built-in column).
    pub fn new(
        name: impl Into<String>,
        f: impl Fn(&[f64]) -> f64 + Send + Sync + 'static,
    ) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || Observable::parse(&name).is_some() {
            return Err(Error::invalid(
                "custom observable name",
                if name.is_empty() { "(empty)" } else { &name },
                format!(
                    "a non-empty name other than the built-in ones ({})",
                    Observable::NAMES
                ),
            ));
        }
        Ok(Self {
            name,
            f: Arc::new(f),
        })
    }

    /// Its name (the column it is recorded under).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its value at `theta`.
    pub fn eval(&self, theta: &[f64]) -> f64 {
        (self.f)(theta)
    }
}

impl std::fmt::Debug for CustomObservable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomObservable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CustomObservable {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CustomObservable {}

impl std::hash::Hash for CustomObservable {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// Something measured on a parameter vector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Observable {
    /// Full-batch training loss `L(theta)`.
    Loss,
    /// Mean squared error on held-out data.
    TestError,
    /// Euclidean distance to the manifold of minima (valley: `|x|`).
    DistanceToManifold,
    /// Manifold coordinate `y_j` of the valley.
    ManifoldCoordinate(usize),
    /// `tr H(theta)` (exact up to `d = 1000` from `d` Hessian-vector products; beyond that a
    /// Hutchinson estimate with 64 fixed Rademacher probes).
    TraceHessian,
    /// Largest Hessian eigenvalue `lambda_max` (Lanczos on Hessian-vector products).
    Sharpness,
    /// Euclidean norm `|theta|`.
    ParamNorm,
    /// `||w||_1` of the end-to-end weights of a linear network.
    WeightL1,
    /// `||w - w*||^2` between end-to-end and teacher weights.
    TeacherDistance,
    /// `(1/n) sum_i |grad f_i|^2`, the trace of the Gauss-Newton matrix.
    GradOutputSq,
    /// `tr(diag H)^{1/2} = sum_j sqrt(max(H_jj, 0))`, the flatness Adam's implicit regulariser
    /// seeks (docs/theory.md section 5); exact from `d` Hessian-vector products (models with
    /// `d <= 1000`).
    SqrtDiagTrace,
    /// Effective support size `||w||_1^2 / ||w||_2^2` of the end-to-end weights of a linear
    /// network (between 1 for one nonzero weight and `p` for equal ones).
    EffectiveSupport,
    /// A user function of the parameters, recorded under its name.
    Custom(CustomObservable),
}

impl Observable {
    /// Column name used in output files.
    pub fn name(&self) -> String {
        match self {
            Observable::Loss => "loss".into(),
            Observable::TestError => "test_error".into(),
            Observable::DistanceToManifold => "distance_to_manifold".into(),
            Observable::ManifoldCoordinate(j) => format!("y{j}"),
            Observable::TraceHessian => "trace_hessian".into(),
            Observable::Sharpness => "sharpness".into(),
            Observable::ParamNorm => "param_norm".into(),
            Observable::WeightL1 => "weight_l1".into(),
            Observable::TeacherDistance => "teacher_distance".into(),
            Observable::GradOutputSq => "grad_output_sq".into(),
            Observable::SqrtDiagTrace => "sqrt_diag_trace".into(),
            Observable::EffectiveSupport => "effective_support".into(),
            Observable::Custom(c) => c.name.clone(),
        }
    }

    /// Parse a name as written by [`Observable::name`] (built-in observables only: a custom
    /// one has no function to parse).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "loss" => Observable::Loss,
            "test_error" => Observable::TestError,
            "distance_to_manifold" => Observable::DistanceToManifold,
            "trace_hessian" => Observable::TraceHessian,
            "sharpness" => Observable::Sharpness,
            "param_norm" => Observable::ParamNorm,
            "weight_l1" => Observable::WeightL1,
            "teacher_distance" => Observable::TeacherDistance,
            "grad_output_sq" => Observable::GradOutputSq,
            "sqrt_diag_trace" => Observable::SqrtDiagTrace,
            "effective_support" => Observable::EffectiveSupport,
            _ => {
                let j = s.strip_prefix('y')?.parse().ok()?;
                Observable::ManifoldCoordinate(j)
            }
        })
    }

    /// Every name [`Observable::parse`] accepts (manifold coordinates as `y0`, `y1`, ...).
    pub const NAMES: &'static str = "loss, test_error, distance_to_manifold, y0, y1, ..., \
        trace_hessian, sharpness, param_norm, weight_l1, teacher_distance, grad_output_sq, \
        sqrt_diag_trace, effective_support";

    /// Whether `model` can provide this observable (a custom one is always available: it
    /// needs the parameters only).
    pub fn available<M: Model>(&self, model: &M) -> bool {
        let probe = model.default_start();
        match self {
            Observable::TestError => model.test_error(&probe).is_some(),
            Observable::DistanceToManifold => model.distance_to_manifold(&probe).is_some(),
            Observable::ManifoldCoordinate(j) => model
                .manifold_coordinates(&probe)
                .is_some_and(|y| *j < y.len()),
            Observable::WeightL1 | Observable::EffectiveSupport => {
                model.end_to_end_weights(&probe).is_some()
            }
            Observable::SqrtDiagTrace => model.dim() <= 1000,
            Observable::TeacherDistance => {
                model.end_to_end_weights(&probe).is_some() && model.teacher_weights().is_some()
            }
            _ => true,
        }
    }
}

/// The default observables of a model: everything it can provide, manifold coordinates
/// included (at most 8 of them).
pub fn default_observables<M: Model>(model: &M) -> Vec<Observable> {
    let mut all = vec![
        Observable::Loss,
        Observable::TestError,
        Observable::DistanceToManifold,
    ];
    all.extend((0..8).map(Observable::ManifoldCoordinate));
    all.extend([
        Observable::TraceHessian,
        Observable::Sharpness,
        Observable::ParamNorm,
        Observable::WeightL1,
        Observable::TeacherDistance,
        Observable::GradOutputSq,
    ]);
    all.into_iter().filter(|o| o.available(model)).collect()
}

/// Evaluates a list of observables, reusing its buffers.
pub struct Observer {
    observables: Vec<Observable>,
    hvp: HvpWorkspace,
    e: Vec<f64>,
    hv: Vec<f64>,
    grad: Vec<f64>,
}

impl Observer {
    /// An observer of `observables` on `model`.
    pub fn new<M: Model>(model: &M, observables: Vec<Observable>) -> Self {
        let d = model.dim();
        Self {
            observables,
            hvp: HvpWorkspace::new(model),
            e: vec![0.0; d],
            hv: vec![0.0; d],
            grad: vec![0.0; d],
        }
    }

    /// The observables, in output order.
    pub fn observables(&self) -> &[Observable] {
        &self.observables
    }

    /// Evaluate every observable at `theta` into `out` (same order as
    /// [`Observer::observables`]).
    pub fn observe<M: Model>(&mut self, model: &M, theta: &[f64], out: &mut [f64]) {
        // Taken out for the loop (the evaluations need the buffers mutably) and put back: no
        // allocation per record.
        let observables = std::mem::take(&mut self.observables);
        for (k, obs) in observables.iter().enumerate() {
            out[k] = self.eval(model, theta, obs);
        }
        self.observables = observables;
    }

    fn eval<M: Model>(&mut self, model: &M, theta: &[f64], obs: &Observable) -> f64 {
        let nan = f64::NAN;
        match obs {
            Observable::Loss => derivatives::gradient(model, theta, &mut self.grad),
            Observable::TestError => model.test_error(theta).unwrap_or(nan),
            Observable::DistanceToManifold => model.distance_to_manifold(theta).unwrap_or(nan),
            Observable::ManifoldCoordinate(j) => model
                .manifold_coordinates(theta)
                .and_then(|y| y.get(*j).copied())
                .unwrap_or(nan),
            Observable::TraceHessian => self.trace_hessian(model, theta),
            Observable::Sharpness => self.sharpness(model, theta),
            Observable::ParamNorm => theta.iter().map(|x| x * x).sum::<f64>().sqrt(),
            Observable::WeightL1 => model
                .end_to_end_weights(theta)
                .map(|w| w.iter().map(|x| x.abs()).sum())
                .unwrap_or(nan),
            Observable::TeacherDistance => {
                match (model.end_to_end_weights(theta), model.teacher_weights()) {
                    (Some(w), Some(t)) => w.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum(),
                    _ => nan,
                }
            }
            Observable::SqrtDiagTrace => self.sqrt_diag_trace(model, theta),
            Observable::EffectiveSupport => model
                .end_to_end_weights(theta)
                .map(|w| {
                    let (l1, l2) = w
                        .iter()
                        .fold((0.0, 0.0), |(a, b), x| (a + x.abs(), b + x * x));
                    l1 * l1 / l2
                })
                .unwrap_or(nan),
            Observable::GradOutputSq if !model.is_regression() => nan,
            Observable::GradOutputSq => {
                let n = model.n_samples();
                let mut acc = 0.0;
                for i in 0..n {
                    model.output_and_grad(theta, i, &mut self.grad);
                    acc += self.grad.iter().map(|g| g * g).sum::<f64>();
                }
                acc / n as f64
            }
            Observable::Custom(c) => c.eval(theta),
        }
    }

    /// `sum_j sqrt(max(H_jj, 0))` from `d` Hessian-vector products.
    pub fn sqrt_diag_trace<M: Model>(&mut self, model: &M, theta: &[f64]) -> f64 {
        let mut acc = 0.0;
        for j in 0..model.dim() {
            self.e[j] = 1.0;
            derivatives::hessian_vector_product(model, theta, &self.e, &mut self.hvp, &mut self.hv);
            self.e[j] = 0.0;
            acc += self.hv[j].max(0.0).sqrt();
        }
        acc
    }

    /// `tr H`: exact from `d` products for `d <= 1000`, else Hutchinson with 64 fixed probes.
    pub fn trace_hessian<M: Model>(&mut self, model: &M, theta: &[f64]) -> f64 {
        let d = model.dim();
        let mut tr = 0.0;
        if d <= 1000 {
            for j in 0..d {
                self.e[j] = 1.0;
                derivatives::hessian_vector_product(
                    model,
                    theta,
                    &self.e,
                    &mut self.hvp,
                    &mut self.hv,
                );
                self.e[j] = 0.0;
                tr += self.hv[j];
            }
            tr
        } else {
            let probes = 64;
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            for _ in 0..probes {
                for e in self.e.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *e = if state & 1 == 0 { 1.0 } else { -1.0 };
                }
                derivatives::hessian_vector_product(
                    model,
                    theta,
                    &self.e,
                    &mut self.hvp,
                    &mut self.hv,
                );
                tr += self.e.iter().zip(&self.hv).map(|(a, b)| a * b).sum::<f64>();
            }
            self.e.iter_mut().for_each(|e| *e = 0.0);
            tr / probes as f64
        }
    }

    /// Largest eigenvalue of `H`: Lanczos with full re-orthogonalisation, `min(d, 40)` steps,
    /// from a fixed start vector.
    pub fn sharpness<M: Model>(&mut self, model: &M, theta: &[f64]) -> f64 {
        let d = model.dim();
        let k_max = d.min(40);
        let mut basis: Vec<DVector<f64>> = Vec::with_capacity(k_max);
        let mut alpha = Vec::with_capacity(k_max);
        let mut beta: Vec<f64> = Vec::with_capacity(k_max);
        let mut q = DVector::from_fn(d, |i, _| 1.0 + 0.1 * ((i * 7919) % 13) as f64);
        q /= q.norm();
        for k in 0..k_max {
            derivatives::hessian_vector_product(
                model,
                theta,
                q.as_slice(),
                &mut self.hvp,
                &mut self.hv,
            );
            let mut w = DVector::from_column_slice(&self.hv);
            let a = w.dot(&q);
            alpha.push(a);
            basis.push(q.clone());
            for b in &basis {
                let c = w.dot(b);
                w -= b * c;
            }
            let nb = w.norm();
            if k + 1 == k_max || nb < 1e-12 * (1.0 + a.abs()) {
                break;
            }
            beta.push(nb);
            q = w / nb;
        }
        let m = alpha.len();
        let t = DMatrix::from_fn(m, m, |i, j| {
            if i == j {
                alpha[i]
            } else if i + 1 == j {
                beta[i]
            } else if j + 1 == i {
                beta[j]
            } else {
                0.0
            }
        });
        t.symmetric_eigen().eigenvalues.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Profile, Valley};

    /// On the valley's manifold `H = R diag(lambda_i s(y), 0) R^T`: closed-form trace and top
    /// eigenvalue.
    #[test]
    fn hessian_observables_on_valley() {
        let m =
            Valley::new(vec![1.0, 3.0, 2.0], 2, Profile::Quadratic, 0.5).with_random_rotation(1);
        let z = [0.0, 0.0, 0.0, 1.0, -2.0];
        let th = m.to_theta(&z);
        let s = 1.0 + 0.5 * (1.0 + 4.0);
        let mut obs = Observer::new(&m, default_observables(&m));
        assert!((obs.trace_hessian(&m, &th) - 6.0 * s).abs() < 1e-10);
        assert!((obs.sharpness(&m, &th) - 3.0 * s).abs() < 1e-9);
        let names: Vec<String> = obs.observables().iter().map(|o| o.name()).collect();
        assert!(names.contains(&"y1".to_string()) && !names.contains(&"y2".to_string()));
        let mut out = vec![0.0; names.len()];
        obs.observe(&m, &th, &mut out);
        let y1 = names.iter().position(|n| n == "y1").unwrap();
        assert!((out[y1] + 2.0).abs() < 1e-12);
        for n in &names {
            assert_eq!(Observable::parse(n).unwrap().name(), *n);
        }
    }

    fn norm(theta: &[f64]) -> f64 {
        theta.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    /// A custom observable is named, compared and hashed by its name, cannot take a built-in
    /// name, and an [`Observer`] evaluates it in its place among the others.
    #[test]
    fn custom_observable_by_name() {
        for bad in ["", "loss", "y3", "trace_hessian"] {
            assert!(CustomObservable::new(bad, norm).is_err(), "{bad:?}");
        }
        let a = Observable::Custom(CustomObservable::new("norm", norm).unwrap());
        let b = Observable::Custom(CustomObservable::new("norm", |_: &[f64]| 0.0).unwrap());
        let c = Observable::Custom(CustomObservable::new("norm_b", norm).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, Observable::ParamNorm);
        let set: std::collections::HashSet<Observable> = [a.clone(), b, c.clone()].into();
        assert_eq!(set.len(), 2);
        assert_eq!(a.name(), "norm");
        assert!(format!("{a:?}").contains("\"norm\""));
        let m = Valley::planar(Profile::Quadratic, 1.0);
        assert!(a.available(&m));
        let twice =
            Observable::Custom(CustomObservable::new("twice_y", |t: &[f64]| 2.0 * t[1]).unwrap());
        let mut obs = Observer::new(&m, vec![Observable::ParamNorm, a, twice]);
        let mut out = [0.0; 3];
        obs.observe(&m, &[3.0, 4.0], &mut out);
        assert_eq!(out, [5.0, 5.0, 8.0]);
        // The observer keeps its list across evaluations.
        obs.observe(&m, &[0.0, 1.0], &mut out);
        assert_eq!(out, [1.0, 1.0, 2.0]);
        assert_eq!(obs.observables().len(), 3);
    }

    /// The engine records a custom observable like a built-in one (same values, bit for bit,
    /// as `param_norm` on every path the valley takes: register step and group step), and so
    /// does the derived-dynamics integrator, at the manifold points it visits.
    #[test]
    fn engine_and_sde_record_custom_observables() {
        use crate::noise::NoiseModel;
        use crate::optim::{Adam, AnyOptimizer, Schedule, Sgd};
        use crate::sde::{run_sde, ManifoldDynamics, SdeCoefficients, SdeSpec};
        use crate::simulate::{run_ensemble, EnsembleSpec};

        let m = Valley::planar(Profile::Quadratic, 1.0).with_angle(0.4);
        let custom = Observable::Custom(CustomObservable::new("norm", norm).unwrap());
        let observables = vec![Observable::ParamNorm, custom, Observable::Loss];
        for noise in [
            NoiseModel::Label {
                sigma: 1.0,
                batch: None,
            },
            NoiseModel::Isotropic {
                sigma: 0.3,
                batch: 1,
            },
        ] {
            for opt in [
                AnyOptimizer::Sgd(Sgd {
                    lr: Schedule::Constant(0.05),
                }),
                AnyOptimizer::Adam(Adam {
                    lr: Schedule::Constant(0.01),
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.0,
                }),
            ] {
                let spec = EnsembleSpec {
                    steps: 200,
                    record_every: 50,
                    trajectories: 11,
                    seed: 3,
                    start: m.default_start(),
                    observables: observables.clone(),
                    ..EnsembleSpec::default()
                };
                let r = run_ensemble(&m, &noise, &opt, &spec);
                assert_eq!(r.observables, ["param_norm", "norm", "loss"]);
                let (p, c) = (0, r.observable_index("norm").unwrap());
                let mut compared = 0;
                for j in 0..r.trajectories {
                    for k in 0..r.steps.len() {
                        let (x, y) = (r.get(j, k, p).unwrap(), r.get(j, k, c).unwrap());
                        assert_eq!(x.to_bits(), y.to_bits(), "trajectory {j}, record {k}");
                        compared += 1;
                    }
                }
                assert_eq!(compared, 11 * 5);
                // The records move: they are the trajectories', not the start's.
                assert_ne!(r.get(0, 4, c), r.get(0, 0, c));
            }
        }

        /// Moves `y` by -0.01 per optimizer step along the unrotated valley's manifold `x = 0`.
        struct Shift;
        impl ManifoldDynamics for Shift {
            fn coefficients(&self, _phi: &[f64]) -> Result<SdeCoefficients> {
                Ok(SdeCoefficients {
                    drift: vec![0.0, -0.01],
                    noise_factor: DMatrix::zeros(2, 1),
                })
            }
            fn project(&self, theta: &[f64]) -> Result<Vec<f64>> {
                Ok(vec![0.0, theta[1]])
            }
        }
        let flat = Valley::planar(Profile::Quadratic, 1.0);
        let y_plus_one = Observable::Custom(
            CustomObservable::new("y_plus_one", |t: &[f64]| t[1] + 1.0).unwrap(),
        );
        let r = run_sde(
            &flat,
            &Shift,
            &SdeSpec {
                steps: 100,
                h: 1,
                record_every: 25,
                trajectories: 2,
                seed: 0,
                start: vec![0.0, 2.0],
                observables: vec![y_plus_one, Observable::ManifoldCoordinate(0)],
            },
        );
        assert_eq!(r.observables, ["y_plus_one", "y0"]);
        for (k, &step) in r.steps.iter().enumerate() {
            let y = 2.0 - 0.01 * step as f64;
            for j in 0..2 {
                assert!((r.get(j, k, 0).unwrap() - (y + 1.0)).abs() < 1e-12);
                assert!((r.get(j, k, 1).unwrap() - y).abs() < 1e-12);
            }
        }
    }
}
