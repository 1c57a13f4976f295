//! Ensemble runner: reproducibility across thread counts, divergence reporting, and a
//! closed-form check of the recorded dynamics.

use super::*;
use crate::model::{Profile, Valley};
use crate::observe::default_observables;
use crate::optim::{AnyOptimizer, HeavyBall, Schedule, Sgd};

fn spec(model: &Valley, steps: u64, n: usize) -> EnsembleSpec {
    EnsembleSpec {
        steps,
        record_every: 50,
        trajectories: n,
        seed: 11,
        max_loss: 1e8,
        start: model.default_start(),
        observables: default_observables(model),
        ..EnsembleSpec::default()
    }
}

fn run_with_threads(threads: usize) -> EnsembleResult {
    let m = Valley::planar(Profile::Quadratic, 1.0).with_angle(0.3);
    let noise = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    let opt = AnyOptimizer::HeavyBall(HeavyBall {
        lr: Schedule::Constant(0.05),
        beta: 0.9,
        weight_decay: 0.0,
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| run_ensemble(&m, &noise, &opt, &spec(&m, 300, 37)))
}

#[test]
fn bit_identical_for_one_and_two_threads() {
    let a = run_with_threads(1);
    let b = run_with_threads(2);
    assert_eq!(a.values.len(), 37 * 7 * a.observables.len());
    let bits = |r: &EnsembleResult| r.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.valid, b.valid);
    // Trajectories differ from one another (the streams are independent).
    let y = a.observable_index("y0").unwrap();
    assert_ne!(a.get(0, 6, y), a.get(1, 6, y));
}

/// An ensemble run in blocks of consecutive trajectories (`first_trajectory`), on the register
/// path (valley, label noise, heavy ball) and the general path (Adam), gives the same records,
/// bit for bit, as one run; block boundaries need not be multiples of the lane count.
#[test]
fn blocks_of_trajectories_give_the_same_ensemble() {
    let m = Valley::planar(Profile::Quadratic, 1.0).with_angle(0.3);
    let noise = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    for opt in [
        AnyOptimizer::HeavyBall(HeavyBall {
            lr: Schedule::Constant(0.05),
            beta: 0.9,
            weight_decay: 0.0,
        }),
        every_optimizer(0.05)[3].clone(),
    ] {
        let whole = run_ensemble(&m, &noise, &opt, &spec(&m, 300, 37));
        let mut values = Vec::new();
        let mut divergences = 0;
        for (first, n) in [(0, 16), (16, 5), (21, 16)] {
            let s = EnsembleSpec {
                first_trajectory: first,
                ..spec(&m, 300, n)
            };
            let part = run_ensemble(&m, &noise, &opt, &s);
            values.extend(part.values.iter().map(|v| v.to_bits()));
            divergences += part.divergences.len();
        }
        let whole_bits: Vec<u64> = whole.values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(values, whole_bits, "{}", opt.name());
        assert_eq!(divergences, whole.divergences.len());
    }
}

#[test]
fn divergence_is_reported_and_others_finish() {
    // a(y) = 1 + y^2 >= 1, so eta = 2.5 gives eta a > 2 everywhere: every trajectory is
    // unstable across the valley and must be reported; a stable eta must report none.
    let m = Valley::planar(Profile::Quadratic, 1.0);
    let noise = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    let opt = AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(2.5),
    });
    let mut s = spec(&m, 2000, 4);
    s.max_loss = 1e6;
    let r = run_ensemble(&m, &noise, &opt, &s);
    assert_eq!(r.divergences.len(), 4);
    for dv in &r.divergences {
        assert!(dv.step > 0 && dv.step < 2000);
        assert!(dv.last_finite_loss.is_finite() && dv.last_finite_loss <= 1e6);
        assert!(dv.reason.contains("max_loss"), "{}", dv.reason);
        assert!(r.valid[dv.trajectory] < r.steps.len());
        let text = dv.to_string();
        assert!(text.contains(&format!("trajectory {}", dv.trajectory)));
    }
    // A stable learning rate on the same ensemble: nothing diverges.
    let opt = AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(0.05),
    });
    let r = run_ensemble(&m, &noise, &opt, &s);
    assert!(r.divergences.is_empty());
    assert!(r.valid.iter().all(|&v| v == r.steps.len()));
    assert_eq!(r.gradient_evaluations, 4 * 2000);
}

