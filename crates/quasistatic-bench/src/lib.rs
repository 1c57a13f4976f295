//! Throughput benchmark of the simulator on four canonical tasks, made to be compared side by
//! side with hand-written ensembles in other frameworks (`bench/` at the workspace root).
//!
//! | task | model | noise | N | steps | optimizers |
//! |---|---|---|---:|---:|---|
//! | `t1` | valley `f = sqrt(1 + y^2) x`, start `(0, 2)` | label, sigma 1 | 4096 | 100 000 | SGD 0.05, heavy ball 0.005/0.9, Adam 0.001 |
//! | `t2` | product `f = theta_1 theta_2`, target 1, start `(4, 0.25)` | label, sigma 0.5 | 4096 | 200 000 | SGD 0.02, Adam 0.002 |
//! | `t3` | diagonal network, `p = 100`, `n = 40`, 5-sparse teacher | label, sigma 0.5 | 16 | 100 000 | SGD 0.01, Adam 0.001 |
//! | `t4` | two-layer tanh, input 10, width 32, `n = 64`, tanh teacher of width 4 | label, sigma 0.1 | 16 | 50 000 | SGD 0.05 |
//!
//! Every task records its observables 101 times (every `steps / 100` steps); `quick` divides
//! steps and the record interval by 10. Throughput is trajectory-steps per second (`N * steps`
//! over the wall time of [`run_ensemble`], observer included), the median of `repeats` runs.
//! The RNG floor of a task is the time to draw the same standard normals (one per sample per
//! trajectory-step: 1 for `t1`/`t2`, `n` for `t3`/`t4`) with the simulator's generator,
//! parallel over trajectories like the ensemble, and nothing else.
//!
//! [`run`] with a JSON path also writes `tasks.json` beside it: every task's parameters and,
//! for `t3`/`t4`, the generated inputs, targets and start point (for `t4` the point reached by
//! the deterministic gradient-descent warm-up), so that other implementations run the very
//! same problems.
//!
//! [`derive`] times full derivations (`quasistatic bench --derive`).

pub mod derive;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde_json::{json, Value};

use quasistatic::data::{generate, SyntheticSpec, Teacher};
use quasistatic::engine::rng;
use quasistatic::model::expression::{ExpressionModel, ExpressionSpec, Formula};
use quasistatic::model::{
    Activation, Batch, DiagonalNetwork, Model, ProductModel, Profile, TwoLayerNetwork, Valley,
};
use quasistatic::noise::NoiseModel;
use quasistatic::observe::Observable;
use quasistatic::optim::{Adam, HeavyBall, Optimizer, Schedule, Sgd};
use quasistatic::simulate::{run_ensemble, EnsembleResult, EnsembleSpec};

/// One of the canonical benchmark tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Planar valley, label noise, N = 4096.
    T1,
    /// Scalar product model, label noise, N = 4096.
    T2,
    /// Diagonal linear network, p = 100, n = 40, N = 16.
    T3,
    /// Two-layer tanh network, width 32, n = 64, N = 16.
    T4,
    /// T1 with the valley written as an expression model.
    T1x,
    /// T3 with the diagonal network written as an expression model.
    T3x,
}

impl Task {
    /// All tasks, in order.
    pub const ALL: [Task; 4] = [Task::T1, Task::T2, Task::T3, Task::T4];

    /// The expression-model versions of T1 and T3 (not in [`Task::ALL`], which the JAX
    /// baselines mirror).
    pub const EXPRESSION: [Task; 2] = [Task::T1x, Task::T3x];

    /// The built-in task an expression task writes out.
    pub fn built_in(self) -> Option<Task> {
        match self {
            Task::T1x => Some(Task::T1),
            Task::T3x => Some(Task::T3),
            _ => None,
        }
    }

