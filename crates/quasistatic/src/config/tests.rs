//! Every invalid value is rejected with its field, its value and what is allowed.

use super::*;
use crate::optim::{HeavyBall, Schedule};

const BASE: &str = r#"
steps = 100
trajectories = 4
record_every = 10

[model]
kind = "valley_nd"
normal_dim = 4
tangent_dim = 2

[noise]
kind = "label"
sigma = 1.0

[optimizer]
kind = "heavy_ball"
lr = 0.01
beta = 0.9
"#;

fn build(text: &str) -> Result<Built> {
    Config::from_toml(text, Path::new("test.toml"))?.build()
}

/// Replace `key = ...` in the first matching line (or append to the section) and expect an
/// `InvalidConfig` error naming `field`, containing `value` and `allowed`.
fn expect_invalid(text: &str, field: &str, value: &str, allowed: &str) {
    match build(text) {
        Err(Error::InvalidConfig {
            field: f,
            value: v,
            allowed: a,
        }) => {
            assert_eq!(f, field, "wrong field (value {v}, allowed {a})");
            assert!(v.contains(value), "value `{v}` should contain `{value}`");
            assert!(
                a.contains(allowed),
                "allowed `{a}` should contain `{allowed}`"
            );
            let msg = Error::InvalidConfig {
                field: f,
                value: v,
                allowed: a,
            }
            .to_string();
            assert!(msg.contains(field) && msg.contains(value), "{msg}");
        }
        Err(other) => panic!("expected invalid `{field}`, got: {other}"),
        Ok(_) => panic!("expected invalid `{field}`, but the config was accepted"),
    }
}

fn with(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "test bug: `{from}` not in config");
    text.replacen(from, to, 1)
}

#[test]
fn base_config_builds() {
    let b = build(BASE).unwrap();
    assert_eq!(b.model.dim(), 6);
    assert_eq!(b.spec.start.len(), 6);
    assert!(matches!(b.optimizer, AnyOptimizer::HeavyBall(HeavyBall { beta, .. }) if beta == 0.9));
    // The resolved config round-trips.
    let cfg = Config::from_toml(BASE, Path::new("t")).unwrap();
    let again = Config::from_toml(&cfg.to_toml(), Path::new("t")).unwrap();
    assert_eq!(cfg, again);
}

#[test]
fn learning_rate_must_be_positive() {
    expect_invalid(
        &with(BASE, "lr = 0.01", "lr = 0.0"),
        "optimizer.lr",
        "0",
        "> 0",
    );
    expect_invalid(
        &with(BASE, "lr = 0.01", "lr = -0.1"),
        "optimizer.lr",
        "-0.1",
        "> 0",
    );
    expect_invalid(
        &with(BASE, "lr = 0.01", "lr = nan"),
        "optimizer.lr",
        "NaN",
        "> 0",
    );
}

#[test]
fn momentum_must_be_in_unit_interval() {
    expect_invalid(
        &with(BASE, "beta = 0.9", "beta = 1.0"),
        "optimizer.beta",
        "1",
        "[0, 1)",
    );
    expect_invalid(
        &with(BASE, "beta = 0.9", "beta = -0.1"),
        "optimizer.beta",
        "-0.1",
        "[0, 1)",
    );
    let adam = with(
        &with(BASE, "kind = \"heavy_ball\"", "kind = \"adam\""),
        "beta = 0.9",
        "beta2 = 1.5",
    );
    expect_invalid(&adam, "optimizer.beta2", "1.5", "[0, 1)");
}

#[test]
fn sigma_must_be_non_negative() {
    expect_invalid(
        &with(BASE, "sigma = 1.0", "sigma = -1.0"),
        "noise.sigma",
        "-1",
        ">= 0",
    );
}

#[test]
fn batch_cannot_exceed_n() {
    // valley_nd with normal_dim 4 has n = 4 samples.
    expect_invalid(
        &with(BASE, "sigma = 1.0", "sigma = 1.0\nbatch = 5"),
        "noise.batch",
        "5",
        "1..=4",
    );
    expect_invalid(
        &with(BASE, "sigma = 1.0", "sigma = 1.0\nbatch = 0"),
        "noise.batch",
        "0",
        "1..=4",
    );
    let mb = with(
        &with(BASE, "kind = \"label\"", "kind = \"minibatch\""),
        "sigma = 1.0",
        "batch = 4",
    );
    expect_invalid(&mb, "noise.batch", "4", "1..4");
}