/// Full-batch GD without noise on the valley started at `x0` with `y` fixed... `y` moves only
/// through `x^2`, so use the exact linear recursion of `x` at `y = 0` (flattest point, where the
/// tangent gradient `y x^2` vanishes): `x_k = (1 - eta)^k x0` for `a(0) = 1`.
#[test]
fn deterministic_dynamics_matches_closed_form() {
    let m = Valley::planar(Profile::Quadratic, 1.0);
    let opt = AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(0.1),
    });
    let mut s = spec(&m, 100, 2);
    s.start = vec![0.5, 0.0];
    let r = run_ensemble(&m, &NoiseModel::None, &opt, &s);
    let dist = r.observable_index("distance_to_manifold").unwrap();
    for (c, &step) in r.steps.iter().enumerate() {
        let want = 0.5 * 0.9f64.powi(step as i32);
        let got = r.get(1, c, dist).unwrap();
        assert!(
            (got - want).abs() < 1e-14 * (1.0 + want),
            "step {step}: {got} vs {want}"
        );
    }
}

#[test]
fn checkpoints_include_last_step() {
    assert_eq!(checkpoints(10, 4), vec![0, 4, 8, 10]);
    assert_eq!(checkpoints(8, 4), vec![0, 4, 8]);
}

/// The engine before lanes: one trajectory alone, step by step (the definition the lane
/// engine must reproduce bit for bit).
fn alone<M: Model, O: Optimizer>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &O,
    spec: &EnsembleSpec,
    j: usize,
) -> TrajectoryOutput {
    let cps = checkpoints(spec.steps, spec.record_every);
    let d = model.dim();
    let n_obs = spec.observables.len();
    let mut values = vec![f64::NAN; cps.len() * n_obs];
    let mut theta = start_of(spec, j);
    let mut rng = rng::stream(spec.seed, j as u64, 0);
    let mut state = optimizer.init(d);
    let mut ws = noise.workspace(model);
    let mut grad = vec![0.0; d];
    let mut observer = Observer::new(model, spec.observables.clone());
    let (mut last_loss, mut step, mut valid) = (f64::NAN, 0u64, 0);
    let mut divergence = None;
    'outer: for (c, &target) in cps.iter().enumerate() {
        while step < target {
            let loss = noise.stochastic_gradient(model, &theta, &mut rng, &mut ws, &mut grad);
            if let Some(reason) = divergence_reason(loss, &grad, spec.max_loss) {
                divergence = Some(Divergence {
                    trajectory: j,
                    step,
                    last_finite_loss: last_loss,
                    reason,
                });
                break 'outer;
            }
            last_loss = loss;
            optimizer.step(&mut state, &mut theta, &grad);
            step += 1;
        }
        if !theta.iter().all(|x| x.is_finite()) {
            divergence = Some(Divergence {
                trajectory: j,
                step,
                last_finite_loss: last_loss,
                reason: "parameters are not finite".into(),
            });
            break;
        }
        observer.observe(model, &theta, &mut values[c * n_obs..(c + 1) * n_obs]);
        valid = c + 1;
    }
    TrajectoryOutput {
        values,
        valid,
        divergence,
        gradients: step,
    }
}

