//! Heavy-ball and Nesterov momentum, PyTorch convention (dampening 0).

use super::{CoordinateFloat, CoordinateRule, Schedule};

/// Heavy ball: `buf = beta buf + g; theta -= eta buf` (with `buf` starting at 0, `eta` per
/// optimizer step). With `beta = 0` it is SGD. Optional L2 weight decay adds
/// `weight_decay * theta` to `g`.
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

/// The parts of [`CoordinateRule`] heavy ball and Nesterov share: the clock (steps taken), the
/// scalars (this step's learning rate) and one buffer, the velocity `buf`.
macro_rules! momentum_common {
    () => {
        type Clock = u64;
        type Scalars = f64;
        type Buffers<F: CoordinateFloat> = F;

        fn start(&self) -> u64 {
            0
        }

        fn zero_buffers<F: CoordinateFloat>(&self) -> F {
            F::splat_f64(0.0)
        }

        #[inline(always)]
        fn begin_step(&self, t: &mut u64) -> f64 {
            let eta = self.lr.at(*t);
            *t += 1;
            eta
        }
    };
}

impl CoordinateRule for HeavyBall {
    momentum_common!();

    /// `g += wd x; buf = beta buf + g; x -= eta buf`.
    #[inline(always)]
    fn update<F: CoordinateFloat>(&self, &eta: &f64, x: &mut F, b: &mut F, g: F) {
        let g = g + *x * self.weight_decay;
        *b = *b * self.beta + g;
        *x = *x - *b * eta;
    }
}

impl CoordinateRule for Nesterov {
    momentum_common!();

    /// `g += wd x; buf = beta buf + g; x -= eta (g + beta buf)`.
    #[inline(always)]
    fn update<F: CoordinateFloat>(&self, &eta: &f64, x: &mut F, b: &mut F, g: F) {
        let g = g + *x * self.weight_decay;
        *b = *b * self.beta + g;
        *x = *x - (g + *b * self.beta) * eta;
    }
}

impl HeavyBall {
    /// `heavy_ball`.
    pub fn name(&self) -> &'static str {
        "heavy_ball"
    }
}

impl Nesterov {
    /// `nesterov`.
    pub fn name(&self) -> &'static str {
        "nesterov"
    }
}

/// `name (lr .., beta ..[, weight decay ..])`, as both momentum methods print.
fn fmt_momentum(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    lr: &Schedule,
    beta: f64,
    weight_decay: f64,
) -> std::fmt::Result {
    write!(f, "{name} (lr {lr}, beta {beta}")?;
    if weight_decay > 0.0 {
        write!(f, ", weight decay {weight_decay}")?;
    }
    write!(f, ")")
}

impl std::fmt::Display for HeavyBall {
    /// E.g. `heavy_ball (lr 0.005, beta 0.9)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt_momentum(f, self.name(), &self.lr, self.beta, self.weight_decay)
    }
}

impl std::fmt::Display for Nesterov {
    /// E.g. `nesterov (lr 0.005, beta 0.9)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt_momentum(f, self.name(), &self.lr, self.beta, self.weight_decay)
    }
}
