//! RMSProp.

use super::{CoordinateFloat, CoordinateRule, Schedule};

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

/// RMSProp's scalar state.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsPropClock {
    /// Steps taken.
    pub t: u64,
    /// `alpha^t`.
    pub alpha_pow: f64,
}

/// What every coordinate's RMSProp update needs at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropScalars {
    /// This step's learning rate.
    pub eta: f64,
    /// `1 / (1 - alpha^t)` with bias correction, else 1.
    pub correction: f64,
}

impl RmsProp {
    /// `rmsprop`.
    pub fn name(&self) -> &'static str {
        "rmsprop"
    }
}

impl CoordinateRule for RmsProp {
    type Clock = RmsPropClock;
    type Scalars = RmsPropScalars;
    /// The second moment `v`.
    type Buffers<F: CoordinateFloat> = F;

    fn start(&self) -> RmsPropClock {
        RmsPropClock {
            t: 0,
            alpha_pow: 1.0,
        }
    }

    fn zero_buffers<F: CoordinateFloat>(&self) -> F {
        F::splat_f64(0.0)
    }

    #[inline(always)]
    fn begin_step(&self, s: &mut RmsPropClock) -> RmsPropScalars {
        let eta = self.lr.at(s.t);
        s.t += 1;
        s.alpha_pow *= self.alpha;
        let correction = if self.bias_correction {
            1.0 / (1.0 - s.alpha_pow)
        } else {
            1.0
        };
        RmsPropScalars { eta, correction }
    }

    /// The update above for one coordinate.
    #[inline(always)]
    fn update<F: CoordinateFloat>(&self, s: &RmsPropScalars, x: &mut F, v: &mut F, g: F) {
        let (a, eps) = (self.alpha, self.eps);
        *v = *v * a + g * (1.0 - a) * g;
        *x = *x - g * s.eta / ((*v * s.correction).sqrt_value() + eps);
    }
}

impl std::fmt::Display for RmsProp {
    /// E.g. `rmsprop (lr 0.01, alpha 0.99, eps 1e-8)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (lr {}, alpha {}, eps {:e}{})",
            self.name(),
            self.lr,
            self.alpha,
            self.eps,
            if self.bias_correction {
                ", bias-corrected"
            } else {
                ""
            }
        )
    }
}
