//! The simulated noise against its exact covariance.
//!
//! For each noise model, `M = 40_000` draws of `xi = g - grad L` at a fixed point; the
//! empirical mean must be within 5 standard errors of 0 and every empirical covariance entry
//! within 5 standard errors of `Sigma_ij`, the standard error of entry `(i, j)` estimated from
//! the draws as `sd(xi_i xi_j) / sqrt(M)`. (A wrong factor such as `B` vs `B - 1` or a missing
//! term moves some entry by far more than 5 standard errors at this `M`.)

use super::*;
use crate::engine::rng;
use crate::model::{Profile, Valley};

const M: usize = 40_000;

fn check<Mo: Model>(model: &Mo, noise: &NoiseModel, theta: &[f64]) {
    let d = model.dim();
    let mut g_full = vec![0.0; d];
    derivatives::gradient(model, theta, &mut g_full);
    let sigma = noise.covariance(model, theta);
    let mut r = rng::stream(42, 0, 0);
    let mut ws = noise.workspace(model);
    let mut g = vec![0.0; d];
    let mut sum = vec![0.0; d];
    let mut prod = DMatrix::<f64>::zeros(d, d);
    let mut prod2 = DMatrix::<f64>::zeros(d, d);
    for _ in 0..M {
        noise.stochastic_gradient(model, theta, &mut r, &mut ws, &mut g);
        for i in 0..d {
            let xi = g[i] - g_full[i];
            sum[i] += xi;
            for j in 0..d {
                let p = xi * (g[j] - g_full[j]);
                prod[(i, j)] += p;
                prod2[(i, j)] += p * p;
            }
        }
    }
    let m = M as f64;
    for i in 0..d {
        let mean = sum[i] / m;
        let se = (sigma[(i, i)] / m).sqrt();
        assert!(
            mean.abs() <= 5.0 * se + 1e-12,
            "{}: mean[{i}] = {mean}, se {se}",
            noise.name()
        );
        for j in 0..d {
            // E[xi_i xi_j] (the mean is 0 exactly, so no centring is needed).
            let c = prod[(i, j)] / m;
            let var = (prod2[(i, j)] / m - c * c).max(0.0);
            let se = (var / m).sqrt();
            assert!(
                (c - sigma[(i, j)]).abs() <= 5.0 * se + 1e-12,
                "{}: cov[{i},{j}] empirical {c} vs exact {} (se {se})",
                noise.name(),
                sigma[(i, j)]
            );
        }
    }
}

fn valley() -> (Valley, Vec<f64>) {
    let m =
        Valley::new(vec![1.0, 2.0, 0.5, 1.5], 2, Profile::Quadratic, 0.8).with_random_rotation(4);
    let th = m.to_theta(&[0.3, -0.2, 0.5, 0.1, 1.0, -0.5]);
    (m, th)
}

#[test]
fn label_noise_full_batch() {
    let (m, th) = valley();
    check(
        &m,
        &NoiseModel::Label {
            sigma: 0.7,
            batch: None,
        },
        &th,
    );
}

#[test]
fn label_noise_with_minibatch() {
    let (m, th) = valley();
    check(
        &m,
        &NoiseModel::Label {
            sigma: 0.7,
            batch: Some(2),
        },
        &th,
    );
}

#[test]
fn minibatch_sampling() {
    let (m, th) = valley();
    check(
        &m,
        &NoiseModel::Label {
            sigma: 0.0,
            batch: Some(3),
        },
        &th,
    );
    check(
        &m,
        &NoiseModel::Label {
            sigma: 0.0,
            batch: Some(1),
        },
        &th,
    );
}

#[test]
fn gaussian_noises() {
    let (m, th) = valley();
    check(
        &m,
        &NoiseModel::Isotropic {
            sigma: 0.5,
            batch: 4,
        },
        &th,
    );
    // Near the manifold H is positive semi-definite, so the sampled positive part is H.
    let th0 = m.to_theta(&[0.0, 0.0, 0.0, 0.0, 1.0, -0.5]);
    check(
        &m,
        &NoiseModel::Hessian {
            sigma: 0.5,
            batch: 2,
        },
        &th0,
    );
    let a = DMatrix::from_fn(6, 6, |i, j| ((i * 3 + j * 5) as f64).sin());
    check(&m, &NoiseModel::fixed(&a * a.transpose() * 0.1), &th);
}

/// On the interpolating manifold label noise is `(sigma^2 / B) H` (docs/theory.md section 6).
#[test]
fn label_noise_is_hessian_shaped_on_manifold() {
    let m = Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Sin2, 0.8).with_random_rotation(2);
    let th = m.to_theta(&[0.0, 0.0, 0.0, 0.4, 1.2]);
    let h = derivatives::hessian(&m, &th);
    let n = m.n_samples() as f64;
    let s = NoiseModel::Label {
        sigma: 0.3,
        batch: None,
    }
    .covariance(&m, &th);
    let err = (&s - &h * (0.09 / n)).abs().max();
    assert!(err < 1e-14, "{err}");
}
