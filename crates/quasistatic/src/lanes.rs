//! `Lanes`: one `f64` per trajectory of a group advanced together by the ensemble engine
//! ([`crate::simulate::LANES`] of them), with element-wise arithmetic.
//!
//! Each operation is a loop over a fixed-size array, which the compiler turns into vector
//! instructions (`sqrtpd`, `divpd`, ...) on any x86-64 or AArch64 target. Written by hand
//! rather than with a SIMD crate because this is all that is needed and keeps the arithmetic
//! visibly IEEE-exact per lane: `+ - * /` and `sqrt` are correctly rounded in vector form as
//! in scalar form, so a lane's result is bit-identical to the same expression on `f64`.

use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub};

use crate::simulate::LANES;

/// One value per lane.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
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
