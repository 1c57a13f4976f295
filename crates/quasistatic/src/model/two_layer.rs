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

use super::{lane_gradients_by_lane, Batch, LaneBatch, LaneKernel, Model, Scalar};
use crate::data::Dataset;
use crate::engine::lanes::{self, unroll, LaneFloat, Lanes};
use crate::engine::LANES;

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
/// Plain `f64` uses [`lanes::tanh`], the same formula with a hand-written `expm1` that also
/// runs on [`Lanes`] with vector instructions (the tanh network's gradient uses its fused
/// sibling [`lanes::tanh_fused`], as its vectorised [`Model::lane_gradients`] does, so the two
/// are equal bit for bit). Dual numbers (derivatives) keep num-dual's `exp_m1`; the two differ
/// by round-off (a few ulp).
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
            f += aj * self.activation.value(dot::<D, false>(wj, x));
        }
        f * (1.0 / (m as f64).sqrt())
    }
}

impl TwoLayerNetwork {
    crate::engine::lanes::lane_kernel_versions!(
        tanh_lanes,
        tanh_lanes_avx512,
        tanh_lanes_avx2,
        tanh_lanes_widest
    );

    /// [`Model::lane_gradients`] of the tanh network, all lanes at once (see
    /// [`TwoLayerNetwork::tanh_lane_blocks`]), for the full batch (inputs shared by the lanes,
    /// read in place) or a mini-batch (each lane's inputs gathered into `scratch`, a block at a
    /// time).
    #[inline(always)]
    fn tanh_lanes(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let (n, p) = (self.train.n, self.train.p);
        let (xs, ys) = (&self.train.x[..n * p], &self.train.y[..n]);
        let (gathered, scratch) = scratch.split_at_mut(LANE_BLOCK * p * LANES);
        match batch.indices {
            None => {
                assert!(batch.size <= n);
                let mut inputs = SharedInputs { xs, ys, p };
                self.tanh_lane_blocks(theta, batch, &mut inputs, grad, scratch, loss)
            }
            Some(ix) => {
                let (gathered, _) = gathered.as_chunks_mut::<LANES>();
                let mut inputs = GatheredInputs {
                    xs,
                    ys,
                    p,
                    ix,
                    stride: batch.stride,
                    lanes: batch.lanes,
                    k0: 0,
                    block: gathered,
                };
                self.tanh_lane_blocks(theta, batch, &mut inputs, grad, scratch, loss)
            }
        }
    }