#[test]
fn fields_of_other_kinds_are_rejected() {
    let sgd = with(BASE, "kind = \"heavy_ball\"", "kind = \"sgd\"");
    expect_invalid(&sgd, "optimizer.beta", "sgd", "heavy_ball");
    expect_invalid(
        &with(BASE, "tangent_dim = 2", "tangent_dim = 2\ndepth = 3"),
        "model.depth",
        "valley_nd",
        "product",
    );
}

#[test]
fn unknown_fields_and_kinds() {
    match build(&with(BASE, "lr = 0.01", "lr = 0.01\nlearning_rate = 0.1")) {
        Err(Error::ConfigParse { message, .. }) => {
            assert!(message.contains("learning_rate"), "{message}")
        }
        other => panic!("unknown field accepted: {other:?}"),
    }
    expect_invalid(
        &with(BASE, "kind = \"heavy_ball\"", "kind = \"lion\""),
        "optimizer.kind",
        "lion",
        "adam",
    );
    expect_invalid(
        &with(BASE, "kind = \"label\"", "kind = \"pink\""),
        "noise.kind",
        "pink",
        "isotropic",
    );
    expect_invalid(
        &with(BASE, "kind = \"valley_nd\"", "kind = \"mlp\""),
        "model.kind",
        "mlp",
        "two_layer",
    );
}

#[test]
fn run_settings() {
    expect_invalid(
        &with(BASE, "steps = 100", "steps = 0"),
        "steps",
        "0",
        ">= 1",
    );
    expect_invalid(
        &with(BASE, "record_every = 10", "record_every = 101"),
        "record_every",
        "101",
        "1..=100",
    );
    expect_invalid(
        &with(BASE, "trajectories = 4", "trajectories = 0"),
        "trajectories",
        "0",
        ">= 1",
    );
    expect_invalid(
        &format!("observables = [\"loss\", \"tr_h\"]\n{BASE}"),
        "observables[1]",
        "tr_h",
        "trace_hessian",
    );
    expect_invalid(
        &format!("observables = [\"test_error\"]\n{BASE}"),
        "observables[0]",
        "test_error",
        "valley",
    );
}

#[test]
fn start_and_fixed_covariance_are_checked() {
    let t = format!("{BASE}\n[start]\ntheta = [1.0, 2.0]\n");
    expect_invalid(&t, "start.theta", "2 numbers", "exactly 6");
    let fixed = with(
        BASE,
        "kind = \"label\"\nsigma = 1.0",
        "kind = \"fixed\"\ncovariance = [[1.0, 0.0], [0.0, 1.0]]",
    );
    expect_invalid(&fixed, "noise.covariance", "2 rows", "6 rows of 6");
    let planar = r#"
[model]
kind = "valley"
[noise]
kind = "fixed"
covariance = [[1.0, 2.0], [2.0, 1.0]]
[optimizer]
kind = "sgd"
lr = 0.1
"#;
    expect_invalid(
        planar,
        "noise.covariance",
        "smallest eigenvalue",
        "positive semi-definite",
    );
    let ok = planar.replace("[[1.0, 2.0], [2.0, 1.0]]", "[[1.0, 0.5], [0.5, 1.0]]");
    assert!(build(&ok).is_ok());
}

#[test]
fn schedule_fields() {
    let s = format!("{BASE}\n[optimizer.schedule]\nkind = \"step\"\ngamma = 2.0\nevery = 10\n");
    expect_invalid(&s, "optimizer.schedule.gamma", "2", "(0, 1]");
    let s = format!("{BASE}\n[optimizer.schedule]\nkind = \"cosine\"\neta_min = 0.5\n");
    expect_invalid(&s, "optimizer.schedule.eta_min", "0.5", "[0, 0.01]");
    let s = format!("{BASE}\n[optimizer.schedule]\nkind = \"cosine\"\neta_min = 0.001\n");
    let b = build(&s).unwrap();
    assert_eq!(
        b.optimizer.schedule(),
        &Schedule::Cosine {
            eta: 0.01,
            eta_min: 0.001,
            steps: 100
        }
    );
}

#[test]
fn data_section_rules() {
    let with_data = format!("{BASE}\n[data]\nkind = \"synthetic\"\nn = 4\ndim = 3\n");
    expect_invalid(&with_data, "data", "given", "remove");
    let diag = r#"
[model]
kind = "diagonal"
[noise]
kind = "label"
[optimizer]
kind = "sgd"
lr = 0.1
"#;
    expect_invalid(diag, "data", "missing", "[data]");
}
