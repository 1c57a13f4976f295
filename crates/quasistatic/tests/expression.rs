//! Expression models written out as the built-in valley, product model and diagonal network
//! give the built-ins' derivation (to 1e-12 relative) and ensembles (trajectory by trajectory
//! with the same seed, and within Monte-Carlo error with another seed).

use std::path::Path;

use quasistatic::config::Config;
use quasistatic::derive::{derive, DeriveOptions};
use quasistatic::record::EnsembleResult;
use quasistatic::simulate::run_ensemble;
use quasistatic::with_model;

const RUN: &str = "steps = 2000\ntrajectories = 64\nrecord_every = 500\nseed = 7\nobservables = [\"loss\", \"param_norm\", \"trace_hessian\"]\n";

fn config(text: &str) -> Config {
    Config::from_toml(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The built-in and the written-out model with the same run, noise, optimizer and start.
fn pair(builtin: &str, expression: &str, rest: &str) -> (Config, Config) {
    (
        config(&format!("{RUN}{builtin}{rest}")),
        config(&format!("{RUN}{expression}{rest}")),
    )
}

/// Report entries not compared: names and timings; read-outs only one model offers (closed-form
/// manifold coordinates, the distance of the loss to a known minimum); and quotients whose
/// numerator or denominator is rounding noise (the spectral gap over a zero eigenvalue, the
/// relative difference of two equal equilibria, a solver's residual).
const SKIPPED: &[&str] = &[
    "model",
    "seconds",
    "warnings",
    "drift_manifold_coordinates",
    "loss_excess",
    "gap",
    "relative_difference",
    "residual",
];

/// `x` and `y` agree to `tol` relative to `scale`, or are both rounding noise (`<= 1e-12`:
/// the zero eigenvalues along the manifold, the loss and gradient on it).
fn agree(x: f64, y: f64, scale: f64, tol: f64) -> bool {
    (x - y).abs() <= tol * scale || x.abs().max(y.abs()) <= 1e-12
}

/// Every number of two derivation reports agrees to `tol` relative to the largest entry of
/// its array (or to itself); the model name, timings and messages may differ, and read-outs
/// only one of the two models offers (closed-form manifold coordinates) are skipped.
fn assert_reports_agree(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    tol: f64,
    compared: &mut usize,
) {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(agree(x, y, x.abs().max(y.abs()), tol), "{path}: {x} vs {y}");
            *compared += 1;
        }
        (Array(x), Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            let scale = x
                .iter()
                .chain(y)
                .filter_map(|v| v.as_f64())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            for (k, (u, v)) in x.iter().zip(y).enumerate() {
                match (u.as_f64(), v.as_f64()) {
                    (Some(u), Some(v)) => {
                        assert!(agree(u, v, scale, tol), "{path}[{k}]: {u} vs {v}");
                        *compared += 1;
                    }
                    _ => assert_reports_agree(u, v, &format!("{path}[{k}]"), tol, compared),
                }
            }
        }
        (Object(x), Object(y)) => {
            for (k, u) in x {
                if SKIPPED.contains(&k.as_str()) {
                    continue;
                }
                let v = y.get(k).unwrap_or_else(|| panic!("{path}.{k} missing"));
                assert_reports_agree(u, v, &format!("{path}.{k}"), tol, compared);
            }
        }
        (x, y) => assert_eq!(x, y, "{path}"),
    }
}

fn derive_both(a: &Config, b: &Config) {
    let (a, b) = (a.build().unwrap(), b.build().unwrap());
    let theta = a.spec.start.clone();
    assert_eq!(theta, b.spec.start);
    let opts = DeriveOptions::default();
    let ra = with_model!(&a.model, m => derive(m, &a.noise, &a.optimizer, &theta, &opts)).unwrap();
    let rb = with_model!(&b.model, m => derive(m, &b.noise, &b.optimizer, &theta, &opts)).unwrap();
    assert_eq!(rb.model, "expression");
    let mut compared = 0;
    assert_reports_agree(
        &serde_json::to_value(&ra).unwrap(),
        &serde_json::to_value(&rb).unwrap(),
        "derivation",
        1e-12,
        &mut compared,
    );
    assert!(compared > 20, "only {compared} numbers compared");
}

fn simulate(c: &Config) -> EnsembleResult {
    let b = c.build().unwrap();
    with_model!(&b.model, m => run_ensemble(m, &b.noise, &b.optimizer, &b.spec))
}

/// Same seed: the same noise drives both, so every trajectory's records agree to rounding
/// (the two models' arithmetic differs in the last bits only).
fn same_paths(a: &Config, b: &Config) {
    let (ra, rb) = (simulate(a), simulate(b));
    assert_eq!(ra.values.len(), rb.values.len());
    assert!(ra.divergences.is_empty() && rb.divergences.is_empty());
    for (k, (x, y)) in ra.values.iter().zip(&rb.values).enumerate() {
        assert!(
            (x - y).abs() <= 1e-9 * (1.0 + x.abs()),
            "record {k}: {x} vs {y}"
        );
    }
}

