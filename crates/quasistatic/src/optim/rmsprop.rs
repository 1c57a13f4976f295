//! RMSProp.

use super::{CoordinateFloat, Optimizer, Schedule, StepScalars};

/// RMSProp (PyTorch convention, no momentum, not centred):
///
/// ```text
/// v = alpha v + (1 - alpha) g*g
/// theta -= eta g / (sqrt(vhat) + eps),   vhat = v / (1 - alpha^t) if bias_correction else v
/// ```
///
/// With `bias_correction` it equals Adam with `beta1 = 0`, `beta2 = alpha`.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsProp {
    /// Learning rate per step.
    pub lr: Schedule,
    /// Second-moment decay `alpha` in `[0, 1)`.
    pub alpha: f64,
    /// `eps > 0`, added to `sqrt(v)`.
    pub eps: f64,
    /// Divide `v` by `1 - alpha^t` (off in PyTorch).
    pub bias_correction: bool,
}

/// RMSProp state.
#[derive(Clone, Debug)]
pub struct RmsPropState {
    /// Second moment `v`.
    pub v: Vec<f64>,
    /// Steps taken.
    pub t: u64,
    /// `alpha^t`.
    pub alpha_pow: f64,
}

impl Optimizer for RmsProp {
    type State = RmsPropState;

    fn init(&self, dim: usize) -> RmsPropState {
        RmsPropState {
            v: vec![0.0; dim],
            t: 0,
            alpha_pow: 1.0,
        }
    }

    #[inline(always)]
    fn step(&self, s: &mut RmsPropState, theta: &mut [f64], grad: &[f64]) {
        let scalars = self.begin_step(s);
        for ((x, v), &g) in theta.iter_mut().zip(s.v.iter_mut()).zip(grad) {
            let mut buffers = [*v, 0.0];
            self.update_coordinate(&scalars, x, &mut buffers, g);
            *v = buffers[0];
        }
    }

    fn offers_coordinate_update(&self) -> bool {
        true
    }

    /// `eta`, then `extra[0] = 1 / (1 - alpha^t)` (or 1 without bias correction); one buffer
    /// (`v`).
    #[inline(always)]
    fn begin_step(&self, s: &mut RmsPropState) -> StepScalars {
        let eta = self.lr.at(s.t);
        s.t += 1;
        s.alpha_pow *= self.alpha;
        let c = if self.bias_correction {
            1.0 / (1.0 - s.alpha_pow)
        } else {
            1.0
        };
        StepScalars {
            eta,
            extra: [c, 0.0, 0.0],
        }
    }

    /// The update above for one coordinate.
    #[inline(always)]
    fn update_coordinate<F: CoordinateFloat>(
        &self,
        s: &StepScalars,
        x: &mut F,
        buffers: &mut [F; 2],
        g: F,
    ) {
        let (a, eps) = (self.alpha, self.eps);
        let v = &mut buffers[0];
        *v = *v * a + g * (1.0 - a) * g;
        *x = *x - g * s.eta / ((*v * s.extra[0]).sqrt_value() + eps);
    }
}
