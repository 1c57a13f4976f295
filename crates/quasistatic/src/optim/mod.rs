//! Optimizers: explicit state structs and a `step` that takes a gradient.
//!
//! Every optimizer follows the common library convention (PyTorch's), documented on each type.
//! Learning rates are per optimizer step and may follow a [`Schedule`]. An optimizer knows
//! nothing of models: a gradient comes in, the parameters are updated in place.
//!
//! ```
//! use quasistatic::optim::{Optimizer, Sgd, Schedule};
//! let opt = Sgd { lr: Schedule::Constant(0.1) };
//! let mut theta = vec![1.0, -2.0];
//! let mut state = opt.init(theta.len());
//! opt.step(&mut state, &mut theta, &[1.0, 1.0]);
//! assert_eq!(theta, vec![0.9, -2.1]);
//! ```

mod adam;
mod momentum;
mod rmsprop;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamState};
pub use momentum::{HeavyBall, MomentumState, Nesterov};
pub use rmsprop::{RmsProp, RmsPropState};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdState};

use crate::lanes::{LaneFloat, Lanes};

/// An optimizer: hyperparameters in `self`, all mutable state in [`Optimizer::State`].
pub trait Optimizer: Send + Sync {
    /// Mutable state (moment buffers, step counter).
    type State: Clone + Send + Sync + std::fmt::Debug;

    /// Fresh state for `dim` parameters (step counter 0, buffers 0).
    fn init(&self, dim: usize) -> Self::State;

    /// One step: update `theta` in place from the gradient `grad`. Allocates nothing.
    fn step(&self, state: &mut Self::State, theta: &mut [f64], grad: &[f64]);

    /// Whether [`Optimizer::step`] acts coordinate by coordinate (each coordinate's update
    /// depends only on that coordinate's parameter, gradient and state, plus scalars shared
    /// by all coordinates such as the step counter). Then several trajectories at the same
    /// step can be advanced by one call on their concatenated parameters, which the ensemble
    /// engine does (see [`crate::simulate`]). All built-in optimizers are; an optimizer that
    /// couples coordinates (gradient-norm clipping, a full-matrix preconditioner) must return
    /// `false`, and the engine then steps its trajectories one by one.
    fn coordinatewise(&self) -> bool {
        true
    }

    /// Whether the step is offered split into a scalar part ([`Optimizer::begin_step`]) and a
    /// per-coordinate part ([`Optimizer::update_coordinate`]) with at most two buffers per
    /// coordinate. The engine then keeps a small model's whole group (parameters and
    /// buffers) in registers across steps (see [`crate::simulate`]). All built-in optimizers
    /// offer it; the default is `false`, and the other two methods are then never called.
    fn offers_coordinate_update(&self) -> bool {
        false
    }

    /// The scalar part of one step: advance the step counter (and anything else shared by
    /// all coordinates) in `state` and return what every coordinate's update needs this step.
    /// `state` may have been made by `init(0)`: its per-coordinate buffers are not used.
    /// Only called when [`Optimizer::offers_coordinate_update`] is `true`.
    fn begin_step(&self, _state: &mut Self::State) -> StepScalars {
        panic!("begin_step is only called when offers_coordinate_update() is true")
    }

    /// One coordinate's part of a step begun by [`Optimizer::begin_step`]: update the
    /// parameter `x` and its buffers (`buffers[0]` is the first buffer of the state, e.g.
    /// momentum's velocity or Adam's `m`; `buffers[1]` Adam's `v`; unused slots are left alone)
    /// from the gradient entry `g`. Generic over `f64` (one trajectory) and [`Lanes`] (one
    /// coordinate of a whole group): every built-in [`Optimizer::step`] runs this very
    /// function per coordinate, so both give bit-identical results. Only called when
    /// [`Optimizer::offers_coordinate_update`] is `true`.
    fn update_coordinate<F: CoordinateFloat>(
        &self,
        _scalars: &StepScalars,
        _x: &mut F,
        _buffers: &mut [F; 2],
        _g: F,
    ) {
        panic!("update_coordinate is only called when offers_coordinate_update() is true")
    }
}

