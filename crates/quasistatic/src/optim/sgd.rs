//! Plain stochastic gradient descent.

use super::{Optimizer, Schedule};

/// SGD: `theta_{t+1} = theta_t - eta_t g_t`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate per step.
    pub lr: Schedule,
}

/// SGD state: the step counter only.
#[derive(Clone, Debug, Default)]
pub struct SgdState {
    /// Steps taken.
    pub t: u64,
}

impl Optimizer for Sgd {
    type State = SgdState;

    fn init(&self, _dim: usize) -> SgdState {
        SgdState { t: 0 }
    }

    #[inline]
    fn step(&self, state: &mut SgdState, theta: &mut [f64], grad: &[f64]) {
        let eta = self.lr.at(state.t);
        for (x, &g) in theta.iter_mut().zip(grad) {
            *x -= eta * g;
        }
        state.t += 1;
    }
}
