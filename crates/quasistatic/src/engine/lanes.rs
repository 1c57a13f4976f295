//! `Lanes`: one `f64` per trajectory of a group advanced together by the ensemble engine
//! ([`LANES`] of them), with element-wise arithmetic.
//!
//! Each operation is a loop over a fixed-size array, which the compiler turns into vector
//! instructions (`sqrtpd`, `divpd`, ...) on any x86-64 or AArch64 target. Written by hand
//! rather than with a SIMD crate because this is all that is needed and keeps the arithmetic
//! visibly IEEE-exact per lane: `+ - * /` and `sqrt` are correctly rounded in vector form as
//! in scalar form, so a lane's result is bit-identical to the same expression on `f64`.

use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub};

/// Trajectories the engine advances together in one group ("lanes").
///
/// Trajectories `8g .. 8g + 8` form group `g` whatever the thread count. A group's
/// parameters are stored coordinate-major (coordinate `k` of lane `l` at `k * LANES + l`), the
/// model evaluates all lanes in one call (vectorised across trajectories where the model
/// provides it) and a coordinatewise optimizer steps them in one
/// call, so that independent trajectories fill the processor's vector units and pipeline
/// instead of one trajectory's serial chain of dependent operations. Every lane draws only
/// from its own streams and its arithmetic is that of the trajectory run alone: results are
/// bit-identical to running each trajectory by itself.
pub const LANES: usize = 8;

/// One value per lane.
///
/// Aligned to 64 bytes (its size), so that a value in memory is one cache line and one
/// aligned vector load or store: the register group step keeps the groups' values in stack
/// arrays between steps, and an 8-byte-aligned `[f64; 8]` there split every 64-byte access
/// across two cache lines (measured: T1/T2 10-25% slower, `bench/PROFILE.md`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub struct Lanes(pub [f64; LANES]);

impl Lanes {
    /// Every lane `0`.
    pub const ZERO: Lanes = Lanes([0.0; LANES]);

    /// Every lane `v`.
    #[inline(always)]
    pub fn splat(v: f64) -> Self {
        Lanes([v; LANES])
    }

    /// The first [`LANES`] values of `s` (coordinate-major group storage).
    #[inline(always)]
    pub fn load(s: &[f64]) -> Self {
        let mut out = [0.0; LANES];
        out.copy_from_slice(&s[..LANES]);
        Lanes(out)
    }

    /// Write the lanes into the first [`LANES`] values of `s`.
    #[inline(always)]
    pub fn store(self, s: &mut [f64]) {
        s[..LANES].copy_from_slice(&self.0);
    }

    /// `value(l)` for lanes `0..lanes`, `0` for the unused lanes `lanes..LANES`.
    #[inline(always)]
    pub fn gather(lanes: usize, value: impl Fn(usize) -> f64) -> Self {
        let mut out = [0.0; LANES];
        for (l, o) in out.iter_mut().enumerate().take(lanes) {
            *o = value(l);
        }
        Lanes(out)
    }

    /// Element-wise square root.
    #[inline(always)]
    pub fn sqrt(self) -> Self {
        Lanes(self.0.map(f64::sqrt))
    }

    /// Element-wise `f`, lane by lane (for functions without a vector form, e.g. libm's).
    #[inline(always)]
    pub fn map(self, f: impl Fn(f64) -> f64) -> Self {
        Lanes(self.0.map(f))
    }
}

