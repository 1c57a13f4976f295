//! Adam and AdamW.

use super::{CoordinateFloat, CoordinateRule, Schedule};

/// Adam (Kingma & Ba) with bias correction, `eps` outside the square root, `eta` per optimizer
/// step:
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

/// Adam's scalar state.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamClock {
    /// Steps taken.
    pub t: u64,
    /// `beta1^t`, kept to avoid a power per step.
    pub beta1_pow: f64,
    /// `beta2^t`.
    pub beta2_pow: f64,
}

/// What every coordinate's Adam update needs at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamScalars {
    /// This step's learning rate.
    pub eta: f64,
    /// `1 / (1 - beta1^t)`.
    pub c1: f64,
    /// `1 / (1 - beta2^t)`.
    pub c2: f64,
    /// `1 - eta weight_decay` (1 for Adam).
    pub decay: f64,
}

/// A coordinate's first and second moments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments<F> {
    /// First moment `m`.
    pub m: F,
    /// Second moment `v`.
    pub v: F,
}

impl Adam {
    /// `adamw` with weight decay, else `adam`.
    pub fn name(&self) -> &'static str {
        if self.weight_decay > 0.0 {
            "adamw"
        } else {
            "adam"
        }
    }
}

impl CoordinateRule for Adam {
    type Clock = AdamClock;
    type Scalars = AdamScalars;
    type Buffers<F: CoordinateFloat> = Moments<F>;

    fn start(&self) -> AdamClock {
        AdamClock {
            t: 0,
            beta1_pow: 1.0,
            beta2_pow: 1.0,
        }
    }

    fn zero_buffers<F: CoordinateFloat>(&self) -> Moments<F> {
        Moments {
            m: F::splat_f64(0.0),
            v: F::splat_f64(0.0),
        }
    }

    #[inline(always)]
    fn begin_step(&self, s: &mut AdamClock) -> AdamScalars {
        let eta = self.lr.at(s.t);
        s.t += 1;
        s.beta1_pow *= self.beta1;
        s.beta2_pow *= self.beta2;
        AdamScalars {
            eta,
            c1: 1.0 / (1.0 - s.beta1_pow),
            c2: 1.0 / (1.0 - s.beta2_pow),
            decay: 1.0 - eta * self.weight_decay,
        }
    }

    /// The update above for one coordinate.
    #[inline(always)]
    fn update<F: CoordinateFloat>(&self, s: &AdamScalars, x: &mut F, b: &mut Moments<F>, g: F) {
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        b.m = b.m * b1 + g * (1.0 - b1);
        b.v = b.v * b2 + g * (1.0 - b2) * g;
        *x = *x * s.decay;
        *x = *x - (b.m * s.c1) * s.eta / ((b.v * s.c2).sqrt_value() + eps);
    }
}

impl std::fmt::Display for Adam {
    /// E.g. `adam (lr 0.01, beta1 0.9, beta2 0.999, eps 1e-8)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (lr {}, beta1 {}, beta2 {}, eps {:e}",
            self.name(),
            self.lr,
            self.beta1,
            self.beta2,
            self.eps
        )?;
        if self.weight_decay > 0.0 {
            write!(f, ", weight decay {}", self.weight_decay)?;
        }
        write!(f, ")")
    }
}
