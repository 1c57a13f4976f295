//! Plain stochastic gradient descent.

use super::{CoordinateFloat, Optimizer, Schedule, StepScalars};

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

    #[inline(always)]
    fn step(&self, state: &mut SgdState, theta: &mut [f64], grad: &[f64]) {
        let s = self.begin_step(state);
        for (x, &g) in theta.iter_mut().zip(grad) {
            self.update_coordinate(&s, x, &mut [0.0; 2], g);
        }
    }

    fn offers_coordinate_update(&self) -> bool {
        true
    }

    /// `eta` only; no buffers.
    #[inline(always)]
    fn begin_step(&self, state: &mut SgdState) -> StepScalars {
        let eta = self.lr.at(state.t);
        state.t += 1;
        StepScalars::with_eta(eta)
    }

    /// `x -= eta g`.
    #[inline(always)]
    fn update_coordinate<F: CoordinateFloat>(
        &self,
        s: &StepScalars,
        x: &mut F,
        _buffers: &mut [F; 2],
        g: F,
    ) {
        *x = *x - g * s.eta;
    }
}