/// Scalars shared by every coordinate at one step (see [`Optimizer::begin_step`]): the
/// learning rate of this step and up to three optimizer-specific values (documented on each
/// optimizer's `begin_step`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepScalars {
    /// Learning rate of this step.
    pub eta: f64,
    /// Optimizer-specific scalars (e.g. Adam's bias corrections).
    pub extra: [f64; 3],
}

impl StepScalars {
    /// The learning rate alone (no optimizer-specific scalars).
    pub fn with_eta(eta: f64) -> Self {
        StepScalars {
            eta,
            extra: [0.0; 3],
        }
    }
}

/// Arithmetic of an optimizer's per-coordinate update: that of [`LaneFloat`] plus a correctly
/// rounded square root. Implemented by `f64` and [`Lanes`].
pub trait CoordinateFloat: LaneFloat {
    /// Correctly rounded square root (per lane).
    fn sqrt_value(self) -> Self;
}

impl CoordinateFloat for f64 {
    #[inline(always)]
    fn sqrt_value(self) -> Self {
        self.sqrt()
    }
}

impl CoordinateFloat for Lanes {
    #[inline(always)]
    fn sqrt_value(self) -> Self {
        self.sqrt()
    }
}

/// Any of the built-in optimizers (for configuration-driven runs).
#[derive(Clone, Debug, PartialEq)]
pub enum AnyOptimizer {
    /// Plain SGD.
    Sgd(Sgd),
    /// Heavy-ball momentum.
    HeavyBall(HeavyBall),
    /// Nesterov momentum.
    Nesterov(Nesterov),
    /// Adam or AdamW.
    Adam(Adam),
    /// RMSProp.
    RmsProp(RmsProp),
}

/// State of [`AnyOptimizer`].
#[derive(Clone, Debug)]
pub enum AnyState {
    /// SGD state.
    Sgd(SgdState),
    /// Momentum state (heavy ball and Nesterov).
    Momentum(MomentumState),
    /// Adam state.
    Adam(AdamState),
    /// RMSProp state.
    RmsProp(RmsPropState),
}

impl AnyOptimizer {
    /// Short name (`sgd`, `heavy_ball`, `nesterov`, `adam`, `adamw`, `rmsprop`).
    pub fn name(&self) -> &'static str {
        match self {
            AnyOptimizer::Sgd(_) => "sgd",
            AnyOptimizer::HeavyBall(_) => "heavy_ball",
            AnyOptimizer::Nesterov(_) => "nesterov",
            AnyOptimizer::Adam(a) if a.weight_decay > 0.0 => "adamw",
            AnyOptimizer::Adam(_) => "adam",
            AnyOptimizer::RmsProp(_) => "rmsprop",
        }
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> &Schedule {
        match self {
            AnyOptimizer::Sgd(o) => &o.lr,
            AnyOptimizer::HeavyBall(o) => &o.lr,
            AnyOptimizer::Nesterov(o) => &o.lr,
            AnyOptimizer::Adam(o) => &o.lr,
            AnyOptimizer::RmsProp(o) => &o.lr,
        }
    }
}

/// Run `$body` with `$o` bound to the concrete optimizer inside an [`AnyOptimizer`], so that
/// generic code (the simulation loop) is monomorphised per optimizer.
#[macro_export]
macro_rules! with_optimizer {
    ($any:expr, $o:ident => $body:expr) => {
        match $any {
            $crate::optim::AnyOptimizer::Sgd($o) => $body,
            $crate::optim::AnyOptimizer::HeavyBall($o) => $body,
            $crate::optim::AnyOptimizer::Nesterov($o) => $body,
            $crate::optim::AnyOptimizer::Adam($o) => $body,
            $crate::optim::AnyOptimizer::RmsProp($o) => $body,
        }
    };
}

impl Optimizer for AnyOptimizer {
    type State = AnyState;

    fn init(&self, dim: usize) -> AnyState {
        match self {
            AnyOptimizer::Sgd(o) => AnyState::Sgd(o.init(dim)),
            AnyOptimizer::HeavyBall(o) => AnyState::Momentum(o.init(dim)),
            AnyOptimizer::Nesterov(o) => AnyState::Momentum(o.init(dim)),
            AnyOptimizer::Adam(o) => AnyState::Adam(o.init(dim)),
            AnyOptimizer::RmsProp(o) => AnyState::RmsProp(o.init(dim)),
        }
    }

