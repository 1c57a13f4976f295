//! Learning-rate schedules. Step `t` counts optimizer steps from 0.

/// A learning rate per optimizer step, as a function of the step index `t = 0, 1, ...`.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `eta` at every step.
    Constant(f64),
    /// Multiply by `gamma` every `every` steps: `eta * gamma^(t / every)`.
    Step {
        /// Initial rate.
        eta: f64,
        /// Factor per period.
        gamma: f64,
        /// Period in steps.
        every: u64,
    },
    /// Cosine decay from `eta` to `eta_min` over `steps` steps, then `eta_min`.
    Cosine {
        /// Initial rate.
        eta: f64,
        /// Final rate.
        eta_min: f64,
        /// Length of the decay.
        steps: u64,
    },
    /// Linear warm-up from 0 to `eta` over `warmup` steps, then constant.
    Warmup {
        /// Rate after warm-up.
        eta: f64,
        /// Warm-up length in steps.
        warmup: u64,
    },
}

impl Schedule {
    /// Learning rate at step `t`.
    #[inline]
    pub fn at(&self, t: u64) -> f64 {
        match *self {
            Schedule::Constant(eta) => eta,
            Schedule::Step { eta, gamma, every } => eta * gamma.powi((t / every.max(1)) as i32),
            Schedule::Cosine {
                eta,
                eta_min,
                steps,
            } => {
                if t >= steps {
                    eta_min
                } else {
                    let c = (std::f64::consts::PI * t as f64 / steps as f64).cos();
                    eta_min + 0.5 * (eta - eta_min) * (1.0 + c)
                }
            }
            Schedule::Warmup { eta, warmup } => {
                if t >= warmup {
                    eta
                } else {
                    eta * (t + 1) as f64 / warmup as f64
                }
            }
        }
    }

    /// The base (initial or plateau) rate `eta`.
    pub fn base(&self) -> f64 {
        match *self {
            Schedule::Constant(eta)
            | Schedule::Step { eta, .. }
            | Schedule::Cosine { eta, .. }
            | Schedule::Warmup { eta, .. } => eta,
        }
    }
}
