//! The hot loop allocates nothing: one stochastic gradient plus one optimizer step, for every
//! model x noise (except the Hessian-shaped noise, documented to factorise a dense Hessian)
//! x optimizer, counted by a global allocator wrapper.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use quasistatic::data::{generate, SyntheticSpec, Teacher};
use quasistatic::engine::rng;
use quasistatic::model::{
    Activation, AnyModel, DeepLinear, DeepLinearStructure, DiagonalNetwork, LinearTwoLayer,
    MatrixSensing, MatrixSensingSpec, Mlp, MlpActivation, Model, ProductModel, Profile,
    TwoLayerNetwork, Valley,
};
use quasistatic::noise::NoiseModel;
use quasistatic::optim::{
    Adam, AnyOptimizer, HeavyBall, Lion, Nesterov, Optimizer, RmsProp, Schedule, Sgd,
};
use quasistatic::with_model;

struct Counting;

thread_local! {
    /// Allocations made by this thread (other threads, e.g. a thread pool starting up, do not
    /// count: the hot loop runs on the calling thread).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

fn count_one() {
    // `try_with`: during thread teardown the counter may be gone.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn steps_allocate<M: Model>(model: &M, noise: &NoiseModel, opt: &AnyOptimizer) -> usize {
    let d = model.dim();
    let mut theta = model.default_start();
    let mut state = opt.init(d);
    let mut ws = noise.workspace(model);
    let mut grad = vec![0.0; d];
    let mut r = rng::stream(1, 0, 0);
    // Warm up once (nothing should be lazily allocated, but be fair).
    noise.stochastic_gradient(model, &theta, &mut r, &mut ws, &mut grad);
    let before = allocations();
    for _ in 0..20 {
        noise.stochastic_gradient(model, &theta, &mut r, &mut ws, &mut grad);
        opt.step(&mut state, &mut theta, &grad);
    }
    allocations() - before
}

/// The same for the engine's group step: 8 lanes' stochastic gradients in one call and one
/// optimizer step on the group (coordinate-major, `d * LANES` parameters).
fn lane_steps_allocate<M: Model>(model: &M, noise: &NoiseModel, opt: &AnyOptimizer) -> usize {
    use quasistatic::engine::LANES;
    let d = model.dim();
    let start = model.default_start();
    let mut theta: Vec<f64> = start.iter().flat_map(|&x| [x; LANES]).collect();
    let mut state = opt.init(d * LANES);
    let mut ws = noise.lane_workspace(model);
    let mut grad = vec![0.0; d * LANES];
    let mut scratch = vec![0.0; quasistatic::model::lane_scratch_len(model)];
    let mut loss = [0.0; LANES];
    let mut rngs: [_; LANES] = std::array::from_fn(|j| rng::stream(1, j as u64, 0));
    let mut step = |theta: &mut Vec<f64>, grad: &mut Vec<f64>| {
        noise.lane_stochastic_gradients(
            model,
            theta,
            LANES,
            &mut rngs,
            &mut ws,
            grad,
            &mut scratch,
            &mut loss,
        );
    };
    step(&mut theta, &mut grad);
    let before = allocations();
    for _ in 0..20 {
        step(&mut theta, &mut grad);
        opt.step(&mut state, &mut theta, &grad);
    }
    allocations() - before
}

#[test]
fn hot_loop_allocates_nothing() {
    let sparse = generate(&SyntheticSpec {
        n: 6,
        n_test: 0,
        p: 10,
        teacher: Teacher::Sparse { k: 2, value: 1.0 },
        label_noise: 0.0,
        seed: 1,
    });
    let scalar = generate(&SyntheticSpec {
        n: 8,
        n_test: 0,
        p: 1,
        teacher: Teacher::Linear(vec![1.0]),
        label_noise: 0.3,
        seed: 1,
    });
    let models = vec![
        AnyModel::Valley(Valley::planar(Profile::Quadratic, 1.0).with_angle(0.5)),
        AnyModel::Valley(
            Valley::new(vec![1.0, 2.0, 3.0], 2, Profile::Sin2, 1.0).with_random_rotation(1),
        ),
        AnyModel::Product(ProductModel::new(3, scalar.train, None)),
        AnyModel::Diagonal(DiagonalNetwork::new(
            sparse.train.clone(),
            None,
            sparse.teacher.clone(),
        )),
        AnyModel::TwoLayer(TwoLayerNetwork::new(
            4,
            Activation::Gelu,
            sparse.train.clone(),
            None,
        )),
        AnyModel::TwoLayer(TwoLayerNetwork::new(
            5,
            Activation::Tanh,
            sparse.train.clone(),
            None,
        )),
        AnyModel::Mlp(Mlp::new(
            vec![4, 3],
            MlpActivation::Gelu,
            true,
            sparse.train.clone(),
            None,
        )),
        AnyModel::DeepLinear(DeepLinear::new(
            3,
            DeepLinearStructure::Dense { width: 3 },
            sparse.train.clone(),
            None,
            sparse.teacher.clone(),
        )),
        AnyModel::DeepLinear(DeepLinear::new(
            4,
            DeepLinearStructure::Diagonal,
            sparse.train.clone(),
            None,
            None,
        )),
        AnyModel::MatrixSensing(MatrixSensing::generate(MatrixSensingSpec {
            rows: 3,
            cols: 3,
            rank: 2,
            true_rank: 1,
            measurements: 6,
            symmetric: true,
            seed: 1,
        })),
        AnyModel::Linear2(LinearTwoLayer::new(3, sparse.train, None, None)),
    ];
    let lr = Schedule::Constant(1e-3);
    let optimizers = [
        AnyOptimizer::Sgd(Sgd { lr: lr.clone() }),
        AnyOptimizer::HeavyBall(HeavyBall {
            lr: lr.clone(),
            beta: 0.9,
            weight_decay: 0.0,
        }),
        AnyOptimizer::Nesterov(Nesterov {
            lr: lr.clone(),
            beta: 0.9,
            weight_decay: 0.1,
        }),
        AnyOptimizer::Adam(Adam {
            lr: lr.clone(),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }),
        AnyOptimizer::RmsProp(RmsProp {
            lr: lr.clone(),
            alpha: 0.99,
            eps: 1e-8,
            bias_correction: true,
        }),
        AnyOptimizer::Lion(Lion {
            lr,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.01,
        }),
    ];
    // The counter works: the Hessian-shaped noise (dense eigen-decomposition) does allocate.
    let planar = Valley::planar(Profile::Quadratic, 1.0);
    let hessian = NoiseModel::Hessian {
        sigma: 0.1,
        batch: 1,
    };
    assert!(lane_steps_allocate(&planar, &hessian, &optimizers[0]) > 0);
    assert!(
        steps_allocate(
            &planar,
            &NoiseModel::Hessian {
                sigma: 0.1,
                batch: 1
            },
            &optimizers[0]
        ) > 0
    );
    for model in &models {
        let n = model.n_samples();
        let d = model.dim();
        let noises = [
            NoiseModel::None,
            NoiseModel::Label {
                sigma: 0.5,
                batch: None,
            },
            NoiseModel::Label {
                sigma: 0.5,
                batch: Some(n.div_ceil(2)),
            },
            NoiseModel::Isotropic {
                sigma: 0.1,
                batch: 1,
            },
            NoiseModel::fixed(nalgebra::DMatrix::identity(d, d) * 0.01),
        ];
        for noise in &noises {
            for opt in &optimizers {
                let count = with_model!(model, m => steps_allocate(m, noise, opt));
                let lanes = with_model!(model, m => lane_steps_allocate(m, noise, opt));
                assert_eq!(
                    (count, lanes),
                    (0, 0),
                    "{} / {} / {} allocated (alone, in groups) {:?} times in 20 steps",
                    model.name(),
                    noise.name(),
                    opt.name(),
                    (count, lanes)
                );
            }
        }
    }
}

/// Allocations of a whole ensemble of `steps` steps, recorded only at the first and the last
/// step, on a one-thread pool that runs on the calling thread (whose allocations are counted).
fn ensemble_allocations<M: Model>(
    pool: &rayon::ThreadPool,
    model: &M,
    noise: &NoiseModel,
    opt: &AnyOptimizer,
    steps: u64,
) -> usize {
    use quasistatic::simulate::{run_ensemble, EnsembleSpec};
    let spec = EnsembleSpec {
        steps,
        record_every: steps,
        trajectories: 40,
        start: model.default_start(),
        ..EnsembleSpec::default()
    };
    let before = allocations();
    let r = pool.install(|| run_ensemble(model, noise, opt, &spec));
    let n = allocations() - before;
    assert!(r.divergences.is_empty(), "{:?}", r.divergences);
    n
}

/// A one-thread pool that runs on the calling thread (built once per test: a thread can be
/// in one such pool only).
fn this_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
        .unwrap()
}

