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
mod lion;
mod momentum;
mod rmsprop;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamClock, AdamScalars, Moments};
pub use lion::{Lion, LionScalars};
pub use momentum::{HeavyBall, Nesterov};
pub use rmsprop::{RmsProp, RmsPropClock, RmsPropScalars};
pub use schedule::Schedule;
pub use sgd::Sgd;

pub use crate::engine::{CoordinateFloat, CoordinateRule};

/// An optimizer: hyperparameters in `self`, all mutable state in [`Optimizer::State`].
///
/// Implement it directly for an optimizer that couples coordinates (clipping by the global
/// gradient norm, a full-matrix preconditioner): the ensemble engine then steps every
/// trajectory by itself with [`Optimizer::step`], always correctly. An optimizer that acts
/// coordinate by coordinate implements [`CoordinateRule`] instead and gets this trait from
/// the blanket implementation, with the engine's fast paths (whole groups stepped at once,
/// small models held in registers).
pub trait Optimizer: Send + Sync {
    /// Mutable state (moment buffers, step counter).
    type State: Clone + Send + Sync + std::fmt::Debug;

    /// Fresh state for `dim` parameters (step counter 0, buffers 0).
    fn init(&self, dim: usize) -> Self::State;

    /// One step: update `theta` in place from the gradient `grad`. Allocates nothing.
    fn step(&self, state: &mut Self::State, theta: &mut [f64], grad: &[f64]);

    /// Call `visitor` with the optimizer's capability: [`RuleVisitor::rule`] with the
    /// [`CoordinateRule`] it is (the blanket implementation; [`AnyOptimizer`] passes its
    /// variant's), else [`RuleVisitor::general`] (the default). This is how the engine picks
    /// a fast path without knowing the optimizer's type.
    fn visit<'o, V: RuleVisitor<'o>>(&'o self, visitor: V) -> V::Output
    where
        Self: Sized,
    {
        visitor.general(self)
    }
}

/// What the engine does with an optimizer, by capability (see [`Optimizer::visit`]); `'o`
/// is the optimizer's borrow, so that the output may hold it.
pub trait RuleVisitor<'o> {
    /// The result.
    type Output;
    /// An optimizer with no declared capability: step it trajectory by trajectory.
    fn general<O: Optimizer>(self, optimizer: &'o O) -> Self::Output;
    /// A coordinatewise optimizer.
    fn rule<R: CoordinateRule>(self, rule: &'o R) -> Self::Output;
}

/// The state of a [`CoordinateRule`] stepped as an [`Optimizer`]: its clock and the buffers
/// of every coordinate.
pub struct RuleState<R: CoordinateRule> {
    /// The scalar state (step counter, ...).
    pub clock: R::Clock,
    /// Coordinate `k`'s buffers.
    pub buffers: Vec<R::Buffers<f64>>,
}

impl<R: CoordinateRule> Clone for RuleState<R> {
    fn clone(&self) -> Self {
        RuleState {
            clock: self.clock.clone(),
            buffers: self.buffers.clone(),
        }
    }
}

impl<R: CoordinateRule> std::fmt::Debug for RuleState<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleState")
            .field("clock", &self.clock)
            .field("buffers", &self.buffers)
            .finish()
    }
}

impl<R: CoordinateRule> Optimizer for R {
    type State = RuleState<R>;

    fn init(&self, dim: usize) -> RuleState<R> {
        RuleState {
            clock: self.start(),
            buffers: vec![self.zero_buffers::<f64>(); dim],
        }
    }

    #[inline(always)]
    fn step(&self, state: &mut RuleState<R>, theta: &mut [f64], grad: &[f64]) {
        let s = self.begin_step(&mut state.clock);
        for ((x, b), &g) in theta.iter_mut().zip(state.buffers.iter_mut()).zip(grad) {
            self.update(&s, x, b, g);
        }
    }

    fn visit<'o, V: RuleVisitor<'o>>(&'o self, visitor: V) -> V::Output {
        visitor.rule(self)
    }
}

/// The built-in optimizers, a line each: the registry behind [`AnyOptimizer`], its state
/// [`AnyState`] and [`Optimizer::visit`] (which hands the engine the concrete rule). Each
/// type is a [`CoordinateRule`] with a `lr: Schedule` field, a `name()` and a `Display`.
macro_rules! registry {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// Any of the built-in optimizers (for configuration-driven runs).
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnyOptimizer {
            $(
                #[doc = concat!("[`", stringify!($ty), "`].")]
                $variant($ty),
            )*
        }

        /// State of [`AnyOptimizer`].
        #[derive(Clone, Debug)]
        pub enum AnyState {
            $(
                #[doc = concat!("State of [`", stringify!($ty), "`].")]
                $variant(RuleState<$ty>),
            )*
        }

        impl AnyOptimizer {
            /// Short name (`sgd`, `heavy_ball`, `nesterov`, `adam`, `adamw`, `rmsprop`, ...).
            pub fn name(&self) -> &'static str {
                match self {
                    $(AnyOptimizer::$variant(o) => o.name(),)*
                }
            }

            /// The learning-rate schedule.
            pub fn schedule(&self) -> &Schedule {
                match self {
                    $(AnyOptimizer::$variant(o) => &o.lr,)*
                }
            }
        }

        impl Optimizer for AnyOptimizer {
            type State = AnyState;

            fn init(&self, dim: usize) -> AnyState {
                match self {
                    $(AnyOptimizer::$variant(o) => AnyState::$variant(o.init(dim)),)*
                }
            }

            #[inline]
            fn step(&self, state: &mut AnyState, theta: &mut [f64], grad: &[f64]) {
                match (self, state) {
                    $((AnyOptimizer::$variant(o), AnyState::$variant(s)) => o.step(s, theta, grad),)*
                    #[allow(unreachable_patterns)]
                    _ => panic!("optimizer state does not belong to this optimizer"),
                }
            }

            fn visit<'o, V: RuleVisitor<'o>>(&'o self, visitor: V) -> V::Output {
                match self {
                    $(AnyOptimizer::$variant(o) => visitor.rule(o),)*
                }
            }
        }

        impl std::fmt::Display for AnyOptimizer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(AnyOptimizer::$variant(o) => o.fmt(f),)*
                }
            }
        }
    };
}

registry! {
    Sgd(Sgd),
    HeavyBall(HeavyBall),
    Nesterov(Nesterov),
    Adam(Adam),
    RmsProp(RmsProp),
    Lion(Lion),
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
