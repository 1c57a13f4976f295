//! Heavy-ball and Nesterov momentum, PyTorch convention (dampening 0).

use super::{Optimizer, Schedule};

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

impl Optimizer for HeavyBall {
    type State = MomentumState;

    fn init(&self, dim: usize) -> MomentumState {
        MomentumState {
            buf: vec![0.0; dim],
            t: 0,
        }
    }

    #[inline]
    fn step(&self, state: &mut MomentumState, theta: &mut [f64], grad: &[f64]) {
        let eta = self.lr.at(state.t);
        let (beta, wd) = (self.beta, self.weight_decay);
        for ((x, b), &g) in theta.iter_mut().zip(state.buf.iter_mut()).zip(grad) {
            let g = g + wd * *x;
            *b = beta * *b + g;
            *x -= eta * *b;
        }
        state.t += 1;
    }
}

impl Optimizer for Nesterov {
    type State = MomentumState;

    fn init(&self, dim: usize) -> MomentumState {
        MomentumState {
            buf: vec![0.0; dim],
            t: 0,
        }
    }

    #[inline]
    fn step(&self, state: &mut MomentumState, theta: &mut [f64], grad: &[f64]) {
        let eta = self.lr.at(state.t);
        let (beta, wd) = (self.beta, self.weight_decay);
        for ((x, b), &g) in theta.iter_mut().zip(state.buf.iter_mut()).zip(grad) {
            let g = g + wd * *x;
            *b = beta * *b + g;
            *x -= eta * (g + beta * *b);
        }
        state.t += 1;
    }
}
