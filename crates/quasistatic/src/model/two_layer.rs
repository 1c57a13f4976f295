//! Two-layer network `f(x) = sum_j a_j s(w_j . x) / sqrt(width)`.
//!
//! Width `m`, inputs in `R^p`. Parameter layout (`d = m (p + 1)`):
//! `theta = (a_1, ..., a_m, W)` with `W` the `m x p` first-layer matrix stored row-major,
//! i.e. `w_jk = theta[m + j p + k]` (row `j` is hidden unit `j`'s input weights).
//! Gradients: `d f / d a_j = s(z_j) / sqrt(m)`, `d f / d w_jk = a_j s'(z_j) x_k / sqrt(m)`
//! with `z_j = w_j . x`. The activation and its derivative are written once, generic over the
//! scalar, so dual numbers give exact higher derivatives.
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{lane_gradients_by_lane, Batch, LaneBatch, Model, Scalar};
use crate::data::Dataset;
use crate::lanes::{self, Lanes};
use crate::simulate::LANES;

/// Activation `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `tanh`.
    Tanh,
    /// GELU, tanh approximation: `s(z) = z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))`.
    Gelu,
    /// `ln(1 + e^x)`, evaluated stably (`z + ln(1 + e^-z)` for `z > 0`).
    Softplus,
}

/// `sqrt(2 / pi)`, GELU's inner scale.
const GELU_SCALE: f64 = 0.797_884_560_802_865_4;
/// GELU's cubic coefficient.
const GELU_CUBIC: f64 = 0.044_715;

/// `tanh(z)` that neither overflows nor loses precision, for every scalar type:
/// `-expm1(-2z) / (2 + expm1(-2z))` for `z >= 0` and its odd mirror for `z < 0`.
/// (num-dual's `tanh` of a dual number is `sinh / cosh`, which is `NaN` beyond `|z| ~ 355`.)
///
/// Plain `f64` (the simulator's gradients) uses [`lanes::tanh`], the same formula with a
/// hand-written `expm1` that also runs on [`Lanes`] with vector instructions: the vectorised
/// [`Model::lane_gradients`] of the tanh network then equals this scalar path bit for bit.
/// Dual numbers (derivatives) keep num-dual's `exp_m1`; the two differ by round-off (a few
/// ulp).
#[inline]
fn stable_tanh<D: Scalar>(z: D) -> D {
    // `D::NDERIV == 0` only for the plain float (`f64`, as `D::Primitive = f64`); the test is
    // a constant, so each instantiation keeps one branch.
    if D::NDERIV == 0 {
        return D::from(lanes::tanh(z.re()));
    }
    if z.re() >= 0.0 {
        let em = (z * -2.0).exp_m1();
        -em / (em + 2.0)
    } else {
        let em = (z * 2.0).exp_m1();
        em / (em + 2.0)
    }
}

impl Activation {
    /// `(s(z), s'(z))`, generic over the scalar.
    #[inline]
    pub fn value_and_derivative<D: Scalar>(self, z: D) -> (D, D) {
        match self {
            Activation::Tanh => {
                let t = stable_tanh(z);
                (t, D::one() - t * t)
            }
            Activation::Gelu => {
                let z2 = z * z;
                let t = stable_tanh((z2 * GELU_CUBIC + 1.0) * z * GELU_SCALE);
                let half_one_plus_t = (t + 1.0) * 0.5;
                let du = (z2 * (3.0 * GELU_CUBIC) + 1.0) * GELU_SCALE;
                let ds = half_one_plus_t + z * 0.5 * (D::one() - t * t) * du;
                (z * half_one_plus_t, ds)
            }
            Activation::Softplus => {
                // Both branches are the same analytic function; the branch only keeps exp
                // from overflowing, so derivatives of every order are exact on either side.
                if z.re() > 0.0 {
                    let e = (-z).exp();
                    (z + e.ln_1p(), (e + 1.0).recip())
                } else {
                    let e = z.exp();
                    (e.ln_1p(), e / (e + 1.0))
                }
            }
        }
    }

    /// `s(z)`.
    #[inline]
    pub fn value<D: Scalar>(self, z: D) -> D {
        self.value_and_derivative(z).0
    }
}

