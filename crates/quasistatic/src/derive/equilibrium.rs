//! The normal equilibrium `S` (docs/theory.md sections 3, 4, 5): the stationary covariance of the
//! linear normal recursion, solved per eigen-pair of `H` on `N`.
//!
//! In the eigenbasis `V` of `H` on `N` (`H = V diag(lambda) V^T`), with `Sig~ = V^T Sigma V`,
//! the Lyapunov equation is elementwise:
//!
//! - **SGD** (`u' = (I - eta H) u - eta xi`), exact: `S~_ij = eta Sig~_ij / (lambda_i + lambda_j
//!   - eta lambda_i lambda_j)`; stable iff `eta lambda_max < 2`.
//! - **Heavy ball** (`buf' = beta buf + g; theta -= eta buf`), exact (`c_i = 1 + beta - eta
//!   lambda_i`): `S~_ij = eta^2 Sig~_ij / [(1 - c_i c_j - beta^2) + beta (c_i^2 + c_j^2 - 2 beta
//!   c_i c_j) / (1 - beta^2)]`; stable iff `eta lambda_max < 2 (1 + beta)`.
//! - **Nesterov** (`buf' = beta buf + g; theta -= eta (g + beta buf')`): per eigen-pair the state
//!   `z = (u, buf)` follows `z' = A z + b xi` with
//!   `A = [[1 - eta (1 + beta) lambda, -eta beta^2], [lambda, beta]]`, `b = (-eta (1 + beta), 1)`;
//!   the cross-covariance `X_ij = A_i X_ij A_j^T + b b^T Sig~_ij` is a 4 x 4 linear system
//!   (`(I - A_j (x) A_i) vec X = vec(b b^T)`), and `S~_ij = X_ij[0, 0]`. Stable iff
//!   `eta lambda_max < 2 (1 + beta) / (1 + 2 beta)` (Jury conditions: `1 + tr A + det A > 0`).
//! - **Leading order** (all three): `L_H(S) = H S + S H = eta_eff P_N Sigma P_N`,
//!   `S~_ij = eta_eff Sig~_ij / (lambda_i + lambda_j)`, `eta_eff = eta / (1 - beta)`.
//!
//! Adam and RMSProp reuse these in the preconditioned coordinates `w = D^{-1/2} theta` (heavy
//! ball with rate `eta (1 - beta1)` and momentum `beta1`; SGD with rate `eta`), see
//! [`super::adam`]. Units: `S` is a covariance of parameters (no time unit).

use nalgebra::{DMatrix, Matrix2, Matrix4, Vector2, Vector4};
use serde::Serialize;

use crate::{Error, Result};

/// The linear normal recursion of a (possibly preconditioned) momentum method.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NormalDynamics {
    /// `u' = u - lr (H u + xi)`.
    Sgd {
        /// Learning rate per step.
        lr: f64,
    },
    /// Heavy ball, library convention.
    HeavyBall {
        /// Learning rate per step.
        lr: f64,
        /// Momentum `beta`.
        beta: f64,
    },
    /// Nesterov, library convention.
    Nesterov {
        /// Learning rate per step.
        lr: f64,
        /// Momentum `beta`.
        beta: f64,
    },
}

impl NormalDynamics {
    /// Learning rate of the recursion.
    pub fn lr(&self) -> f64 {
        match *self {
            NormalDynamics::Sgd { lr }
            | NormalDynamics::HeavyBall { lr, .. }
            | NormalDynamics::Nesterov { lr, .. } => lr,
        }
    }

    /// Momentum (0 for SGD).
    pub fn beta(&self) -> f64 {
        match *self {
            NormalDynamics::Sgd { .. } => 0.0,
            NormalDynamics::HeavyBall { beta, .. } | NormalDynamics::Nesterov { beta, .. } => beta,
        }
    }

    /// `eta_eff = lr / (1 - beta)`: the rate of the equivalent SGD at leading order.
    pub fn eta_eff(&self) -> f64 {
        self.lr() / (1.0 - self.beta())
    }

    /// The stability bound on `lr * lambda_max`: 2, `2 (1 + beta)`, `2 (1 + beta) / (1 + 2 beta)`.
    pub fn stability_bound(&self) -> f64 {
        match *self {
            NormalDynamics::Sgd { .. } => 2.0,
            NormalDynamics::HeavyBall { beta, .. } => 2.0 * (1.0 + beta),
            NormalDynamics::Nesterov { beta, .. } => 2.0 * (1.0 + beta) / (1.0 + 2.0 * beta),
        }
    }

