//! Tests of the derivation against independent values: docs/theory.md's closed forms, symmetry,
//! limits, the dense path, and simulation of the true optimizer.

#![allow(clippy::needless_range_loop)]

use super::*;
use crate::model::{Profile, Scalar, Valley};
use crate::optim::{Adam, HeavyBall, Nesterov, RmsProp, Schedule, Sgd};

fn sgd(eta: f64) -> AnyOptimizer {
    AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(eta),
    })
}
fn heavy_ball(eta: f64, beta: f64) -> AnyOptimizer {
    AnyOptimizer::HeavyBall(HeavyBall {
        lr: Schedule::Constant(eta),
        beta,
        weight_decay: 0.0,
    })
}
fn adam(eta: f64, beta1: f64, beta2: f64, eps: f64) -> AnyOptimizer {
    AnyOptimizer::Adam(Adam {
        lr: Schedule::Constant(eta),
        beta1,
        beta2,
        eps,
        weight_decay: 0.0,
    })
}
fn label(sigma: f64) -> NoiseModel {
    NoiseModel::Label { sigma, batch: None }
}
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// docs/theory.md's product model `f = theta_1 theta_2`, target 1 (written here so the tests do not
/// depend on the models branch).
struct Product;
impl Model for Product {
    fn name(&self) -> &'static str {
        "test_product"
    }
    fn dim(&self) -> usize {
        2
    }
    fn n_samples(&self) -> usize {
        1
    }
    fn targets(&self) -> &[f64] {
        &[1.0]
    }
    fn output_and_grad<D: Scalar>(&self, t: &[D], _i: usize, g: &mut [D]) -> D {
        g[0] = t[1];
        g[1] = t[0];
        t[0] * t[1]
    }
    fn default_start(&self) -> Vec<f64> {
        vec![2.0, 0.5]
    }
    fn loss_min(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// A small diagonal linear network `f_i = sum_j (u_j^2 - v_j^2) x_ij` on fixed data
/// (`p = 5`, `n = 3`, `d = 10`).
struct Diagonal {
    x: Vec<f64>,
    y: Vec<f64>,
    p: usize,
}
impl Diagonal {
    fn new() -> Self {
        let p = 5;
        let x: Vec<f64> = (0..15)
            .map(|k| ((k * 7 % 11) as f64 - 5.0) / 4.0 + 0.1 * k as f64)
            .collect();
        let w = [1.0, -0.5, 0.0, 0.0, 0.0];
        let y = (0..3)
            .map(|i| (0..p).map(|j| w[j] * x[i * p + j]).sum())
            .collect();
        Self { x, y, p }
    }
}
impl Model for Diagonal {
    fn name(&self) -> &'static str {
        "test_diagonal"
    }
    fn dim(&self) -> usize {
        2 * self.p
    }
    fn n_samples(&self) -> usize {
        self.y.len()
    }
    fn targets(&self) -> &[f64] {
        &self.y
    }
    fn output_and_grad<D: Scalar>(&self, t: &[D], i: usize, g: &mut [D]) -> D {
        let p = self.p;
        let mut f = D::from(0.0);
        for j in 0..p {
            let xij = self.x[i * p + j];
            let (u, v) = (t[j], t[p + j]);
            f += (u * u - v * v) * xij;
            g[j] = u * (2.0 * xij);
            g[p + j] = v * (-2.0 * xij);
        }
        f
    }
    fn default_start(&self) -> Vec<f64> {
        vec![1.1, 0.4, 0.5, 0.3, 0.6, 0.2, 0.8, 0.45, 0.35, 0.5]
    }
    fn loss_min(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// docs/theory.md section 7, SGD with label noise on `a(y) = 1 + y^2`: exact
/// `S = eta sigma^2 / (2 - eta a)` and `b_y = -eta^2 sigma^2 a'(y) / (2 (2 - eta a))`, at
/// several `(eta, sigma, y)`, to 1e-10 relative; `b_x = 0` to 1e-14.
#[test]
fn valley_sgd_matches_theory() {
    let m = Valley::planar(Profile::Quadratic, 1.0);
    for &(eta, sigma, y) in &[
        (0.1, 1.0, 1.5),
        (0.01, 0.5, -0.7),
        (0.3, 2.0, 0.4),
        (0.05, 1.0, 2.5),
    ] {
        let out = derive(
            &m,
            &label(sigma),
            &sgd(eta),
            &[0.0, y],
            &DeriveOptions::default(),
        )
        .unwrap();
        let a = 1.0 + y * y;
        let s = eta * sigma * sigma / (2.0 - eta * a);
        let b = -eta * eta * sigma * sigma * 2.0 * y / (2.0 * (2.0 - eta * a));
        assert!(
            rel(out.equilibrium.exact.trace, s) < 1e-10,
            "S {} vs {s}",
            out.equilibrium.exact.trace
        );
        assert!(
            rel(out.drift_per_step[1], b) < 1e-10,
            "b_y {} vs {b}",
            out.drift_per_step[1]
        );
        assert!(out.drift_per_step[0].abs() < 1e-14);
        assert!(rel(out.drift_per_slow_time[1], b / (eta * eta)) < 1e-10);
        // Label noise has no tangent block: no cross term, no tangent noise.
        assert!(out.drift_cross_per_step.iter().all(|x| *x == 0.0));
        assert!(out.tangent_noise.trace_per_step.abs() < 1e-14);
        // The manifold coordinate of the valley is y itself.
        assert!(rel(out.drift_manifold_coordinates.as_ref().unwrap()[0], b) < 1e-6);
    }
}

/// docs/theory.md section 4, heavy ball on the valley: `S = eta^2 s^2 (1+beta) / ((1-beta) a (2(1+beta)
/// - a))`, `a = eta lambda`, `s^2 = sigma^2 lambda`, drift `-(eta/(1-beta)) 1/2 a'(y) S`; 1e-10.
#[test]
fn valley_heavy_ball_matches_theory() {
    let m = Valley::planar(Profile::Quadratic, 1.0);
    for &(eta, beta, sigma, y) in &[
        (0.05, 0.9, 1.0, 1.5),
        (0.2, 0.5, 0.7, -0.3),
        (0.01, 0.99, 1.0, 1.0),
    ] {
        let out = derive(
            &m,
            &label(sigma),
            &heavy_ball(eta, beta),
            &[0.0, y],
            &DeriveOptions::default(),
        )
        .unwrap();
        let lam = 1.0 + y * y;
        let a = eta * lam;
        let s2 = sigma * sigma * lam;
        let s = eta * eta * s2 * (1.0 + beta) / ((1.0 - beta) * a * (2.0 * (1.0 + beta) - a));
        let b = -(eta / (1.0 - beta)) * 0.5 * 2.0 * y * s;
        assert!(rel(out.equilibrium.exact.trace, s) < 1e-10);
        assert!(
            rel(out.drift_per_step[1], b) < 1e-10,
            "{} vs {b}",
            out.drift_per_step[1]
        );
    }
}

/// Product model with label noise (`c = sigma^2`, full batch of one sample): at leading order
/// SGD's drift is `-(eta^2 c / 4) P_T grad tr H` with `tr H = theta_1^2 + theta_2^2` and
/// `P_T` the projection orthogonal to `(theta_2, theta_1)` (1e-10 relative), and its cosine
/// with the `tr H` direction is 1 (1e-12).
#[test]
fn product_sgd_descends_trace_hessian() {
    check_product_sgd(&Product);
    check_product_sgd(&crate::model::ProductModel::scalar(2, 1.0));
}

fn check_product_sgd<M: Model>(model: &M) {
    for &(t, sigma, eta) in &[(2.0, 1.0, 0.01), (0.7, 0.5, 0.1), (-1.6, 1.3, 0.02)] {
        let phi = [t, 1.0 / t];
        let out = derive(
            model,
            &label(sigma),
            &sgd(eta),
            &phi,
            &DeriveOptions::default(),
        )
        .unwrap();
        let n = [phi[1], phi[0]];
        let nn = n[0] * n[0] + n[1] * n[1];
        let g = [2.0 * phi[0], 2.0 * phi[1]];
        let gn = (g[0] * n[0] + g[1] * n[1]) / nn;
        let pt = [g[0] - gn * n[0], g[1] - gn * n[1]];
        let c = sigma * sigma;
        for k in 0..2 {
            let want = -(eta * eta * c / 4.0) * pt[k];
            let got = out.drift_per_step_leading[k];
            assert!(
                (got - want).abs() < 1e-10 * want.abs().max(1e-6 * eta * eta),
                "{got} vs {want}"
            );
        }
        let cos = out.regularisers[0].cosine.unwrap();
        assert!((cos - 1.0).abs() < 1e-12, "cosine {cos}");
    }
}

/// Product model, Adam with label noise, `eps = 1e-12`, small `eta`: the drift is section 5's
/// `-(eta^2 sqrt(c) / 2) D^{1/2} P~_T D^{1/2} grad tr(diag(H)^{1/2})` with `diag H = (theta_2^2,
/// theta_1^2)`, `D = diag(1/sqrt(c H_kk))`, `grad = (sign theta_1, sign theta_2)` and `P~_T`
/// orthogonal to `D^{1/2} (theta_2, theta_1)`. The remaining terms of `v` are `O(eta)`:
/// tolerance 1e-3 relative at `eta = 1e-4`.
#[test]
fn product_adam_descends_sqrt_diag_hessian() {
    check_product_adam(&Product);
    check_product_adam(&crate::model::ProductModel::scalar(2, 1.0));
}

fn check_product_adam<M: Model>(model: &M) {
    for &(t, sigma, beta1) in &[(2.0, 1.0, 0.9), (0.6, 0.5, 0.0), (-1.5, 1.0, 0.5)] {
        let eta = 1e-4;
        let phi = [t, 1.0 / t];
        let out = derive(
            model,
            &label(sigma),
            &adam(eta, beta1, 0.999, 1e-12),
            &phi,
            &DeriveOptions::default(),
        )
        .unwrap();
        let c = sigma * sigma;
        let dh = [
            (1.0 / (c.sqrt() * phi[1].abs())).sqrt(),
            (1.0 / (c.sqrt() * phi[0].abs())).sqrt(),
        ];
        let n = [dh[0] * phi[1], dh[1] * phi[0]];
        let nn = n[0] * n[0] + n[1] * n[1];
        let g = [dh[0] * phi[0].signum(), dh[1] * phi[1].signum()];
        let gn = (g[0] * n[0] + g[1] * n[1]) / nn;
        let want: Vec<f64> = (0..2)
            .map(|k| -(eta * eta * c.sqrt() / 2.0) * dh[k] * (g[k] - gn * n[k]))
            .collect();
        let scale = want[0].abs().max(want[1].abs());
        for k in 0..2 {
            assert!(
                (out.drift_per_step[k] - want[k]).abs() < 1e-3 * scale,
                "{:?} vs {want:?}",
                out.drift_per_step
            );
        }
        let cos = out.regularisers[1].cosine.unwrap();
        assert!((cos - 1.0).abs() < 1e-6, "cosine {cos}");
        let pc = out.preconditioner.as_ref().unwrap();
        assert!(rel(pc.v[0], c * phi[1] * phi[1]) < 1e-3, "v {:?}", pc.v);
    }
}

/// SGD is rotation equivariant: the drift on the valley rotated by an angle is the rotated
/// drift (1e-10 absolute, drifts of order 1e-2). Adam is not: its drift speed at angle 0
/// (axis-aligned manifold) exceeds the one at 45 degrees by more than a factor 10.
#[test]
fn rotation_equivariance() {
    let base = Valley::planar(Profile::Quadratic, 1.0);
    let b0 = derive(
        &base,
        &label(1.0),
        &sgd(0.1),
        &[0.0, 1.5],
        &DeriveOptions::default(),
    )
    .unwrap();
    for angle in [0.3, std::f64::consts::FRAC_PI_4, 2.0] {
        let m = Valley::planar(Profile::Quadratic, 1.0).with_angle(angle);
        let out = derive(
            &m,
            &label(1.0),
            &sgd(0.1),
            &m.to_theta(&[0.0, 1.5]),
            &DeriveOptions::default(),
        )
        .unwrap();
        let want = m.to_theta(&b0.drift_per_step);
        for k in 0..2 {
            assert!((out.drift_per_step[k] - want[k]).abs() < 1e-10);
        }
    }
    let speed = |angle: f64| {
        let m = Valley::planar(Profile::Quadratic, 1.0).with_angle(angle);
        let out = derive(
            &m,
            &label(1.0),
            &adam(0.01, 0.9, 0.999, 1e-8),
            &m.to_theta(&[0.0, 1.5]),
            &DeriveOptions::default(),
        )
        .unwrap();
        norm(&out.drift_per_step)
    };
    let (s0, s45) = (speed(0.0), speed(std::f64::consts::FRAC_PI_4));
    assert!(
        s0 > 10.0 * s45,
        "Adam speed at 0: {s0:.3e}, at 45 degrees: {s45:.3e}"
    );
}

/// Heavy ball at small `eta` is SGD at `eta / (1 - beta)`: relative 1e-2 at `eta = 1e-4`,
/// `beta = 0.9` (valley and product model).
#[test]
fn heavy_ball_is_sgd_with_effective_rate() {
    let (eta, beta) = (1e-4, 0.9);
    let v = Valley::planar(Profile::Quadratic, 1.0);
    let hb = derive(
        &v,
        &label(1.0),
        &heavy_ball(eta, beta),
        &[0.0, 1.2],
        &DeriveOptions::default(),
    )
    .unwrap();
    let sg = derive(
        &v,
        &label(1.0),
        &sgd(eta / (1.0 - beta)),
        &[0.0, 1.2],
        &DeriveOptions::default(),
    )
    .unwrap();
    assert!(rel(hb.drift_per_step[1], sg.drift_per_step[1]) < 1e-2);
    let hb = derive(
        &Product,
        &label(1.0),
        &heavy_ball(eta, beta),
        &[1.7, 0.6],
        &DeriveOptions::default(),
    )
    .unwrap();
    let sg = derive(
        &Product,
        &label(1.0),
        &sgd(eta / (1.0 - beta)),
        &[1.7, 0.6],
        &DeriveOptions::default(),
    )
    .unwrap();
    for k in 0..2 {
        assert!(rel(hb.drift_per_step[k], sg.drift_per_step[k]) < 1e-2);
    }
}

/// Exact and leading-order `S` agree as `eta -> 0` with a difference `O(eta lambda)`: halving
/// `eta` halves the relative difference (ratio in [1.9, 2.1]) for SGD, heavy ball and Nesterov.
#[test]
fn exact_and_leading_converge_linearly() {
    let m = Valley::new(vec![1.0, 3.0], 1, Profile::Quadratic, 1.0).with_random_rotation(2);
    let phi = m.to_theta(&[0.0, 0.0, 0.8]);
    let nesterov = |eta: f64| {
        AnyOptimizer::Nesterov(Nesterov {
            lr: Schedule::Constant(eta),
            beta: 0.5,
            weight_decay: 0.0,
        })
    };
    for make in [
        sgd as fn(f64) -> AnyOptimizer,
        |e| heavy_ball(e, 0.7),
        nesterov,
    ] {
        let diff = |eta: f64| {
            derive(
                &m,
                &NoiseModel::Isotropic {
                    sigma: 1.0,
                    batch: 1,
                },
                &make(eta),
                &phi,
                &DeriveOptions::default(),
            )
            .unwrap()
            .equilibrium
            .relative_difference
        };
        let ratio = diff(0.01) / diff(0.005);
        assert!((ratio - 2.0).abs() < 0.1, "ratio {ratio}");
    }
}

/// Heavy ball with `beta = 0` is SGD and Adam with `beta1 = 0` is RMSProp (identical drift,
/// 1e-14 relative).
#[test]
fn optimizer_special_cases_agree() {
    let m = Valley::planar(Profile::Quadratic, 1.0).with_angle(0.5);
    let phi = m.to_theta(&[0.0, 1.1]);
    let o = DeriveOptions::default();
    let a = derive(&m, &label(1.0), &heavy_ball(0.05, 0.0), &phi, &o).unwrap();
    let b = derive(&m, &label(1.0), &sgd(0.05), &phi, &o).unwrap();
    let rms = AnyOptimizer::RmsProp(RmsProp {
        lr: Schedule::Constant(0.01),
        alpha: 0.99,
        eps: 1e-8,
        bias_correction: true,
    });
    let c = derive(&m, &label(1.0), &adam(0.01, 0.0, 0.99, 1e-8), &phi, &o).unwrap();
    let d = derive(&m, &label(1.0), &rms, &phi, &o).unwrap();
    for k in 0..2 {
        assert!(rel(a.drift_per_step[k], b.drift_per_step[k]) < 1e-14);
        assert!(rel(c.drift_per_step[k], d.drift_per_step[k]) < 1e-14);
    }
}

/// The low-rank Jacobian path equals the dense path (drift, S, cosines; 1e-8 relative) on a
/// rotated valley with `p = 3` normal directions (`n = 3` samples) and on a diagonal network
/// (`d = 10`, `n = 3`), for SGD, Adam and isotropic noise.
#[test]
fn low_rank_path_matches_dense() {
    let valley =
        Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Quadratic, 0.8).with_random_rotation(21);
    let vphi = valley.to_theta(&[0.0, 0.0, 0.0, 0.7, -0.4]);
    let diag = Diagonal::new();
    // Project once, so that both paths start on the same manifold point (their finishers,
    // Newton and Gauss-Newton, agree only to second order in the distance at the switch).
    let dphi = crate::manifold::project(&diag, &diag.default_start(), &Default::default())
        .unwrap()
        .point;
    let cases: Vec<(AnyOptimizer, NoiseModel)> = vec![
        (sgd(0.02), label(1.0)),
        (
            heavy_ball(0.01, 0.9),
            NoiseModel::Isotropic {
                sigma: 0.5,
                batch: 1,
            },
        ),
        (adam(1e-3, 0.9, 0.999, 1e-8), label(1.0)),
    ];
    let dense = DeriveOptions {
        path: PathChoice::Dense,
        ..Default::default()
    };
    let low = DeriveOptions {
        path: PathChoice::LowRank,
        ..Default::default()
    };
    let check = |a: &Derivation, b: &Derivation| {
        let scale = norm(&a.drift_per_step);
        for k in 0..a.drift_per_step.len() {
            assert!(
                (a.drift_per_step[k] - b.drift_per_step[k]).abs() < 1e-8 * scale,
                "{} drift",
                a.model
            );
        }
        assert!(rel(b.equilibrium.exact.trace, a.equilibrium.exact.trace) < 1e-8);
        assert!(
            rel(
                b.tangent_noise.trace_per_step + 1.0,
                a.tangent_noise.trace_per_step + 1.0
            ) < 1e-8
        );
        let (ca, cb) = (
            a.regularisers[0].cosine.unwrap(),
            b.regularisers[0].cosine.unwrap(),
        );
        assert!((ca - cb).abs() < 1e-8, "cosines {ca} vs {cb}");
    };
    for (opt, noise) in &cases {
        let a = derive(&valley, noise, opt, &vphi, &dense).unwrap();
        let b = derive(&valley, noise, opt, &vphi, &low).unwrap();
        assert_eq!(b.geometry.path, GeometryPath::LowRank);
        check(&a, &b);
        let a = derive(&diag, noise, opt, &dphi, &dense).unwrap();
        let b = derive(&diag, noise, opt, &dphi, &low).unwrap();
        assert_eq!(a.geometry.normal_rank, 3);
        check(&a, &b);
    }
}

/// Instability and weight decay are refused with messages naming the bound / the field.
#[test]
fn refusals() {
    let m = Valley::planar(Profile::Quadratic, 1.0);
    let e = derive(
        &m,
        &label(1.0),
        &sgd(1.0),
        &[0.0, 1.5],
        &DeriveOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("lambda_max") && e.contains(">= 2"), "{e}");
    let hb = AnyOptimizer::HeavyBall(HeavyBall {
        lr: Schedule::Constant(0.1),
        beta: 0.9,
        weight_decay: 0.01,
    });
    let e = derive(&m, &label(1.0), &hb, &[0.0, 1.5], &DeriveOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("weight_decay"), "{e}");
}

/// The derived drift predicts the true mean drift of SGD on the valley (`a = 1 + y^2`, label
/// noise `sigma = 1`, `eta = 0.05`), `N = 4000` trajectories from `(0, 1.5)`: after a burn-in
/// of 40 steps (normal relaxation time 1/(eta a) ~ 6 steps) the mean of `y` over the next
/// 200 steps follows the ODE `dy/dk = b_y(y)` integrated from the measured mean at step 40.
/// Tolerance: 4 Monte-Carlo standard errors of the mean displacement plus 0.5% of the
/// displacement (measured gap: 1e-4 for a displacement of 0.335, SE 5e-4) for the `O(eta)` finite-rate terms beyond the exact `S` (docs/theory.md section 9).
#[test]
fn drift_predicts_simulated_mean_drift() {
    use crate::observe::Observable;
    use crate::simulate::{run_ensemble, EnsembleSpec};
    let m = Valley::planar(Profile::Quadratic, 1.0);
    let eta = 0.05;
    let noise = label(1.0);
    let opt = sgd(eta);
    let (burn, steps, n) = (40u64, 200u64, 4000usize);
    let spec = EnsembleSpec {
        steps: burn + steps,
        record_every: burn,
        trajectories: n,
        seed: 7,
        max_loss: 1e6,
        start: vec![0.0, 1.5],
        observables: vec![Observable::ManifoldCoordinate(0)],
        ..EnsembleSpec::default()
    };
    let AnyOptimizer::Sgd(inner) = &opt else {
        unreachable!()
    };
    let res = run_ensemble(&m, &noise, inner, &spec);
    assert!(res.divergences.is_empty());
    let c0 = res.steps.iter().position(|&s| s == burn).unwrap();
    let c1 = res.steps.iter().position(|&s| s == burn + steps).unwrap();
    let y0 = res.column(c0, 0);
    let y1 = res.column(c1, 0);
    let disp: Vec<f64> = y1.iter().zip(&y0).map(|(a, b)| a - b).collect();
    let mean = disp.iter().sum::<f64>() / n as f64;
    let var = disp.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    // Integrate the derived drift from the measured mean at the end of the burn-in.
    let mut y = y0.iter().sum::<f64>() / n as f64;
    let y_start = y;
    let o = DeriveOptions {
        regularisers: false,
        ..Default::default()
    };
    for _ in 0..steps {
        let b = derive(&m, &noise, &opt, &[0.0, y], &o)
            .unwrap()
            .drift_per_step[1];
        y += b;
    }
    let predicted = y - y_start;
    let tol = 4.0 * se + 0.005 * predicted.abs();
    assert!(
        (mean - predicted).abs() < tol,
        "mean displacement {mean:.5} +- {se:.5} (N = {n}, {steps} steps) vs derived {predicted:.5} (tol {tol:.5})"
    );
}

/// The low-rank path equals the dense path (1e-8) on the models branch's diagonal network
/// (`p = 12`, `n = 5`, sparse teacher, `d = 24`) at its projected default start, SGD and Adam.
#[test]
fn low_rank_path_matches_dense_on_diagonal_network() {
    use crate::data::{generate, SyntheticSpec, Teacher};
    let data = generate(&SyntheticSpec {
        n: 5,
        n_test: 0,
        p: 12,
        teacher: Teacher::Sparse { k: 2, value: 1.0 },
        label_noise: 0.0,
        seed: 4,
    });
    let m = crate::model::DiagonalNetwork::new(data.train, None, data.teacher);
    let phi = crate::manifold::project(&m, &m.default_start(), &Default::default())
        .unwrap()
        .point;
    for opt in [sgd(0.01), adam(1e-3, 0.9, 0.999, 1e-8)] {
        let a = derive(
            &m,
            &label(1.0),
            &opt,
            &phi,
            &DeriveOptions {
                path: PathChoice::Dense,
                ..Default::default()
            },
        )
        .unwrap();
        let b = derive(
            &m,
            &label(1.0),
            &opt,
            &phi,
            &DeriveOptions {
                path: PathChoice::LowRank,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.geometry.normal_rank, 5);
        let scale = norm(&a.drift_per_step);
        for k in 0..m.dim() {
            assert!((a.drift_per_step[k] - b.drift_per_step[k]).abs() < 1e-8 * scale);
        }
        let (ca, cb) = (
            a.regularisers[0].cosine.unwrap(),
            b.regularisers[0].cosine.unwrap(),
        );
        assert!((ca - cb).abs() < 1e-8, "cosines {ca} vs {cb}");
    }
}

/// The tangent-normal cross term against simulation. Product model `f = theta_1 theta_2`
/// (curved manifold) at `phi = (2, 1/2)` with a fixed noise whose covariance couples tangent
/// and normal directions; SGD at eta = 0.05. The cross term is about 45% of the drift and of
/// the opposite sign, so a drift without it is far off. True run: N = 16 000 trajectories
/// started in the exact normal equilibrium, 400 steps; the mean displacement along the tangent
/// per step has a standard error of about 7e-6 (measured) against a drift of ~8.6e-5. The
/// test asks for agreement within 15% (the O(eta lambda) error of the leading order at
/// eta lambda = 0.2) plus 5 standard errors, and for the drift without the cross term to be
/// rejected by more than that.
#[test]
fn cross_term_matches_simulation() {
    use crate::model::ProductModel;
    use crate::noise::psd_sqrt;
    use crate::observe::Observable;
    use crate::simulate::{run_ensemble, EnsembleSpec};
    use nalgebra::DMatrix;
    let m = ProductModel::scalar(2, 1.0);
    let cov = DMatrix::from_row_slice(2, 2, &[0.2, 0.15, 0.15, 0.2]);
    let noise = NoiseModel::fixed(cov);
    let opt = sgd(0.05);
    let phi = [2.0, 0.5];
    let options = DeriveOptions {
        matrices_up_to: 10,
        ..DeriveOptions::default()
    };
    let dv = derive(&m, &noise, &opt, &phi, &options).unwrap();
    // Unit tangent of theta_1 theta_2 = 1 at phi: (theta_1, -theta_2) / norm.
    let t = {
        let v = [phi[0], -phi[1]];
        let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
        [v[0] / n, v[1] / n]
    };
    let dot = |a: &[f64]| a[0] * t[0] + a[1] * t[1];
    let full = dot(&dv.drift_per_step);
    let cross = dot(&dv.drift_cross_per_step);
    assert!(
        cross.abs() > 0.3 * full.abs(),
        "the cross term should matter here: {cross} vs {full}"
    );
    let s = dv.equilibrium.exact.matrix.clone().unwrap();
    let s = DMatrix::from_fn(2, 2, |i, j| s[i][j]);
    let (steps, n) = (400u64, 16_000usize);
    let spec = EnsembleSpec {
        steps,
        record_every: steps,
        trajectories: n,
        seed: 31,
        max_loss: 1e6,
        start: dv.point.clone(),
        start_factor: Some(psd_sqrt(&s)),
        observables: vec![Observable::Loss],
        ..EnsembleSpec::default()
    };
    // Record the tangent displacement through an observation map: theta -> (t . (theta - phi), .).
    let phi0 = dv.point.clone();
    let mut spec = spec;
    spec.observables = vec![Observable::ParamNorm];
    spec.observe_at = Some(crate::simulate::ObservationMap(std::sync::Arc::new(
        move |th: &[f64]| {
            // ParamNorm of (d, 0) is |d|; keep the sign through an offset of 10.
            Ok(vec![
                10.0 + (th[0] - phi0[0]) * t[0] + (th[1] - phi0[1]) * t[1],
                0.0,
            ])
        },
    )));
    let r = run_ensemble(&m, &noise, &opt, &spec);
    assert!(r.divergences.is_empty());
    let disp: Vec<f64> = r
        .column(1, 0)
        .iter()
        .map(|v| (v - 10.0) / steps as f64)
        .collect();
    let nn = disp.len() as f64;
    let mean = disp.iter().sum::<f64>() / nn;
    let se = (disp.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (nn - 1.0) / nn).sqrt();
    let tol = 0.15 * full.abs() + 5.0 * se;
    eprintln!(
        "cross term: measured {mean:.4e} ± {se:.1e}, derived {full:.4e}, without cross {:.4e}",
        full - cross
    );
    assert!(
        (mean - full).abs() <= tol,
        "measured {mean:.4e} ± {se:.1e}, derived {full:.4e}"
    );
    let without = full - cross;
    assert!(
        (mean - without).abs() > tol,
        "without the cross term {without:.4e} is not rejected (measured {mean:.4e})"
    );
}

/// Same input, same output, any number of threads: full derivations (dense and low-rank
/// paths; SGD, heavy ball with isotropic noise, Adam) are bit-identical with 1 and 2 rayon
/// threads.
#[test]
fn derivation_is_bit_identical_across_thread_counts() {
    let valley =
        Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Quadratic, 0.8).with_random_rotation(21);
    let vphi = valley.to_theta(&[0.0, 0.0, 0.0, 0.7, -0.4]);
    let cases: Vec<(AnyOptimizer, NoiseModel)> = vec![
        (sgd(0.01), label(1.0)),
        (
            heavy_ball(0.01, 0.9),
            NoiseModel::Isotropic {
                sigma: 0.5,
                batch: 1,
            },
        ),
        (adam(1e-3, 0.9, 0.999, 1e-8), label(1.0)),
    ];
    let run = |threads: usize, opt: &AnyOptimizer, noise: &NoiseModel, path: PathChoice| {
        let options = DeriveOptions {
            path,
            ..Default::default()
        };
        let mut out = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| derive(&valley, noise, opt, &vphi, &options).unwrap());
        out.seconds = 0.0;
        serde_json::to_string(&out).unwrap()
    };
    for (opt, noise) in &cases {
        for path in [PathChoice::Dense, PathChoice::LowRank] {
            assert_eq!(
                run(1, opt, noise, path),
                run(2, opt, noise, path),
                "{path:?}"
            );
        }
    }
}