    /// Short key (`t1`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Task::T1 => "t1",
            Task::T2 => "t2",
            Task::T3 => "t3",
            Task::T4 => "t4",
            Task::T1x => "t1x",
            Task::T3x => "t3x",
        }
    }

    /// Parse a key as written by [`Task::key`] (case-insensitive).
    pub fn parse(s: &str) -> Option<Task> {
        Task::ALL
            .into_iter()
            .chain(Task::EXPRESSION)
            .find(|t| t.key().eq_ignore_ascii_case(s.trim()))
    }

    /// Parse a comma-separated list of keys.
    pub fn parse_list(s: &str) -> Result<Vec<Task>, String> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let t = Task::parse(part).ok_or_else(|| {
                format!("unknown task `{part}` (expected t1, t2, t3, t4, t1x, t3x)")
            })?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        if out.is_empty() {
            return Err("no task given (expected e.g. t1,t2)".into());
        }
        Ok(out)
    }

    /// Human-readable description.
    pub fn title(self) -> &'static str {
        match self {
            Task::T1 => "T1 valley (d=2)",
            Task::T2 => "T2 product (d=2)",
            Task::T3 => "T3 diagonal net (p=100, n=40)",
            Task::T4 => "T4 two-layer tanh (w=32, p=10, n=64)",
            Task::T1x => "T1x valley as an expression",
            Task::T3x => "T3x diagonal net as an expression",
        }
    }
}

/// What [`run`] does.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Divide steps (and the record interval) by 10.
    pub quick: bool,
    /// Tasks to run, in order.
    pub tasks: Vec<Task>,
    /// Timed repetitions of every run (the median is reported).
    pub repeats: usize,
    /// Where to write the JSON results (`tasks.json` goes beside it).
    pub json: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            quick: false,
            tasks: Task::ALL.to_vec(),
            repeats: 3,
            json: None,
        }
    }
}

/// An optimizer of a task, dispatched to the concrete (monomorphised) optimizer type.
#[derive(Clone, Debug)]
enum OptSpec {
    Sgd { lr: f64 },
    HeavyBall { lr: f64, beta: f64 },
    Adam { lr: f64 },
}

const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
const ADAM_EPS: f64 = 1e-8;

impl OptSpec {
    fn name(&self) -> &'static str {
        match self {
            OptSpec::Sgd { .. } => "sgd",
            OptSpec::HeavyBall { .. } => "heavy_ball",
            OptSpec::Adam { .. } => "adam",
        }
    }

    fn to_json(&self) -> Value {
        match self {
            OptSpec::Sgd { lr } => json!({ "kind": "sgd", "lr": lr }),
            OptSpec::HeavyBall { lr, beta } => {
                json!({ "kind": "heavy_ball", "lr": lr, "beta": beta })
            }
            OptSpec::Adam { lr } => json!({
                "kind": "adam", "lr": lr, "beta1": ADAM_BETAS.0, "beta2": ADAM_BETAS.1,
                "eps": ADAM_EPS
            }),
        }
    }

    fn run<M: Model>(&self, model: &M, noise: &NoiseModel, spec: &EnsembleSpec) -> EnsembleResult {
        match *self {
            OptSpec::Sgd { lr } => run_ensemble(
                model,
                noise,
                &Sgd {
                    lr: Schedule::Constant(lr),
                },
                spec,
            ),
            OptSpec::HeavyBall { lr, beta } => run_ensemble(
                model,
                noise,
                &HeavyBall {
                    lr: Schedule::Constant(lr),
                    beta,
                    weight_decay: 0.0,
                },
                spec,
            ),
            OptSpec::Adam { lr } => run_ensemble(
                model,
                noise,
                &Adam {
                    lr: Schedule::Constant(lr),
                    beta1: ADAM_BETAS.0,
                    beta2: ADAM_BETAS.1,
                    eps: ADAM_EPS,
                    weight_decay: 0.0,
                },
                spec,
            ),
        }
    }
}

/// A fully specified task: the model and everything the ensemble needs.
struct Setup<M> {
    task: Task,
    model: M,
    sigma: f64,
    start: Vec<f64>,
    trajectories: usize,
    steps: u64,
    record_every: u64,
    observables: Vec<Observable>,
    optimizers: Vec<OptSpec>,
    /// Extra description for `tasks.json` (model parameters, data).
    extra: Value,
}

/// One measured (task, optimizer) run.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// Task.
    pub task: Task,
    /// Optimizer name, or `rng_floor`.
    pub optimizer: String,
    /// Trajectories.
    pub trajectories: usize,
    /// Steps per trajectory.
    pub steps: u64,
    /// Wall time of every repetition, in seconds.
    pub seconds: Vec<f64>,
}

impl BenchRow {
    /// Median wall time.
    pub fn median_seconds(&self) -> f64 {
        median(&self.seconds)
    }