/// Every model x noise x optimizer: 11 trajectories (a full group of 8 and one of 3) run by
/// the engine equal, bit for bit, each trajectory run alone; with learning rates large enough
/// that some lanes diverge mid-run while their neighbours go on. The planar valley and the
/// one-sample product model under no or full-batch label noise take the register group step
/// (`engine::registers`, two real groups and padding in one task), the others the general one.
/// Every built-in optimizer at the constant learning rate `lr`, with momentum, weight decay
/// and bias correction switched on where they exist.
fn every_optimizer(lr: f64) -> [AnyOptimizer; 6] {
    use crate::optim::{Adam, Lion, Nesterov, RmsProp};
    let lr = Schedule::Constant(lr);
    [
        AnyOptimizer::Sgd(Sgd { lr: lr.clone() }),
        AnyOptimizer::HeavyBall(HeavyBall {
            lr: lr.clone(),
            beta: 0.9,
            weight_decay: 0.0,
        }),
        AnyOptimizer::Nesterov(Nesterov {
            lr: lr.clone(),
            beta: 0.5,
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
            weight_decay: 0.1,
        }),
    ]
}

#[test]
fn lanes_are_bit_identical_to_trajectories_run_alone() {
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::{
        Activation, AnyModel, DeepLinear, DeepLinearStructure, DiagonalNetwork, LinearTwoLayer,
        MatrixSensing, MatrixSensingSpec, Mlp, MlpActivation, ProductModel, TwoLayerNetwork,
    };
    use crate::with_model;
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
        AnyModel::Valley(Valley::planar(Profile::Quadratic, 1.0)),
        AnyModel::Valley(
            Valley::new(vec![1.0, 2.0, 3.0], 2, Profile::Sin2, 1.0).with_random_rotation(1),
        ),
        AnyModel::Product(ProductModel::new(2, scalar.train, None)),
        // One sample: with full-batch or no noise, the register group step.
        AnyModel::Product(ProductModel::scalar(2, 1.0)),
        AnyModel::Diagonal(DiagonalNetwork::new(
            sparse.train.clone(),
            None,
            sparse.teacher.clone(),
        )),
        AnyModel::TwoLayer(TwoLayerNetwork::new(
            4,
            Activation::Tanh,
            sparse.train.clone(),
            None,
        )),
        AnyModel::Mlp(Mlp::new(
            vec![3, 2],
            MlpActivation::Softplus,
            true,
            sparse.train.clone(),
            None,
        )),
        AnyModel::DeepLinear(DeepLinear::new(
            3,
            DeepLinearStructure::Diagonal,
            sparse.train.clone(),
            None,
            sparse.teacher.clone(),
        )),
        AnyModel::MatrixSensing(MatrixSensing::generate(MatrixSensingSpec {
            rows: 3,
            cols: 2,
            rank: 2,
            true_rank: 1,
            measurements: 5,
            symmetric: false,
            seed: 2,
        })),
        AnyModel::Linear2(LinearTwoLayer::new(3, sparse.train, None, None)),
    ];
    // Runs in which some lanes of a group diverged and others went on.
    let mut mixed = 0;
    for model in &models {
        let (n, d) = (model.n_samples(), model.dim());
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
                sigma: 0.3,
                batch: 1,
            },
            NoiseModel::fixed(nalgebra::DMatrix::identity(d, d) * 0.09),
        ];
        // Learning rates spread over lanes' fates: the largest makes trajectories diverge.
        for (k, lr) in [0.02, 0.6].into_iter().enumerate() {
            let optimizers = every_optimizer(lr);
            for noise in &noises {
                for opt in &optimizers {
                    with_model!(model, m => {
                        let s = EnsembleSpec {
                            steps: 60,
                            record_every: 7,
                            trajectories: 11,
                            seed: 5 + k as u64,
                            max_loss: 1e3,
                            start: m.default_start(),
                            start_noise: 0.5,
                            observables: default_observables(m),
                            ..EnsembleSpec::default()
                        };
                        let r = run_ensemble(m, noise, opt, &s);
                        let what = format!("{} / {} / {}", m.name(), noise.name(), opt);
                        for j in 0..s.trajectories {
                            let a = alone(m, noise, opt, &s, j);
                            let per = r.steps.len() * r.observables.len();
                            let got = &r.values[j * per..(j + 1) * per];
                            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(got), bits(&a.values), "{what}: trajectory {j}");
                            assert_eq!(r.valid[j], a.valid, "{what}: trajectory {j}");
                            let dv = r.divergences.iter().find(|x| x.trajectory == j);
                            assert_eq!(dv, a.divergence.as_ref(), "{what}: trajectory {j}");
                        }
                        let total: u64 = (0..s.trajectories)
                            .map(|j| alone(m, noise, opt, &s, j).gradients)
                            .sum();
                        assert_eq!(r.gradient_evaluations, total, "{what}");
                        let dead = r.divergences.iter().filter(|x| x.trajectory < 8).count();
                        mixed += usize::from(dead > 0 && dead < 8);
                    });
                }
            }
        }
    }
    assert!(
        mixed >= 10,
        "only {mixed} runs had lanes diverging beside living ones"
    );
}

