//! Timing of full derivations (for the CLI's `bench` command).

use std::time::Instant;

use serde::Serialize;

use super::{derive, DeriveOptions};
use crate::model::Model;
use crate::noise::NoiseModel;
use crate::optim::AnyOptimizer;
use crate::Result;

/// Wall-clock timing of [`derive`] on one model.
#[derive(Clone, Debug, Serialize)]
pub struct DeriveTiming {
    /// Model name.
    pub model: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Number of parameters `d`.
    pub dim: usize,
    /// Number of samples `n`.
    pub samples: usize,
    /// Geometry path used.
    pub path: String,
    /// Normal rank found.
    pub normal_rank: usize,
    /// Seconds per derivation, one entry per repetition.
    pub seconds: Vec<f64>,
    /// Best of the repetitions.
    pub best_seconds: f64,
}

/// Time `repetitions` full derivations of `optimizer` with `noise` on `model` at `theta`.
pub fn time_derivation<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    theta: &[f64],
    options: &DeriveOptions,
    repetitions: usize,
) -> Result<DeriveTiming> {
    let mut seconds = Vec::with_capacity(repetitions);
    let mut last = None;
    for _ in 0..repetitions.max(1) {
        let t0 = Instant::now();
        last = Some(derive(model, noise, optimizer, theta, options)?);
        seconds.push(t0.elapsed().as_secs_f64());
    }
    let out = last.expect("at least one repetition");
    Ok(DeriveTiming {
        model: model.name().to_string(),
        optimizer: optimizer.name().to_string(),
        dim: model.dim(),
        samples: model.n_samples(),
        path: out.geometry.path.name().to_string(),
        normal_rank: out.geometry.normal_rank,
        best_seconds: seconds.iter().copied().fold(f64::INFINITY, f64::min),
        seconds,
    })
}