    /// Trajectory-steps per second at the median time.
    pub fn throughput(&self) -> f64 {
        self.trajectories as f64 * self.steps as f64 / self.median_seconds()
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
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

/// `steps` full-batch gradient-descent steps from `theta` (deterministic, one trajectory).
/// Returns the final point and its loss.
pub fn gradient_descent<M: Model>(
    model: &M,
    theta: &[f64],
    steps: u64,
    lr: f64,
) -> (Vec<f64>, f64) {
    let d = model.dim();
    let mut theta = theta.to_vec();
    let mut grad = vec![0.0; d];
    let mut scratch = vec![0.0; model.scratch_len()];
    let opt = Sgd {
        lr: Schedule::Constant(lr),
    };
    let mut state = opt.init(d);
    for _ in 0..steps {
        model.batch_gradient(&theta, Batch::FULL, &mut grad, &mut scratch);
        opt.step(&mut state, &mut theta, &grad);
    }
    let loss = model.batch_gradient(&theta, Batch::FULL, &mut grad, &mut scratch);
    (theta, loss)
}

/// Per checkpoint and observable: ensemble mean, sample standard deviation (`N - 1`) and the
/// number of valid trajectories.
fn ensemble_stats(r: &EnsembleResult) -> Value {
    let (nc, no) = (r.steps.len(), r.observables.len());
    let mut mean = vec![vec![0.0; no]; nc];
    let mut std = vec![vec![0.0; no]; nc];
    let mut count = vec![0usize; nc];
    for c in 0..nc {
        for o in 0..no {
            let col = r.column(c, o);
            let k = col.len() as f64;
            let m = col.iter().sum::<f64>() / k;
            let var = if col.len() > 1 {
                col.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (k - 1.0)
            } else {
                0.0
            };
            mean[c][o] = m;
            std[c][o] = var.sqrt();
            count[c] = col.len();
        }
    }
    json!({
        "checkpoints": r.steps,
        "observables": r.observables,
        "mean": mean,
        "std": std,
        "count": count,
        "divergences": r.divergences.len(),
    })
}

fn scale(quick: bool, steps: u64) -> u64 {
    if quick {
        steps / 10
    } else {
        steps
    }
}

fn label(sigma: f64) -> NoiseModel {
    NoiseModel::Label { sigma, batch: None }
}

fn setup_t1(quick: bool) -> Setup<Valley> {
    let steps = scale(quick, 100_000);
    Setup {
        task: Task::T1,
        model: Valley::planar(Profile::Quadratic, 1.0),
        sigma: 1.0,
        start: vec![0.0, 2.0],
        trajectories: 4096,
        steps,
        record_every: steps / 100,
        observables: vec![
            Observable::Loss,
            Observable::ManifoldCoordinate(0),
            Observable::DistanceToManifold,
        ],
        optimizers: vec![
            OptSpec::Sgd { lr: 0.05 },
            OptSpec::HeavyBall {
                lr: 0.005,
                beta: 0.9,
            },
            OptSpec::Adam { lr: 0.001 },
        ],
        extra: json!({
            "model": "valley",
            "formula": "theta = (x, y); f = sqrt(1 + y^2) x; target 0; one sample",
        }),
    }
}

fn setup_t2(quick: bool) -> Setup<ProductModel> {
    let steps = scale(quick, 200_000);
    Setup {
        task: Task::T2,
        model: ProductModel::scalar(2, 1.0),
        sigma: 0.5,
        start: vec![4.0, 0.25],
        trajectories: 4096,
        steps,
        record_every: steps / 100,
        observables: vec![Observable::Loss, Observable::ParamNorm],
        optimizers: vec![OptSpec::Sgd { lr: 0.02 }, OptSpec::Adam { lr: 0.002 }],
        extra: json!({
            "model": "product",
            "formula": "theta = (t1, t2); f = t1 t2; target 1; one sample",
        }),
    }
}

fn setup_t3(quick: bool) -> Setup<DiagonalNetwork> {
    let (n, p, floor) = (40, 100, 1e-2);
    let data = generate(&SyntheticSpec {
        n,
        n_test: 0,
        p,
        teacher: Teacher::Sparse { k: 5, value: 1.0 },
        label_noise: 0.0,
        seed: 0,
    });
    let extra = json!({
        "model": "diagonal",
        "formula": "theta = (u[p], v[p]); f(x) = sum_j (u_j^2 - v_j^2) x_j",
        "n": n, "p": p, "floor": floor,
        "x": data.train.x, "y": data.train.y, "teacher": data.teacher,
    });
    let model = DiagonalNetwork::new(data.train, None, data.teacher).with_floor(floor);
    let start = model.default_start();
    let steps = scale(quick, 100_000);
    Setup {
        task: Task::T3,
        model,
        sigma: 0.5,
        start,
        trajectories: 16,
        steps,
        record_every: steps / 100,
        observables: vec![
            Observable::Loss,
            Observable::TeacherDistance,
            Observable::WeightL1,
        ],
        optimizers: vec![OptSpec::Sgd { lr: 0.01 }, OptSpec::Adam { lr: 0.001 }],
        extra,
    }
}

/// An expression model (the benchmark's own formulas; they compile).
fn expression(
    params: &[(&str, Option<usize>)],
    output: &str,
    data: Option<quasistatic::data::Data>,
    start: Vec<f64>,
) -> ExpressionModel {
    ExpressionModel::new(ExpressionSpec {
        params: params.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
        formula: Formula::Outputs(vec![output.to_string()]),
        constants: Vec::new(),
        data,
        columns: Vec::new(),
        targets: None,
        start,
    })
    .expect("the benchmark's formulas compile")
}

/// T1 with `f = sqrt(1 + y^2) x` written as an expression.
fn setup_t1x(quick: bool) -> Setup<ExpressionModel> {
    let t1 = setup_t1(quick);
    let model = expression(
        &[("x", None), ("y", None)],
        "sqrt(1 + y^2) * x",
        None,
        t1.start.clone(),
    );
    Setup {
        task: Task::T1x,
        model,
        observables: vec![Observable::Loss, Observable::ParamNorm],
        extra: json!({ "model": "expression", "output": "sqrt(1 + y^2) * x" }),
        sigma: t1.sigma,
        start: t1.start,
        trajectories: t1.trajectories,
        steps: t1.steps,
        record_every: t1.record_every,
        optimizers: t1.optimizers,
    }
}

/// T3 with `f(x) = dot(u^2 - v^2, x)` written as an expression, on T3's data and start.
fn setup_t3x(quick: bool) -> Setup<ExpressionModel> {
    let t3 = setup_t3(quick);
    let data = generate(&SyntheticSpec {
        n: 40,
        n_test: 0,
        p: 100,
        teacher: Teacher::Sparse { k: 5, value: 1.0 },
        label_noise: 0.0,
        seed: 0,
    });
    let output = "dot(u^2 - v^2, x)";
    let model = expression(
        &[("u", Some(100)), ("v", Some(100))],
        output,
        Some(data),
        t3.start.clone(),
    );
    Setup {
        task: Task::T3x,
        model,
        observables: vec![Observable::Loss, Observable::ParamNorm],
        extra: json!({ "model": "expression", "output": output }),
        sigma: t3.sigma,
        start: t3.start,
        trajectories: t3.trajectories,
        steps: t3.steps,
        record_every: t3.record_every,
        optimizers: t3.optimizers,
    }
}

fn setup_t4(quick: bool) -> Setup<TwoLayerNetwork> {
    let (n, p, width, gd_steps, gd_lr) = (64, 10, 32, 20_000, 0.05);
    let data = generate(&SyntheticSpec {
        n,
        n_test: 0,
        p,
        teacher: Teacher::TanhNetwork { width: 4, seed: 1 },
        label_noise: 0.0,
        seed: 0,
    });
    let x = data.train.x.clone();
    let y = data.train.y.clone();
    let model = TwoLayerNetwork::new(width, Activation::Tanh, data.train, None).with_init(0, 1.0);
    let init = model.default_start();
    let (start, gd_loss) = gradient_descent(&model, &init, gd_steps, gd_lr);
    let steps = scale(quick, 50_000);
    Setup {
        task: Task::T4,
        model,
        sigma: 0.1,
        start,
        trajectories: 16,
        steps,
        record_every: steps / 100,
        observables: vec![Observable::Loss, Observable::GradOutputSq],
        optimizers: vec![OptSpec::Sgd { lr: 0.05 }],
        extra: json!({
            "model": "two_layer_tanh",
            "formula": "theta = (a[width], W[width x p] row-major); \
                        f(x) = sum_j a_j tanh(W_j . x) / sqrt(width)",
            "n": n, "p": p, "width": width,
            "x": x, "y": y,
            "warmup": { "gd_steps": gd_steps, "lr": gd_lr, "final_loss": gd_loss },
        }),
    }
}

/// Run one task: every optimizer `repeats` times, and its RNG floor.
fn bench_task<M: Model>(s: &Setup<M>, repeats: usize, log: bool) -> (Vec<BenchRow>, Value, Value) {
    let noise = label(s.sigma);
    let spec = EnsembleSpec {
        steps: s.steps,
        record_every: s.record_every,
        trajectories: s.trajectories,
        seed: 1,
        max_loss: 1e12,
        start: s.start.clone(),
        observables: s.observables.clone(),
        ..EnsembleSpec::default()
    };
    let mut rows = Vec::new();
    let mut runs = serde_json::Map::new();
    for opt in &s.optimizers {
        let mut seconds = Vec::with_capacity(repeats);
        let mut stats = Value::Null;
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            let r = opt.run(&s.model, &noise, &spec);
            seconds.push(t.elapsed().as_secs_f64());
            stats = ensemble_stats(&r);
        }
        let row = BenchRow {
            task: s.task,
            optimizer: opt.name().into(),
            trajectories: s.trajectories,
            steps: s.steps,
            seconds,
        };
        if log {
            eprintln!(
                "{} {}: {:.3e} trajectory-steps/s (median of {:?} s)",
                s.task.key(),
                row.optimizer,
                row.throughput(),
                row.seconds
            );
        }
        let mut entry = json!({
            "seconds": row.seconds,
            "seconds_median": row.median_seconds(),
            "throughput": row.throughput(),
            "compile_seconds": 0.0,
        });
        if let (Value::Object(e), Value::Object(st)) = (&mut entry, stats) {
            e.extend(st);
        }
        runs.insert(opt.name().into(), entry);
        rows.push(row);
    }
    let per_step = s.model.n_samples();
    let seconds: Vec<f64> = (0..repeats.max(1))
        .map(|_| rng_floor(s.trajectories, s.steps, per_step))
        .collect();
    let floor = BenchRow {
        task: s.task,
        optimizer: "rng_floor".into(),
        trajectories: s.trajectories,
        steps: s.steps,
        seconds,
    };
    if log {
        eprintln!(
            "{} rng floor: {:.3e} trajectory-steps/s",
            s.task.key(),
            floor.throughput()
        );
    }
    let result = json!({
        "trajectories": s.trajectories,
        "steps": s.steps,
        "record_every": s.record_every,
        "runs": runs,
        "rng_floor": {
            "normals_per_step": per_step,
            "seconds": floor.seconds,
            "seconds_median": floor.median_seconds(),
            "throughput": floor.throughput(),
        },
    });
    rows.push(floor);
    let mut task = json!({
        "title": s.task.title(),
        "trajectories": s.trajectories,
        "steps": s.steps,
        "record_every": s.record_every,
        "sigma": s.sigma,
        "start": s.start,
        "observables": s.observables.iter().map(|o| o.name()).collect::<Vec<_>>(),
        "optimizers": s.optimizers.iter().map(|o| (o.name().to_string(), o.to_json()))
            .collect::<serde_json::Map<_, _>>(),
        "dim": s.model.dim(),
        "n_samples": s.model.n_samples(),
    });
    if let (Value::Object(t), Value::Object(e)) = (&mut task, s.extra.clone()) {
        t.extend(e);
    }
    (rows, result, task)
}

/// Everything [`run`] measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Measured rows (optimizers and RNG floors).
    pub rows: Vec<BenchRow>,
    /// Results as JSON (throughputs and ensemble statistics per checkpoint).
    pub results: Value,
    /// Task definitions as JSON (parameters, data, start points).
    pub tasks: Value,
}

