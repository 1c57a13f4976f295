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
        &with(BASE, "kind = \"heavy_ball\"", "kind = \"newton\""),
        "optimizer.kind",
        "newton",
        "adam",
    );
    expect_invalid(
        &with(BASE, "kind = \"label\"", "kind = \"pink\""),
        "noise.kind",
        "pink",
        "isotropic",
    );
    expect_invalid(
        &with(BASE, "kind = \"valley_nd\"", "kind = \"resnet\""),
        "model.kind",
        "resnet",
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

/// Parse, write and parse again: the written config is the same config.
fn round_trip(cfg: &Config) -> String {
    let text = cfg.to_toml();
    let again = Config::from_toml(&text, Path::new("resolved.toml"))
        .unwrap_or_else(|e| panic!("the written config does not parse: {e}\n{text}"));
    assert_eq!(&again, cfg, "the written config differs:\n{text}");
    text
}

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_round_trips_and_builds_the_same() {
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "examples missing: {files:?}");
    for file in files {
        let mut cfg = Config::load(&file).unwrap();
        // Keep the test quick: a few pre-training steps show the same as thousands.
        cfg.start.gd_steps = cfg.start.gd_steps.min(10);
        let text = round_trip(&cfg);
        let again = Config::from_toml(&text, Path::new("resolved.toml")).unwrap();
        let (a, b) = (cfg.build().unwrap(), again.build().unwrap());
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "{}: the written config builds something else",
            file.display()
        );
    }
}

/// A config around one section `snippet` (the other sections minimal and compatible).
fn config_with(section: &str, snippet: &str) -> String {
    let model = "[model]\nkind = \"valley\"\n";
    let noise = "[noise]\nkind = \"label\"\n";
    let optimizer = "[optimizer]\nkind = \"sgd\"\nlr = 0.01\n";
    let run = "steps = 20\ntrajectories = 2\nrecord_every = 10\n";
    match section {
        "model" => format!("{run}{snippet}{noise}{optimizer}"),
        "data" => format!("{run}[model]\nkind = \"diagonal\"\n{snippet}{noise}{optimizer}"),
        // Two parameters (for `fixed`) and eight samples (for `minibatch`).
        "noise" => format!(
            "{run}[model]\nkind = \"product\"\n[data]\nkind = \"synthetic\"\nn = 8\ndim = 1\n{snippet}{optimizer}"
        ),
        "optimizer" => format!("{run}{model}{noise}{snippet}"),
        "optimizer.schedule" => format!("{run}{model}{noise}{optimizer}{snippet}"),
        other => panic!("test bug: no section {other}"),
    }
}

