//! The simulated noise against its exact covariance.
//!
//! For each noise model, `M = 40_000` draws of `xi = g - grad L` at a fixed point; the
//! empirical mean must be within 5 standard errors of 0 and every empirical covariance entry
//! within 5 standard errors of `Sigma_ij`, the standard error of entry `(i, j)` estimated from
//! the draws as `sd(xi_i xi_j) / sqrt(M)`. (A wrong factor such as `B` vs `B - 1` or a missing
//! term moves some entry by far more than 5 standard errors at this `M`.)

use super::*;
use crate::model::{Profile, Valley};
use crate::rng;

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

/// On the interpolating manifold label noise is `(sigma^2 / B) H` (THEORY.md section 6).
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

/// The inlined ziggurat equals `rand_distr`'s `StandardNormal` bit for bit and leaves the
/// generator in the same state, over 2 million draws from several streams, with both rare
/// paths exercised: draws that consume more than one `u64` (the wedge test, rejections) and
/// tail draws (`|z|` beyond the base strip's `R = 3.654...`).
#[test]
fn inline_normal_is_rand_distr_standard_normal_bit_for_bit() {
    use rand::RngCore;
    let (mut slow, mut tail) = (0usize, 0usize);
    for j in 0..4 {
        let mut a = rng::stream(2024, j, 0);
        let mut b = a.clone();
        for _ in 0..500_000 {
            let mut one = a.clone();
            one.next_u64();
            let za = standard_normal_inline(&mut a, ZigguratTable::get());
            let zb: f64 = b.sample(StandardNormal);
            assert_eq!(za.to_bits(), zb.to_bits());
            assert_eq!(a, b, "generators diverged");
            slow += usize::from(a != one);
            tail += usize::from(za.abs() > 3.654_152_885_361_009);
        }
    }
    assert!(
        slow > 1000 && tail > 100,
        "rare paths: {slow} slow, {tail} tail"
    );
}

/// One step's shifts drawn inline equal the block fill's, lane by lane.
#[test]
fn inline_step_shifts_equal_the_block_fill() {
    let sigma = 0.3;
    let mut a: [TrajectoryRng; LANES] = std::array::from_fn(|l| rng::stream(5, l as u64, 0));
    let mut b = a.clone();
    let mut block = [Lanes::ZERO; 64];
    NoiseModel::fill_lane_label_shifts(sigma, &mut a, &mut block);
    for expect in block {
        let mut s = Lanes::ZERO;
        NoiseModel::draw_lane_label_shifts(
            sigma,
            &mut b,
            &mut s,
            0..LANES / 2,
            ZigguratTable::get(),
        );
        NoiseModel::draw_lane_label_shifts(
            sigma,
            &mut b,
            &mut s,
            LANES / 2..LANES,
            ZigguratTable::get(),
        );
        assert_eq!(s.0.map(f64::to_bits), expect.0.map(f64::to_bits));
    }
}

/// The ziggurat table read from `rand_distr` has the known shape of the 256-layer normal
/// ziggurat (Marsaglia and Tsang 2000): `X[1] = R = 3.6541528853610088` (the base strip's
/// edge), `X[0] = v / f(R)` with the layer area `v = 0.00492867323399`, strictly decreasing
/// to `X[256] = 0` (`X[255]` unread, see `ZigguratTable`).
#[test]
fn ziggurat_table_has_the_known_shape() {
    let x = &ZigguratTable::get().0;
    assert!((x[1] - 3.654_152_885_361_009).abs() < 1e-15, "R = {}", x[1]);
    let f_r = (-0.5 * x[1] * x[1]).exp();
    assert!(
        (x[0] - 0.004_928_673_233_99 / f_r).abs() < 1e-9,
        "X[0] = {}",
        x[0]
    );
    assert!(x[..255].windows(2).all(|w| w[0] > w[1]) && x[254] > 0.0);
    assert_eq!((x[255], x[256]), (0.0, 0.0));
}