/// Run the selected tasks.
pub fn measure(opts: &BenchOptions, log: bool) -> BenchReport {
    let mut rows = Vec::new();
    let mut results = serde_json::Map::new();
    let mut tasks = serde_json::Map::new();
    for &task in &opts.tasks {
        let (r, res, t) = match task {
            Task::T1 => bench_task(&setup_t1(opts.quick), opts.repeats, log),
            Task::T2 => bench_task(&setup_t2(opts.quick), opts.repeats, log),
            Task::T3 => bench_task(&setup_t3(opts.quick), opts.repeats, log),
            Task::T4 => bench_task(&setup_t4(opts.quick), opts.repeats, log),
            Task::T1x => bench_task(&setup_t1x(opts.quick), opts.repeats, log),
            Task::T3x => bench_task(&setup_t3x(opts.quick), opts.repeats, log),
        };
        rows.extend(r);
        results.insert(task.key().into(), res);
        tasks.insert(task.key().into(), t);
    }
    let meta = json!({
        "framework": "quasistatic",
        "version": env!("CARGO_PKG_VERSION"),
        "dtype": "float64",
        "threads": rayon::current_num_threads(),
        "quick": opts.quick,
        "repeats": opts.repeats,
    });
    let mut res = meta.clone();
    if let Value::Object(m) = &mut res {
        m.insert("tasks".into(), Value::Object(results));
    }
    let mut tk = json!({ "quick": opts.quick });
    if let Value::Object(m) = &mut tk {
        m.insert("tasks".into(), Value::Object(tasks));
    }
    BenchReport {
        rows,
        results: res,
        tasks: tk,
    }
}