/// Per kind: the smallest table of that kind (fields it requires, and a `[data]` for models
/// fitted to data).
const SAMPLES: &[(&str, &str, &str)] = &[
    ("model", "valley", "[model]\nkind = \"valley\"\n"),
    ("model", "valley_nd", "[model]\nkind = \"valley_nd\"\n"),
    ("model", "product", "[model]\nkind = \"product\"\n"),
    (
        "model",
        "diagonal",
        "[model]\nkind = \"diagonal\"\n[data]\nkind = \"synthetic\"\nn = 8\ndim = 12\n",
    ),
    (
        "model",
        "two_layer",
        "[model]\nkind = \"two_layer\"\n[data]\nkind = \"synthetic\"\nn = 8\ndim = 3\nteacher = \"tanh_network\"\n",
    ),
    (
        "model",
        "linear2",
        "[model]\nkind = \"linear2\"\n[data]\nkind = \"synthetic\"\nn = 8\ndim = 3\nteacher = \"linear\"\nteacher_weights = [1.0, 0.0, -1.0]\n",
    ),
    (
        "model",
        "expression",
        "[model]\nkind = \"expression\"\nparams = [\"x\", \"y\"]\noutput = \"sqrt(1 + y^2) * x\"\nstart = { y = 2.0 }\n",
    ),
    (
        "model",
        "mlp",
        "[model]\nkind = \"mlp\"\n[data]\nkind = \"synthetic\"\nn = 8\ndim = 3\nteacher = \"tanh_network\"\n",
    ),
    (
        "model",
        "deep_linear",
        "[model]\nkind = \"deep_linear\"\n[data]\nkind = \"synthetic\"\nn = 8\ndim = 3\nteacher = \"linear\"\nteacher_weights = [1.0, 0.0, -1.0]\n",
    ),
    ("model", "matrix_sensing", "[model]\nkind = \"matrix_sensing\"\n"),
    ("data", "synthetic", "[data]\nkind = \"synthetic\"\nn = 8\ndim = 12\n"),
    ("data", "csv", "[data]\nkind = \"csv\"\npath = \"data/sparse.csv\"\ntarget = \"y\"\n"),
    ("data", "npy", "[data]\nkind = \"npy\"\npath = \"data/sparse.npy\"\ntarget = -1\n"),
    ("data", "npz", "[data]\nkind = \"npz\"\npath = \"data/sparse.npz\"\nx = \"x_train\"\ny = \"y_train\"\n"),
    ("noise", "none", "[noise]\nkind = \"none\"\n"),
    ("noise", "label", "[noise]\nkind = \"label\"\n"),
    ("noise", "minibatch", "[noise]\nkind = \"minibatch\"\nbatch = 4\n"),
    ("noise", "isotropic", "[noise]\nkind = \"isotropic\"\n"),
    ("noise", "hessian", "[noise]\nkind = \"hessian\"\n"),
    ("noise", "fixed", "[noise]\nkind = \"fixed\"\ncovariance = [[1.0, 0.0], [0.0, 1.0]]\n"),
    ("optimizer", "sgd", "[optimizer]\nkind = \"sgd\"\nlr = 0.01\n"),
    ("optimizer", "heavy_ball", "[optimizer]\nkind = \"heavy_ball\"\nlr = 0.01\n"),
    ("optimizer", "nesterov", "[optimizer]\nkind = \"nesterov\"\nlr = 0.01\n"),
    ("optimizer", "adam", "[optimizer]\nkind = \"adam\"\nlr = 0.01\n"),
    ("optimizer", "adamw", "[optimizer]\nkind = \"adamw\"\nlr = 0.01\n"),
    ("optimizer", "rmsprop", "[optimizer]\nkind = \"rmsprop\"\nlr = 0.01\n"),
    ("optimizer", "lion", "[optimizer]\nkind = \"lion\"\nlr = 0.001\n"),
    ("optimizer.schedule", "constant", "[optimizer.schedule]\nkind = \"constant\"\n"),
    ("optimizer.schedule", "step", "[optimizer.schedule]\nkind = \"step\"\ngamma = 0.5\nevery = 5\n"),
    ("optimizer.schedule", "cosine", "[optimizer.schedule]\nkind = \"cosine\"\n"),
    ("optimizer.schedule", "warmup", "[optimizer.schedule]\nkind = \"warmup\"\nwarmup = 5\n"),
];

/// Fields whose default depends on the rest of the run, so `to_toml` leaves them out.
const CONTEXT_DEFAULTS: &[(&str, &str)] = &[
    ("valley_nd", "normal_dim"),
    ("valley_nd", "lambdas"),
    ("valley_nd", "rotation_seed"),
    ("product", "target"),
    ("expression", "loss"),
    ("expression", "targets"),
    ("deep_linear", "width"),
    ("label", "batch"),
    ("cosine", "steps"),
    // Optional files and arrays: one of two ways to give the data, or held-out data.
    ("npy", "path"),
    ("npy", "target"),
    ("npy", "x"),
    ("npy", "y"),
    ("npy", "x_test"),
    ("npy", "y_test"),
    ("npz", "x_test"),
    ("npz", "y_test"),
];

