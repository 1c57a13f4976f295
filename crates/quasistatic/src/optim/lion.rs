//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

use super::{CoordinateFloat, CoordinateRule, Schedule};

/// Lion, `eta` per optimizer step, decoupled weight decay as in the paper and in PyTorch's
/// implementations:
///
/// ```text
/// theta *= 1 - eta weight_decay
/// theta -= eta sign(beta1 m + (1 - beta1) g)          (sign(0) = 0)
/// m = beta2 m + (1 - beta2) g                          (m starts at 0)
/// ```
///
/// Every step moves each coordinate by exactly `eta` (or 0), whatever the gradient's scale:
/// Lion's update has the magnitude of signSGD, with momentum inside the sign. With
/// `beta1 = beta2 = 0` it is signSGD, `theta -= eta sign(g)`.
///
/// ```
/// use quasistatic::optim::{Lion, Optimizer, Schedule};
/// let lion = Lion { lr: Schedule::Constant(0.1), beta1: 0.9, beta2: 0.99, weight_decay: 0.0 };
/// let mut theta = vec![1.0, -2.0, 0.5];
/// let mut state = lion.init(3);
/// lion.step(&mut state, &mut theta, &[3.0, -1e-9, 0.0]);
/// assert_eq!(theta, vec![0.9, -1.9, 0.5]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lion {
    /// Learning rate per step (the size of every coordinate's move).
    pub lr: Schedule,
    /// Interpolation between momentum and gradient inside the sign, `beta1` in `[0, 1)`.
    pub beta1: f64,
    /// Momentum decay `beta2` in `[0, 1)`.
    pub beta2: f64,
    /// Decoupled weight decay, `>= 0`.
    pub weight_decay: f64,
}

/// What every coordinate's Lion update needs at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LionScalars {
    /// This step's learning rate.
    pub eta: f64,
    /// `1 - eta weight_decay`.
    pub decay: f64,
}

impl Lion {
    /// `lion`.
    pub fn name(&self) -> &'static str {
        "lion"
    }
}

impl CoordinateRule for Lion {
    /// Steps taken.
    type Clock = u64;
    type Scalars = LionScalars;
    /// The momentum `m`.
    type Buffers<F: CoordinateFloat> = F;

    fn start(&self) -> u64 {
        0
    }

    fn zero_buffers<F: CoordinateFloat>(&self) -> F {
        F::splat_f64(0.0)
    }

    #[inline(always)]
    fn begin_step(&self, t: &mut u64) -> LionScalars {
        let eta = self.lr.at(*t);
        *t += 1;
        LionScalars {
            eta,
            decay: 1.0 - eta * self.weight_decay,
        }
    }

    /// The update above for one coordinate.
    #[inline(always)]
    fn update<F: CoordinateFloat>(&self, s: &LionScalars, x: &mut F, m: &mut F, g: F) {
        let (b1, b2) = (self.beta1, self.beta2);
        let direction = (*m * b1 + g * (1.0 - b1)).sign_value();
        *x = *x * s.decay;
        *x = *x - direction * s.eta;
        *m = *m * b2 + g * (1.0 - b2);
    }
}

impl std::fmt::Display for Lion {
    /// E.g. `lion (lr 0.0001, beta1 0.9, beta2 0.99)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (lr {}, beta1 {}, beta2 {}",
            self.name(),
            self.lr,
            self.beta1,
            self.beta2
        )?;
        if self.weight_decay > 0.0 {
            write!(f, ", weight decay {}", self.weight_decay)?;
        }
        write!(f, ")")
    }
}