    /// The batch in blocks of [`LANE_BLOCK`] positions, with the arithmetic of
    /// [`TwoLayerNetwork::batch_gradient`] for the tanh network (fused multiply-adds included)
    /// operation by operation, every sum in the scalar version's order, so each lane's results
    /// are its scalar results bit for bit. Per block, over buffers in `scratch`:
    ///
    /// 1. `z_j = w_j . x` of every hidden unit and position, in tiles of [`Z_UNITS`] units x
    ///    [`Z_POSITIONS`] positions: each loaded weight and input serves several sums, and the
    ///    tile's sums are independent chains held in registers.
    /// 2. `tanh(z_j)`, `1 - tanh^2`, the outputs `f` (summed over `j` in order), the loss and
    ///    the residual weights `f / sqrt(m) - y - shift`.
    /// 3. `grad_a_j += weight tanh(z_j)` over the positions in order, with
    ///    `c = weight (1 - tanh^2)` kept in place of `1 - tanh^2`; then `grad_W_jk += c x_k` in
    ///    tiles of [`GW_UNITS`] units x [`GW_INPUTS`] inputs, each entry a sum held in a register
    ///    over the block.
    ///
    /// The last block applies the final factors `a_j / (sqrt(m) |B|)` as the scalar version
    /// does after its loop. The tiles are fixed-size arrays indexed by constants once unrolled,
    /// with no bounds check inside their loops: with one, the compiler kept every sum on the
    /// stack as well, stored at every step (`bench/PROFILE.md`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn tanh_lane_blocks<I: BlockInputs>(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        inputs: &mut I,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        const BL: usize = LANE_BLOCK;
        let (m, p, b) = (self.width, self.train.p, batch.size);
        let scale = 1.0 / (m as f64).sqrt();
        let factor = scale / b as f64;
        // Block buffers, one lane vector each: z_j and then tanh(z_j) at [j][position],
        // 1 - tanh^2 and then weight * (1 - tanh^2) at [j][position], residual weights at
        // [position].
        let (tb, rest) = scratch.split_at_mut(m * BL * LANES);
        let (db, rest) = rest.split_at_mut(m * BL * LANES);
        let (tb, _) = tb.as_chunks_mut::<LANES>();
        let (db, _) = db.as_chunks_mut::<LANES>();
        let (wb, _) = rest[..BL * LANES].as_chunks_mut::<LANES>();
        let (a, w) = theta[..m * (p + 1) * LANES].split_at(m * LANES);
        let (a, _) = a.as_chunks::<LANES>();
        let (w, _) = w.as_chunks::<LANES>();
        let (ga, gw) = grad[..m * (p + 1) * LANES].split_at_mut(m * LANES);
        let (ga, _) = ga.as_chunks_mut::<LANES>();
        let (gw, _) = gw.as_chunks_mut::<LANES>();
        let mut lo = Lanes::ZERO;
        for k0 in (0..b).step_by(BL) {
            let len = BL.min(b - k0);
            let (first, last) = (k0 == 0, k0 + len == b);
            inputs.fill(k0, len);
            let inputs = &*inputs;
            // 1. z_j for every unit and position of the block.
            let j_main = m - m % Z_UNITS;
            let i_main = len - len % Z_POSITIONS;
            for j0 in (0..j_main).step_by(Z_UNITS) {
                for i0 in (0..i_main).step_by(Z_POSITIONS) {
                    z_tile::<Z_UNITS, Z_POSITIONS, _>(w, inputs, tb, p, j0, k0, i0);
                }
                for i0 in i_main..len {
                    z_tile::<Z_UNITS, 1, _>(w, inputs, tb, p, j0, k0, i0);
                }
            }
            for j0 in j_main..m {
                for i0 in 0..len {
                    z_tile::<1, 1, _>(w, inputs, tb, p, j0, k0, i0);
                }
            }
            // 2. tanh, 1 - tanh^2, outputs (over j in order), loss, residual weights.
            let mut f = [Lanes::ZERO; BL];
            for (j, (tj, dj)) in tb
                .chunks_exact_mut(BL)
                .zip(db.chunks_exact_mut(BL))
                .enumerate()
            {
                let aj = Lanes(a[j]);
                for ((fk, tk), dk) in f.iter_mut().zip(tj.iter_mut()).zip(dj).take(len) {
                    let t = lanes::tanh_fused(Lanes(*tk));
                    *fk = aj.mul_add(t, *fk);
                    *tk = t.0;
                    *dk = (-t).mul_add(t, Lanes::splat(1.0)).0;
                }
            }
            for (ib, &fk) in f.iter().enumerate().take(len) {
                let k = k0 + ib;
                let r = fk * scale - inputs.y(k);
                lo += r * r * 0.5;
                wb[ib] = (r - batch.shifts_at(k)).0;
            }
            // 3. grad_a (final when `last`), and c = weight * (1 - tanh^2) in place.
            let wbr = &wb[..len];
            for (j, (tj, dj)) in tb.chunks_exact(BL).zip(db.chunks_exact_mut(BL)).enumerate() {
                let mut acc = if first { Lanes::ZERO } else { Lanes(ga[j]) };
                for ((&wk, &tk), dk) in wbr.iter().zip(tj).zip(dj.iter_mut()) {
                    let weight = Lanes(wk);
                    acc = weight.mul_add(Lanes(tk), acc);
                    *dk = (weight * Lanes(*dk)).0;
                }
                if last {
                    acc = acc * factor;
                }
                ga[j] = acc.0;
            }
            // grad_W in tiles.
            let cb = &*db;
            let j_main = m - m % GW_UNITS;
            let c_main = p - p % GW_INPUTS;
            let tile = GwTile {
                a,
                factor,
                p,
                k0,
                len,
                first,
                last,
            };
            for j0 in (0..j_main).step_by(GW_UNITS) {
                for c0 in (0..c_main).step_by(GW_INPUTS) {
                    gw_tile::<GW_UNITS, GW_INPUTS, _>(&tile, cb, inputs, gw, j0, c0);
                }
                for c0 in c_main..p {
                    gw_tile::<GW_UNITS, 1, _>(&tile, cb, inputs, gw, j0, c0);
                }
            }
            for j0 in j_main..m {
                for c0 in 0..p {
                    gw_tile::<1, 1, _>(&tile, cb, inputs, gw, j0, c0);
                }
            }
        }
        *loss = (lo * (1.0 / b as f64)).0;
    }
}