/// Two-layer network (see module docs for the parameter layout).
#[derive(Clone, Debug)]
pub struct TwoLayerNetwork {
    width: usize,
    activation: Activation,
    train: Dataset,
    test: Option<Dataset>,
    init_seed: u64,
    init_scale: f64,
}

impl TwoLayerNetwork {
    /// Width `width`, activation, data.
    ///
    /// # Panics
    ///
    /// If `width == 0`, there are no features or no training sample, or `test` has a different
    /// number of features.
    pub fn new(
        width: usize,
        activation: Activation,
        train: Dataset,
        test: Option<Dataset>,
    ) -> Self {
        assert!(width >= 1, "two-layer network needs width >= 1");
        assert!(
            train.p >= 1 && train.n >= 1,
            "two-layer network needs p >= 1 and n >= 1"
        );
        train.assert_companions(test.as_ref(), None);
        Self {
            width,
            activation,
            train,
            test,
            init_seed: 0,
            init_scale: 1.0,
        }
    }

    /// Seed and scale of the default (random) start.
    pub fn with_init(mut self, seed: u64, scale: f64) -> Self {
        self.init_seed = seed;
        self.init_scale = scale;
        self
    }

    /// Hidden width `m`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The activation `s`.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Network output `f(x)` for an input row `x` (length `p`).
    pub fn predict<D: Scalar>(&self, theta: &[D], x: &[f64]) -> D {
        let (m, p) = (self.width, self.train.p);
        let (a, w) = theta.split_at(m);
        let mut f = D::zero();
        for (&aj, wj) in a.iter().zip(w.chunks_exact(p)) {
            f += aj * self.activation.value(dot(wj, x));
        }
        f * (1.0 / (m as f64).sqrt())
    }
}

impl TwoLayerNetwork {
    crate::lanes::lane_kernel_versions!(
        tanh_lanes,
        tanh_lanes_avx512,
        tanh_lanes_avx2,
        tanh_lanes_widest
    );

    /// [`Model::lane_gradients`] of the tanh network, all lanes at once: the batch's inputs as
    /// closures, `x(k, c)` = the lanes' input coordinate `c` at batch position `k`, `y(k)` their
    /// targets.
    #[inline(always)]
    fn tanh_lanes(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let (p, xs, ys) = (self.train.p, &self.train.x[..], &self.train.y[..]);
        match batch.indices {
            None => self.tanh_lane_blocks(
                theta,
                batch,
                |k, c| Lanes::splat(xs[k * p + c]),
                |k| Lanes::splat(ys[k]),
                grad,
                scratch,
                loss,
            ),
            Some(ix) => {
                let sample = |l: usize, k: usize| ix[l * batch.stride + k];
                self.tanh_lane_blocks(
                    theta,
                    batch,
                    |k, c| Lanes::gather(batch.lanes, |l| xs[sample(l, k) * p + c]),
                    |k| Lanes::gather(batch.lanes, |l| ys[sample(l, k)]),
                    grad,
                    scratch,
                    loss,
                )
            }
        }
    }

