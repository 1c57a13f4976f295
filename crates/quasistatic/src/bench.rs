//! Throughput benchmark of the simulator: trajectory-steps per second for SGD, heavy ball
//! and Adam on the standard tasks, side by side in one run, plus the floor set by drawing the
//! same Gaussian numbers alone. `quasistatic bench` prints the table.

use std::time::Instant;

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::data::{generate, SyntheticSpec, Teacher};
use crate::model::{Activation, DiagonalNetwork, Model, Profile, TwoLayerNetwork, Valley};
use crate::noise::NoiseModel;
use crate::observe::Observable;
use crate::optim::{Adam, AnyOptimizer, HeavyBall, Schedule, Sgd};
use crate::rng;
use crate::simulate::{run_ensemble, EnsembleSpec};

/// One measured row.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// Task name.
    pub task: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Trajectories.
    pub trajectories: usize,
    /// Steps per trajectory.
    pub steps: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl BenchRow {
    /// Trajectory-steps per second.
    pub fn throughput(&self) -> f64 {
        self.trajectories as f64 * self.steps as f64 / self.seconds
    }
}

fn optimizers(eta_sgd: f64, eta_hb: f64, eta_adam: f64) -> Vec<AnyOptimizer> {
    vec![
        AnyOptimizer::Sgd(Sgd {
            lr: Schedule::Constant(eta_sgd),
        }),
        AnyOptimizer::HeavyBall(HeavyBall {
            lr: Schedule::Constant(eta_hb),
            beta: 0.9,
            weight_decay: 0.0,
        }),
        AnyOptimizer::Adam(Adam {
            lr: Schedule::Constant(eta_adam),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }),
    ]
}

fn measure<M: Model>(
    task: &str,
    model: &M,
    noise: &NoiseModel,
    start: Vec<f64>,
    n: usize,
    steps: u64,
    opts: &[AnyOptimizer],
) -> Vec<BenchRow> {
    opts.iter()
        .map(|opt| {
            let spec = EnsembleSpec {
                steps,
                record_every: steps,
                trajectories: n,
                seed: 1,
                max_loss: 1e12,
                start: start.clone(),
                start_noise: 0.0,
                start_factor: None,
                observables: vec![Observable::Loss],
                progress: false,
                observe_at: None,
            };
            let t = Instant::now();
            let r = run_ensemble(model, noise, opt, &spec);
            let seconds = t.elapsed().as_secs_f64();
            assert!(
                r.divergences.is_empty(),
                "benchmark task {task} diverged: {}",
                r.divergences[0]
            );
            BenchRow {
                task: task.into(),
                optimizer: opt.name().into(),
                trajectories: n,
                steps,
                seconds,
            }
        })
        .collect()
}

/// Time to draw `n * steps * per_step` standard normals with the simulator's generator,
/// parallel over trajectories like the ensemble (the floor for label-noise tasks).
pub fn rng_floor(n: usize, steps: u64, per_step: usize) -> f64 {
    let t = Instant::now();
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|j| {
            let mut r = rng::stream(1, j as u64, 0);
            let mut acc = 0.0;
            for _ in 0..steps * per_step as u64 {
                let z: f64 = r.sample(StandardNormal);
                acc += z;
            }
            acc
        })
        .sum();
    std::hint::black_box(total);
    t.elapsed().as_secs_f64()
}

/// Run every task and return the measured rows (`quick`: about 10x fewer steps).
pub fn measure_all(quick: bool) -> Vec<BenchRow> {
    let f = if quick { 10 } else { 1 };
    let mut rows = Vec::new();
    // Valley T1: f = sqrt(1 + y^2) x, label noise 1, start (0, 2), N = 4096.
    let valley = Valley::planar(Profile::Quadratic, 1.0);
    let label = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    let steps = 20_000 / f;
    rows.extend(measure(
        "valley (d=2)",
        &valley,
        &label,
        vec![0.0, 2.0],
        4096,
        steps,
        &optimizers(0.05, 0.005, 0.001),
    ));
    let floor = rng_floor(4096, steps, 1);
    rows.push(BenchRow {
        task: "valley (d=2)".into(),
        optimizer: "RNG floor".into(),
        trajectories: 4096,
        steps,
        seconds: floor,
    });
    // Diagonal network p = 100, n = 40, sparse teacher, full-batch label noise 0.5, N = 16.
    let data = generate(&SyntheticSpec {
        n: 40,
        n_test: 0,
        p: 100,
        teacher: Teacher::Sparse { k: 5, value: 1.0 },
        label_noise: 0.0,
        seed: 0,
    });
    let diag = DiagonalNetwork::new(data.train, None, data.teacher);
    let start = diag.default_start();
    rows.extend(measure(
        "diagonal (p=100, n=40)",
        &diag,
        &NoiseModel::Label {
            sigma: 0.5,
            batch: None,
        },
        start,
        16,
        20_000 / f,
        &optimizers(0.01, 0.001, 0.001),
    ));
    // Two-layer tanh network, input 10, width 32, n = 64, label noise 0.1, N = 16.
    let data = generate(&SyntheticSpec {
        n: 64,
        n_test: 0,
        p: 10,
        teacher: Teacher::TanhNetwork { width: 4, seed: 1 },
        label_noise: 0.0,
        seed: 0,
    });
    let net = TwoLayerNetwork::new(32, Activation::Tanh, data.train, None).with_init(0, 1.0);
    let start = net.default_start();
    rows.extend(measure(
        "two-layer tanh (w=32, p=10, n=64)",
        &net,
        &NoiseModel::Label {
            sigma: 0.1,
            batch: None,
        },
        start,
        16,
        5_000 / f,
        &optimizers(0.05, 0.005, 0.001),
    ));
    rows
}

/// Markdown table of [`measure_all`].
pub fn run(quick: bool) -> String {
    let rows = measure_all(quick);
    let mut s = format!(
        "threads: {}\n\n| task | optimizer | N | steps | seconds | trajectory-steps/s |\n|---|---|---:|---:|---:|---:|\n",
        rayon::current_num_threads()
    );
    for r in &rows {
        s += &format!(
            "| {} | {} | {} | {} | {:.3} | {:.3e} |\n",
            r.task,
            r.optimizer,
            r.trajectories,
            r.steps,
            r.seconds,
            r.throughput()
        );
    }
    s
}
