//! Each optimizer against a hand-computed sequence of steps on fixed gradients (values
//! computed independently, to 1e-12), and the identities between optimizers.

use super::*;

const GRADS: [f64; 3] = [1.0, 2.0, -1.0];

fn run<O: Optimizer>(opt: &O) -> Vec<f64> {
    let mut theta = vec![1.0];
    let mut s = opt.init(1);
    GRADS
        .iter()
        .map(|&g| {
            opt.step(&mut s, &mut theta, &[g]);
            theta[0]
        })
        .collect()
}

fn assert_seq(got: &[f64], want: &[f64]) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
    }
}

const LR: Schedule = Schedule::Constant(0.1);

#[test]
fn sgd_sequence() {
    assert_seq(&run(&Sgd { lr: LR }), &[0.9, 0.7, 0.8]);
}

#[test]
fn heavy_ball_sequence() {
    // buf: 1, 2.5, 0.25; theta: 0.9, 0.65, 0.625
    let o = HeavyBall {
        lr: LR,
        beta: 0.5,
        weight_decay: 0.0,
    };
    assert_seq(&run(&o), &[0.9, 0.65, 0.625]);
}

#[test]
fn nesterov_sequence() {
    // buf: 1, 2.5, 0.25; update g + beta buf: 1.5, 3.25, -0.875
    let o = Nesterov {
        lr: LR,
        beta: 0.5,
        weight_decay: 0.0,
    };
    assert_seq(&run(&o), &[0.85, 0.525, 0.6125]);
}

#[test]
fn adam_sequence() {
    let o = Adam {
        lr: LR,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    assert_seq(
        &run(&o),
        &[0.900000001, 0.8034817990281663, 0.7614728689681868],
    );
}

#[test]
fn adamw_sequence() {
    let o = Adam {
        lr: LR,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    assert_seq(
        &run(&o),
        &[0.899000001, 0.8015827990271663, 0.7587722861681596],
    );
}

#[test]
fn rmsprop_sequence() {
    let o = RmsProp {
        lr: LR,
        alpha: 0.99,
        eps: 1e-8,
        bias_correction: false,
    };
    assert_seq(
        &run(&o),
        &[
            9.99999903994464e-08,
            -0.8953228219915412,
            -0.48502132259709585,
        ],
    );
}

/// Random gradients in 5 dimensions for the identity checks.
fn grads() -> Vec<Vec<f64>> {
    (0..50)
        .map(|k| {
            (0..5)
                .map(|j| ((k * 7 + j * 3) as f64 * 0.37).sin() * 2.0)
                .collect()
        })
        .collect()
}

fn trajectory<O: Optimizer>(opt: &O) -> Vec<f64> {
    let mut theta = vec![0.5, -1.0, 2.0, 0.0, 1.0];
    let mut s = opt.init(5);
    let mut out = Vec::new();
    for g in grads() {
        opt.step(&mut s, &mut theta, &g);
        out.extend_from_slice(&theta);
    }
    out
}

#[test]
fn heavy_ball_with_zero_beta_is_sgd() {
    let a = trajectory(&HeavyBall {
        lr: LR,
        beta: 0.0,
        weight_decay: 0.0,
    });
    let b = trajectory(&Sgd { lr: LR });
    assert_eq!(a, b);
    let c = trajectory(&Nesterov {
        lr: LR,
        beta: 0.0,
        weight_decay: 0.0,
    });
    assert_eq!(c, b);
}

#[test]
fn adam_with_zero_beta1_is_bias_corrected_rmsprop() {
    let a = trajectory(&Adam {
        lr: LR,
        beta1: 0.0,
        beta2: 0.95,
        eps: 1e-6,
        weight_decay: 0.0,
    });
    let b = trajectory(&RmsProp {
        lr: LR,
        alpha: 0.95,
        eps: 1e-6,
        bias_correction: true,
    });
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-13, "{x} vs {y}");
    }
}