/// Markdown table of measured rows, with the ratio of each run to its task's RNG floor.
pub fn table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "threads: {}\n\n| task | optimizer | N | steps | median s | trajectory-steps/s | / RNG floor |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
        rayon::current_num_threads()
    );
    for r in rows {
        let floor = rows
            .iter()
            .find(|f| f.task == r.task && f.optimizer == "rng_floor")
            .map(|f| f.throughput());
        let ratio = match (r.optimizer.as_str(), floor) {
            ("rng_floor", _) | (_, None) => String::new(),
            (_, Some(f)) => format!("{:.0}%", 100.0 * r.throughput() / f),
        };
        s += &format!(
            "| {} | {} | {} | {} | {:.3} | {:.3e} | {} |\n",
            r.task.title(),
            r.optimizer,
            r.trajectories,
            r.steps,
            r.median_seconds(),
            r.throughput(),
            ratio
        );
    }
    // Expression tasks next to the built-in they write out, optimizer by optimizer.
    for r in rows
        .iter()
        .filter(|r| r.task.built_in().is_some() && r.optimizer != "rng_floor")
    {
        let Some(b) = rows
            .iter()
            .find(|b| Some(b.task) == r.task.built_in() && b.optimizer == r.optimizer)
        else {
            continue;
        };
        s += &format!(
            "\n{} {}: {:.2}x slower than the built-in ({:.3e} vs {:.3e} trajectory-steps/s)",
            r.task.key(),
            r.optimizer,
            b.throughput() / r.throughput(),
            r.throughput(),
            b.throughput()
        );
    }
    s
}