// `*o = *o op r` rather than `op=`: one macro for all four operators, operand order as written.
#[allow(clippy::assign_op_pattern)]
mod ops {
    use super::*;
    macro_rules! lane_op {
    ($tr:ident, $f:ident, $op:tt) => {
        impl $tr for Lanes {
            type Output = Lanes;
            #[inline(always)]
            fn $f(self, rhs: Lanes) -> Lanes {
                let mut out = self.0;
                for (o, r) in out.iter_mut().zip(rhs.0) {
                    *o = *o $op r;
                }
                Lanes(out)
            }
        }
        impl $tr<f64> for Lanes {
            type Output = Lanes;
            #[inline(always)]
            fn $f(self, rhs: f64) -> Lanes {
                let mut out = self.0;
                for o in out.iter_mut() {
                    *o = *o $op rhs;
                }
                Lanes(out)
            }
        }
        impl $tr<Lanes> for f64 {
            type Output = Lanes;
            #[inline(always)]
            fn $f(self, rhs: Lanes) -> Lanes {
                let mut out = rhs.0;
                for o in out.iter_mut() {
                    *o = self $op *o;
                }
                Lanes(out)
            }
        }
    };
}

    lane_op!(Add, add, +);
    lane_op!(Sub, sub, -);
    lane_op!(Mul, mul, *);
    lane_op!(Div, div, /);
}

impl AddAssign for Lanes {
    #[inline(always)]
    fn add_assign(&mut self, rhs: Lanes) {
        *self = *self + rhs;
    }
}

impl MulAssign for Lanes {
    #[inline(always)]
    fn mul_assign(&mut self, rhs: Lanes) {
        *self = *self * rhs;
    }
}

