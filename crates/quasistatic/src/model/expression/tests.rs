use super::*;
use crate::data::Dataset;
use crate::model::derivatives::testing::check_derivatives;
use crate::model::lane_testing::assert_lane_gradients_bit_identical;
use crate::model::{DiagonalNetwork, ProductModel, Profile, Valley};

fn spec(params: &[(&str, Option<usize>)], formula: Formula, start: Vec<f64>) -> ExpressionSpec {
    ExpressionSpec {
        params: params.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
        formula,
        constants: Vec::new(),
        data: None,
        columns: Vec::new(),
        targets: None,
        start,
    }
}

fn outputs(o: &[&str]) -> Formula {
    Formula::Outputs(o.iter().map(|s| s.to_string()).collect())
}

fn valley() -> ExpressionModel {
    ExpressionModel::new(spec(
        &[("x", None), ("y", None)],
        outputs(&["sqrt(1 + y^2) * x"]),
        vec![0.0, 2.0],
    ))
    .unwrap()
}

/// Deterministic data with `n` rows and `p` features.
fn data(n: usize, p: usize) -> Dataset {
    let x: Vec<f64> = (0..n * p)
        .map(|k| ((k * 7919) % 23) as f64 / 11.0 - 1.0)
        .collect();
    let y: Vec<f64> = (0..n).map(|i| x[i * p] - 0.5 * x[i * p + 1]).collect();
    Dataset::new(x, y, p)
}

fn diagonal(n: usize, p: usize) -> ExpressionModel {
    let mut s = spec(
        &[("u", Some(p)), ("v", Some(p))],
        outputs(&["dot(u^2 - v^2, x)"]),
        (0..2 * p).map(|k| 0.3 + 0.05 * k as f64).collect(),
    );
    s.data = Some(Data {
        train: data(n, p),
        test: None,
        teacher: None,
        features: Vec::new(),
    });
    ExpressionModel::new(s).unwrap()
}

/// Every function and operator, with data, so that each backward rule is checked against
/// forward-mode num-dual derivatives and finite differences.
fn kitchen_sink() -> ExpressionModel {
    let mut s = spec(
        &[("a", None), ("b", None), ("w", Some(3))],
        outputs(&[
            "exp(a * x[0]) - log(2 + b^2) + sqrt(1 + w[1]^2) * tanh(dot(w, x)) \
             + sin(a) * cos(b) + sinh(a / 3) - cosh(b) / 4 + sigmoid(w[0] - a) \
             + softplus(b - x[1]) + abs(a) + a^2.5 + (1 + b^2)^(a / 5) + 2^b \
             - prod(w) + mean(w^3) + sum(w * x) / (3 - a) + -w[2] * 0.5 + c",
        ]),
        vec![0.7, -0.4, 0.2, -0.5, 0.9],
    );
    s.constants = vec![("c".to_string(), 0.25)];
    s.data = Some(Data {
        train: data(5, 3),
        test: None,
        teacher: None,
        features: Vec::new(),
    });
    ExpressionModel::new(s).unwrap()
}

fn ring() -> ExpressionModel {
    ExpressionModel::new(spec(
        &[("x", None), ("y", None)],
        Formula::Loss("(x^2 + y^2 - 1)^2".into()),
        vec![1.2, 0.3],
    ))
    .unwrap()
}

#[test]
fn derivatives_of_every_operation_are_exact() {
    check_derivatives(&valley(), &[0.3, 1.7], &[0.4, -0.9], &[-0.6, 0.2]);
    let m = kitchen_sink();
    let v = [0.3, -0.2, 0.5, 0.1, -0.4];
    let w = [-0.1, 0.6, 0.2, -0.3, 0.25];
    check_derivatives(&m, &[0.7, -0.4, 0.2, -0.5, 0.9], &v, &w);
    let d = diagonal(4, 6);
    let v: Vec<f64> = (0..12).map(|k| (k as f64 * 0.37).sin()).collect();
    let w: Vec<f64> = (0..12).map(|k| (k as f64 * 0.61).cos()).collect();
    check_derivatives(&d, &d.default_start(), &v, &w);
    check_derivatives(&ring(), &[1.2, 0.3], &[0.5, 0.2], &[-0.3, 0.8]);
    let list = ExpressionModel::new(spec(
        &[("x1", None), ("x2", None), ("y", None)],
        outputs(&["x1 * sqrt(2 * (1 + y^2))", "x2 * sqrt(4 * (1 + y^2))"]),
        vec![0.1, -0.2, 1.0],
    ))
    .unwrap();
    check_derivatives(
        &list,
        &[0.1, -0.2, 1.0],
        &[0.3, 0.1, -0.5],
        &[0.2, -0.7, 0.4],
    );
}