/// The register group step gives the same bits in every version this CPU runs (AVX-512F with
/// vectorised draws, AVX2, baseline), for the valley and the scalar product model under
/// full-batch label noise and none, every optimizer, with lanes diverging at the larger rate.
#[test]
fn register_step_versions_are_bit_identical() {
    use crate::engine::registers::run_groups_with;
    use crate::engine::Isa;
    use crate::model::{AnyModel, ProductModel};
    use crate::with_model;

    /// The outputs of the register step in every version `isas`, for a model that offers it.
    struct Versions<'a> {
        run: Run<'a>,
        sigma: f64,
        opt: &'a AnyOptimizer,
        isas: &'a [Isa],
    }
    impl ModelVisitor for Versions<'_> {
        type Output = Vec<Vec<TrajectoryOutput>>;
        fn general<M: Model>(self, m: &M) -> Self::Output {
            panic!("{} offers no register step", m.name())
        }
        fn small<M: Model + SmallLaneKernel>(self, model: &M) -> Self::Output {
            /// The same for one rule.
            struct WithRule<'a, M> {
                outer: Versions<'a>,
                model: &'a M,
            }
            impl<'o, M: Model + SmallLaneKernel> RuleVisitor<'o> for WithRule<'_, M> {
                type Output = Vec<Vec<TrajectoryOutput>>;
                fn general<O: Optimizer>(self, _: &'o O) -> Self::Output {
                    panic!("every built-in optimizer is a coordinate rule")
                }
                fn rule<R: CoordinateRule>(self, rule: &'o R) -> Self::Output {
                    let Versions {
                        run, sigma, isas, ..
                    } = self.outer;
                    // Groups of 8, 8, 4 lanes, then padding (`registers::INTERLEAVED >= 3`).
                    let groups = std::array::from_fn(|g| run.group(g));
                    isas.iter()
                        .map(|&isa| {
                            in_registers::<M, R, 2>(
                                self.model,
                                sigma,
                                rule,
                                &run,
                                groups,
                                |task, books| run_groups_with(task, books, isa),
                            )
                        })
                        .collect()
                }
            }
            let opt = self.opt;
            opt.visit(WithRule { outer: self, model })
        }
    }

    let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2, Isa::Baseline]
        .into_iter()
        .filter(|i| i.available())
        .collect();
    let models = [
        AnyModel::Valley(Valley::planar(Profile::Quadratic, 1.0)),
        AnyModel::Product(ProductModel::scalar(2, 1.0)),
    ];
    let mut compared = 0;
    for model in &models {
        for (sigma, lr) in [(0.0, 0.05), (0.7, 0.05), (0.7, 0.9)] {
            let optimizers = every_optimizer(lr);
            for opt in &optimizers {
                with_model!(model, m => {
                    let spec = EnsembleSpec {
                        steps: 300,
                        record_every: 37,
                        trajectories: 20,
                        seed: 9,
                        max_loss: 1e3,
                        start: m.default_start(),
                        start_noise: 0.5,
                        observables: default_observables(m),
                        ..EnsembleSpec::default()
                    };
                    let cps = checkpoints(spec.steps, spec.record_every);
                    let noise = NoiseModel::None;
                    let run = Run { noise: &noise, spec: &spec, cps: &cps, stop: None };
                    let runs = m.visit(Versions { run, sigma, opt, isas: &isas });
                    for (isa, run) in isas.iter().zip(&runs).skip(1) {
                        for (j, (a, b)) in runs[0].iter().zip(run).enumerate() {
                            let what = format!("{} / sigma {sigma} / {opt} / {isa:?}", m.name());
                            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(&a.values), bits(&b.values), "{what}: trajectory {j}");
                            assert_eq!(a.valid, b.valid, "{what}: trajectory {j}");
                            assert_eq!(a.divergence, b.divergence, "{what}: trajectory {j}");
                        }
                        compared += 1;
                    }
                });
            }
        }
    }
    eprintln!("register step versions compared: {isas:?}");
    assert_eq!(compared, 2 * 3 * 6 * (isas.len() - 1));
}