/// Another seed: the final means of every observable agree within 4.5 combined standard
/// errors (64 trajectories each; a false alarm has probability below 1e-5 per observable).
fn same_statistics(a: &Config, b: &Config) {
    let mut b = b.clone();
    b.seed += 1000;
    let (ra, rb) = (simulate(a), simulate(&b));
    let last = ra.steps.len() - 1;
    for o in 0..ra.observables.len() {
        let stats = |r: &EnsembleResult| {
            let v = r.column(last, o);
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
            (m, var / n)
        };
        let ((ma, va), (mb, vb)) = (stats(&ra), stats(&rb));
        let se = (va + vb).sqrt();
        assert!(
            (ma - mb).abs() <= 4.5 * se + 1e-12,
            "{}: {ma} vs {mb} (se {se})",
            ra.observables[o]
        );
    }
}

#[test]
fn valley_written_out_is_the_valley() {
    let (a, b) = pair(
        "[model]\nkind = \"valley\"\n",
        "[model]\nkind = \"expression\"\nparams = [\"x\", \"y\"]\noutput = \"sqrt(1 + y^2) * x\"\n",
        "[noise]\nkind = \"label\"\nsigma = 0.5\n[optimizer]\nkind = \"sgd\"\nlr = 0.05\n[start]\ntheta = [0.0, 2.0]\n",
    );
    derive_both(&a, &b);
    same_paths(&a, &b);
    same_statistics(&a, &b);
}

#[test]
fn product_written_out_is_the_product_model() {
    let (a, b) = pair(
        "[model]\nkind = \"product\"\n",
        "[model]\nkind = \"expression\"\nparams = [\"a\", \"b\"]\noutput = \"a * b\"\ntargets = [1.0]\n",
        "[noise]\nkind = \"label\"\nsigma = 0.3\n[optimizer]\nkind = \"heavy_ball\"\nlr = 0.02\n[start]\ntheta = [4.0, 0.25]\n",
    );
    derive_both(&a, &b);
    same_paths(&a, &b);
    same_statistics(&a, &b);
}

#[test]
fn diagonal_network_written_out_is_the_diagonal_network() {
    let data = "[data]\nkind = \"synthetic\"\nn = 12\ndim = 30\nseed = 3\n";
    let builtin = config(&format!("{RUN}[model]\nkind = \"diagonal\"\n{data}[noise]\nkind = \"label\"\n[optimizer]\nkind = \"sgd\"\nlr = 0.01\n"));
    let start = builtin.build().unwrap().spec.start;
    let start = format!("[start]\ntheta = {start:?}\n");
    let rest = format!("{data}[noise]\nkind = \"label\"\nsigma = 0.2\nbatch = 6\n[optimizer]\nkind = \"adam\"\nlr = 0.002\n{start}");
    let (a, b) = pair(
        "[model]\nkind = \"diagonal\"\n",
        "[model]\nkind = \"expression\"\nparams = { u = 30, v = 30 }\noutput = \"dot(u^2 - v^2, x)\"\n",
        &rest,
    );
    derive_both(&a, &b);
    same_paths(&a, &b);
    same_statistics(&a, &b);
}

#[test]
fn ring_loss_derives_on_the_dense_path_and_refuses_label_noise() {
    let ring = "[model]\nkind = \"expression\"\nparams = [\"x\", \"y\"]\nloss = \"(x^2 + y^2 - 1)^2\"\nstart = { x = 1.1, y = 0.2 }\n";
    let c = config(&format!("{RUN}{ring}[noise]\nkind = \"isotropic\"\nsigma = 0.1\n[optimizer]\nkind = \"sgd\"\nlr = 0.01\n"));
    let b = c.build().unwrap();
    let r = with_model!(&b.model, m => derive(m, &b.noise, &b.optimizer, &b.spec.start, &DeriveOptions::default())).unwrap();
    // On the unit circle the normal curvature is d^2/dr^2 (r^2 - 1)^2 = 8 and, by symmetry,
    // the drift is radial-free and tangent-free: zero.
    let p = &r.point;
    assert!(
        ((p[0] * p[0] + p[1] * p[1]).sqrt() - 1.0).abs() < 1e-10,
        "{p:?}"
    );
    assert!(
        (r.geometry.curvatures[0] - 8.0).abs() < 1e-9,
        "{:?}",
        r.geometry.curvatures
    );
    assert_eq!(r.geometry.manifold_dim, 1);
    assert!(
        r.drift_per_step.iter().all(|v| v.abs() < 1e-12),
        "{:?}",
        r.drift_per_step
    );
    let e = config(&format!(
        "{RUN}{ring}[noise]\nkind = \"label\"\n[optimizer]\nkind = \"sgd\"\nlr = 0.01\n"
    ))
    .build()
    .unwrap_err()
    .to_string();
    assert!(e.contains("noise.kind") && e.contains("loss alone"), "{e}");
}
