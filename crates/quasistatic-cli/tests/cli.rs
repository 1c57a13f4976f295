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
        // The resolved config is itself a valid config, and rerun from another folder it
        // gives the same files, byte for byte (the wall time in summary.json aside).
        let again = run(bin().arg("check").arg(out.join("config.toml")));
        assert!(
            again.status.success(),
            "{name}: resolved config invalid: {}",
            text(&again.stderr)
        );
        let out2 = temp_dir(&format!("{name}-rerun"));
        let o = run(bin()
            .current_dir(std::env::temp_dir())
            .arg("simulate")
            .arg(out.join("config.toml"))
            .arg("--out")
            .arg(&out2)
            .arg("--no-progress"));
        assert!(
            o.status.success(),
            "{name}: rerun failed: {}",
            text(&o.stderr)
        );
        assert_same_files(&out, &out2, &name);
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&out2);
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

/// The files of two output folders, byte for byte, except the wall time (`"seconds"`) of
/// `summary.json`.
fn assert_same_files(a: &Path, b: &Path, what: &str) {
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b), "{what}: different files");
    for f in names(a) {
        let (x, y) = (
            std::fs::read(a.join(&f)).unwrap(),
            std::fs::read(b.join(&f)).unwrap(),
        );
        if f == "summary.json" {
            let strip = |t: &[u8]| -> String {
                text(t)
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("\"seconds\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(strip(&x), strip(&y), "{what}: {f} differs");
        } else {
            assert!(x == y, "{what}: {f} differs");
        }
    }
}

/// Every trajectory diverging is a failure (exit 3, nothing written); some diverging is
/// reported with their count and the run succeeds.
#[test]
fn divergence_is_reported_not_hidden() {
    let cfg = write_config("diverge", &GOOD.replace("lr = 0.05", "lr = 2.5"));
    let out = cfg.parent().unwrap().join("out");
    let o = simulate_small(&cfg, &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("all 6 trajectories diverged"), "{err}");
    assert!(
        !out.exists(),
        "a run with no result wrote {}",
        out.display()
    );
    let left: Vec<_> = std::fs::read_dir(cfg.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the config remains: {left:?}");
    // `check` warns before any run.
    let o = run(bin().arg("check").arg(&cfg));
    assert!(
        text(&o.stderr).contains("lr * lambda_max"),
        "{}",
        text(&o.stderr)
    );
    // Start noise large enough that some trajectories start beyond the stable region.
    let body = GOOD.replace("lr = 0.05", "lr = 0.4") + "[start]\ntheta = [0.0, 1.0]\nnoise = 3.0\n";
    let cfg = write_config("diverge-some", &body);
    let out = cfg.parent().unwrap().join("out");
    let o = run(bin()
        .arg("simulate")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args([
            "--steps",
            "200",
            "--trajectories",
            "64",
            "--record-every",
            "50",
        ]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("diverged at step") && err.contains("of 64 trajectories diverged"),
        "{err}"
    );
    let json = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(
        json.contains("\"diverged\"") && json.contains("max_loss"),
        "{json}"
    );
}

/// A run stopped by Ctrl-C after a checkpoint exits 130 and keeps `<out>.partial`; resumed,
/// it writes the same files as an uninterrupted run. Without checkpoints, Ctrl-C leaves
/// nothing behind.
#[cfg(unix)]
#[test]
fn interrupted_runs_resume_to_the_same_files_or_leave_nothing() {
    let dir = temp_dir("resume");
    let cfg = workspace().join("examples/valley_sgd.toml");
    let size = [
        "--steps",
        "20000",
        "--trajectories",
        "2048",
        "--record-every",
        "2000",
        "--no-progress",
    ];
    let whole = dir.join("whole");
    let o = run(bin()
        .arg("simulate")
        .arg(&cfg)
        .arg("--out")
        .arg(&whole)
        .args(size));
    assert!(o.status.success(), "{}", text(&o.stderr));

    let out = dir.join("out");
    let partial = dir.join("out.partial");
    // Start `simulate` with `extra`, wait until `ready()` (60 s at most) and `settle` more,
    // send SIGINT, and collect the output.
    let interrupt = |extra: &[&str], ready: &dyn Fn() -> bool, settle_ms: u64| {
        let child = bin()
            .arg("simulate")
            .arg(&cfg)
            .arg("--out")
            .arg(&out)
            .args(size)
            .args(extra)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while !ready() {
            assert!(t0.elapsed().as_secs() < 60, "the run never got ready");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::thread::sleep(std::time::Duration::from_millis(settle_ms));
        let k = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(k.success());
        child.wait_with_output().unwrap()
    };
    let checkpoint = partial.join("checkpoint.json");
    let o = interrupt(&["--checkpoint-every", "16"], &|| checkpoint.exists(), 0);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--resume"), "{}", text(&o.stderr));
    assert!(!out.exists() && partial.join("checkpoint.json").is_file());
    let o = run(bin()
        .arg("simulate")
        .arg("--resume")
        .arg(&partial)
        .arg("--no-progress"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!partial.exists(), "the checkpoint folder was not renamed");
    assert_same_files(&whole, &out, "resumed run");

    // Without checkpoints: the staging folder goes, the earlier output stays as it was.
    let before = std::fs::read(out.join("summary.csv")).unwrap();
    let staging_exists = || {
        std::fs::read_dir(&dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".staging-")
        })
    };
    let o = interrupt(&["--seed", "3"], &staging_exists, 100);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert!(!staging_exists(), "the staging folder was left behind");
    assert_eq!(std::fs::read(out.join("summary.csv")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the machine cannot hold are refused before they start (exit 2, a suggestion,
/// nothing written); `compare --h` must divide record_every.
#[test]
fn impossible_sizes_and_bad_h_are_refused() {
    let cfg = write_config("huge", GOOD);
    let out = cfg.parent().unwrap().join("out");
    let o = run(bin()
        .arg("simulate")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args([
            "--steps",
            "100000000",
            "--trajectories",
            "100000",
            "--record-every",
            "1",
        ]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("`record_every` =") && err.contains("memory"),
        "{err}"
    );
    assert!(!out.exists());
    let o = run(bin()
        .arg("compare")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--h", "7"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("a divisor of record_every = 10: 1, 2, 5, 10"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.exists());
    // A file as --out is refused before any work.
    let file = cfg.parent().unwrap().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let t0 = std::time::Instant::now();
    let o = run(bin().arg("simulate").arg(&cfg).arg("--out").arg(&file));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("this path is a file"));
    assert!(t0.elapsed().as_secs() < 30);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
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