/// An optimizer a user might write: SGD on the gradient clipped to global norm at most
/// `max_norm`, `theta -= lr g min(1, max_norm / |g|)`. It couples the coordinates, so it
/// implements [`Optimizer`] directly (it cannot be a [`CoordinateRule`]).
struct ClipByNorm {
    lr: f64,
    max_norm: f64,
}

impl Optimizer for ClipByNorm {
    type State = ();
    fn init(&self, _dim: usize) {}
    fn step(&self, _: &mut (), theta: &mut [f64], grad: &[f64]) {
        let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let scale = if norm > self.max_norm {
            self.max_norm / norm
        } else {
            1.0
        };
        for (x, g) in theta.iter_mut().zip(grad) {
            *x -= self.lr * scale * g;
        }
    }
}

/// A model a user might write: only the per-sample output and gradient (the diagonal
/// network's, delegated), no fused batch gradient, no lane kernel, no register step.
struct Plain(crate::model::DiagonalNetwork);

impl Model for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn n_samples(&self) -> usize {
        self.0.n_samples()
    }
    fn targets(&self) -> &[f64] {
        self.0.targets()
    }
    fn output_and_grad<D: crate::model::Scalar>(&self, theta: &[D], i: usize, g: &mut [D]) -> D {
        self.0.output_and_grad(theta, i, g)
    }
    fn default_start(&self) -> Vec<f64> {
        self.0.default_start()
    }
}