/// Batch positions per block of [`TwoLayerNetwork::lane_gradients`] (its scratch holds
/// `2 m + p + 1` lane vectors per position). Measured side by side (T4, AVX-512): 16 against
/// 8, +8%; the whole batch as one block was slower (-12%: its buffers leave the first-level
/// cache).
const LANE_BLOCK: usize = 16;
/// Hidden units per tile of the forward sums `z_j = w_j . x`.
const Z_UNITS: usize = 4;
/// Batch positions per tile of the forward sums (`Z_UNITS x Z_POSITIONS` sums in registers).
const Z_POSITIONS: usize = 4;
/// Hidden units per tile of `grad_W`.
const GW_UNITS: usize = 4;
/// Inputs per tile of `grad_W` (`GW_UNITS x GW_INPUTS` sums in registers).
const GW_INPUTS: usize = 5;

/// The lanes' inputs and targets at batch positions `k`, as the lane kernel reads them.
trait BlockInputs {
    /// Prepare positions `k0..k0 + len` (the block about to be read).
    fn fill(&mut self, k0: usize, len: usize);
    /// Input coordinate `c` of every lane at position `k` (in the block last filled).
    fn x(&self, k: usize, c: usize) -> Lanes;
    /// Target of every lane at position `k` (in the block last filled).
    fn y(&self, k: usize) -> Lanes;
}

/// The full batch: position `k` is sample `k` for every lane, read in place.
struct SharedInputs<'a> {
    /// `n x p` inputs, row-major.
    xs: &'a [f64],
    ys: &'a [f64],
    p: usize,
}

impl BlockInputs for SharedInputs<'_> {
    #[inline(always)]
    fn fill(&mut self, _k0: usize, _len: usize) {}
    #[inline(always)]
    fn x(&self, k: usize, c: usize) -> Lanes {
        debug_assert!(c < self.p && (k + 1) * self.p <= self.xs.len());
        // SAFETY: the lane kernel reads positions `k < batch.size <= n` (asserted in
        // `tanh_lanes`) and coordinates `c < p`, and `xs` holds `n p` values. Unchecked because
        // a bounds check inside a register tile made the compiler keep the tile's sums on the
        // stack.
        Lanes::splat(unsafe { *self.xs.get_unchecked(k * self.p + c) })
    }
    #[inline(always)]
    fn y(&self, k: usize) -> Lanes {
        Lanes::splat(self.ys[k])
    }
}

/// A mini-batch: lane `l`'s position `k` is sample `ix[l stride + k]`; a block's inputs are
/// gathered into `block` (`[position][coordinate]`, one lane vector each) before it is read.
struct GatheredInputs<'a> {
    xs: &'a [f64],
    ys: &'a [f64],
    p: usize,
    ix: &'a [usize],
    stride: usize,
    lanes: usize,
    /// First position of the block in `block`.
    k0: usize,
    block: &'a mut [[f64; LANES]],
}