/// A network refitted to its own outputs at its default start, so that the start is exactly
/// an interpolating manifold point (`f_i(start) = y_i`): `build(train)` makes the network.
fn self_labelled<M: Model>(
    spec: &crate::data::SyntheticSpec,
    build: impl Fn(crate::data::Dataset) -> M,
) -> (M, Vec<f64>) {
    let data = crate::data::generate(spec);
    let model = build(data.train.clone());
    let start = model.default_start();
    let mut g = vec![0.0; model.dim()];
    let y: Vec<f64> = (0..model.n_samples())
        .map(|i| model.output_and_grad(&start, i, &mut g))
        .collect();
    let train = crate::data::Dataset { y, ..data.train };
    (build(train), start)
}

/// Every number in two reports (as JSON) agrees to `tol` relative: arrays of numbers relative
/// to their largest entry (the cross term's part of the drift relative to the drift, since it
/// can be round-off alone), single numbers to their own size; the wall time is skipped.
fn assert_reports_close(a: &serde_json::Value, b: &serde_json::Value, tol: f64, path: &str) {
    let drift_scale = b["drift_per_step"].as_array().map_or(0.0, |x| {
        x.iter()
            .filter_map(|v| v.as_f64())
            .fold(0.0f64, |m, v| m.max(v.abs()))
    });
    assert_values_close(a, b, tol, path, drift_scale, 0.0);
}