#[test]
fn every_kind_builds_and_round_trips_with_its_defaults_written() {
    for section in SECTIONS {
        for entry in section.kinds {
            let Some((_, _, snippet)) = SAMPLES
                .iter()
                .find(|(s, k, _)| *s == section.path && *k == entry.name)
            else {
                panic!("no sample for {} kind `{}`", section.path, entry.name)
            };
            let text = config_with(section.path, snippet);
            let cfg = Config::from_toml(&text, &examples_dir().join("sample.toml"))
                .unwrap_or_else(|e| panic!("{}: {e}", entry.name));
            cfg.build()
                .unwrap_or_else(|e| panic!("{} does not build: {e}", entry.name));
            let written = round_trip(&cfg);
            // Every field of the kind is written out, with its default.
            let root: toml::Table = written.parse().unwrap();
            let table = section
                .path
                .split('.')
                .try_fold(&root, |t, k| t.get(k)?.as_table())
                .unwrap();
            assert_eq!(table["kind"].as_str(), Some(entry.name));
            let fields = if entry.name == "synthetic" {
                // The teacher's fields are those of the chosen (default) teacher.
                vec![
                    "n",
                    "n_test",
                    "dim",
                    "teacher",
                    "teacher_k",
                    "teacher_value",
                    "label_noise",
                    "seed",
                ]
            } else {
                entry.fields().to_vec()
            };
            for field in fields {
                if !CONTEXT_DEFAULTS.contains(&(entry.name, field)) {
                    assert!(
                        table.contains_key(field),
                        "{}: `{field}` not written out:\n{written}",
                        entry.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_teacher_round_trips() {
    for teacher in [
        "teacher = \"sparse\"\nteacher_k = 3\nteacher_value = 2.0",
        "teacher = \"linear\"\nteacher_weights = [1.0, 2.0, 3.0]",
        "teacher = \"tanh_network\"\nteacher_width = 2\nteacher_seed = 5",
    ] {
        let text = config_with(
            "data",
            &format!("[data]\nkind = \"synthetic\"\nn = 5\ndim = 3\n{teacher}\n"),
        );
        let cfg = Config::from_toml(&text, Path::new("t.toml")).unwrap();
        assert!(round_trip(&cfg).contains(teacher), "{teacher}");
        cfg.build().unwrap();
    }
}

#[test]
fn registry_matches_the_structs() {
    for section in SECTIONS {
        let header = format!("[{}]\n", section.path);
        for entry in section.kinds {
            for (name, _) in entry.required() {
                assert!(entry.fields().contains(name), "{}: {name}", entry.name);
            }
            // An empty table lacks exactly the required fields.
            match (entry.probe(&header, section.path), entry.required().first()) {
                (Ok(()), None) => {}
                (Err(e), Some((name, _))) => assert!(
                    e.message().contains(&format!("missing field `{name}`")),
                    "{}: {e}",
                    entry.name
                ),
                (r, first) => panic!("{}: {r:?} but required {first:?}", entry.name),
            }
        }
    }
}

#[test]
fn aliases_are_read_and_written_by_their_name() {
    let text = with(BASE, "kind = \"heavy_ball\"", "kind = \"momentum\"");
    let cfg = Config::from_toml(&text, Path::new("t")).unwrap();
    assert_eq!(cfg.optimizer.kind(), "heavy_ball");
    assert!(cfg.to_toml().contains("kind = \"heavy_ball\""));
    expect_invalid(
        &with(&text, "beta = 0.9", "beta1 = 0.9"),
        "optimizer.beta1",
        "given for kind `momentum`",
        "`adam`, `adamw`",
    );
    expect_invalid(
        &with(BASE, "kind = \"heavy_ball\"", "kind = \"newton\""),
        "optimizer.kind",
        "newton",
        "`heavy_ball` (or `momentum`)",
    );
}

#[test]
fn missing_kinds_and_required_fields_are_named() {
    expect_invalid(
        &with(BASE, "kind = \"valley_nd\"\n", ""),
        "model.kind",
        "missing",
        "valley_nd",
    );
    expect_invalid(
        &with(BASE, "lr = 0.01\n", ""),
        "optimizer.lr",
        "missing",
        "> 0",
    );
    let mb = with(
        &with(BASE, "kind = \"label\"", "kind = \"minibatch\""),
        "sigma = 1.0\n",
        "",
    );
    expect_invalid(&mb, "noise.batch", "missing", "1..n");
    let s = format!("{BASE}\n[optimizer.schedule]\nkind = \"step\"\ngamma = 0.5\n");
    expect_invalid(&s, "optimizer.schedule.every", "missing", ">= 1");
    let data = config_with("data", "[data]\nkind = \"synthetic\"\ndim = 3\n");
    expect_invalid(&data, "data.n", "missing", ">= 1");
}

#[test]
fn fields_of_other_kinds_and_teachers_are_rejected() {
    let s = format!("{BASE}\n[optimizer.schedule]\nkind = \"constant\"\nwarmup = 5\n");
    expect_invalid(&s, "optimizer.schedule.warmup", "constant", "`warmup`");
    expect_invalid(
        &with(BASE, "sigma = 1.0", "covariance = [[1.0]]"),
        "noise.covariance",
        "label",
        "`fixed`",
    );
    let data = |body: &str| config_with("data", &format!("[data]\n{body}\n"));
    expect_invalid(
        &data("kind = \"synthetic\"\nn = 4\ndim = 3\ntarget = \"y\""),
        "data.target",
        "synthetic",
        "`csv`",
    );
    expect_invalid(
        &data("kind = \"synthetic\"\nn = 4\ndim = 3\nteacher = \"linear\"\nteacher_k = 2"),
        "data.teacher_k",
        "linear",
        "teacher `sparse`",
    );
    expect_invalid(
        &data("kind = \"synthetic\"\nn = 4\ndim = 3\nteacher = \"linear\""),
        "data.teacher_weights",
        "missing",
        "3 numbers",
    );
    expect_invalid(
        &data("kind = \"synthetic\"\nn = 4\ndim = 3\nteacher = \"cubic\""),
        "data.teacher",
        "cubic",
        "tanh_network",
    );
}

#[test]
fn names_outside_their_list_are_named() {
    expect_invalid(
        &with(BASE, "tangent_dim = 2", "profile = \"cubic\""),
        "model.profile",
        "cubic",
        "`quadratic` or `sin2`",
    );
    let two_layer = SAMPLES
        .iter()
        .find(|(_, kind, _)| *kind == "two_layer")
        .unwrap()
        .2;
    expect_invalid(
        &config_with(
            "model",
            &with(two_layer, "\n[data]", "\nactivation = \"relu\"\n[data]"),
        ),
        "model.activation",
        "relu",
        "`tanh`, `gelu` or `softplus`",
    );
}

/// serde reads a section through a buffer, so its own messages point at the section header;
/// a wrong type or an unknown field is reported at its line instead.
#[test]
fn parse_errors_point_at_the_line() {
    let parse_error = |text: &str| match Config::from_toml(text, Path::new("t.toml")) {
        Err(Error::ConfigParse { message, .. }) => message,
        other => panic!("expected a parse error, got {other:?}"),
    };
    let m = parse_error(&with(BASE, "lr = 0.01", "lr = \"fast\""));
    assert!(
        m.contains("lr = \"fast\"") && m.contains("expected f64"),
        "{m}"
    );
    let m = parse_error(&with(BASE, "lr = 0.01", "lr = 0.01\nlearning_rate = 0.1"));
    assert!(
        m.contains("learning_rate = 0.1") && m.contains("unknown field `learning_rate`"),
        "{m}"
    );
    let s = format!("{BASE}\n[optimizer.schedule]\nkind = \"step\"\ngamma = \"a\"\nevery = 3\n");
    let m = parse_error(&s);
    assert!(m.contains("gamma = \"a\""), "{m}");
}

/// The typed defaults (`Config::new`, the kinds' `Default` and `new`) are the serde defaults:
/// equal to a file naming only the kinds (and `lr`).
#[test]
fn typed_defaults_equal_the_parsed_defaults() {
    let parse = |model: &str, noise: &str, optimizer: &str| {
        let text = format!(
            "[model]\nkind = \"{model}\"\n[noise]\nkind = \"{noise}\"\n[optimizer]\n{optimizer}\n"
        );
        Config::from_toml(&text, Path::new("test.toml")).unwrap()
    };
    let cases = [
        (
            Config::new(
                ValleyConfig::default(),
                LabelNoiseConfig::default(),
                SgdConfig::new(0.1),
            ),
            parse("valley", "label", "kind = \"sgd\"\nlr = 0.1"),
        ),
        (
            Config::new(
                ValleyNdConfig::default(),
                IsotropicNoiseConfig::default(),
                HeavyBallConfig::new(0.1),
            ),
            parse("valley_nd", "isotropic", "kind = \"heavy_ball\"\nlr = 0.1"),
        ),
        (
            Config::new(
                ProductConfig::default(),
                LabelNoiseConfig::default(),
                AdamConfig::new(0.1),
            ),
            parse("product", "label", "kind = \"adam\"\nlr = 0.1"),
        ),
    ];
    for (typed, parsed) in cases {
        assert_eq!(typed, parsed);
    }
    let diagonal: DiagonalConfig = toml::from_str("").unwrap();
    assert_eq!(DiagonalConfig::default(), diagonal);
}

/// A `[data]` table on the diagonal model, parsed as if the config file were in `dir`.
fn data_config(dir: &Path, body: &str) -> Result<Config> {
    Config::from_toml(
        &config_with("data", &format!("[data]\n{body}\n")),
        &dir.join("run.toml"),
    )
}

fn data_of(cfg: &Config) -> crate::data::Data {
    cfg.data
        .as_ref()
        .expect("a [data] section")
        .build()
        .unwrap()
}

#[test]
fn file_paths_are_relative_to_the_config_file() {
    let dir = examples_dir();
    let npz = data_config(&dir, "kind = \"npz\"\npath = \"data/sparse.npz\"").unwrap();
    let Some(DataConfig::Npz(c)) = &npz.data else {
        panic!("not npz")
    };
    assert_eq!(c.path, dir.join("data/sparse.npz"));
    // An absolute path stays as written.
    let abs = dir.join("data/sparse.npy");
    let npy = format!("kind = \"npy\"\npath = \"{}\"\ntarget = -1", abs.display());
    let Some(DataConfig::Npy(c)) = data_config(Path::new("/elsewhere"), &npy).unwrap().data else {
        panic!("not npy")
    };
    assert_eq!(c.path.as_deref(), Some(abs.as_path()));
    // Built from another folder, the example finds its archive.
    assert!(Config::load(&dir.join("npz_diagonal.toml"))
        .unwrap()
        .build()
        .is_ok());
}

/// The same rows through every file kind and its options: CSV by names, the `.npy` table by
/// index, the `.npz` arrays, and two `.npy` files.
#[test]
fn every_file_kind_reads_the_same_data() {
    let dir = examples_dir();
    let csv = data_of(
        &data_config(
            &dir,
            "kind = \"csv\"\npath = \"data/sparse.csv\"\ntarget = \"y\"\ntest_fraction = 0.25",
        )
        .unwrap(),
    );
    let npy = data_of(
        &data_config(
            &dir,
            "kind = \"npy\"\npath = \"data/sparse.npy\"\ntarget = 12\ntest_fraction = 0.25",
        )
        .unwrap(),
    );
    let npz = data_of(
        &data_config(
            &dir,
            "kind = \"npz\"\npath = \"data/sparse.npz\"\nx = \"x_train\"\ny = \"y_train\"\n\
             x_test = \"x_test\"\ny_test = \"y_test\"",
        )
        .unwrap(),
    );
    for other in [&npy, &npz] {
        assert_eq!(other.train, csv.train);
        assert_eq!(other.test, csv.test);
    }
    // Two .npy files with held-out files, features by index (negative from the end).
    let tmp = std::env::temp_dir().join(format!("quasistatic-cfg-npy-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let test = csv.test.as_ref().unwrap();
    let (tr, te) = (&csv.train, test);
    crate::data::write_npy(&tmp.join("x.npy"), &[tr.n, tr.p], &tr.x).unwrap();
    crate::data::write_npy(&tmp.join("y.npy"), &[tr.n, 1], &tr.y).unwrap();
    crate::data::write_npy(&tmp.join("xt.npy"), &[te.n, te.p], &te.x).unwrap();
    crate::data::write_npy(&tmp.join("yt.npy"), &[te.n], &te.y).unwrap();
    let pair = data_of(
        &data_config(
            &tmp,
            "kind = \"npy\"\nx = \"x.npy\"\ny = \"y.npy\"\nx_test = \"xt.npy\"\ny_test = \"yt.npy\"\n\
             features = [-1, 0]",
        )
        .unwrap(),
    );
    let by_name = data_of(
        &data_config(
            &dir,
            "kind = \"csv\"\npath = \"data/sparse.csv\"\ntarget = \"y\"\ntest_fraction = 0.25\n\
             features = [\"x12\", 0]",
        )
        .unwrap(),
    );
    let _ = std::fs::remove_dir_all(&tmp);
    assert_eq!(pair.train, by_name.train);
    assert_eq!(pair.test, by_name.test);
    assert_eq!(pair.train.p, 2);
    assert_eq!(
        pair.train.row(0),
        &[csv.train.row(0)[11], csv.train.row(0)[0]]
    );
}

#[test]
fn shuffle_and_standardize_reach_the_data() {
    let dir = examples_dir();
    let base = "kind = \"csv\"\npath = \"data/sparse.csv\"\ntarget = \"y\"\ntest_fraction = 0.25";
    let get = |extra: &str| data_of(&data_config(&dir, &format!("{base}\n{extra}")).unwrap());
    let plain = get("");
    let a = get("shuffle = true\nsplit_seed = 4");
    assert_eq!(a.train, get("shuffle = true\nsplit_seed = 4").train);
    assert_ne!(a.test, plain.test);
    assert_ne!(a.test, get("shuffle = true\nsplit_seed = 5").test);
    let s = get("standardize = true");
    assert_eq!(s.train.y, plain.train.y);
    for j in 0..s.train.p {
        let col: Vec<f64> = (0..s.train.n).map(|i| s.train.row(i)[j]).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
        assert!(
            mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12,
            "{j}: {mean} {var}"
        );
    }
}

#[test]
fn numpy_fields_are_checked() {
    let text = |body: &str| config_with("data", &format!("[data]\n{body}\n"));
    let npy = "kind = \"npy\"\npath = \"data/sparse.npy\"";
    let with_examples = |body: &str| {
        Config::from_toml(&text(body), &examples_dir().join("t.toml")).and_then(|c| c.build())
    };
    let invalid = |body: &str, field: &str, value: &str, allowed: &str| match with_examples(body) {
        Err(Error::InvalidConfig {
            field: f,
            value: v,
            allowed: a,
        }) => assert!(
            f == field && v.contains(value) && a.contains(allowed),
            "{body}: {f} = {v} ({a})"
        ),
        other => panic!("{body}: expected invalid {field}, got {:?}", other.err()),
    };
    invalid(npy, "data.target", "missing", "0-based index");
    invalid(
        &format!("{npy}\ntarget = 0\nx = \"x.npy\""),
        "data.x",
        "given with data.path",
        "either",
    );
    invalid("kind = \"npy\"", "data.path", "missing", "or `x` and `y`");
    invalid(
        "kind = \"npy\"\nx = \"x.npy\"",
        "data.y",
        "missing",
        "targets",
    );
    invalid(
        "kind = \"npy\"\nx = \"x.npy\"\ny = \"y.npy\"\ntarget = 1",
        "data.target",
        "given with data.x",
        "only with `path`",
    );
    let npz = "kind = \"npz\"\npath = \"data/sparse.npz\"\nx = \"x_train\"\ny = \"y_train\"";
    invalid(
        &format!("{npz}\nx_test = \"x_test\""),
        "data.y_test",
        "missing",
        "x_test",
    );
    invalid(
        &format!("{npz}\ntest_fraction = 1.0"),
        "data.test_fraction",
        "1",
        "[0, 1)",
    );
    invalid(
        &format!("{npz}\ntarget = 0"),
        "data.target",
        "given for kind `npz`",
        "`csv`, `npy`",
    );
    // File problems are data errors naming the file and what is in it.
    match with_examples("kind = \"npz\"\npath = \"data/sparse.npz\"") {
        Err(Error::Data { path, message }) => {
            assert!(path.ends_with("data/sparse.npz"), "{}", path.display());
            assert!(
                message.contains("no array named `x`")
                    && message.contains("x_test, x_train, y_test, y_train"),
                "{message}"
            );
        }
        other => panic!("expected a data error, got {:?}", other.err()),
    }
    // A column is a string or an integer, and toml points at the offending one.
    match with_examples(
        "kind = \"csv\"\npath = \"data/sparse.csv\"\ntarget = \"y\"\nfeatures = [\"x1\", 1.5]",
    ) {
        Err(Error::ConfigParse { message, .. }) => assert!(
            message.contains("features = [\"x1\", 1.5]")
                && message.contains("expected a column name (a string) or a 0-based column index"),
            "{message}"
        ),
        other => panic!("expected a parse error, got {:?}", other.err()),
    }
    match with_examples(&format!("{npy}\ntarget = \"y\"")) {
        Err(Error::Data { message, .. }) => {
            assert!(
                message.contains("no column names") && message.contains("0..=12"),
                "{message}"
            )
        }
        other => panic!("expected a data error, got {:?}", other.err()),
    }
}

/// The network kinds (`mlp`, `deep_linear`, `matrix_sensing`) name the field, the value and
/// the allowed range; `relu` is refused with the reason.
#[test]
fn network_kinds_check_their_fields() {
    let sample = |kind: &str| SAMPLES.iter().find(|(_, k, _)| *k == kind).unwrap().2;
    let mlp = |field: &str| {
        config_with(
            "model",
            &with(sample("mlp"), "\n[data]", &format!("\n{field}\n[data]")),
        )
    };
    let smooth = "`tanh`, `gelu`, `softplus`, `sigmoid` or `linear`";
    for act in ["relu", "leaky_relu", "elu"] {
        let text = mlp(&format!("activation = \"{act}\""));
        expect_invalid(&text, "model.activation", act, "third derivatives");
        expect_invalid(&text, "model.activation", act, smooth);
    }
    expect_invalid(
        &mlp("activation = \"swish\""),
        "model.activation",
        "swish",
        smooth,
    );
    expect_invalid(&mlp("widths = []"), "model.widths", "[]", "non-empty");
    expect_invalid(&mlp("widths = [4, 0]"), "model.widths[1]", "0", ">= 1");
    expect_invalid(&mlp("init_scale = -1.0"), "model.init_scale", "-1", "> 0");
    expect_invalid(
        &config_with("model", "[model]\nkind = \"mlp\"\n"),
        "data",
        "missing",
        "[data]",
    );
    let built = build(&mlp(
        "widths = [4, 3, 2]\nactivation = \"sigmoid\"\nbias = false",
    ))
    .unwrap();
    assert_eq!(built.model.dim(), 3 * 4 + 4 * 3 + 3 * 2 + 2);

    let deep = |field: &str| {
        config_with(
            "model",
            &with(
                sample("deep_linear"),
                "\n[data]",
                &format!("\n{field}\n[data]"),
            ),
        )
    };
    expect_invalid(&deep("depth = 1"), "model.depth", "1", ">= 2");
    expect_invalid(&deep("width = 0"), "model.width", "0", ">= 1");
    expect_invalid(
        &deep("structure = \"diagonal\"\nwidth = 4"),
        "model.width",
        "diagonal",
        "dense",
    );
    expect_invalid(
        &deep("structure = \"conv\""),
        "model.structure",
        "conv",
        "`dense` or `diagonal`",
    );
    assert_eq!(
        build(&deep("width = 2")).unwrap().model.dim(),
        2 * 3 + 4 + 2
    );
    let diagonal = build(&deep("structure = \"diagonal\"\ndepth = 4")).unwrap();
    assert_eq!(diagonal.model.dim(), 4 * 3);

    let sensing =
        |fields: &str| config_with("model", &format!("{}{fields}\n", sample("matrix_sensing")));
    expect_invalid(&sensing("rank = 9"), "model.rank", "9", "1..=8");
    expect_invalid(&sensing("rows = 4"), "model.rank", "8", "1..=4");
    expect_invalid(
        &sensing("rank = 2\ntrue_rank = 0"),
        "model.true_rank",
        "0",
        "1..=8",
    );
    expect_invalid(
        &sensing("symmetric = true\ncols = 6\nrank = 2"),
        "model.cols",
        "6",
        "8 (model.rows)",
    );
    expect_invalid(
        &sensing("measurements = 0"),
        "model.measurements",
        "0",
        ">= 1",
    );
    expect_invalid(&sensing("cols = 0"), "model.cols", "0", ">= 1");
    expect_invalid(
        &sensing("rows = 1000\ncols = 1000\nmeasurements = 1000"),
        "model.measurements",
        "1000",
        "at most 100 for a 1000 x 1000 matrix",
    );
    expect_invalid(&sensing("init_scale = 0.0"), "model.init_scale", "0", "> 0");
    expect_invalid(
        &sensing("[data]\nkind = \"synthetic\"\nn = 4\ndim = 3"),
        "data",
        "given",
        "no data",
    );
    let sym = build(&sensing("symmetric = true\nrank = 3")).unwrap();
    assert_eq!((sym.model.dim(), sym.model.n_samples()), (8 * 3, 48));
    let asym = build(&sensing("rows = 5\ncols = 7\nrank = 2")).unwrap();
    assert_eq!(asym.model.dim(), (5 + 7) * 2);
}