impl BlockInputs for GatheredInputs<'_> {
    #[inline(always)]
    fn fill(&mut self, k0: usize, len: usize) {
        self.k0 = k0;
        let (xs, ix, p, stride) = (self.xs, self.ix, self.p, self.stride);
        for (ib, row) in self.block.chunks_exact_mut(p).take(len).enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = Lanes::gather(self.lanes, |l| xs[ix[l * stride + k0 + ib] * p + c]).0;
            }
        }
    }
    #[inline(always)]
    fn x(&self, k: usize, c: usize) -> Lanes {
        Lanes(self.block[(k - self.k0) * self.p + c])
    }
    #[inline(always)]
    fn y(&self, k: usize) -> Lanes {
        Lanes::gather(self.lanes, |l| self.ys[self.ix[l * self.stride + k]])
    }
}

/// `z_j = w_j . x_k` (fused multiply-adds over the coordinates in order, from 0) of the units
/// `j0..j0 + J` and the positions `k0 + i0 ..k0 + i0 + I`, stored at `tb[j][i0 + s]`.
// The loop index addresses every row of the tile (an iterator would serve one).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn z_tile<const J: usize, const I: usize, X: BlockInputs>(
    w: &[[f64; LANES]],
    inputs: &X,
    tb: &mut [[f64; LANES]],
    p: usize,
    j0: usize,
    k0: usize,
    i0: usize,
) {
    const { assert!(J <= 4 && I <= 4) };
    let rows: [&[[f64; LANES]]; J] = std::array::from_fn(|t| &w[(j0 + t) * p..(j0 + t + 1) * p]);
    let mut z = [[Lanes::ZERO; I]; J];
    for c in 0..p {
        unroll!(s in [0, 1, 2, 3] {
            if s < I {
                let xv = inputs.x(k0 + i0 + s, c);
                unroll!(t in [0, 1, 2, 3] {
                    if t < J {
                        z[t][s] = Lanes(rows[t][c]).mul_add(xv, z[t][s]);
                    }
                });
            }
        });
    }
    // Every access to the tile by constant indices, here too: one access by a variable index
    // keeps the whole tile on the stack.
    unroll!(t in [0, 1, 2, 3] {
        if t < J {
            unroll!(s in [0, 1, 2, 3] {
                if s < I {
                    tb[(j0 + t) * LANE_BLOCK + i0 + s] = z[t][s].0;
                }
            });
        }
    });
}

/// What every `grad_W` tile of a block shares.
struct GwTile<'a> {
    /// The output weights `a_j`.
    a: &'a [[f64; LANES]],
    /// `1 / (sqrt(m) |B|)`.
    factor: f64,
    p: usize,
    /// The block: positions `k0..k0 + len`.
    k0: usize,
    len: usize,
    /// First block (sums start at 0) / last block (final factor `a_j factor` applied).
    first: bool,
    last: bool,
}

/// `grad_W_jc += c_jk x_kc` over the block's positions in order (fused multiply-adds) for the
/// units `j0..j0 + J` and inputs `c0..c0 + C`.
// The loop index addresses every row of the tile (an iterator would serve one).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn gw_tile<const J: usize, const C: usize, X: BlockInputs>(
    tile: &GwTile<'_>,
    cb: &[[f64; LANES]],
    inputs: &X,
    gw: &mut [[f64; LANES]],
    j0: usize,
    c0: usize,
) {
    const { assert!(J <= 4 && C <= 5) };
    let GwTile {
        a,
        factor,
        p,
        k0,
        len,
        first,
        last,
    } = *tile;
    let mut acc = [[Lanes::ZERO; C]; J];
    // Every access to the tile by constant indices (see `z_tile`).
    if !first {
        unroll!(t in [0, 1, 2, 3] {
            if t < J {
                unroll!(s in [0, 1, 2, 3, 4] {
                    if s < C {
                        acc[t][s] = Lanes(gw[(j0 + t) * p + c0 + s]);
                    }
                });
            }
        });
    }
    let rows: [&[[f64; LANES]]; J] =
        std::array::from_fn(|t| &cb[(j0 + t) * LANE_BLOCK..(j0 + t) * LANE_BLOCK + len]);
    for ib in 0..len {
        unroll!(s in [0, 1, 2, 3, 4] {
            if s < C {
                let xv = inputs.x(k0 + ib, c0 + s);
                unroll!(t in [0, 1, 2, 3] {
                    if t < J {
                        acc[t][s] = Lanes(rows[t][ib]).mul_add(xv, acc[t][s]);
                    }
                });
            }
        });
    }
    unroll!(t in [0, 1, 2, 3] {
        if t < J {
            let cj = Lanes(a[j0 + t]) * factor;
            unroll!(s in [0, 1, 2, 3, 4] {
                if s < C {
                    let g = if last { acc[t][s] * cj } else { acc[t][s] };
                    gw[(j0 + t) * p + c0 + s] = g.0;
                }
            });
        }
    });
}

