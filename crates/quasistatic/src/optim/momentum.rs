//! Heavy-ball and Nesterov momentum, PyTorch convention (dampening 0).

use super::{CoordinateFloat, Optimizer, Schedule, StepScalars};

/// Heavy ball: `buf = beta buf + g; theta -= eta buf` (with `buf` starting at 0).
/// With `beta = 0` it is SGD. Optional L2 weight decay adds `weight_decay * theta` to `g`.
#[derive(Clone, Debug, PartialEq)]
pub struct HeavyBall {
    /// Learning rate per step.
    pub lr: Schedule,
    /// Momentum `beta` in `[0, 1)`.
    pub beta: f64,
    /// Coupled L2 weight decay (added to the gradient).
    pub weight_decay: f64,
}

/// Nesterov momentum in the library form: `buf = beta buf + g; theta -= eta (g + beta buf)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Nesterov {
    /// Learning rate per step.
    pub lr: Schedule,
    /// Momentum `beta` in `[0, 1)`.
    pub beta: f64,
    /// Coupled L2 weight decay (added to the gradient).
    pub weight_decay: f64,
}

/// Momentum state: the velocity buffer and the step counter.
#[derive(Clone, Debug)]
pub struct MomentumState {
    /// Velocity `buf`.
    pub buf: Vec<f64>,
    /// Steps taken.
    pub t: u64,
}

/// The parts of [`Optimizer`] heavy ball and Nesterov share: state, step loop, scalar part.
macro_rules! momentum_common {
    () => {
        type State = MomentumState;

        fn init(&self, dim: usize) -> MomentumState {
            MomentumState {
                buf: vec![0.0; dim],
                t: 0,
            }
        }

        #[inline(always)]
        fn step(&self, state: &mut MomentumState, theta: &mut [f64], grad: &[f64]) {
            let s = self.begin_step(state);
            for ((x, b), &g) in theta.iter_mut().zip(state.buf.iter_mut()).zip(grad) {
                let mut buffers = [*b, 0.0];
                self.update_coordinate(&s, x, &mut buffers, g);
                *b = buffers[0];
            }
        }

        fn offers_coordinate_update(&self) -> bool {
            true
        }

        /// `eta` only; one buffer (the velocity).
        #[inline(always)]
        fn begin_step(&self, state: &mut MomentumState) -> StepScalars {
            let eta = self.lr.at(state.t);
            state.t += 1;
            StepScalars::with_eta(eta)
        }
    };
}

impl Optimizer for HeavyBall {
    momentum_common!();

    /// `g += wd x; buf = beta buf + g; x -= eta buf`.
    #[inline(always)]
    fn update_coordinate<F: CoordinateFloat>(
        &self,
        s: &StepScalars,
        x: &mut F,
        buffers: &mut [F; 2],
        g: F,
    ) {
        let g = g + *x * self.weight_decay;
        let b = &mut buffers[0];
        *b = *b * self.beta + g;
        *x = *x - *b * s.eta;
    }
}

impl Optimizer for Nesterov {
    momentum_common!();

    /// `g += wd x; buf = beta buf + g; x -= eta (g + beta buf)`.
    #[inline(always)]
    fn update_coordinate<F: CoordinateFloat>(
        &self,
        s: &StepScalars,
        x: &mut F,
        buffers: &mut [F; 2],
        g: F,
    ) {
        let g = g + *x * self.weight_decay;
        let b = &mut buffers[0];
        *b = *b * self.beta + g;
        *x = *x - (g + *b * self.beta) * s.eta;
    }
}
