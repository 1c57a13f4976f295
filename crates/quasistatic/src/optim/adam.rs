//! Adam and AdamW.

use super::{CoordinateFloat, Optimizer, Schedule, StepScalars};

/// Adam (Kingma & Ba) with bias correction, `eps` outside the square root:
///
/// ```text
/// m = beta1 m + (1 - beta1) g
/// v = beta2 v + (1 - beta2) g*g
/// mhat = m / (1 - beta1^t),  vhat = v / (1 - beta2^t)       (t counts from 1)
/// theta -= eta mhat / (sqrt(vhat) + eps)
/// ```
///
/// With `weight_decay > 0` it is AdamW: before the update `theta *= 1 - eta weight_decay`
/// (decoupled decay, PyTorch convention).
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate per step.
    pub lr: Schedule,
    /// First-moment decay `beta1` in `[0, 1)`.
    pub beta1: f64,
    /// Second-moment decay `beta2` in `[0, 1)`.
    pub beta2: f64,
    /// `eps > 0`, added to `sqrt(vhat)`.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 for Adam.
    pub weight_decay: f64,
}

/// Adam state: both moments and the step counter.
#[derive(Clone, Debug)]
pub struct AdamState {
    /// First moment `m`.
    pub m: Vec<f64>,
    /// Second moment `v`.
    pub v: Vec<f64>,
    /// Steps taken.
    pub t: u64,
    /// `beta1^t`, kept to avoid a power per step.
    pub beta1_pow: f64,
    /// `beta2^t`.
    pub beta2_pow: f64,
}

impl Optimizer for Adam {
    type State = AdamState;

    fn init(&self, dim: usize) -> AdamState {
        AdamState {
            m: vec![0.0; dim],
            v: vec![0.0; dim],
            t: 0,
            beta1_pow: 1.0,
            beta2_pow: 1.0,
        }
    }

    #[inline(always)]
    fn step(&self, s: &mut AdamState, theta: &mut [f64], grad: &[f64]) {
        let scalars = self.begin_step(s);
        for (((x, m), v), &g) in theta
            .iter_mut()
            .zip(s.m.iter_mut())
            .zip(s.v.iter_mut())
            .zip(grad)
        {
            let mut buffers = [*m, *v];
            self.update_coordinate(&scalars, x, &mut buffers, g);
            [*m, *v] = buffers;
        }
    }

    fn offers_coordinate_update(&self) -> bool {
        true
    }

    /// `eta`, then `extra = [1 / (1 - beta1^t), 1 / (1 - beta2^t), 1 - eta weight_decay]`;
    /// two buffers (`m`, `v`).
    #[inline(always)]
    fn begin_step(&self, s: &mut AdamState) -> StepScalars {
        let eta = self.lr.at(s.t);
        s.t += 1;
        s.beta1_pow *= self.beta1;
        s.beta2_pow *= self.beta2;
        StepScalars {
            eta,
            extra: [
                1.0 / (1.0 - s.beta1_pow),
                1.0 / (1.0 - s.beta2_pow),
                1.0 - eta * self.weight_decay,
            ],
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
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let [c1, c2, decay] = s.extra;
        let [m, v] = buffers;
        *m = *m * b1 + g * (1.0 - b1);
        *v = *v * b2 + g * (1.0 - b2) * g;
        *x = *x * decay;
        *x = *x - (*m * c1) * s.eta / ((*v * c2).sqrt_value() + eps);
    }
}