fn write_json(path: &Path, value: &Value) -> quasistatic::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| quasistatic::Error::io(dir.display().to_string(), e))?;
    }
    let text = serde_json::to_string(value).expect("JSON values serialise");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| quasistatic::Error::io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| quasistatic::Error::io(path.display().to_string(), e))
}

/// Run the benchmark, write the JSON files if asked, and return the Markdown table.
pub fn run(opts: &BenchOptions) -> quasistatic::Result<String> {
    let report = measure(opts, opts.json.is_some());
    if let Some(path) = &opts.json {
        write_json(path, &report.results)?;
        let tasks = path.with_file_name("tasks.json");
        write_json(&tasks, &report.tasks)?;
    }
    Ok(table(&report.rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lists_parse() {
        assert_eq!(Task::parse_list("t1,T3").unwrap(), vec![Task::T1, Task::T3]);
        assert_eq!(Task::parse_list("t2, t2").unwrap(), vec![Task::T2]);
        assert!(Task::parse_list("t5").is_err());
        assert!(Task::parse_list("").is_err());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn valley_stats_are_consistent() {
        let mut s = setup_t1(true);
        s.trajectories = 8;
        s.steps = 200;
        s.record_every = 100;
        let (rows, res, task) = bench_task(&s, 1, false);
        assert_eq!(rows.len(), 4);
        let sgd = &res["runs"]["sgd"];
        assert_eq!(sgd["checkpoints"].as_array().unwrap().len(), 3);
        assert_eq!(sgd["mean"][0][1].as_f64(), Some(2.0));
        assert_eq!(sgd["std"][0][1].as_f64(), Some(0.0));
        assert_eq!(task["observables"][1], "y0");
    }
}
