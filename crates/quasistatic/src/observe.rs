//! Observables recorded along trajectories.
//!
//! Each observable is a function of the parameters alone (no optimizer state), evaluated at
//! checkpoints. Hessian quantities use exact Hessian-vector products.

use nalgebra::{DMatrix, DVector};

use crate::model::derivatives::{self, HvpWorkspace};
use crate::model::Model;

/// Something measured on a parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
        }
    }

    /// Parse a name as written by [`Observable::name`].
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
            _ => {
                let j = s.strip_prefix('y')?.parse().ok()?;
                Observable::ManifoldCoordinate(j)
            }
        })
    }

    /// Every name [`Observable::parse`] accepts (manifold coordinates as `y0`, `y1`, ...).
    pub const NAMES: &'static str = "loss, test_error, distance_to_manifold, y0, y1, ..., \
        trace_hessian, sharpness, param_norm, weight_l1, teacher_distance, grad_output_sq";

    /// Whether `model` can provide this observable.
    pub fn available<M: Model>(&self, model: &M) -> bool {
        let probe = model.default_start();
        match self {
            Observable::TestError => model.test_error(&probe).is_some(),
            Observable::DistanceToManifold => model.distance_to_manifold(&probe).is_some(),
            Observable::ManifoldCoordinate(j) => model
                .manifold_coordinates(&probe)
                .is_some_and(|y| *j < y.len()),
            Observable::WeightL1 => model.end_to_end_weights(&probe).is_some(),
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
        for (k, obs) in self.observables.clone().iter().enumerate() {
            out[k] = self.eval(model, theta, *obs);
        }
    }

    fn eval<M: Model>(&mut self, model: &M, theta: &[f64], obs: Observable) -> f64 {
        let nan = f64::NAN;
        match obs {
            Observable::Loss => derivatives::gradient(model, theta, &mut self.grad),
            Observable::TestError => model.test_error(theta).unwrap_or(nan),
            Observable::DistanceToManifold => model.distance_to_manifold(theta).unwrap_or(nan),
            Observable::ManifoldCoordinate(j) => model
                .manifold_coordinates(theta)
                .and_then(|y| y.get(j).copied())
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
            Observable::GradOutputSq => {
                let n = model.n_samples();
                let mut acc = 0.0;
                for i in 0..n {
                    model.output_and_grad(theta, i, &mut self.grad);
                    acc += self.grad.iter().map(|g| g * g).sum::<f64>();
                }
                acc / n as f64
            }
        }
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
}