/// `w . x` with scalar weights and `f64` inputs, summed over the coordinates in order from 0;
/// with fused multiply-adds when `FUSED` (see [`madd_f64`]).
#[inline]
fn dot<D: Scalar, const FUSED: bool>(w: &[D], x: &[f64]) -> D {
    let mut z = D::zero();
    for (&wk, &xk) in w.iter().zip(x) {
        z = madd_f64::<D, FUSED>(wk, xk, z);
    }
    z
}

/// `a * b + c` with an `f64` factor `b`. Fused into one rounding when `FUSED` and `D` is `f64`
/// itself (the lane kernel's bits). For dual numbers it is `a * b + c` with every part of `a`
/// scaled by `b`: num-dual's `mul_add` would multiply by `b` promoted to a dual number with zero
/// derivatives, a full dual-by-dual product (three times the multiplications for `Dual2`, in
/// the derivation's `D3L` passes), and its result is not fused either.
#[inline(always)]
fn madd_f64<D: Scalar, const FUSED: bool>(a: D, b: f64, c: D) -> D {
    if FUSED && D::NDERIV == 0 {
        a.mul_add(D::from(b), c)
    } else {
        c + a * b
    }
}

impl TwoLayerNetwork {
    /// [`Model::batch_gradient`]'s body; `FUSED`: the tanh network's arithmetic (fused
    /// multiply-adds, [`lanes::tanh_fused`]), else the activation's plain one.
    #[inline(always)]
    fn gradient_with<D: Scalar, const FUSED: bool>(
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
                let (s, d) = if FUSED {
                    let t = fused_tanh(dot::<D, true>(wj, x));
                    (t, (-t).mul_add(t, D::one()))
                } else {
                    self.activation.value_and_derivative(dot::<D, false>(wj, x))
                };
                f = madd::<D, FUSED>(a[j], s, f);
                sv[j] = s;
                ds[j] = d;
            }
            let r = f * scale - self.train.y[i];
            loss += r * r * 0.5;
            let weight = r - batch.shift_at(k);
            for (j, gwj) in gw.chunks_exact_mut(p).enumerate() {
                ga[j] = madd::<D, FUSED>(weight, sv[j], ga[j]);
                let c = weight * ds[j];
                for (g, &xk) in gwj.iter_mut().zip(x) {
                    *g = madd_f64::<D, FUSED>(c, xk, *g);
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

    /// The tanh network's [`TwoLayerNetwork::gradient_with`] compiled with FMA enabled (its
    /// fused multiply-adds are then single instructions; the same bits as without).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn tanh_gradient_fma<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        self.gradient_with::<D, true>(theta, batch, grad, scratch)
    }
}

/// `a * b + c`, fused into one rounding when `FUSED`.
#[inline(always)]
fn madd<D: Scalar, const FUSED: bool>(a: D, b: D, c: D) -> D {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `tanh` of the tanh network's fused arithmetic: [`lanes::tanh_fused`] in `f64` (the lane
/// kernel's bits), [`stable_tanh`] for dual numbers (derivatives).
#[inline(always)]
fn fused_tanh<D: Scalar>(z: D) -> D {
    if D::NDERIV == 0 {
        D::from(lanes::tanh_fused(z.re()))
    } else {
        stable_tanh(z)
    }
}

impl Model for TwoLayerNetwork {
    fn lane_kernel(&self) -> Option<&dyn LaneKernel> {
        Some(self)
    }

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
            let (s, ds) = self.activation.value_and_derivative(dot::<D, false>(wj, x));
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
    ///
    /// The tanh network's sums are fused multiply-adds (and `tanh` is [`lanes::tanh_fused`]),
    /// as in its vectorised [`Model::lane_gradients`], which equals this bit for bit; it runs
    /// compiled for FMA when the CPU has it (elsewhere each fused multiply-add is a
    /// call to libm's `fma`: slower, the same bits). The other activations use plain
    /// multiplications and additions.
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        if self.activation != Activation::Tanh {
            return self.gradient_with::<D, false>(theta, batch, grad, scratch);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has FMA (checked just above).
            return unsafe { self.tanh_gradient_fma(theta, batch, grad, scratch) };
        }
        self.gradient_with::<D, true>(theta, batch, grad, scratch)
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

impl LaneKernel for TwoLayerNetwork {
    /// The default's length, and at least `(2 m + p + 1) LANE_BLOCK LANES`: per-lane
    /// `tanh(z_j)`, `1 - tanh(z_j)^2`, gathered inputs and residual weights of a block of batch
    /// positions.
    fn lane_scratch_len(&self) -> usize {
        let by_lane = 2 * self.dim() + self.train.n + self.scratch_len();
        by_lane.max((2 * self.width + self.train.p + 1) * LANE_BLOCK * LANES)
    }

    /// The tanh network (T4's case) runs all lanes in one vectorised pass with the arithmetic
    /// of [`TwoLayerNetwork::batch_gradient`] operation by operation, fused multiply-adds and
    /// `tanh` included (the shared [`lanes::tanh_fused`]), so results are bit-identical to the
    /// lane-by-lane default. Full batches and mini-batches (inputs gathered per lane); other
    /// activations go lane by lane. Compiled for AVX-512 or AVX2 + FMA when the CPU has them
    /// (see [`crate::engine::lanes`]).
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
                crate::model::lane_testing::assert_lane_gradients_bit_identical(&m, lanes);
                // Every instruction-set version this CPU can run, not only the one picked.
                crate::model::lane_testing::assert_kernel_bit_identical(
                    &m,
                    lanes,
                    |t, b, g, s, l| m.tanh_lanes(t, b, g, s, l),
                );
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    crate::model::lane_testing::assert_kernel_bit_identical(
                        &m,
                        lanes,
                        |t, b, g, s, l| {
                            // SAFETY: the CPU has AVX2 and FMA (checked above).
                            unsafe { m.tanh_lanes_avx2(t, b, g, s, l) }
                        },
                    );
                }
            }
        }
    }

    /// The tanh network's `f64` gradient compiled for FMA (what `batch_gradient` runs on a CPU
    /// with FMA) equals the portable one, whose fused multiply-adds are libm calls, bit for bit.
    #[test]
    fn fused_gradient_is_the_same_with_or_without_fma_instructions() {
        let m = model(Activation::Tanh);
        let th: Vec<f64> = (0..m.dim())
            .map(|c| 0.7 * (0.9 * c as f64 + 0.3).cos())
            .collect();
        let shift = [0.3, -0.2, 0.05];
        let batch = Batch {
            indices: None,
            shift: Some(&shift),
        };
        let mut out = [(); 2].map(|_| (vec![0.0; m.dim()], vec![0.0; m.scratch_len()]));
        let [(g1, s1), (g2, s2)] = &mut out;
        let l1 = m.batch_gradient(&th, batch, g1, s1);
        let l2 = m.gradient_with::<f64, true>(&th, batch, g2, s2);
        assert_eq!(l1.to_bits(), l2.to_bits());
        assert_eq!(
            g1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            g2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(g1.iter().all(|v| v.is_finite()) && g1.iter().any(|&v| v != 0.0));
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