    /// Short name of the bound for messages.
    fn bound_text(&self) -> &'static str {
        match self {
            NormalDynamics::Sgd { .. } => "2",
            NormalDynamics::HeavyBall { .. } => "2 (1 + beta)",
            NormalDynamics::Nesterov { .. } => "2 (1 + beta) / (1 + 2 beta)",
        }
    }

    /// Error unless `lr * lambda_max` is below [`NormalDynamics::stability_bound`].
    pub fn check_stability(&self, lambda_max: f64) -> Result<()> {
        let x = self.lr() * lambda_max;
        let bound = self.stability_bound();
        if x.is_nan() || x >= bound {
            return Err(Error::Numerical(format!(
                "no stable normal equilibrium: lr * lambda_max = {} * {lambda_max:.6e} = {x:.6e} >= {} = {bound:.6} \
                 (the normal oscillation grows; reduce the learning rate)",
                self.lr(),
                self.bound_text()
            )));
        }
        Ok(())
    }

    /// The per-eigenvalue transition `(A, b)` of the state `(u, buf)` (SGD: `buf` unused).
    pub fn transition(&self, lambda: f64) -> (Matrix2<f64>, Vector2<f64>) {
        match *self {
            NormalDynamics::Sgd { lr } => (
                Matrix2::new(1.0 - lr * lambda, 0.0, 0.0, 0.0),
                Vector2::new(-lr, 0.0),
            ),
            NormalDynamics::HeavyBall { lr, beta } => (
                Matrix2::new(1.0 - lr * lambda, -lr * beta, lambda, beta),
                Vector2::new(-lr, 1.0),
            ),
            NormalDynamics::Nesterov { lr, beta } => (
                Matrix2::new(
                    1.0 - lr * (1.0 + beta) * lambda,
                    -lr * beta * beta,
                    lambda,
                    beta,
                ),
                Vector2::new(-lr * (1.0 + beta), 1.0),
            ),
        }
    }

    /// Exact discrete-time equilibrium `S~` (`r x r`, in the eigenbasis) for normal
    /// curvatures `lambda` (descending) and normal noise block `Sig~`.
    pub fn exact(&self, curvatures: &[f64], sigma_normal: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        self.check_stability(curvatures[0])?;
        let r = curvatures.len();
        let mut s = DMatrix::zeros(r, r);
        match *self {
            NormalDynamics::Sgd { lr } => {
                for j in 0..r {
                    for i in 0..r {
                        let (li, lj) = (curvatures[i], curvatures[j]);
                        s[(i, j)] = lr * sigma_normal[(i, j)] / (li + lj - lr * li * lj);
                    }
                }
            }
            NormalDynamics::HeavyBall { lr, beta } => {
                for j in 0..r {
                    for i in 0..r {
                        let ci = 1.0 + beta - lr * curvatures[i];
                        let cj = 1.0 + beta - lr * curvatures[j];
                        let den = (1.0 - ci * cj - beta * beta)
                            + beta * (ci * ci + cj * cj - 2.0 * beta * ci * cj)
                                / (1.0 - beta * beta);
                        s[(i, j)] = lr * lr * sigma_normal[(i, j)] / den;
                    }
                }
            }
            NormalDynamics::Nesterov { .. } => {
                let tr: Vec<_> = curvatures.iter().map(|&l| self.transition(l)).collect();
                for j in 0..r {
                    for i in j..r {
                        let unit = pair_lyapunov(&tr[i], &tr[j])?;
                        s[(i, j)] = unit * sigma_normal[(i, j)];
                        s[(j, i)] = unit * sigma_normal[(j, i)];
                    }
                }
            }
        }
        Ok((&s + s.transpose()) * 0.5)
    }

    /// Leading-order equilibrium `S~_ij = eta_eff Sig~_ij / (lambda_i + lambda_j)`.
    pub fn leading(&self, curvatures: &[f64], sigma_normal: &DMatrix<f64>) -> DMatrix<f64> {
        let e = self.eta_eff();
        let r = curvatures.len();
        let s = DMatrix::from_fn(r, r, |i, j| {
            e * sigma_normal[(i, j)] / (curvatures[i] + curvatures[j])
        });
        (&s + s.transpose()) * 0.5
    }
}

