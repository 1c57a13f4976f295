//! `[start]`: where every trajectory starts.

use serde::{Deserialize, Serialize};

use super::{finite, non_negative, positive};
use crate::error::{Error, Result};
use crate::model::{derivatives, AnyModel, Model};

/// `[start]`: the common start of every trajectory (the section and each field are optional).
///
/// ```toml
/// [start]
/// theta = [4.0, 0.25]   # default: the model's own start
/// noise = 0.0
/// gd_steps = 2000
/// gd_lr = 0.05
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StartConfig {
    /// The start point, `d` finite numbers (default: the model's default start, which is not
    /// written out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theta: Option<Vec<f64>>,
    /// Standard deviation of a Gaussian perturbation of the start drawn per trajectory,
    /// `>= 0` (default 0).
    pub noise: f64,
    /// Plain full-batch gradient-descent steps run once from `theta` before the ensemble,
    /// at most 10 000 000 (default 0).
    pub gd_steps: u64,
    /// Learning rate per step of those steps, `> 0` (default 0.05).
    pub gd_lr: f64,
}

impl Default for StartConfig {
    fn default() -> Self {
        StartConfig {
            theta: None,
            noise: 0.0,
            gd_steps: 0,
            gd_lr: 0.05,
        }
    }
}

/// A resolved start.
pub(super) struct Start {
    /// The start point, after any pre-training.
    pub theta: Vec<f64>,
    /// The per-trajectory perturbation.
    pub noise: f64,
}

/// Most full-batch gradient-descent steps of the pre-training.
const MAX_GD_STEPS: u64 = 10_000_000;

impl StartConfig {
    /// Check the fields against `model` and resolve the start (running the pre-training).
    pub(super) fn build(&self, model: &AnyModel) -> Result<Start> {
        let d = model.dim();
        let mut theta = match &self.theta {
            Some(t) => {
                if t.len() != d {
                    return Err(Error::invalid(
                        "start.theta",
                        format!("{} numbers", t.len()),
                        format!("exactly {d} numbers (the model has d = {d} parameters)"),
                    ));
                }
                for (i, &x) in t.iter().enumerate() {
                    finite(&format!("start.theta[{i}]"), x)?;
                }
                t.clone()
            }
            None => model.default_start(),
        };
        let noise = non_negative("start.noise", self.noise)?;
        let gd_lr = positive("start.gd_lr", self.gd_lr)?;
        if self.gd_steps > MAX_GD_STEPS {
            return Err(Error::invalid(
                "start.gd_steps",
                self.gd_steps,
                format!(
                    "an integer in 0..={MAX_GD_STEPS} (the pre-training runs whenever the \
                     configuration is built, by `check` too)"
                ),
            ));
        }
        if self.gd_steps > 0 {
            theta = crate::with_model!(model, m => pretrain(m, theta, self.gd_steps, gd_lr))?;
        }
        Ok(Start { theta, noise })
    }
}

/// Plain full-batch gradient descent from `theta` for `steps` steps at rate `lr`: brings a
/// start close to the manifold before the stochastic run. Fails if it diverges.
pub fn pretrain<M: Model>(model: &M, mut theta: Vec<f64>, steps: u64, lr: f64) -> Result<Vec<f64>> {
    let mut grad = vec![0.0; model.dim()];
    for k in 0..steps {
        let loss = derivatives::gradient(model, &theta, &mut grad);
        if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(Error::invalid(
                "start.gd_lr",
                lr,
                format!("a smaller rate: pre-training gradient descent diverged at step {k} (loss {loss})"),
            ));
        }
        for (x, g) in theta.iter_mut().zip(&grad) {
            *x -= lr * g;
        }
    }
    Ok(theta)
}