    /// The batch in blocks of [`LANE_BLOCK`] positions. Forward pass per position (as
    /// [`TwoLayerNetwork::batch_gradient`]: `z_j`, `tanh(z_j)`, `1 - tanh(z_j)^2`, `f`, the
    /// residual weight), kept for the block in `scratch`; then per hidden unit `j` the block's
    /// contributions are added to `grad_a_j` and `grad_W_jk` position by position, in the
    /// scalar version's order (each gradient entry is a sum held in registers over the block,
    /// rather than a rank-1 update of the whole `grad_W` per position, which the compiler
    /// vectorises across `k` with gathers and scatters). The last block applies the final
    /// factors `a_j / (sqrt(m) |B|)` as the scalar version does after its loop.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn tanh_lane_blocks(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        x: impl Fn(usize, usize) -> Lanes,
        y: impl Fn(usize) -> Lanes,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        const BL: usize = LANE_BLOCK;
        let (m, p, b) = (self.width, self.train.p, batch.size);
        let scale = 1.0 / (m as f64).sqrt();
        let factor = scale / b as f64;
        // Block buffers: tanh(z_j) and 1 - tanh^2 at [j][position], inputs at
        // [position][c], residual weights and weight * (1 - tanh^2) per position.
        let (tb, rest) = scratch.split_at_mut(m * BL * LANES);
        let (db, rest) = rest.split_at_mut(m * BL * LANES);
        let (xb, rest) = rest.split_at_mut(BL * p * LANES);
        let (wb, rest) = rest.split_at_mut(BL * LANES);
        let cb = &mut rest[..BL * LANES];
        let at = |s: &[f64], i: usize| Lanes::load(&s[i * LANES..(i + 1) * LANES]);
        let (a, w) = theta[..m * (p + 1) * LANES].split_at(m * LANES);
        let (ga, gw) = grad[..m * (p + 1) * LANES].split_at_mut(m * LANES);
        let mut lo = Lanes::ZERO;
        for k0 in (0..b).step_by(BL) {
            let len = BL.min(b - k0);
            let last = k0 + len == b;
            for ib in 0..len {
                let k = k0 + ib;
                for c in 0..p {
                    x(k, c).store(&mut xb[(ib * p + c) * LANES..(ib * p + c + 1) * LANES]);
                }
                let xk = &xb[ib * p * LANES..(ib + 1) * p * LANES];
                // All z_j first (four units at a time: four independent sums in flight), then
                // the tanh of each: consecutive tanh are independent and close together, so
                // their latencies overlap.
                let mut store_z = |j: usize, z: Lanes| {
                    let slot = (j * BL + ib) * LANES;
                    z.store(&mut tb[slot..slot + LANES]);
                };
                for j0 in (0..m / 4).map(|q| 4 * q) {
                    let mut z = [Lanes::ZERO; 4];
                    for c in 0..p {
                        let xc = at(xk, c);
                        for (t, zt) in z.iter_mut().enumerate() {
                            *zt += at(w, (j0 + t) * p + c) * xc;
                        }
                    }
                    for (t, &zt) in z.iter().enumerate() {
                        store_z(j0 + t, zt);
                    }
                }
                for j in 4 * (m / 4)..m {
                    let mut z = Lanes::ZERO;
                    for c in 0..p {
                        z += at(w, j * p + c) * at(xk, c);
                    }
                    store_z(j, z);
                }
                let mut f = Lanes::ZERO;
                for j in 0..m {
                    let slot = (j * BL + ib) * LANES;
                    let t = lanes::tanh(at(tb, j * BL + ib));
                    f += at(a, j) * t;
                    t.store(&mut tb[slot..slot + LANES]);
                    (1.0 - t * t).store(&mut db[slot..slot + LANES]);
                }
                let r = f * scale - y(k);
                lo += r * r * 0.5;
                (r - batch.shifts_at(k)).store(&mut wb[ib * LANES..(ib + 1) * LANES]);
            }
            let (tb, db, xb, wb) = (&*tb, &*db, &*xb, &*wb);
            for j in 0..m {
                let tj = &tb[j * BL * LANES..(j + 1) * BL * LANES];
                let dj = &db[j * BL * LANES..(j + 1) * BL * LANES];
                // grad_a_j += weight * tanh(z_j); c = weight * (1 - tanh^2) kept for grad_W.
                let gaj = &mut ga[j * LANES..(j + 1) * LANES];
                let mut acc = if k0 == 0 {
                    Lanes::ZERO
                } else {
                    Lanes::load(gaj)
                };
                for ib in 0..len {
                    let weight = at(wb, ib);
                    acc += weight * at(tj, ib);
                    (weight * at(dj, ib)).store(&mut cb[ib * LANES..(ib + 1) * LANES]);
                }
                if last {
                    acc = acc * factor;
                }
                acc.store(gaj);
                let cb = &*cb;
                let cj = at(a, j) * factor;
                let gwj = &mut gw[j * p * LANES..(j + 1) * p * LANES];
                // grad_W_jk += c x_k, four k at a time (independent sums in flight).
                let start = |gwj: &[f64], c: usize| {
                    if k0 == 0 {
                        Lanes::ZERO
                    } else {
                        at(gwj, c)
                    }
                };
                let store = |gwj: &mut [f64], c: usize, g: Lanes| {
                    let g = if last { g * cj } else { g };
                    g.store(&mut gwj[c * LANES..(c + 1) * LANES]);
                };
                for c0 in (0..p / 4).map(|q| 4 * q) {
                    let mut acc = [0, 1, 2, 3].map(|t| start(gwj, c0 + t));
                    for ib in 0..len {
                        let cw = at(cb, ib);
                        for (t, a) in acc.iter_mut().enumerate() {
                            *a += cw * at(xb, ib * p + c0 + t);
                        }
                    }
                    for (t, &a) in acc.iter().enumerate() {
                        store(gwj, c0 + t, a);
                    }
                }
                for c in 4 * (p / 4)..p {
                    let mut a = start(gwj, c);
                    for ib in 0..len {
                        a += at(cb, ib) * at(xb, ib * p + c);
                    }
                    store(gwj, c, a);
                }
            }
        }
        *loss = (lo * (1.0 / b as f64)).0;
    }
}

