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

/// The split step (`begin_step` once, `update_coordinate` per coordinate) on `Lanes` equals,
/// bit for bit, `step` on each lane's own `f64` parameters: eight lanes with different
/// parameters and gradients over 50 steps, for every built-in optimizer (also through
/// `AnyOptimizer`), with a schedule and weight decay so that every scalar is exercised.
#[test]
fn split_step_on_lanes_is_the_step_on_each_lane() {
    use crate::lanes::Lanes;
    use crate::simulate::LANES;
    let lr = Schedule::Step {
        eta: 0.05,
        gamma: 0.5,
        every: 7,
    };
    let all = [
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
            lr,
            alpha: 0.95,
            eps: 1e-6,
            bias_correction: true,
        }),
    ];
    // A deterministic, irregular gradient of lane l, coordinate k, step t.
    let g = |l: usize, k: usize, t: usize| ((l * 7 + k * 3 + t) as f64 * 0.731).sin() * 2.0;
    for any in &all {
        assert!(any.offers_coordinate_update());
        with_optimizer!(any, o => {
            for through_any in [false, true] {
                let d = 3;
                // Split step on lanes, either through `AnyOptimizer` or the concrete type.
                let mut theta: Vec<Lanes> =
                    (0..d).map(|k| Lanes(std::array::from_fn(|l| 0.3 * (l + k) as f64 - 1.0))).collect();
                let mut buffers = vec![[Lanes::ZERO; 2]; d];
                let mut lane_state = any.init(0);
                let mut concrete_state = o.init(0);
                // Each lane alone with `step`.
                let mut alone: Vec<Vec<f64>> = (0..LANES)
                    .map(|l| (0..d).map(|k| theta[k].0[l]).collect())
                    .collect();
                let mut states: Vec<_> = (0..LANES).map(|_| o.init(d)).collect();
                for t in 0..50 {
                    if through_any {
                        let s = any.begin_step(&mut lane_state);
                        for k in 0..d {
                            let gk = Lanes(std::array::from_fn(|l| g(l, k, t)));
                            any.update_coordinate(&s, &mut theta[k], &mut buffers[k], gk);
                        }
                    } else {
                        let s = o.begin_step(&mut concrete_state);
                        for k in 0..d {
                            let gk = Lanes(std::array::from_fn(|l| g(l, k, t)));
                            o.update_coordinate(&s, &mut theta[k], &mut buffers[k], gk);
                        }
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
                            "{any}: lane {l}, coordinate {k}"
                        );
                    }
                }
            }
        });
    }
}