#[test]
fn lane_kernel_is_bit_identical_to_the_scalar_sweep() {
    use crate::model::lane_testing::assert_kernel_bit_identical;
    let models = [
        valley(),
        kitchen_sink(),
        diagonal(9, 4),
        diagonal(13, 7),
        ring(),
    ];
    for m in &models {
        for lanes in [1, 5, LANES] {
            assert_lane_gradients_bit_identical(m, lanes);
            // Every instruction-set version this CPU runs, not only the widest.
            assert_kernel_bit_identical(m, lanes, |t, b, g, s, l| m.lane_kernel(t, b, g, s, l));
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                assert_kernel_bit_identical(m, lanes, |t, b, g, s, l| unsafe {
                    m.lane_kernel_avx2(t, b, g, s, l)
                });
            }
        }
    }
}

/// Same loss and gradient as the built-in models (different arithmetic: to rounding).
#[test]
fn written_out_built_ins_agree_with_the_built_ins() {
    fn agree<A: Model, B: Model>(a: &A, b: &B, theta: &[f64]) {
        let (mut ga, mut gb) = (vec![0.0; a.dim()], vec![0.0; b.dim()]);
        let la = crate::model::derivatives::gradient(a, theta, &mut ga);
        let lb = crate::model::derivatives::gradient(b, theta, &mut gb);
        assert!((la - lb).abs() <= 1e-14 * (1.0 + la.abs()), "{la} vs {lb}");
        for (x, y) in ga.iter().zip(&gb) {
            assert!((x - y).abs() <= 1e-14 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
    agree(
        &valley(),
        &Valley::planar(Profile::Quadratic, 1.0),
        &[0.3, 1.7],
    );
    let mut p = spec(
        &[("a", None), ("b", None)],
        outputs(&["a * b"]),
        vec![4.0, 0.25],
    );
    p.targets = Some(vec![1.0]);
    let p = ExpressionModel::new(p).unwrap();
    agree(&p, &ProductModel::scalar(2, 1.0), &[1.3, 0.6]);
    let d = diagonal(7, 5);
    let theta: Vec<f64> = (0..10).map(|k| 0.2 + 0.1 * k as f64).collect();
    agree(&d, &DiagonalNetwork::new(data(7, 5), None, None), &theta);
}

fn error(s: ExpressionSpec) -> String {
    ExpressionModel::new(s).unwrap_err().to_string()
}

#[test]
fn errors_name_the_field_and_point_into_the_formula() {
    let xy = [("x", None), ("y", None)];
    let e = error(spec(&xy, outputs(&["sqrt(1 + z^2) * x"]), vec![0.0, 1.0]));
    assert!(
        e.contains("model.output") && e.contains("1:10") && e.contains("unknown name `z`"),
        "{e}"
    );
    assert!(e.contains("`x`, `y`"), "names in scope listed: {e}");
    let e = error(spec(&xy, outputs(&["x + * y"]), vec![0.0, 1.0]));
    assert!(e.contains("1:5") && e.contains("expected"), "{e}");
    let e = error(spec(&xy, outputs(&["dot(x) + y"]), vec![0.0, 1.0]));
    assert!(e.contains("`dot` takes 2 arguments, found 1"), "{e}");
    let e = error(spec(&xy, outputs(&["foo(x) + y"]), vec![0.0, 1.0]));
    assert!(e.contains("unknown function `foo`"), "{e}");
    let e = error(spec(&xy, outputs(&["x^2"]), vec![0.0, 1.0]));
    assert!(
        e.contains("model.params") && e.contains("`y` appears in no expression"),
        "{e}"
    );
    let e = error(spec(&xy, outputs(&["log(x) + y"]), vec![0.0, 1.0]));
    assert!(e.contains("model.start") && e.contains("finite"), "{e}");
    let e = error(spec(&[("u", Some(3))], outputs(&["u^2"]), vec![0.0; 3]));
    assert!(
        e.contains("a scalar, but this is a vector of 3 entries"),
        "{e}"
    );
    let e = error(spec(
        &[("u", Some(3)), ("v", Some(2))],
        outputs(&["dot(u, v)"]),
        vec![0.0; 5],
    ));
    assert!(e.contains("lengths are 3 and 2"), "{e}");
    let e = error(spec(&[("u", Some(3))], outputs(&["u[3]"]), vec![0.0; 3]));
    assert!(e.contains("an index in 0..3"), "{e}");
    let e = error(spec(&xy, outputs(&["x * y * x[0]"]), vec![0.0, 1.0]));
    assert!(e.contains("1:9"), "x[0] without data: {e}");
    let e = error(spec(&[("exp", None)], outputs(&["exp"]), vec![0.0]));
    assert!(e.contains("not a function"), "{e}");
    let e = error(spec(
        &[("x", None), ("x", None)],
        outputs(&["x"]),
        vec![0.0, 0.0],
    ));
    assert!(e.contains("distinct"), "{e}");
    let e = error(spec(&xy, outputs(&["x", "y"]), vec![0.0]));
    assert!(e.contains("model.start") && e.contains("2 numbers"), "{e}");
    let mut s = spec(&xy, outputs(&["x", "y"]), vec![0.0, 1.0]);
    s.targets = Some(vec![1.0]);
    assert!(error(s).contains("one target per output expression: 2"));
    let e = error(spec(&xy, outputs(&["x * y", "x + q"]), vec![0.0, 1.0]));
    assert!(
        e.contains("model.output[1]"),
        "the second formula named: {e}"
    );
}

#[test]
fn compiled_program_hoists_the_parameter_stage_and_fuses_the_data_product() {
    let d = diagonal(4, 6);
    let p = d.program();
    // u, v, u^2, v^2, u^2 - v^2 once per gradient; per sample only the fused product with x.
    assert_eq!(p.param_ins.len(), 5, "{:?}", p.param_ins);
    assert_eq!(p.sample_ins.len(), 1, "{:?}", p.sample_ins);
    assert!(matches!(p.sample_ins[0].op, eval::Op::DotFeatures(_)));
    // Constants fold and `^2` is an integer power.
    let v = valley();
    let ops: Vec<_> = v.program().param_ins.iter().map(|i| i.op.clone()).collect();
    assert!(
        ops.contains(&eval::Op::Unary(
            eval::Unary::PowI(2),
            eval::Reg { at: 0, len: 1 }
        )),
        "{ops:?}"
    );
    assert!(
        ops.iter().all(|o| !matches!(o, eval::Op::Const(_))),
        "{ops:?}"
    );
}

/// The register step's kernel equals the scalar batch gradient lane by lane, bit for bit,
/// with and without label shifts, for an output and for a loss formula.
#[test]
fn register_kernel_is_bit_identical_to_the_scalar_sweep() {
    use crate::engine::lanes::Lanes;
    let models = [valley(), ring()];
    for m in &models {
        assert!(m.offers_small_lanes());
        for case in 0..3 {
            let theta: [Lanes; 2] = std::array::from_fn(|k| {
                Lanes(std::array::from_fn(|l| {
                    0.3 + 0.7 * k as f64 - 0.11 * (l + case) as f64
                }))
            });
            let shift = Lanes(std::array::from_fn(|l| {
                if case == 0 {
                    0.0
                } else {
                    0.05 * l as f64 - 0.2
                }
            }));
            let mut grad = [Lanes::ZERO; 2];
            let loss = m.small_lane_gradient::<2>(&theta, shift, &mut grad);
            for l in 0..LANES {
                let th = [theta[0].0[l], theta[1].0[l]];
                let s = [shift.0[l]];
                let batch = Batch {
                    indices: None,
                    shift: Some(&s),
                };
                let mut g = [0.0; 2];
                let mut scratch = vec![0.0; m.scratch_len()];
                let want = m.batch_gradient(&th, batch, &mut g, &mut scratch);
                assert_eq!(loss.0[l].to_bits(), want.to_bits(), "case {case} lane {l}");
                for k in 0..2 {
                    assert_eq!(
                        grad[k].0[l].to_bits(),
                        g[k].to_bits(),
                        "case {case} lane {l} coordinate {k}"
                    );
                }
            }
        }
    }
    // Data or several samples: no register step.
    assert!(!diagonal(4, 3).offers_small_lanes());
}