fn few_optimizers() -> [AnyOptimizer; 3] {
    let lr = Schedule::Constant(0.01);
    [
        AnyOptimizer::Sgd(Sgd { lr: lr.clone() }),
        AnyOptimizer::HeavyBall(HeavyBall {
            lr: lr.clone(),
            beta: 0.9,
            weight_decay: 0.0,
        }),
        AnyOptimizer::Adam(Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }),
    ]
}

/// The register group step (the planar valley and the scalar product model under full-batch
/// label noise, `engine/registers.rs`) allocates nothing per step: whole ensembles of 100 and
/// of 1 000 steps allocate the same number of times.
#[test]
fn register_step_allocates_nothing_per_step() {
    let pool = this_thread();
    let models = [
        AnyModel::Valley(Valley::planar(Profile::Quadratic, 1.0)),
        AnyModel::Product(ProductModel::scalar(2, 1.0)),
    ];
    let noise = NoiseModel::Label {
        sigma: 0.5,
        batch: None,
    };
    for model in &models {
        for opt in &few_optimizers() {
            let count =
                |steps| with_model!(model, m => ensemble_allocations(&pool, m, &noise, opt, steps));
            let (short, long) = (count(100), count(1000));
            assert!(short > 0, "the counter sees the run");
            assert_eq!(short, long, "{opt}: allocations grow with steps");
        }
    }
}

/// The general group step (a model's lane kernel, or lane by lane without one, and the
/// optimizer behind a trait object) allocates nothing per step either: the diagonal network
/// (lane kernel) and the two-layer linear network (no kernel) under mini-batch label noise.
#[test]
fn general_group_step_allocates_nothing_per_step() {
    let pool = this_thread();
    let data = generate(&SyntheticSpec {
        n: 6,
        n_test: 0,
        p: 4,
        teacher: Teacher::Sparse { k: 2, value: 1.0 },
        label_noise: 0.0,
        seed: 1,
    });
    let models = [
        AnyModel::Diagonal(DiagonalNetwork::new(data.train.clone(), None, None)),
        AnyModel::Linear2(LinearTwoLayer::new(3, data.train, None, None)),
    ];
    let noise = NoiseModel::Label {
        sigma: 0.1,
        batch: Some(3),
    };
    for model in &models {
        for opt in &few_optimizers() {
            let count =
                |steps| with_model!(model, m => ensemble_allocations(&pool, m, &noise, opt, steps));
            let (short, long) = (count(100), count(1000));
            assert!(short > 0, "the counter sees the run");
            assert_eq!(
                short,
                long,
                "{} / {opt}: allocations grow with steps",
                model.name()
            );
        }
    }
}
