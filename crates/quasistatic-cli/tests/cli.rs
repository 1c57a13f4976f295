//! End-to-end tests of the `quasistatic` binary: every example config runs at small size and
//! writes its files; thread count does not change results; bad input is rejected with the
//! field, the value and what is allowed, and a non-zero exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quasistatic"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quasistatic-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `simulate` at small size (200 steps, 6 trajectories, records every 50) in `cmd`.
fn simulate_small_with(mut cmd: Command, config: &Path, out: &Path, extra: &[&str]) -> Output {
    run(cmd
        .arg("simulate")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args([
            "--steps",
            "200",
            "--trajectories",
            "6",
            "--record-every",
            "50",
            "--no-progress",
        ])
        .args(extra))
}

fn simulate_small(config: &Path, out: &Path, extra: &[&str]) -> Output {
    simulate_small_with(bin(), config, out, extra)
}

#[test]
fn every_example_runs_and_writes_its_files() {
    let dir = workspace().join("examples");
    let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 8, "examples missing: {configs:?}");
    for cfg in configs {
        let name = cfg.file_stem().unwrap().to_string_lossy().into_owned();
        let out = temp_dir(&name);
        let o = simulate_small(&cfg, &out, &[]);
        assert!(o.status.success(), "{name} failed: {}", text(&o.stderr));
        for f in [
            "config.toml",
            "trajectories.csv",
            "summary.csv",
            "summary.json",
            "report.md",
            "plot_loss.svg",
        ] {
            let p = out.join(f);
            assert!(p.is_file(), "{name}: {f} missing");
            assert!(
                std::fs::metadata(&p).unwrap().len() > 0,
                "{name}: {f} empty"
            );
        }
        // 6 trajectories x 5 checkpoints x (at least the loss) rows + header.
        let csv = std::fs::read_to_string(out.join("trajectories.csv")).unwrap();
        assert!(csv.starts_with("step,trajectory,observable,value"));
        assert!(
            csv.lines().filter(|l| l.contains(",loss,")).count() == 30,
            "{name}: wrong number of loss rows"
        );
        // The resolved config is itself a valid config.
        let again = run(bin().arg("check").arg(out.join("config.toml")));
        assert!(
            again.status.success(),
            "{name}: resolved config invalid: {}",
            text(&again.stderr)
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let cfg = workspace().join("examples/valley_nd_momentum.toml");
    let a = temp_dir("threads1");
    let b = temp_dir("threads2");
    let oa = simulate_small(&cfg, &a, &["--threads", "1"]);
    let mut two = bin();
    two.env("RAYON_NUM_THREADS", "2");
    let ob = simulate_small_with(two, &cfg, &b, &[]);
    assert!(oa.status.success() && ob.status.success());
    for f in ["trajectories.csv", "summary.csv"] {
        let x = std::fs::read(a.join(f)).unwrap();
        let y = std::fs::read(b.join(f)).unwrap();
        assert!(x == y, "{f} differs between 1 and 2 threads");
    }
}

fn write_config(name: &str, body: &str) -> PathBuf {
    let d = temp_dir(name);
    let p = d.join("config.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const GOOD: &str = r#"
steps = 100
trajectories = 2
record_every = 10
[model]
kind = "valley"
[noise]
kind = "label"
sigma = 1.0
[optimizer]
kind = "sgd"
lr = 0.05
"#;

fn expect_rejected(name: &str, body: &str, needles: &[&str]) {
    let cfg = write_config(name, body);
    let out = cfg.parent().unwrap().join("out");
    let o = simulate_small(&cfg, &out, &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{name}: expected exit code 2, stderr: {}",
        text(&o.stderr)
    );
    let err = text(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "{name}: message `{err}` lacks `{n}`");
    }
    assert!(
        !out.join("summary.csv").exists(),
        "{name}: a rejected run wrote results"
    );
}

#[test]
fn bad_configs_are_rejected_with_field_value_and_allowed() {
    expect_rejected(
        "lr",
        &GOOD.replace("lr = 0.05", "lr = -0.5"),
        &["optimizer.lr", "-0.5", "> 0"],
    );
    expect_rejected(
        "sigma",
        &GOOD.replace("sigma = 1.0", "sigma = -2.0"),
        &["noise.sigma", "-2", ">= 0"],
    );
    expect_rejected(
        "beta",
        &GOOD.replace("kind = \"sgd\"", "kind = \"momentum\"\nbeta = 1.2"),
        &["optimizer.beta", "1.2", "[0, 1)"],
    );
    expect_rejected(
        "unknown",
        &GOOD.replace("lr = 0.05", "lr = 0.05\nmomentum = 0.9"),
        &["momentum", "unknown field"],
    );
    expect_rejected(
        "batch",
        &GOOD.replace("sigma = 1.0", "sigma = 1.0\nbatch = 2"),
        &["noise.batch", "2", "1..=1"],
    );
}

#[test]
fn mismatched_data_file_is_rejected() {
    let d = temp_dir("csvbad");
    std::fs::write(d.join("data.csv"), "a,b,target\n1,2,3\n4,5,6\n7,8,9\n").unwrap();
    let body = r#"
steps = 10
trajectories = 1
record_every = 5
[model]
kind = "diagonal"
[data]
kind = "csv"
path = "data.csv"
target = "y"
[noise]
kind = "none"
[optimizer]
kind = "sgd"
lr = 0.01
"#;
    let cfg = d.join("c.toml");
    std::fs::write(&cfg, body).unwrap();
    let o = simulate_small(&cfg, &d.join("out"), &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("data.csv") && err.contains('y') && err.contains("target"),
        "{err}"
    );
    // A product model needs scalar inputs; this file has two features.
    let body = body
        .replace("kind = \"diagonal\"", "kind = \"product\"")
        .replace("target = \"y\"", "target = \"target\"");
    std::fs::write(&cfg, body).unwrap();
    let o = simulate_small(&cfg, &d.join("out"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("data.dim"), "{}", text(&o.stderr));
}

#[test]
fn missing_config_file_names_the_path() {
    let o = run(bin().args(["simulate", "/nonexistent/q.toml", "--out", "/tmp/x"]));
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("/nonexistent/q.toml"));
}

#[test]
fn divergence_is_reported_not_hidden() {
    let cfg = write_config("diverge", &GOOD.replace("lr = 0.05", "lr = 2.5"));
    let out = cfg.parent().unwrap().join("out");
    let o = simulate_small(&cfg, &out, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("trajectory 0 diverged at step") && err.contains("last finite loss"),
        "{err}"
    );
    let json = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(
        json.contains("divergences") && json.contains("max_loss"),
        "{json}"
    );
}

/// `derive` on the network kinds: the matrix-sensing example (from its pre-trained start,
/// projected onto the manifold: 128 parameters, 48 measurements, so a manifold of dimension
/// 80) and deep linear networks of both structures.
#[test]
fn derive_runs_on_the_network_kinds() {
    let check = |config: &Path, manifold_dim: &str| {
        let o = run(bin().arg("derive").arg(config));
        let out = text(&o.stdout);
        assert!(
            o.status.success(),
            "{}: {}",
            config.display(),
            text(&o.stderr)
        );
        assert!(
            out.contains(&format!("manifold dim {manifold_dim}")) && out.contains("tr H"),
            "{}: {out}",
            config.display()
        );
    };
    check(&workspace().join("examples/matrix_sensing.toml"), "80");
    let deep = |name: &str, structure: &str| {
        write_config(
            name,
            &format!(
                "steps = 100\ntrajectories = 2\nrecord_every = 50\n\
                 [model]\nkind = \"deep_linear\"\ndepth = 3\n{structure}\n\
                 [data]\nkind = \"synthetic\"\nn = 6\ndim = 10\nteacher = \"sparse\"\nteacher_k = 2\n\
                 [noise]\nkind = \"label\"\nsigma = 0.3\n\
                 [optimizer]\nkind = \"sgd\"\nlr = 0.02\n\
                 [start]\ngd_steps = 3000\ngd_lr = 0.05\n"
            ),
        )
    };
    // Diagonal: d = 3 x 10, 6 samples; dense, width 2: d = 20 + 4 + 2.
    check(&deep("deep-diagonal", "structure = \"diagonal\""), "24");
    check(
        &deep("deep-dense", "structure = \"dense\"\nwidth = 2"),
        "20",
    );
}