impl Neg for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn neg(self) -> Lanes {
        Lanes(self.0.map(|v| -v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lane arithmetic equals scalar arithmetic bit for bit, including signed zeros,
    /// subnormals and infinities (NaN only as NaN: its payload is not specified).
    #[test]
    fn lanes_are_scalar_arithmetic() {
        let a = std::hint::black_box([1.5, -0.0, 0.0, 1e-310, f64::INFINITY, -3.25, 7e300, 0.1]);
        let b = std::hint::black_box([3.0, 0.0, -0.0, 3.0, 2.0, 1e-300, 7e300, f64::NAN]);
        let (la, lb) = (Lanes(a), Lanes(b));
        let canon = |v: f64| {
            if v.is_nan() {
                f64::NAN.to_bits()
            } else {
                v.to_bits()
            }
        };
        let bits = |l: Lanes| l.0.map(canon);
        for l in 0..LANES {
            let (x, y) = (a[l], b[l]);
            assert_eq!(bits(la + lb)[l], canon(x + y));
            assert_eq!(bits(la - lb)[l], canon(x - y));
            assert_eq!(bits(la * lb)[l], canon(x * y));
            assert_eq!(bits(la / lb)[l], canon(x / y));
            if x >= 0.0 {
                assert_eq!(bits(la.sqrt())[l], canon(x.sqrt()));
            }
            assert_eq!(bits(la * 2.5)[l], canon(x * 2.5));
            assert_eq!(bits(0.0 + la)[l], canon(0.0 + x));
            assert_eq!(bits(-la)[l], canon(-x));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elementary functions evaluated with the same operations on `f64` and on `Lanes`.
//
// Why hand-written: libm's `expm1` / `tanh` are scalar calls, so a loop over lanes cannot use
// vector instructions, and no crate offers an `expm1` that is both vectorisable for our lane
// type and guaranteed to give, lane by lane, the very bits of its own scalar version. Both are
// needed: the two-layer network's vectorised lane gradient must equal its scalar gradient bit
// for bit (a trajectory's numbers may not depend on its group). So `expm1` and `tanh` below are
// written once, as straight-line select-based arithmetic (no branches, no table lookups) over
// the tiny trait [`LaneFloat`], and instantiated for both `f64` and [`Lanes`]: the same
// sequence of correctly rounded IEEE operations runs in both, hence identical results.
//
// Wider vectors. Built for baseline x86-64, `Lanes` arithmetic compiles to 2-wide SSE2. The
// networks' lane kernels (`model/diagonal.rs`, `model/two_layer.rs`) are therefore also compiled
// with `#[target_feature(enable = "avx512f")]` / `"avx2,fma"` and chosen at run time
// (`is_x86_feature_detected!`, behind an `unsafe` call that only that check justifies). This
// changes instruction width, not results: `+ - * /` are correctly rounded at every width, and
// Rust never fuses a multiply and an add into an FMA on its own, so all versions give the scalar
// bits (checked by the bit-identity tests on whichever machine runs them).
//
// Fused multiply-adds. Where a kernel wants them (the tanh network: they halve the operations
// of its matrix products and of `tanh`), it asks explicitly, through `f64::mul_add` /
// [`LaneFloat::mul_add`], in its scalar and its lane version alike. A fused multiply-add is
// exactly specified (one rounding), so the bits are the same everywhere: one instruction in the
// AVX-512 / AVX2 + FMA versions, a call to libm's `fma` elsewhere (slower, same result).
// ---------------------------------------------------------------------------------------------

/// The arithmetic [`expm1`] and [`tanh`] are written in: `+ - * /` (also with an `f64`
/// operand), fused multiply-adds and a few exact bit-level operations. Implemented by `f64`
/// (one value) and [`Lanes`] (element-wise); every operation is exact or correctly rounded,
/// so a lane's result equals the `f64` result bit for bit.
pub trait LaneFloat:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
{
    /// Every lane `v`.
    fn splat_f64(v: f64) -> Self;
    /// `|self|` (clears the sign bit; exact).
    fn abs_value(self) -> Self;
    /// `|self|` with the sign bit of `sign` (exact; `-0` and `NaN` signs included).
    fn with_sign_of(self, sign: Self) -> Self;
    /// Per lane: `then` where `self < bound`, else `otherwise` (`NaN < bound` is false).
    fn select_lt(self, bound: f64, then: Self, otherwise: Self) -> Self;
    /// Per lane: reinterpret as `u64`, apply `f`, reinterpret as `f64`.
    fn map_bits(self, f: impl Fn(u64) -> u64) -> Self;
    /// `self * a + b` with one rounding (a fused multiply-add, `f64::mul_add` per lane: the
    /// same bits on every machine, one instruction where the code is compiled for FMA).
    fn mul_add(self, a: Self, b: Self) -> Self;
}

const SIGN_BIT: u64 = 1 << 63;

impl LaneFloat for f64 {
    #[inline(always)]
    fn splat_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn abs_value(self) -> Self {
        f64::from_bits(self.to_bits() & !SIGN_BIT)
    }
    #[inline(always)]
    fn with_sign_of(self, sign: Self) -> Self {
        f64::from_bits((self.to_bits() & !SIGN_BIT) | (sign.to_bits() & SIGN_BIT))
    }
    #[inline(always)]
    fn select_lt(self, bound: f64, then: Self, otherwise: Self) -> Self {
        if self < bound {
            then
        } else {
            otherwise
        }
    }
    #[inline(always)]
    fn map_bits(self, f: impl Fn(u64) -> u64) -> Self {
        f64::from_bits(f(self.to_bits()))
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
}

impl LaneFloat for Lanes {
    #[inline(always)]
    fn splat_f64(v: f64) -> Self {
        Lanes::splat(v)
    }
    #[inline(always)]
    fn abs_value(self) -> Self {
        Lanes(self.0.map(LaneFloat::abs_value))
    }
    #[inline(always)]
    fn with_sign_of(self, sign: Self) -> Self {
        Lanes(std::array::from_fn(|l| self.0[l].with_sign_of(sign.0[l])))
    }
    #[inline(always)]
    fn select_lt(self, bound: f64, then: Self, otherwise: Self) -> Self {
        Lanes(std::array::from_fn(|l| {
            self.0[l].select_lt(bound, then.0[l], otherwise.0[l])
        }))
    }
    #[inline(always)]
    fn map_bits(self, f: impl Fn(u64) -> u64) -> Self {
        Lanes(self.0.map(|v| f64::from_bits(f(v.to_bits()))))
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Lanes(std::array::from_fn(|l| self.0[l].mul_add(a.0[l], b.0[l])))
    }
}

/// `e^x - 1`, accurate to about 1 ulp (measured maximum in the tests: see
/// `expm1_matches_libm`) for every `x`, also for tiny `|x|` (relative accuracy kept; `±0` and
/// subnormals returned unchanged), `-1` below `x = -60`, `+inf` beyond `x ~ 709.78`, `NaN` for
/// `NaN`. Generic over [`LaneFloat`]: the `f64` and [`Lanes`] versions give identical bits.
///
/// Method: Cody-Waite reduction `x = k ln 2 + r`, `|r| <= ln 2 / 2` (`k` rounded with the
/// `1.5 * 2^52` shifter, `ln 2` split in a 32-bit head and a tail so `k * head` is exact);
/// `e^r - 1 = r + r^2 q(r)` with the Taylor polynomial `q` of degree 11 (truncation error below
/// `2^-56` relative on the interval), evaluated by Estrin's scheme; then
/// `e^x - 1 = 2 (s (e^r - 1) + (s - 1/2))` with `s = 2^(k-1)` built from the exponent bits
/// (`s - 1/2` is exact, and the factor 2 is exact, so `k = 1024` does not overflow early).
#[inline(always)]
pub fn expm1<T: LaneFloat>(x: T) -> T {
    // Below 2^-54, e^x - 1 rounds to x (and keeps the sign of -0 and subnormals exact).
    const TINY: f64 = 5.551_115_123_125_783e-17;
    let c = T::splat_f64;
    // Clamp to [-60, 710] (NaN passes): e^-60 is below half an ulp of 1, and 710 > ln(MAX).
    let xc = x.select_lt(-60.0, c(-60.0), x);
    let xc = (-xc).select_lt(-710.0, c(710.0), xc);
    let (t, p) = expm1_reduced::<T, false>(xc);
    // s = 2^(k-1): biased exponent k - 1 + 1023, k in [-87, 1024].
    let s = t.map_bits(|b| b.wrapping_sub(SHIFT_BITS).wrapping_add(1022) << 52);
    let y = (s * p + (s - 0.5)) * 2.0;
    x.abs_value().select_lt(TINY, x, y)
}

/// `a * b + c`, fused into one rounding when `FUSED`.
#[inline(always)]
fn madd<T: LaneFloat, const FUSED: bool>(a: T, b: T, c: T) -> T {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `ln 2 = LN2_HI + LN2_LO`, `LN2_HI` with 32 significant bits (fdlibm's split).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// Adding `1.5 * 2^52` rounds to an integer, which lands in the low mantissa bits.
const SHIFT: f64 = 6_755_399_441_055_744.0;
const SHIFT_BITS: u64 = 0x4338_0000_0000_0000;

/// The common part of [`expm1`] and of [`tanh_fused`]'s `expm1`, for a clamped `xc`: the
/// reduction `xc = k ln 2 + r` and `p = e^r - 1 = r + r^2 q(r)`. Returns `(t, p)`, `t` holding
/// `k` in its low mantissa bits (`t - SHIFT = k`).
#[inline(always)]
fn expm1_reduced<T: LaneFloat, const FUSED: bool>(xc: T) -> (T, T) {
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    let c = T::splat_f64;
    let madd = madd::<T, FUSED>;
    let t = madd(xc, c(INV_LN2), c(SHIFT));
    let kf = t - SHIFT;
    // `kf * LN2_HI` is exact, so fusing changes only the tail's rounding.
    let r = madd(-kf, c(LN2_LO), madd(-kf, c(LN2_HI), xc));
    // Estrin's scheme (short dependency chains: the lanes' latency, not their throughput,
    // bounds a network's forward pass).
    let r2 = r * r;
    let r4 = r2 * r2;
    let pair = |i: usize| madd(r, c(EXPM1_Q[i + 1]), c(EXPM1_Q[i]));
    let q03 = madd(r2, pair(2), pair(0));
    let q47 = madd(r2, pair(6), pair(4));
    let q811 = madd(r2, pair(10), pair(8));
    let q = madd(r4, madd(r4, q811, q47), q03);
    (t, madd(r2, q, r))
}

/// `tanh(z)`, accurate to a few ulp (measured maximum in the tests: see `tanh_matches_libm`),
/// exactly `±1` for `|z| > 19.1`, odd (`tanh(-0) = -0`), never `NaN` for finite or infinite
/// `z`. Generic over [`LaneFloat`]: the `f64` and [`Lanes`] versions give identical bits.
///
/// `tanh |z| = -em / (em + 2)` with `em = expm1(-2 |z|)` in `(-1, 0]` (no overflow, no
/// cancellation), then the sign of `z`.
#[inline(always)]
pub fn tanh<T: LaneFloat>(z: T) -> T {
    let em = expm1(z.abs_value() * -2.0);
    (-em / (em + 2.0)).with_sign_of(z)
}

/// [`tanh`] in fused multiply-adds (the tanh network's arithmetic, see the note above
/// [`LaneFloat`]): as accurate (see `tanh_matches_libm`), different last bits, fewer
/// operations. `em = e^x - 1` for `x = -2 |z| <= 0` only, so its method (that of [`expm1`])
/// drops what only other arguments need: the clamp at `710`, and the scale `2^(k-1)` with the
/// final doubling and the special case of tiny `x` that come with it (`2^k` is exact here, as
/// `k <= 0`, so `2^k p + (2^k - 1)` needs no care at `k = 1024` and returns a tiny `x`
/// unchanged).
#[inline(always)]
pub fn tanh_fused<T: LaneFloat>(z: T) -> T {
    let em = expm1_nonpositive_fused(z.abs_value() * -2.0);
    (-em / (em + 2.0)).with_sign_of(z)
}

/// `e^x - 1` for `x <= 0` (or `NaN`), in fused multiply-adds (see [`tanh_fused`]).
#[inline(always)]
fn expm1_nonpositive_fused<T: LaneFloat>(x: T) -> T {
    let xc = x.select_lt(-60.0, T::splat_f64(-60.0), x);
    let (t, p) = expm1_reduced::<T, true>(xc);
    // s = 2^k, k in [-87, 0]: biased exponent k + 1023.
    let s = t.map_bits(|b| b.wrapping_sub(SHIFT_BITS).wrapping_add(1023) << 52);
    s.mul_add(p, s - 1.0)
}

/// `q(r) = sum_n r^n / (n + 2)!`, `n = 0..=11`: `e^r - 1 = r + r^2 q(r)` (see [`expm1`]).
const EXPM1_Q: [f64; 12] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

#[cfg(test)]
mod function_tests {
    use super::*;

    /// Distance in units in the last place (number of representable doubles in between).
    fn ulps(a: f64, b: f64) -> u64 {
        let key = |v: f64| {
            let bits = v.to_bits();
            if bits & SIGN_BIT != 0 {
                -((bits & !SIGN_BIT) as i64)
            } else {
                bits as i64
            }
        };
        key(a).abs_diff(key(b))
    }

    /// Test inputs: a dense grid over the interesting range, tiny and huge magnitudes on a
    /// logarithmic grid (both signs), edge cases, and pseudo-random values.
    fn inputs() -> Vec<f64> {
        let mut xs: Vec<f64> = (-400_000..=400_000).map(|i| i as f64 * 1e-4).collect();
        for e in -1074..=1023 {
            for m in [1.0, 1.37, 1.999_999_9] {
                let v = m * 2f64.powi(e);
                if v.is_finite() {
                    xs.extend([v, -v]);
                }
            }
        }
        xs.extend([
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            1e-310,
            -1e-310,
            20.0,
            -20.0,
            1000.0,
            -1000.0,
            f64::MAX,
            f64::MIN,
        ]);
        // Boundaries of the range reduction (k changes at odd multiples of ln 2 / 2).
        for k in -90..=1030 {
            let b = (k as f64 + 0.5) * std::f64::consts::LN_2;
            xs.extend([b, b.next_up(), b.next_down()]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Uniform in [-50, 50] and log-uniform magnitudes in [1e-20, 1e3].
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            xs.push(100.0 * u - 50.0);
            let s = if state & 1 == 0 { 1.0 } else { -1.0 };
            xs.push(s * 10f64.powf(-20.0 + 23.0 * u));
        }
        xs
    }

    /// Against libm's `exp_m1` (itself within 1 ulp of the truth): at most 2 ulp apart over the
    /// whole finite range where the result is finite (measured: see the assertion message), the
    /// same for ±0, subnormals, ±inf and NaN.
    #[test]
    fn expm1_matches_libm() {
        for (name, expm1) in [
            ("expm1", expm1::<f64> as fn(f64) -> f64),
            // Below zero (its domain in `tanh_fused`, where the sign of 0 is set afterwards).
            ("expm1_nonpositive_fused", |x: f64| {
                if x < 0.0 || x.is_nan() {
                    expm1_nonpositive_fused(x)
                } else {
                    x.exp_m1()
                }
            }),
        ] {
            let mut worst = (0, 0.0);
            for x in inputs() {
                let (got, want) = (expm1(x), x.exp_m1());
                if want.is_infinite() {
                    assert_eq!(got, want, "{name}({x:e})");
                    continue;
                }
                let u = ulps(got, want);
                if u > worst.0 {
                    worst = (u, x);
                }
            }
            assert!(worst.0 <= 2, "{name}: {} ulp at x = {:e}", worst.0, worst.1);
            eprintln!(
                "{name}: max {} ulp from libm (at x = {:e})",
                worst.0, worst.1
            );
            assert_eq!(expm1(0.0f64).to_bits(), 0.0f64.to_bits());
            assert_eq!(expm1(-0.0f64).to_bits(), (-0.0f64).to_bits());
            assert_eq!(expm1(5e-324f64), 5e-324);
            assert_eq!(expm1(-1000.0f64), -1.0);
            assert_eq!(expm1(f64::NEG_INFINITY), -1.0);
            assert_eq!(expm1(f64::INFINITY), f64::INFINITY);
            assert_eq!(expm1(710.0f64), f64::INFINITY);
            assert!(expm1(709.7f64).is_finite());
            assert!(expm1(f64::NAN).is_nan());
        }
    }

    /// Against libm's `tanh` (itself within 1 ulp of the truth): at most 3 ulp apart (measured:
    /// see the assertion message), exactly `±1` far out, odd, `NaN` only for `NaN`.
    #[test]
    fn tanh_matches_libm() {
        for (name, tanh) in [
            ("tanh", tanh::<f64> as fn(f64) -> f64),
            ("tanh_fused", tanh_fused::<f64>),
        ] {
            let mut worst = (0, 0.0);
            for x in inputs() {
                let (got, want) = (tanh(x), x.tanh());
                let u = ulps(got, want);
                if u > worst.0 {
                    worst = (u, x);
                }
                assert_eq!(tanh(-x).to_bits(), (-got).to_bits(), "{name} odd at {x:e}");
            }
            assert!(worst.0 <= 3, "{name}: {} ulp at x = {:e}", worst.0, worst.1);
            eprintln!(
                "{name}: max {} ulp from libm (at x = {:e})",
                worst.0, worst.1
            );
            assert_eq!(tanh(0.0f64).to_bits(), 0.0f64.to_bits());
            assert_eq!(tanh(-0.0f64).to_bits(), (-0.0f64).to_bits());
            assert_eq!(tanh(1e-310f64), 1e-310);
            for (z, t) in [(20.0, 1.0), (-20.0, -1.0), (1000.0, 1.0), (-1000.0, -1.0)] {
                assert_eq!(tanh(z), t);
            }
            assert_eq!(tanh(f64::INFINITY), 1.0);
            assert_eq!(tanh(f64::NEG_INFINITY), -1.0);
            assert!(tanh(f64::NAN).is_nan());
        }
    }

    /// The `Lanes` instantiation gives the `f64` instantiation's bits in every lane (NaN only
    /// as NaN).
    #[test]
    fn lane_functions_are_the_scalar_functions() {
        let xs = inputs();
        let canon = |v: f64| if v.is_nan() { u64::MAX } else { v.to_bits() };
        for c in xs.chunks_exact(LANES) {
            let x = std::hint::black_box(Lanes::load(c));
            let (e, t) = (expm1(x), tanh(x));
            let tf = tanh_fused(x);
            for (l, &v) in c.iter().enumerate() {
                assert_eq!(canon(e.0[l]), canon(expm1(v)), "expm1({v:e})");
                assert_eq!(canon(t.0[l]), canon(tanh(v)), "tanh({v:e})");
                assert_eq!(canon(tf.0[l]), canon(tanh_fused(v)), "tanh_fused({v:e})");
            }
        }
        let x = Lanes([
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            -0.0,
            0.0,
            5e-324,
            -1e-300,
            0.5,
        ]);
        let (t, tf) = (tanh(x), tanh_fused(x));
        for l in 0..LANES {
            assert_eq!(canon(t.0[l]), canon(tanh(x.0[l])));
            assert_eq!(canon(tf.0[l]), canon(tanh_fused(x.0[l])));
        }
    }
}

/// Inside an `impl` block: from a lane kernel method `$kernel(&self, theta, batch, grad,
/// scratch, loss)` (the signature of `model::LaneModel::lane_gradients`, marked
/// `#[inline(always)]`), generate `$avx512` and `$avx2`, the same kernel compiled with AVX-512F
/// / AVX2 + FMA enabled (x86-64 only; calling them is `unsafe` and needs the CPU features;
/// AVX-512F implies FMA), and
/// `$widest`, which checks the CPU and runs the widest version it has. The results do not
/// depend on the version (see the note above [`LaneFloat`]).
macro_rules! lane_kernel_versions {
    ($kernel:ident, $avx512:ident, $avx2:ident, $widest:ident) => {
        /// The lane kernel compiled with AVX-512F enabled.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512(
            &self,
            theta: &[f64],
            batch: $crate::engine::LaneBatch<'_>,
            grad: &mut [f64],
            scratch: &mut [f64],
            loss: &mut [f64; $crate::engine::LANES],
        ) {
            self.$kernel(theta, batch, grad, scratch, loss)
        }

        /// The lane kernel compiled with AVX2 and FMA enabled.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2(
            &self,
            theta: &[f64],
            batch: $crate::engine::LaneBatch<'_>,
            grad: &mut [f64],
            scratch: &mut [f64],
            loss: &mut [f64; $crate::engine::LANES],
        ) {
            self.$kernel(theta, batch, grad, scratch, loss)
        }

        /// The lane kernel in the widest vector version this CPU runs.
        #[inline(always)]
        fn $widest(
            &self,
            theta: &[f64],
            batch: $crate::engine::LaneBatch<'_>,
            grad: &mut [f64],
            scratch: &mut [f64],
            loss: &mut [f64; $crate::engine::LANES],
        ) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { self.$avx512(theta, batch, grad, scratch, loss) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { self.$avx2(theta, batch, grad, scratch, loss) };
                }
            }
            self.$kernel(theta, batch, grad, scratch, loss)
        }
    };
}
pub(crate) use lane_kernel_versions;

/// `$body` once for each integer literal of the list, in order, with `$i` bound to it: a loop
/// written out, for register tiles. Each tile's sums are an array indexed by these constants,
/// which the compiler then keeps in registers; with a loop over a tile, even of constant
/// length, it sometimes kept the array on the stack instead, loaded and stored at every step
/// (`bench/PROFILE.md`). Guard the body with `if $i < N` for a tile of generic size `N`.
macro_rules! unroll {
    ($i:ident in [$($n:literal),*] $body:block) => {
        $( {
            let $i: usize = $n;
            $body
        } )*
    };
}
pub(crate) use unroll;