/// Speed is opt-in, never a trap: a user's coordinate-coupling optimizer and a user's model
/// without kernels, run by the engine in groups of 8, give each trajectory exactly what the
/// plain one-trajectory loop gives. The check has teeth: stepping the clipping optimizer on
/// a whole group's concatenated coordinates (what the engine does for a [`CoordinateRule`])
/// gives other numbers.
#[test]
fn user_optimizer_and_plain_model_run_as_the_reference_loop() {
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::DiagonalNetwork;
    let data = generate(&SyntheticSpec {
        n: 6,
        n_test: 0,
        p: 5,
        teacher: Teacher::Sparse { k: 2, value: 1.0 },
        label_noise: 0.0,
        seed: 3,
    });
    let net = DiagonalNetwork::new(data.train.clone(), None, None);
    let plain = Plain(net.clone());
    assert!(plain.lane_kernel().is_none() && net.lane_kernel().is_some());
    let noise = NoiseModel::Label {
        sigma: 0.5,
        batch: Some(4),
    };
    let clip = ClipByNorm {
        lr: 0.05,
        max_norm: 0.3,
    };
    let s = EnsembleSpec {
        steps: 80,
        record_every: 20,
        trajectories: 11,
        seed: 4,
        start: net.default_start(),
        start_noise: 0.3,
        observables: default_observables(&net),
        ..EnsembleSpec::default()
    };
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let sgd = AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(0.05),
    });
    let mut compared = 0;
    for (what, r, reference) in [
        (
            "plain model, clipping",
            run_ensemble(&plain, &noise, &clip, &s),
            (0..s.trajectories)
                .map(|j| alone(&plain, &noise, &clip, &s, j))
                .collect::<Vec<_>>(),
        ),
        (
            "kernel model, clipping",
            run_ensemble(&net, &noise, &clip, &s),
            (0..s.trajectories)
                .map(|j| alone(&net, &noise, &clip, &s, j))
                .collect(),
        ),
        (
            "plain model, sgd",
            run_ensemble(&plain, &noise, &sgd, &s),
            (0..s.trajectories)
                .map(|j| alone(&plain, &noise, &sgd, &s, j))
                .collect(),
        ),
    ] {
        assert!(r.divergences.is_empty(), "{what}");
        let per = r.steps.len() * r.observables.len();
        for (j, a) in reference.iter().enumerate() {
            let got = &r.values[j * per..(j + 1) * per];
            assert_eq!(bits(got), bits(&a.values), "{what}: trajectory {j}");
        }
        compared += 1;
    }
    assert_eq!(compared, 3);
    // The trap the engine avoids: the clipping step applied to a group's 8 x d coordinates at
    // once clips by the group's norm, not each trajectory's.
    let d = net.dim();
    let mut group: Vec<f64> = (0..d * LANES).map(|k| (k as f64 * 0.37).sin()).collect();
    let grad: Vec<f64> = (0..d * LANES).map(|k| (k as f64 * 0.11).cos()).collect();
    let mut lanes = group.clone();
    clip.step(&mut (), &mut group, &grad);
    let (mut th, mut g) = (vec![0.0; d], vec![0.0; d]);
    for l in 0..LANES {
        gather_lane(&lanes, l, &mut th);
        gather_lane(&grad, l, &mut g);
        clip.step(&mut (), &mut th, &g);
        scatter_lane(&th, l, &mut lanes);
    }
    assert_ne!(bits(&group), bits(&lanes));
}

/// `run_ensemble_until`: with the flag never set, the bits of `run_ensemble`; set from the
/// first progress report, the run ends early with `Interrupted`, on the register path (label
/// noise) and on the general path (isotropic noise); set before the run, within
/// `STOP_EVERY` steps although the only checkpoints are the first and the last.
#[test]
fn stop_flag_ends_the_run_early() {
    use std::sync::atomic::AtomicU64;
    let m = Valley::planar(Profile::Quadratic, 1.0);
    let opt = AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(0.05),
    });
    for noise in [
        NoiseModel::Label {
            sigma: 1.0,
            batch: None,
        },
        NoiseModel::Isotropic {
            sigma: 1.0,
            batch: 1,
        },
    ] {
        let base = spec(&m, 20_000, 37);
        let never = AtomicBool::new(false);
        let full = run_ensemble(&m, &noise, &opt, &base);
        let until = run_ensemble_until(&m, &noise, &opt, &base, &never).unwrap();
        assert_eq!(
            full.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            until.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, d) = (stop.clone(), done.clone());
        let spec = EnsembleSpec {
            progress: Some(Progress(Arc::new(move |n| {
                d.fetch_add(n, Ordering::Relaxed);
                s.store(true, Ordering::Relaxed);
            }))),
            ..base
        };
        let err = run_ensemble_until(&m, &noise, &opt, &spec, &stop).unwrap_err();
        assert!(matches!(err, Error::Interrupted), "{err}");
        let total = 37 * 20_000;
        let reported = done.load(Ordering::Relaxed);
        assert!(reported < total / 4, "{reported} of {total} steps ran");

        let set = AtomicBool::new(true);
        let long = EnsembleSpec {
            steps: 1 << 40,
            record_every: 1 << 40,
            ..self::spec(&m, 1, 37)
        };
        let t0 = Instant::now();
        let err = run_ensemble_until(&m, &noise, &opt, &long, &set).unwrap_err();
        assert!(matches!(err, Error::Interrupted), "{err}");
        assert!(t0.elapsed().as_secs_f64() < 10.0);
    }
}
