//! The capability of an optimizer whose step acts coordinate by coordinate.
//!
//! Many optimizers (SGD, momentum, Adam, RMSProp, Lion, ...) update each coordinate from that
//! coordinate's parameter, gradient and buffers alone, plus scalars shared by every
//! coordinate at a step (the learning rate, bias corrections). Such an optimizer is written
//! as a [`CoordinateRule`]: a scalar part run once per step ([`CoordinateRule::begin_step`])
//! and a per-coordinate part ([`CoordinateRule::update`]) generic over the arithmetic type,
//! `f64` for one trajectory or [`Lanes`] for one coordinate of a whole group. Because the
//! per-coordinate part sees only one coordinate, an engine may step many trajectories at once
//! on their concatenated coordinates, or hold a group in vector registers, and the result is
//! the one of stepping each trajectory alone, bit for bit.
//!
//! An optimizer that couples coordinates (clipping by the global gradient norm, a full-matrix
//! preconditioner) cannot be written as a rule, so it can never be stepped as one by mistake:
//! it implements the general `optim::Optimizer` trait, which the engine steps trajectory by
//! trajectory.

use super::lanes::{LaneFloat, Lanes};

/// Arithmetic of an optimizer's per-coordinate update: that of [`LaneFloat`] plus a correctly
/// rounded square root. Implemented by `f64` and [`Lanes`].
pub trait CoordinateFloat: LaneFloat + Send + Sync + std::fmt::Debug + 'static {
    /// Correctly rounded square root (per lane).
    fn sqrt_value(self) -> Self;
    /// The sign (per lane): `1` for positive values, `-1` for negative ones, the value itself
    /// for zeros and `NaN` (so `sign(0) = 0`, as in `numpy.sign`, and `NaN` stays visible).
    fn sign_value(self) -> Self;
}

/// [`CoordinateFloat::sign_value`] of one `f64`.
#[inline(always)]
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

impl CoordinateFloat for f64 {
    #[inline(always)]
    fn sqrt_value(self) -> Self {
        self.sqrt()
    }
    #[inline(always)]
    fn sign_value(self) -> Self {
        sign(self)
    }
}

impl CoordinateFloat for Lanes {
    #[inline(always)]
    fn sqrt_value(self) -> Self {
        self.sqrt()
    }
    #[inline(always)]
    fn sign_value(self) -> Self {
        Lanes(self.0.map(sign))
    }
}

/// A coordinatewise optimizer: hyperparameters in `self`, the scalar state in
/// [`CoordinateRule::Clock`], the per-coordinate state in [`CoordinateRule::Buffers`].
///
/// One step is `let s = rule.begin_step(&mut clock);` followed by
/// `rule.update(&s, &mut x[k], &mut buffers[k], g[k])` for every coordinate `k`.
pub trait CoordinateRule: Send + Sync {
    /// The state shared by every coordinate (step counter, running powers of the decays).
    type Clock: Clone + Send + Sync + std::fmt::Debug;
    /// What every coordinate's update needs at one step (learning rate of the step, bias
    /// corrections, ...), computed by [`CoordinateRule::begin_step`].
    type Scalars: Copy + Send + Sync + std::fmt::Debug;
    /// One coordinate's buffers over the arithmetic type `F` (`()` for none, `F` for a
    /// velocity, a pair of moments, ...).
    type Buffers<F: CoordinateFloat>: Copy + Send + Sync + std::fmt::Debug;

    /// The clock before the first step.
    fn start(&self) -> Self::Clock;

    /// One coordinate's buffers before the first step (zero moments).
    fn zero_buffers<F: CoordinateFloat>(&self) -> Self::Buffers<F>;

    /// The scalar part of one step: advance the clock and return this step's scalars.
    fn begin_step(&self, clock: &mut Self::Clock) -> Self::Scalars;

    /// One coordinate's part of the step begun by [`CoordinateRule::begin_step`]: update the
    /// parameter `x` and its buffers from the gradient entry `g`.
    fn update<F: CoordinateFloat>(
        &self,
        scalars: &Self::Scalars,
        x: &mut F,
        buffers: &mut Self::Buffers<F>,
        g: F,
    );
}