/// `X[0, 0]` of the stationary cross-covariance `X = A_i X A_j^T + b_i b_j^T` (unit noise).
pub fn pair_lyapunov(
    ti: &(Matrix2<f64>, Vector2<f64>),
    tj: &(Matrix2<f64>, Vector2<f64>),
) -> Result<f64> {
    let (ai, bi) = ti;
    let (aj, bj) = tj;
    // vec (column-major) of A_i X A_j^T is (A_j kron A_i) vec X.
    let mut k = Matrix4::identity();
    for p in 0..2 {
        for q in 0..2 {
            for a in 0..2 {
                for b in 0..2 {
                    k[(2 * p + a, 2 * q + b)] -= aj[(p, q)] * ai[(a, b)];
                }
            }
        }
    }
    let rhs = Vector4::new(bi[0] * bj[0], bi[1] * bj[0], bi[0] * bj[1], bi[1] * bj[1]);
    let x = k.lu().solve(&rhs).ok_or_else(|| {
        Error::Numerical("normal Lyapunov equation is singular (marginal stability)".into())
    })?;
    Ok(x[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    /// docs/theory.md section 4's closed form equals the generic 4 x 4 pair solver (1e-12 relative),
    /// and beta = 0 equals SGD's formula.
    #[test]
    fn heavy_ball_closed_form_equals_pair_solver() {
        let lams = [2.0, 0.7, 0.05];
        let sig = DMatrix::from_fn(3, 3, |i, j| if i == j { 1.0 + i as f64 } else { 0.3 });
        for (lr, beta) in [(0.1, 0.9), (0.3, 0.5), (0.01, 0.0)] {
            let hb = NormalDynamics::HeavyBall { lr, beta };
            let s = hb.exact(&lams, &sig).unwrap();
            for i in 0..3 {
                for j in 0..3 {
                    let u =
                        pair_lyapunov(&hb.transition(lams[i]), &hb.transition(lams[j])).unwrap();
                    let g = u * sig[(i, j)];
                    assert!(
                        (s[(i, j)] - g).abs() < 1e-10 * g.abs(),
                        "{lr} {beta}: {} vs {g}",
                        s[(i, j)]
                    );
                }
            }
        }
        let s0 = NormalDynamics::HeavyBall { lr: 0.2, beta: 0.0 }
            .exact(&lams, &sig)
            .unwrap();
        let s1 = NormalDynamics::Sgd { lr: 0.2 }.exact(&lams, &sig).unwrap();
        assert!((s0 - s1).abs().max() < 1e-14);
        // One dimension: S = eta^2 s^2 (1 + beta) / ((1 - beta) a (2 (1 + beta) - a)), a = eta lambda.
        let (eta, beta, lam, s2) = (0.05, 0.8, 3.0, 0.7);
        let a = eta * lam;
        let want = eta * eta * s2 * (1.0 + beta) / ((1.0 - beta) * a * (2.0 * (1.0 + beta) - a));
        let got = NormalDynamics::HeavyBall { lr: eta, beta }
            .exact(&[lam], &DMatrix::from_element(1, 1, s2))
            .unwrap();
        assert!((got[(0, 0)] - want).abs() < 1e-13 * want);
    }

    /// Nesterov's exact variance against a long simulation of the scalar recursion
    /// (`lambda = 2`, `lr = 0.2`, `beta = 0.6`, unit noise; 4 x 10^6 steps after 10^3 burn-in).
    /// The tolerance, 3%, is about 5 standard errors of the time average (the autocorrelation
    /// time is a few steps).
    #[test]
    fn nesterov_variance_matches_simulation() {
        let (lr, beta, lam) = (0.2, 0.6, 2.0);
        let nes = NormalDynamics::Nesterov { lr, beta };
        let s = nes
            .exact(&[lam], &DMatrix::from_element(1, 1, 1.0))
            .unwrap()[(0, 0)];
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(17);
        let (mut u, mut buf) = (0.0f64, 0.0f64);
        let (mut acc, mut count) = (0.0, 0.0);
        for k in 0..4_001_000 {
            let xi: f64 = StandardNormal.sample(&mut rng);
            let g = lam * u + xi;
            buf = beta * buf + g;
            u -= lr * (g + beta * buf);
            if k >= 1000 {
                acc += u * u;
                count += 1.0;
            }
        }
        let emp = acc / count;
        assert!((emp / s - 1.0).abs() < 0.03, "simulated {emp} vs exact {s}");
        // And the leading order is close for small lr: S ~ eta_eff / (2 lambda).
        let small = NormalDynamics::Nesterov { lr: 1e-4, beta }
            .exact(&[lam], &DMatrix::from_element(1, 1, 1.0))
            .unwrap()[(0, 0)];
        let lead = 1e-4 / (1.0 - beta) / (2.0 * lam);
        assert!((small / lead - 1.0).abs() < 1e-3);
    }

    /// Stability errors name the bound and the eigenvalue.
    #[test]
    fn instability_is_reported() {
        let sig = DMatrix::from_element(1, 1, 1.0);
        let e = NormalDynamics::Sgd { lr: 1.0 }
            .exact(&[2.5], &sig)
            .unwrap_err()
            .to_string();
        assert!(e.contains(">= 2") && e.contains("2.5"), "{e}");
        let e = NormalDynamics::HeavyBall { lr: 1.0, beta: 0.5 }
            .exact(&[3.5], &sig)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 (1 + beta)"), "{e}");
        assert!(NormalDynamics::HeavyBall { lr: 1.0, beta: 0.5 }
            .exact(&[2.9], &sig)
            .is_ok());
        let nes = NormalDynamics::Nesterov { lr: 1.0, beta: 0.5 };
        assert!((nes.stability_bound() - 1.5).abs() < 1e-15);
        assert!(nes.exact(&[1.49], &sig).is_ok());
        assert!(nes.exact(&[1.51], &sig).is_err());
    }
}