fn assert_values_close(
    a: &serde_json::Value,
    b: &serde_json::Value,
    tol: f64,
    path: &str,
    drift_scale: f64,
    floor: f64,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: fields differ");
            for (k, va) in x {
                if k == "seconds" {
                    continue;
                }
                let floor = if k == "drift_cross_per_step" {
                    drift_scale
                } else {
                    0.0
                };
                assert_values_close(va, &y[k], tol, &format!("{path}.{k}"), drift_scale, floor);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths differ");
            let scale = x
                .iter()
                .filter_map(Value::as_f64)
                .fold(floor, |m, v| m.max(v.abs()));
            for (k, (va, vb)) in x.iter().zip(y).enumerate() {
                match (va.as_f64(), vb.as_f64()) {
                    (Some(p), Some(q)) => assert!(
                        (p - q).abs() <= tol * scale,
                        "{path}[{k}]: {p} vs {q} (scale {scale})"
                    ),
                    _ => {
                        assert_values_close(va, vb, tol, &format!("{path}[{k}]"), drift_scale, 0.0)
                    }
                }
            }
        }
        (Value::Number(_), Value::Number(_)) => {
            let (p, q) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(
                (p - q).abs() <= tol * p.abs().max(q.abs()),
                "{path}: {p} vs {q}"
            );
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// The per-sample route of the low-rank path ([`per_sample`]) gives the same derivation as
/// the full-batch reference route ([`third_order`]) to 1e-10 relative, every reported number
/// compared (drift exact and leading, cross term, regulariser directions and cosines, `S`,
/// `Q`, diagnostics): rotated valley, diagonal network, two-layer tanh network and an MLP
/// (both refitted to their own outputs, so that the start is on the manifold), with SGD,
/// heavy ball, Adam and RMSProp and label, isotropic, Hessian-shaped and fixed (with a
/// tangent-normal block, hence a cross term) noise.
#[test]
fn per_sample_route_matches_full_batch_route() {
    use crate::data::{SyntheticSpec, Teacher};
    use crate::model::{Activation, DiagonalNetwork, Mlp, MlpActivation, TwoLayerNetwork};
    let spec = |n: usize, p: usize, seed: u64| SyntheticSpec {
        n,
        n_test: 0,
        p,
        teacher: Teacher::Sparse { k: 2, value: 1.0 },
        label_noise: 0.0,
        seed,
    };
    let valley = Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Sin2, 0.8).with_random_rotation(21);
    let vphi = valley.to_theta(&[0.0, 0.0, 0.0, 0.7, -0.4]);
    let data = crate::data::generate(&spec(5, 12, 4));
    let diagonal = DiagonalNetwork::new(data.train, None, data.teacher);
    let dphi = crate::manifold::project(&diagonal, &diagonal.default_start(), &Default::default())
        .unwrap()
        .point;
    let (two_layer, tphi) = self_labelled(&spec(7, 4, 9), |t| {
        TwoLayerNetwork::new(6, Activation::Tanh, t, None).with_init(3, 0.9)
    });
    let (mlp, mphi) = self_labelled(&spec(6, 3, 5), |t| {
        Mlp::new(vec![4, 3], MlpActivation::Tanh, true, t, None).with_init(2, 0.8)
    });
    let rms = AnyOptimizer::RmsProp(RmsProp {
        lr: Schedule::Constant(0.01),
        alpha: 0.99,
        eps: 1e-8,
        bias_correction: true,
    });
    let optimizers = [
        sgd(0.02),
        heavy_ball(0.01, 0.9),
        adam(1e-3, 0.9, 0.999, 1e-8),
        rms,
    ];
    let fixed = |d: usize| {
        let a = DMatrix::from_fn(d, d, |i, j| ((1.3 * i as f64 + 0.7 * j as f64) * 0.9).sin());
        NoiseModel::fixed(&a * a.transpose() * (0.01 / d as f64))
    };
    let noises = |d: usize| {
        vec![
            label(1.0),
            NoiseModel::Isotropic {
                sigma: 0.5,
                batch: 1,
            },
            NoiseModel::Hessian {
                sigma: 0.7,
                batch: 2,
            },
            fixed(d),
        ]
    };
    let reference = DeriveOptions {
        path: PathChoice::LowRank,
        third_order: ThirdOrderRoute::FullBatch,
        ..Default::default()
    };
    let fast = DeriveOptions {
        third_order: ThirdOrderRoute::Auto,
        ..reference.clone()
    };
    let mut checked = 0;
    let mut check = |model: &dyn Fn(&AnyOptimizer, &NoiseModel, &DeriveOptions) -> Derivation,
                     d: usize| {
        for opt in &optimizers {
            for noise in noises(d) {
                let a = model(opt, &noise, &reference);
                let b = model(opt, &noise, &fast);
                assert_eq!(b.geometry.path, GeometryPath::LowRank);
                let (ja, jb) = (
                    serde_json::to_value(&a).unwrap(),
                    serde_json::to_value(&b).unwrap(),
                );
                assert_reports_close(
                    &ja,
                    &jb,
                    1e-10,
                    &format!("{}/{}/{}", a.model, a.optimizer, a.noise),
                );
                if a.drift_cross_per_step.iter().any(|x| *x != 0.0) {
                    checked += 1000;
                }
                checked += 1;
            }
        }
    };
    check(
        &|o, n, p| derive(&valley, n, o, &vphi, p).unwrap(),
        valley.dim(),
    );
    check(
        &|o, n, p| derive(&diagonal, n, o, &dphi, p).unwrap(),
        diagonal.dim(),
    );
    check(
        &|o, n, p| derive(&two_layer, n, o, &tphi, p).unwrap(),
        two_layer.dim(),
    );
    check(&|o, n, p| derive(&mlp, n, o, &mphi, p).unwrap(), mlp.dim());
    // 4 models x 4 optimizers x 4 noises, the fixed noise with a cross term on every model.
    assert_eq!(checked % 1000, 64);
    assert!(checked / 1000 >= 16, "{checked}");
}