/// Batch positions per block of [`TwoLayerNetwork::lane_gradients`] (its scratch holds
/// `2 m + p + 2` lane vectors per position).
const LANE_BLOCK: usize = 8;

/// `w . x` with scalar weights and `f64` inputs.
#[inline]
fn dot<D: Scalar>(w: &[D], x: &[f64]) -> D {
    let mut z = D::zero();
    for (&wk, &xk) in w.iter().zip(x) {
        z += wk * xk;
    }
    z
}

impl Model for TwoLayerNetwork {
    fn name(&self) -> &'static str {
        "two_layer"
    }

    fn dim(&self) -> usize {
        self.width * (self.train.p + 1)
    }

    fn n_samples(&self) -> usize {
        self.train.n
    }

    fn targets(&self) -> &[f64] {
        &self.train.y
    }

    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let (m, p) = (self.width, self.train.p);
        let x = self.train.row(i);
        let scale = 1.0 / (m as f64).sqrt();
        let (a, w) = theta.split_at(m);
        let (ga, gw) = grad_f[..m * (p + 1)].split_at_mut(m);
        let mut f = D::zero();
        for (j, (wj, gwj)) in w.chunks_exact(p).zip(gw.chunks_exact_mut(p)).enumerate() {
            let (s, ds) = self.activation.value_and_derivative(dot(wj, x));
            f += a[j] * s;
            ga[j] = s * scale;
            let coef = a[j] * ds * scale;
            for (g, &xk) in gwj.iter_mut().zip(x) {
                *g = coef * xk;
            }
        }
        f * scale
    }

    /// `2 m` entries: `s(z_j)` and `s'(z_j)` of the current sample (at most `d`, since `p >= 1`).
    fn scratch_len(&self) -> usize {
        self.dim().max(2 * self.width)
    }

    /// Fused: per sample, one pass over the hidden units stores `s(z_j)`, `s'(z_j)` in
    /// `scratch` and sums `f_i`; a second pass adds `r s(z_j)` to `grad_a` and
    /// `r s'(z_j) x_i` to `grad_W` (with `r = f_i - y_i - shift`); the factors `a_j / sqrt(m)`
    /// and `1/|B|` are applied once at the end.
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let (m, p) = (self.width, self.train.p);
        let scale = 1.0 / (m as f64).sqrt();
        let (a, w) = theta.split_at(m);
        let (sv, ds) = scratch[..2 * m].split_at_mut(m);
        for g in grad.iter_mut() {
            *g = D::zero();
        }
        let (ga, gw) = grad[..m * (p + 1)].split_at_mut(m);
        let b = batch.len(self.train.n);
        let mut loss = D::zero();
        for k in 0..b {
            let i = batch.sample(k);
            let x = self.train.row(i);
            let mut f = D::zero();
            for (j, wj) in w.chunks_exact(p).enumerate() {
                let (s, d) = self.activation.value_and_derivative(dot(wj, x));
                f += a[j] * s;
                sv[j] = s;
                ds[j] = d;
            }
            let r = f * scale - self.train.y[i];
            loss += r * r * 0.5;
            let weight = r - batch.shift_at(k);
            for (j, gwj) in gw.chunks_exact_mut(p).enumerate() {
                ga[j] += weight * sv[j];
                let c = weight * ds[j];
                for (g, &xk) in gwj.iter_mut().zip(x) {
                    *g += c * xk;
                }
            }
        }
        let factor = scale / b as f64;
        for (j, gwj) in gw.chunks_exact_mut(p).enumerate() {
            ga[j] *= factor;
            let c = a[j] * factor;
            for g in gwj.iter_mut() {
                *g *= c;
            }
        }
        loss * (1.0 / b as f64)
    }

    /// The default's length, and at least `(2 m + p + 2) LANE_BLOCK LANES`: per-lane
    /// `tanh(z_j)`, `1 - tanh(z_j)^2`, inputs and residual weights of a block of batch
    /// positions.
    fn lane_scratch_len(&self) -> usize {
        let by_lane = 2 * self.dim() + self.train.n + self.scratch_len();
        by_lane.max((2 * self.width + self.train.p + 2) * LANE_BLOCK * LANES)
    }

    /// The tanh network (T4's case) runs all lanes in one vectorised pass with the arithmetic
    /// of [`TwoLayerNetwork::batch_gradient`] operation by operation, `tanh` included (the
    /// shared [`lanes::tanh`]), so results are bit-identical to the lane-by-lane default. Full
    /// batches and mini-batches (inputs gathered per lane); other activations go lane by lane.
    /// Compiled for AVX-512 or AVX2 when the CPU has them (see [`crate::lanes`]).
    #[inline(always)]
    fn lane_gradients(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        if self.activation != Activation::Tanh {
            return lane_gradients_by_lane(self, theta, batch, grad, scratch, loss);
        }
        self.tanh_lanes_widest(theta, batch, grad, scratch, loss)
    }

    /// Random start from `init_seed`: `a_j ~ N(0, init_scale^2)` (drawn first), then
    /// `w_jk ~ N(0, init_scale^2 / p)` row by row.
    fn default_start(&self) -> Vec<f64> {
        let p = self.train.p;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.init_seed);
        let w_scale = self.init_scale / (p as f64).sqrt();
        (0..self.dim())
            .map(|c| {
                let z: f64 = rng.sample(StandardNormal);
                z * if c < self.width {
                    self.init_scale
                } else {
                    w_scale
                }
            })
            .collect()
    }

    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        let test = self.test.as_ref()?;
        let sum: f64 = (0..test.n)
            .map(|i| {
                let r = self.predict(theta, test.row(i)) - test.y[i];
                r * r
            })
            .sum();
        Some(sum / test.n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::derivatives::{self, testing::check_derivatives};
    use num_dual::{Dual64, HyperHyperDual64};

    const ALL: [Activation; 3] = [Activation::Tanh, Activation::Gelu, Activation::Softplus];

    fn model(activation: Activation) -> TwoLayerNetwork {
        let data = generate(&SyntheticSpec {
            n: 3,
            n_test: 2,
            p: 4,
            teacher: Teacher::TanhNetwork { width: 2, seed: 1 },
            label_noise: 0.1,
            seed: 21,
        });
        TwoLayerNetwork::new(3, activation, data.train, data.test).with_init(5, 0.8)
    }

    #[test]
    fn two_layer_derivatives() {
        for act in ALL {
            let m = model(act);
            let d = m.dim();
            assert_eq!(d, 15);
            let th: Vec<f64> = (0..d).map(|c| 0.9 * (1.3 * c as f64 + 0.2).sin()).collect();
            let v: Vec<f64> = (0..d).map(|c| (0.7 * c as f64 + 1.0).cos()).collect();
            let w: Vec<f64> = (0..d).map(|c| (2.1 * c as f64 - 0.5).sin()).collect();
            check_derivatives(&m, &th, &v, &w);
            check_derivatives(&m, &m.default_start(), &v, &w);
        }
    }

    /// The explicit `s'` is the derivative of `s`, also for softplus on both branches and far
    /// out (where a naive `ln(1 + e^z)` overflows).
    #[test]
    fn activation_derivatives_and_values() {
        for act in ALL {
            for z in [
                -800.0, -30.0, -2.5, -0.3, -1e-9, 0.0, 1e-9, 0.4, 1.7, 30.0, 800.0,
            ] {
                let (s, ds) = act.value_and_derivative(Dual64::new(z, 1.0));
                assert!(
                    (s.eps - ds.re).abs() < 1e-12 * (1.0 + ds.re.abs()),
                    "{act:?} at {z}: {s:?} {ds:?}"
                );
                // Third derivative of s equals second derivative of s' (nested duals).
                let zz = HyperHyperDual64::new(z, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0);
                let (s3, ds3) = act.value_and_derivative(zz);
                assert!(
                    (s3.eps1eps2eps3 - ds3.eps1eps2).abs() < 1e-10,
                    "{act:?} at {z}: {s3:?} {ds3:?}"
                );
            }
        }
        for z in [-800.0f64, -20.0, -1.3, -1e-12, 0.0, 3e-10, 0.6, 5.0, 800.0] {
            let t = Activation::Tanh.value(z);
            assert!(
                (t - z.tanh()).abs() <= 2.0 * f64::EPSILON * z.tanh().abs(),
                "tanh {z}"
            );
            let dt = Activation::Tanh.value(Dual64::new(z, 1.0));
            assert!(dt.re.is_finite() && dt.eps.is_finite() && dt.eps >= 0.0);
        }
        let sp = |z: f64| Activation::Softplus.value(z);
        assert!((sp(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(sp(1000.0), 1000.0);
        assert!(sp(-1000.0) >= 0.0 && sp(-1000.0) < 1e-300);
        let gelu = |z: f64| Activation::Gelu.value(z);
        assert!(gelu(0.0) == 0.0 && (gelu(10.0) - 10.0).abs() < 1e-12 && gelu(-10.0).abs() < 1e-12);
    }

    /// The vectorised tanh lane gradients equal the scalar fused gradient bit for bit, over
    /// several blocks of batch positions (the last one partial), with a width and an input
    /// dimension that are not multiples of 4, all lanes or only some in use.
    #[test]
    fn tanh_lane_gradients_are_bit_identical() {
        for (n, p, width) in [(19, 6, 5), (6, 10, 4), (40, 3, 9)] {
            let data = generate(&SyntheticSpec {
                n,
                n_test: 0,
                p,
                teacher: Teacher::TanhNetwork { width: 2, seed: 3 },
                label_noise: 0.1,
                seed: 4,
            });
            let m =
                TwoLayerNetwork::new(width, Activation::Tanh, data.train, None).with_init(2, 1.5);
            for lanes in [LANES, 3] {
                crate::lanes::testing::assert_lane_gradients_bit_identical(&m, lanes);
                // Every instruction-set version this CPU can run, not only the one picked.
                crate::lanes::testing::assert_kernel_bit_identical(&m, lanes, |t, b, g, s, l| {
                    m.tanh_lanes(t, b, g, s, l)
                });
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    crate::lanes::testing::assert_kernel_bit_identical(
                        &m,
                        lanes,
                        |t, b, g, s, l| {
                            // SAFETY: the CPU has AVX2 (checked above).
                            unsafe { m.tanh_lanes_avx2(t, b, g, s, l) }
                        },
                    );
                }
            }
        }
    }

    #[test]
    fn default_start_is_seeded_and_scaled() {
        let m = model(Activation::Tanh);
        let a = m.default_start();
        assert_eq!(a, m.default_start());
        assert_ne!(a, m.clone().with_init(6, 0.8).default_start());
        let b = m.clone().with_init(5, 1.6).default_start();
        for (x, y) in a.iter().zip(&b) {
            assert!((2.0 * x - y).abs() < 1e-15);
        }
    }

    #[test]
    fn test_error_matches_predictions() {
        let m = model(Activation::Gelu);
        let th = m.default_start();
        let test = m.test.as_ref().unwrap();
        let mut expected = 0.0;
        for i in 0..test.n {
            let x = test.row(i);
            let mut f = 0.0;
            for j in 0..3 {
                let z: f64 = (0..4).map(|k| th[3 + 4 * j + k] * x[k]).sum();
                let s = 0.5 * z * (1.0 + (GELU_SCALE * (z + GELU_CUBIC * z.powi(3))).tanh());
                f += th[j] * s / 3f64.sqrt();
            }
            expected += (f - test.y[i]).powi(2) / test.n as f64;
        }
        assert!((m.test_error(&th).unwrap() - expected).abs() < 1e-13);
        // The training loss uses the same outputs.
        let l = derivatives::loss(&m, &th);
        let direct: f64 = (0..3)
            .map(|i| 0.5 * (m.predict(&th, m.train.row(i)) - m.train.y[i]).powi(2) / 3.0)
            .sum();
        assert!((l - direct).abs() < 1e-14);
    }
}
