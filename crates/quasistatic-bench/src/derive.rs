//! Timing of full derivations (for the CLI's `bench` command).

use std::time::Instant;

use serde::Serialize;

use quasistatic::derive::{derive, DeriveOptions};
use quasistatic::model::Model;
use quasistatic::noise::NoiseModel;
use quasistatic::optim::AnyOptimizer;
use quasistatic::Result;

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
    /// Seconds to project the model's default start onto the manifold first (not part of the
    /// derivation timings, which start at a manifold point).
    pub projection_seconds: f64,
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
        projection_seconds: 0.0,
    })
}

/// The two standard benchmarks of the derivation, SGD with label noise (`sigma = 1`, full
/// batch, `eta = 1e-3`) at the model's default start projected onto the manifold (the
/// projection is timed separately, once: a derivation at a manifold point is what is timed):
///
/// 1. diagonal linear network, `p = 100` features, `n = 40` samples (`d = 200`, dense path);
/// 2. two-layer tanh network, `n = 100` samples, `p = 99` features, width 1000
///    (`d = 10^5`, low-rank Jacobian path).
///
/// `repetitions` derivations each; returns one [`DeriveTiming`] per model.
pub fn standard_benchmarks(repetitions: usize) -> Result<Vec<DeriveTiming>> {
    use quasistatic::data::{generate, SyntheticSpec, Teacher};
    use quasistatic::model::DiagonalNetwork;
    use quasistatic::optim::{Schedule, Sgd};
    let noise = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    let sgd = AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(1e-3),
    });
    let options = DeriveOptions::default();
    let data = generate(&SyntheticSpec {
        n: 40,
        n_test: 0,
        p: 100,
        teacher: Teacher::Sparse { k: 5, value: 1.0 },
        label_noise: 0.0,
        seed: 1,
    });
    let diag = DiagonalNetwork::new(data.train, None, data.teacher);
    let first = timed_at_manifold(&diag, &noise, &sgd, &options, repetitions)?;
    let net = two_layer_benchmark_model();
    let second = timed_at_manifold(&net, &noise, &sgd, &options, repetitions)?;
    Ok(vec![first, second])
}

/// The model of the second standard benchmark: two-layer tanh network, `n = 100` samples,
/// `p = 99` features, width 1000 (`d = 10^5`).
fn two_layer_benchmark_model() -> quasistatic::model::TwoLayerNetwork {
    use quasistatic::data::{generate, SyntheticSpec, Teacher};
    use quasistatic::model::{Activation, TwoLayerNetwork};
    let data = generate(&SyntheticSpec {
        n: 100,
        n_test: 0,
        p: 99,
        teacher: Teacher::TanhNetwork { width: 4, seed: 2 },
        label_noise: 0.0,
        seed: 3,
    });
    TwoLayerNetwork::new(1000, Activation::Tanh, data.train, None)
}

/// Project the default start (timed once), then time derivations at the manifold point.
fn timed_at_manifold<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    options: &DeriveOptions,
    repetitions: usize,
) -> Result<DeriveTiming> {
    let t0 = Instant::now();
    let phi = quasistatic::manifold::projection::project(
        model,
        &model.default_start(),
        &options.projection,
    )?
    .point;
    let projection_seconds = t0.elapsed().as_secs_f64();
    let mut t = time_derivation(model, noise, optimizer, &phi, options, repetitions)?;
    t.projection_seconds = projection_seconds;
    Ok(t)
}
