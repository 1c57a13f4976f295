//! The stability check before a run: `lr * lambda_max` of the loss's Hessian at a point
//! against the optimizer's bound on the normal recursion (docs/theory.md section 8). Above
//! the bound the linearised oscillation around a minimum grows, so trajectories started
//! there diverge or leave for a flatter region; the derivation has no equilibrium.

use crate::model::derivatives::{hessian_vector_product, HvpWorkspace};
use crate::model::Model;
use crate::optim::AnyOptimizer;

use super::coefficients::plan;

/// `lr * lambda_max` at a point against the optimizer's stability bound.
#[derive(Clone, Debug, PartialEq)]
pub struct Stability {
    /// Largest Hessian eigenvalue at the point (power iteration on Hessian-vector products).
    pub lambda_max: f64,
    /// The learning rate of the normal recursion (`lr (1 - beta1)` for Adam's first moment).
    pub lr: f64,
    /// The bound on `lr * lambda_max`: 2 (SGD), `2 (1 + beta)` (heavy ball),
    /// `2 (1 + beta) / (1 + 2 beta)` (Nesterov).
    pub bound: f64,
}

impl Stability {
    /// `lr * lambda_max`.
    pub fn product(&self) -> f64 {
        self.lr * self.lambda_max
    }

    /// Whether `lr * lambda_max` is below the bound.
    pub fn holds(&self) -> bool {
        self.product() < self.bound
    }
}

/// The stability of `optimizer` at `theta`, or `None` where no fixed bound applies: an
/// adaptive optimizer (Adam, RMSProp: the preconditioner rescales the curvature by the
/// gradient noise, unknown before the run), Lion, weight decay, or a Hessian whose power
/// iteration does not settle.
pub fn stability_at<M: Model>(
    model: &M,
    optimizer: &AnyOptimizer,
    theta: &[f64],
) -> Option<Stability> {
    let plan = plan(optimizer).ok()?;
    if plan.adaptive.is_some() {
        return None;
    }
    let lambda_max = largest_eigenvalue(model, theta)?;
    Some(Stability {
        lambda_max,
        lr: plan.dynamics.lr(),
        bound: plan.dynamics.stability_bound(),
    })
}

/// Largest eigenvalue of the Hessian at `theta` by power iteration (at most 200 products,
/// relative change below 1e-6), from a fixed start vector. The Hessian is symmetric; the
/// iteration finds the eigenvalue of largest modulus, which at and near a minimum is the
/// largest one. `None` if the products are not finite.
pub fn largest_eigenvalue<M: Model>(model: &M, theta: &[f64]) -> Option<f64> {
    let d = theta.len();
    if d == 0 {
        return None;
    }
    // A fixed start with a component along every coordinate.
    let mut v: Vec<f64> = (0..d)
        .map(|i| 1.0 + 0.1 * ((i * 7 + 3) % 11) as f64)
        .collect();
    let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let n0 = norm(&v);
    v.iter_mut().for_each(|x| *x /= n0);
    let mut hv = vec![0.0; d];
    let mut ws = HvpWorkspace::new(model);
    let mut lambda = 0.0f64;
    for _ in 0..200 {
        hessian_vector_product(model, theta, &v, &mut ws, &mut hv);
        let rayleigh: f64 = v.iter().zip(&hv).map(|(a, b)| a * b).sum();
        let n = norm(&hv);
        if !n.is_finite() || !rayleigh.is_finite() {
            return None;
        }
        if n == 0.0 {
            return Some(0.0);
        }
        let settled = (rayleigh - lambda).abs() <= 1e-6 * rayleigh.abs();
        lambda = rayleigh;
        if settled {
            break;
        }
        for (a, b) in v.iter_mut().zip(&hv) {
            *a = b / n;
        }
    }
    Some(lambda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The valley `L = a(y) x^2 / 2` with `a(y) = 1 + y^2` (docs/theory.md section 7) at
    /// `(0, 2)`: the Hessian is `diag(5, 0)`, so `lambda_max = 5`; SGD at lr 0.5 gives
    /// `2.5 >= 2`, heavy ball with beta 0.9 at lr 0.5 is stable (`2.5 < 3.8`).
    #[test]
    fn valley_lambda_max_and_bounds() {
        let cfg = |opt: &str| {
            Config::from_toml(
                &format!(
                    "steps = 10\nrecord_every = 10\n[model]\nkind = \"valley\"\n[noise]\nkind = \"label\"\nsigma = 0.1\n\
                     [optimizer]\n{opt}\n[start]\ntheta = [0.0, 2.0]\n"
                ),
                std::path::Path::new("t.toml"),
            )
            .unwrap()
            .build()
            .unwrap()
        };
        let b = cfg("kind = \"sgd\"\nlr = 0.5");
        let s =
            crate::with_model!(&b.model, m => stability_at(m, &b.optimizer, &[0.0, 2.0])).unwrap();
        assert!((s.lambda_max - 5.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.bound, 2.0);
        assert!(!s.holds());
        let b = cfg("kind = \"heavy_ball\"\nlr = 0.5\nbeta = 0.9");
        let s =
            crate::with_model!(&b.model, m => stability_at(m, &b.optimizer, &[0.0, 2.0])).unwrap();
        assert!((s.bound - 3.8).abs() < 1e-12 && s.holds(), "{s:?}");
        let b = cfg("kind = \"adam\"\nlr = 0.5");
        assert!(
            crate::with_model!(&b.model, m => stability_at(m, &b.optimizer, &[0.0, 2.0])).is_none()
        );
    }
}
