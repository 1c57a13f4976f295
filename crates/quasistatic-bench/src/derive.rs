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
    /// Peak resident memory of the process after the timings (bytes; `VmHWM` of
    /// `/proc/self/status`, where readable): the whole process's high-water mark so far.
    pub peak_rss_bytes: Option<u64>,
}

/// Peak resident set size of this process (`VmHWM`), in bytes, where `/proc` has it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
        peak_rss_bytes: peak_rss_bytes(),
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
/// then the rows of [`scale_benchmarks`].
///
/// `repetitions` derivations each; returns one [`DeriveTiming`] per model.
pub fn standard_benchmarks(repetitions: usize, scale: &ScaleOptions) -> Result<Vec<DeriveTiming>> {
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
    let mut rows = vec![first, second];
    rows.extend(scale_benchmarks(repetitions, scale)?);
    Ok(rows)
}

/// What [`scale_benchmarks`] runs (`bench --derive --derive-large --sde-steps N`).
#[derive(Clone, Copy, Debug)]
pub struct ScaleOptions {
    /// Add the `d = 10^6` derivation (it needs several GiB of memory and about a minute).
    pub large: bool,
    /// Derived SDE steps timed (the row reports seconds per 1 000 steps).
    pub sde_steps: u64,
}

impl Default for ScaleOptions {
    /// No `d = 10^6` row, 20 SDE steps.
    fn default() -> Self {
        ScaleOptions {
            large: false,
            sde_steps: 20,
        }
    }
}

/// The derivation at network scale, SGD with label noise (`sigma = 1`, `eta = 1e-3`), on
/// two-layer tanh networks refitted to their own outputs at their default start (so that the
/// start is exactly on the manifold and no projection is needed; `p = 99` features):
///
/// 1. the derived SDE at `d = 10^5`, `n = 100` (width 1000): coefficients at every step and
///    the chord re-projection, [`ScaleOptions::sde_steps`] steps of `h = 1` timed (one
///    trajectory), reported as seconds per 1 000 steps (`repetitions` = 1);
/// 2. with [`ScaleOptions::large`]: one derivation at `d = 10^6` (width 10 000), `n = 100`.
///
/// Rows name the peak resident memory of the process in the model column.
pub fn scale_benchmarks(repetitions: usize, scale: &ScaleOptions) -> Result<Vec<DeriveTiming>> {
    use quasistatic::optim::{Schedule, Sgd};
    let noise = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    let sgd = AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(1e-3),
    });
    let mut rows = Vec::new();
    let steps = scale.sde_steps.max(1);
    {
        let (net, phi) = self_labelled_two_layer(1000, 100);
        let mut t = time_derived_sde(&net, &noise, &sgd, &phi, steps)?;
        t.model = format!(
            "two_layer derived SDE, s per 1000 steps (from {steps}; peak {})",
            gib(t.peak_rss_bytes)
        );
        rows.push(t);
    }
    if scale.large {
        let (net, phi) = self_labelled_two_layer(10_000, 100);
        let options = DeriveOptions::default();
        let mut t = time_derivation(&net, &noise, &sgd, &phi, &options, repetitions)?;
        t.model = format!("two_layer (peak {})", gib(t.peak_rss_bytes));
        rows.push(t);
    }
    Ok(rows)
}

/// `"x.xx GiB"` or `"n/a"`.
fn gib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a".into(),
        |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
    )
}

/// A two-layer tanh network of width `width` on `n` samples with `p = 99` features, its
/// targets replaced by its own outputs at its default start, and that start (a point of the
/// interpolating manifold, exactly).
pub fn self_labelled_two_layer(
    width: usize,
    n: usize,
) -> (quasistatic::model::TwoLayerNetwork, Vec<f64>) {
    use quasistatic::data::{generate, Dataset, SyntheticSpec, Teacher};
    use quasistatic::model::{Activation, TwoLayerNetwork};
    let data = generate(&SyntheticSpec {
        n,
        n_test: 0,
        p: 99,
        teacher: Teacher::TanhNetwork { width: 4, seed: 2 },
        label_noise: 0.0,
        seed: 3,
    });
    let net = TwoLayerNetwork::new(width, Activation::Tanh, data.train.clone(), None);
    let start = net.default_start();
    let mut g = vec![0.0; net.dim()];
    let y: Vec<f64> = (0..n)
        .map(|i| net.output_and_grad(&start, i, &mut g))
        .collect();
    let train = Dataset { y, ..data.train };
    (
        TwoLayerNetwork::new(width, Activation::Tanh, train, None),
        start,
    )
}

/// Time `steps` steps (`h = 1`) of one derived SDE trajectory from `phi`; the row's seconds are
/// per 1 000 steps.
fn time_derived_sde<M: Model>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    phi: &[f64],
    steps: u64,
) -> Result<DeriveTiming> {
    use quasistatic::sde::{run_sde, SdeSpec};
    // The derived dynamics as `compare` integrates it: proposals re-projected by chord
    // Gauss-Newton steps in the previous point's normal space (rank n on this manifold).
    let dynamics = quasistatic::sde::DerivedDynamics::new(model, noise, optimizer)
        .near_manifold(model.n_samples());
    let t0 = Instant::now();
    let result = run_sde(
        model,
        &dynamics,
        &SdeSpec {
            steps: steps.max(1),
            h: 1,
            record_every: steps.max(1),
            trajectories: 1,
            seed: 0,
            start: phi.to_vec(),
            observables: Vec::new(),
        },
    );
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(d) = result.divergences.first() {
        return Err(quasistatic::Error::Numerical(format!(
            "derived SDE benchmark failed: {d}"
        )));
    }
    let per_1000 = seconds * 1000.0 / steps.max(1) as f64;
    Ok(DeriveTiming {
        model: model.name().to_string(),
        optimizer: optimizer.name().to_string(),
        dim: model.dim(),
        samples: model.n_samples(),
        path: "low_rank".into(),
        normal_rank: model.n_samples(),
        seconds: vec![per_1000],
        best_seconds: per_1000,
        projection_seconds: 0.0,
        peak_rss_bytes: peak_rss_bytes(),
    })
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
