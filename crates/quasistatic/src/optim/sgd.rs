//! Plain stochastic gradient descent.

use super::{CoordinateFloat, CoordinateRule, Schedule};

/// SGD: `theta_{t+1} = theta_t - eta_t g_t`, `eta_t` per optimizer step.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate per step.
    pub lr: Schedule,
}

impl Sgd {
    /// `sgd`.
    pub fn name(&self) -> &'static str {
        "sgd"
    }
}

impl CoordinateRule for Sgd {
    /// Steps taken.
    type Clock = u64;
    /// This step's learning rate.
    type Scalars = f64;
    /// No buffers.
    type Buffers<F: CoordinateFloat> = ();

    fn start(&self) -> u64 {
        0
    }

    fn zero_buffers<F: CoordinateFloat>(&self) {}

    #[inline(always)]
    fn begin_step(&self, t: &mut u64) -> f64 {
        let eta = self.lr.at(*t);
        *t += 1;
        eta
    }

    /// `x -= eta g`.
    #[inline(always)]
    fn update<F: CoordinateFloat>(&self, &eta: &f64, x: &mut F, _: &mut (), g: F) {
        *x = *x - g * eta;
    }
}

impl std::fmt::Display for Sgd {
    /// E.g. `sgd (lr 0.05)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (lr {})", self.name(), self.lr)
    }
}