#[test]
fn schedules() {
    let s = Schedule::Step {
        eta: 1.0,
        gamma: 0.5,
        every: 10,
    };
    assert_eq!(
        (s.at(0), s.at(9), s.at(10), s.at(25)),
        (1.0, 1.0, 0.5, 0.25)
    );
    let c = Schedule::Cosine {
        eta: 1.0,
        eta_min: 0.0,
        steps: 100,
    };
    assert!((c.at(50) - 0.5).abs() < 1e-12 && c.at(0) == 1.0 && c.at(200) == 0.0);
    let w = Schedule::Warmup {
        eta: 1.0,
        warmup: 4,
    };
    assert_eq!((w.at(0), w.at(3), w.at(10)), (0.25, 1.0, 1.0));
    // A schedule drives the step: SGD with a step schedule.
    let o = Sgd {
        lr: Schedule::Step {
            eta: 0.1,
            gamma: 0.5,
            every: 2,
        },
    };
    assert_seq(&run(&o), &[0.9, 0.7, 0.75]);
}

#[test]
fn lion_sequence() {
    // beta1 = 0.99: the momentum keeps the third step's direction positive although g < 0.
    // m: 0.01, 0.0299; c = beta1 m + (1 - beta1) g: 0.01, 0.0299, 0.019601 (all > 0).
    let o = Lion {
        lr: LR,
        beta1: 0.99,
        beta2: 0.99,
        weight_decay: 0.0,
    };
    assert_seq(&run(&o), &[0.9, 0.8, 0.7]);
    // Decoupled decay first: theta = 0.95 theta - 0.1 at every step.
    let o = Lion {
        weight_decay: 0.5,
        ..o
    };
    assert_seq(&run(&o), &[0.85, 0.7075, 0.572125]);
}

#[test]
fn lion_with_zero_betas_is_sign_sgd() {
    let a = trajectory(&Lion {
        lr: LR,
        beta1: 0.0,
        beta2: 0.0,
        weight_decay: 0.0,
    });
    let mut theta = vec![0.5, -1.0, 2.0, 0.0, 1.0];
    let mut b = Vec::new();
    assert!(grads().iter().flatten().any(|&g| g == 0.0));
    for g in grads() {
        for (x, &gk) in theta.iter_mut().zip(&g) {
            // numpy's sign: sign(0) = 0 (the first gradient has a zero entry).
            let sign = if gk > 0.0 {
                1.0
            } else if gk < 0.0 {
                -1.0
            } else {
                0.0
            };
            *x -= 0.1 * sign;
        }
        b.extend_from_slice(&theta);
    }
    assert_eq!(a, b);
}