    #[inline]
    fn step(&self, state: &mut AnyState, theta: &mut [f64], grad: &[f64]) {
        match (self, state) {
            (AnyOptimizer::Sgd(o), AnyState::Sgd(s)) => o.step(s, theta, grad),
            (AnyOptimizer::HeavyBall(o), AnyState::Momentum(s)) => o.step(s, theta, grad),
            (AnyOptimizer::Nesterov(o), AnyState::Momentum(s)) => o.step(s, theta, grad),
            (AnyOptimizer::Adam(o), AnyState::Adam(s)) => o.step(s, theta, grad),
            (AnyOptimizer::RmsProp(o), AnyState::RmsProp(s)) => o.step(s, theta, grad),
            _ => panic!("optimizer state does not belong to this optimizer"),
        }
    }

    fn offers_coordinate_update(&self) -> bool {
        with_optimizer!(self, o => o.offers_coordinate_update())
    }

    fn begin_step(&self, state: &mut AnyState) -> StepScalars {
        match (self, state) {
            (AnyOptimizer::Sgd(o), AnyState::Sgd(s)) => o.begin_step(s),
            (AnyOptimizer::HeavyBall(o), AnyState::Momentum(s)) => o.begin_step(s),
            (AnyOptimizer::Nesterov(o), AnyState::Momentum(s)) => o.begin_step(s),
            (AnyOptimizer::Adam(o), AnyState::Adam(s)) => o.begin_step(s),
            (AnyOptimizer::RmsProp(o), AnyState::RmsProp(s)) => o.begin_step(s),
            _ => panic!("optimizer state does not belong to this optimizer"),
        }
    }

    #[inline]
    fn update_coordinate<F: CoordinateFloat>(
        &self,
        scalars: &StepScalars,
        x: &mut F,
        buffers: &mut [F; 2],
        g: F,
    ) {
        with_optimizer!(self, o => o.update_coordinate(scalars, x, buffers, g))
    }
}

#[cfg(test)]
mod tests;

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Constant(eta) => write!(f, "{eta}"),
            Schedule::Step { eta, gamma, every } => {
                write!(f, "{eta} x {gamma} every {every} steps")
            }
            Schedule::Cosine {
                eta,
                eta_min,
                steps,
            } => write!(f, "cosine {eta} -> {eta_min} over {steps} steps"),
            Schedule::Warmup { eta, warmup } => write!(f, "{eta} after {warmup} warm-up steps"),
        }
    }
}

impl std::fmt::Display for AnyOptimizer {
    /// E.g. `heavy_ball (lr 0.005, beta 0.9)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name();
        match self {
            AnyOptimizer::Sgd(o) => write!(f, "{name} (lr {})", o.lr),
            AnyOptimizer::HeavyBall(HeavyBall {
                lr,
                beta,
                weight_decay,
            })
            | AnyOptimizer::Nesterov(Nesterov {
                lr,
                beta,
                weight_decay,
            }) => {
                write!(f, "{name} (lr {lr}, beta {beta}")?;
                if *weight_decay > 0.0 {
                    write!(f, ", weight decay {weight_decay}")?;
                }
                write!(f, ")")
            }
            AnyOptimizer::Adam(o) => {
                write!(
                    f,
                    "{name} (lr {}, beta1 {}, beta2 {}, eps {:e}",
                    o.lr, o.beta1, o.beta2, o.eps
                )?;
                if o.weight_decay > 0.0 {
                    write!(f, ", weight decay {}", o.weight_decay)?;
                }
                write!(f, ")")
            }
            AnyOptimizer::RmsProp(o) => write!(
                f,
                "{name} (lr {}, alpha {}, eps {:e}{})",
                o.lr,
                o.alpha,
                o.eps,
                if o.bias_correction {
                    ", bias-corrected"
                } else {
                    ""
                }
            ),
        }
    }
}