/// Every built-in optimizer through [`AnyOptimizer`], with a schedule and weight decay so
/// that every scalar is exercised.
pub(crate) fn every_optimizer() -> Vec<AnyOptimizer> {
    let lr = Schedule::Step {
        eta: 0.05,
        gamma: 0.5,
        every: 7,
    };
    vec![
        AnyOptimizer::Sgd(Sgd { lr: lr.clone() }),
        AnyOptimizer::HeavyBall(HeavyBall {
            lr: lr.clone(),
            beta: 0.9,
            weight_decay: 0.01,
        }),
        AnyOptimizer::Nesterov(Nesterov {
            lr: lr.clone(),
            beta: 0.8,
            weight_decay: 0.02,
        }),
        AnyOptimizer::Adam(Adam {
            lr: lr.clone(),
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.03,
        }),
        AnyOptimizer::RmsProp(RmsProp {
            lr: lr.clone(),
            alpha: 0.95,
            eps: 1e-6,
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

/// The split step of a [`CoordinateRule`] (`begin_step` once, `update` per coordinate) on
/// `Lanes` equals, bit for bit, `step` on each lane's own `f64` parameters: eight lanes with
/// different parameters and gradients over 50 steps, for every built-in optimizer, reached
/// through [`Optimizer::visit`] on [`AnyOptimizer`] as the engine reaches it.
#[test]
fn split_step_on_lanes_is_the_step_on_each_lane() {
    use crate::engine::{Lanes, LANES};
    /// Runs the split step on lanes and compares it with each lane alone.
    struct Check;
    impl RuleVisitor<'_> for Check {
        type Output = ();
        fn general<O: Optimizer>(self, _: &O) {
            panic!("every built-in optimizer is a coordinate rule");
        }
        fn rule<R: CoordinateRule>(self, o: &R) {
            // A deterministic, irregular gradient of lane l, coordinate k, step t.
            let g = |l: usize, k: usize, t: usize| ((l * 7 + k * 3 + t) as f64 * 0.731).sin() * 2.0;
            let d = 3;
            let mut theta: Vec<Lanes> = (0..d)
                .map(|k| Lanes(std::array::from_fn(|l| 0.3 * (l + k) as f64 - 1.0)))
                .collect();
            let mut buffers = vec![o.zero_buffers::<Lanes>(); d];
            let mut clock = o.start();
            // Each lane alone with `step`.
            let mut alone: Vec<Vec<f64>> = (0..LANES)
                .map(|l| (0..d).map(|k| theta[k].0[l]).collect())
                .collect();
            let mut states: Vec<_> = (0..LANES).map(|_| o.init(d)).collect();
            for t in 0..50 {
                let s = o.begin_step(&mut clock);
                for k in 0..d {
                    let gk = Lanes(std::array::from_fn(|l| g(l, k, t)));
                    o.update(&s, &mut theta[k], &mut buffers[k], gk);
                }
                for (l, (x, st)) in alone.iter_mut().zip(states.iter_mut()).enumerate() {
                    let grad: Vec<f64> = (0..d).map(|k| g(l, k, t)).collect();
                    o.step(st, x, &grad);
                }
            }
            for (l, x) in alone.iter().enumerate() {
                for k in 0..d {
                    assert_eq!(
                        theta[k].0[l].to_bits(),
                        x[k].to_bits(),
                        "lane {l}, coordinate {k}"
                    );
                }
            }
        }
    }
    for any in every_optimizer() {
        any.visit(Check);
    }
}

/// [`AnyOptimizer`]'s `step` is that of the rule it hands to visitors, bit for bit.
#[test]
fn any_optimizer_steps_as_its_variant() {
    /// The trajectory of the visited optimizer.
    struct Trajectory;
    impl RuleVisitor<'_> for Trajectory {
        type Output = Vec<f64>;
        fn general<O: Optimizer>(self, o: &O) -> Vec<f64> {
            trajectory(o)
        }
        fn rule<R: CoordinateRule>(self, o: &R) -> Vec<f64> {
            trajectory(o)
        }
    }
    for any in every_optimizer() {
        assert_eq!(trajectory(&any), any.visit(Trajectory), "{any}");
    }
}

/// The quasistatic derivation linearises the optimizer's normal recursion; Lion's sign map has
/// no linearisation, so `derive` refuses it with an explanation naming the field, not a number.
#[test]
fn lion_is_refused_by_the_derivation_with_the_reason() {
    use crate::derive::{derive, DeriveOptions};
    use crate::model::{Profile, Valley};
    use crate::noise::NoiseModel;
    let lion = AnyOptimizer::Lion(Lion {
        lr: LR,
        beta1: 0.9,
        beta2: 0.99,
        weight_decay: 0.0,
    });
    let valley = Valley::planar(Profile::Quadratic, 1.0);
    let noise = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    let Err(err) = derive(
        &valley,
        &noise,
        &lion,
        &[0.0, 1.0],
        &DeriveOptions::default(),
    ) else {
        panic!("Lion must be refused");
    };
    let text = err.to_string();
    assert!(
        text.contains("optimizer.kind")
            && text.contains("lion")
            && text.contains("not differentiable"),
        "{text}"
    );
}
