//! `quasistatic`: the command-line interface. It parses and validates arguments, then calls
//! the library; all logic lives in the library crates (`quasistatic`, `quasistatic-studies`, `quasistatic-bench`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::{Parser, Subcommand, ValueEnum};
use quasistatic::config::Config;
use quasistatic::Error;
use quasistatic_bench as bench;
use quasistatic_studies::{run, staging, studies, validate};

/// Set by the first Ctrl-C while a command that stops cleanly runs (`simulate`).
static STOP: AtomicBool = AtomicBool::new(false);
/// Whether the running command checks [`STOP`] (otherwise Ctrl-C removes the staging
/// folders and exits at once).
static STOPS_CLEANLY: AtomicBool = AtomicBool::new(false);
/// Ctrl-C presses so far.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Exit status of an interrupted run (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// Ctrl-C: the first press asks a cleanly stopping command to stop (it removes its staging
/// folder, or keeps its checkpoint, and exits 130); a second press, or any press during
/// another command, removes every staging folder and exits 130 at once.
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        let n = SIGNALS.fetch_add(1, Ordering::SeqCst);
        if n == 0 && STOPS_CLEANLY.load(Ordering::SeqCst) {
            eprintln!("\ninterrupt: stopping (press Ctrl-C again to quit at once)");
            STOP.store(true, Ordering::SeqCst);
        } else {
            staging::remove_all();
            eprintln!("\ninterrupted: nothing written");
            std::process::exit(EXIT_INTERRUPTED.into());
        }
    });
}

/// Stochastic optimizers on manifolds of minima: simulate them, derive their effective
/// manifold dynamics, and compare the two.
#[derive(Parser, Debug)]
#[command(name = "quasistatic", version, about, long_about = None)]
struct Cli {
    /// Worker threads for ensembles (default: all cores). Results do not depend on it.
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an ensemble of the true optimizer dynamics described by a TOML config and write
    /// the resolved config, tidy CSVs, a JSON summary, SVG plots and a report into --out.
    Simulate {
        /// The TOML configuration (see README "Configuration reference" and examples/).
        #[arg(required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Output folder. It is checked before the run; the run is written beside it and
        /// renamed into place when complete, replacing an earlier quasistatic output folder
        /// whole (a folder holding other files is refused).
        #[arg(long, short, required_unless_present = "resume")]
        out: Option<PathBuf>,
        /// Save a checkpoint after every N trajectories (rounded up to a multiple of 8) in
        /// `<out>.partial`; an interrupted run (Ctrl-C) keeps it for --resume.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_every: Option<u64>,
        /// Continue the interrupted run whose checkpoint folder (`<out>.partial`) is DIR; the
        /// result is the same, byte for byte, as an uninterrupted run's.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "seed", "steps", "trajectories", "record_every"])]
        resume: Option<PathBuf>,
        /// Override `seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Override `steps` (optimizer steps per trajectory, >= 1).
        #[arg(long)]
        steps: Option<u64>,
        /// Override `trajectories` (ensemble size, >= 1).
        #[arg(long)]
        trajectories: Option<usize>,
        /// Override `record_every` (steps between records, 1..=steps).
        #[arg(long)]
        record_every: Option<u64>,
        /// Do not draw a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Derive the quasistatic manifold dynamics (normal equilibrium, drift, diffusion,
    /// implicit regularisers, diagnostics) of the config's optimizer and noise at a point,
    /// print a table, and write `derivation.json` into --out when given.
    Derive {
        /// The TOML configuration (its [model], [data], [noise], [optimizer]; the point is
        /// `start.theta` or the model's default start unless --at is given).
        config: PathBuf,
        /// The point, comma-separated (d numbers); it is projected onto the manifold first.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        at: Option<Vec<f64>>,
        /// Output folder for derivation.json.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Run the true optimizer (started in its normal equilibrium around the config's start,
    /// projected onto the manifold) and the derived manifold dynamics from the same point;
    /// write overlaid plots, a gap table with Monte-Carlo intervals and a verdict into --out.
    Compare {
        /// The TOML configuration (constant learning rate).
        config: PathBuf,
        /// Output folder.
        #[arg(long, short)]
        out: PathBuf,
        /// Repeat at eta x 1, 1/2, 1/4 (horizon fixed in slow time eta^2 k; Adam's 1 - beta2
        /// scaled with eta^2) and fit the slope of log gap against log eta.
        #[arg(long)]
        eta_sweep: bool,
        /// Optimizer steps per step of the derived SDE, 1..=record_every (default: automatic
        /// from the diagnostics, a divisor of record_every).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        h: Option<u64>,
        /// Largest relative gap (gap / range of the true mean) that still "agrees".
        #[arg(long, default_value_t = 0.1)]
        tolerance: f64,
        /// Override `trajectories`.
        #[arg(long)]
        trajectories: Option<usize>,
        /// Override `steps`.
        #[arg(long)]
        steps: Option<u64>,
        /// Override `record_every`.
        #[arg(long)]
        record_every: Option<u64>,
    },
    /// Validate a config without running it: prints the resolved model, noise and optimizer.
    Check {
        /// The TOML configuration.
        config: PathBuf,
    },
    /// The main job: run the built-in studies and write DIR/report.md with every figure and
    /// table.
    Reproduce {
        /// `tiny` (seconds, smoke test), `quick` (minutes on two cores) or `full` (publication-size).
        #[arg(long, value_enum, default_value_t = Scale::Quick)]
        scale: Scale,
        /// Output folder.
        #[arg(long, short, default_value = "results")]
        out: PathBuf,
        /// Run only these studies (comma-separated: closeness, momentum_scaling,
        /// adam_rotation, flatness).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Measure throughput (trajectory-steps per second) of the simulator on the standard
    /// tasks and print a table.
    Bench {
        /// About 10x fewer steps, for a smoke test.
        #[arg(long)]
        quick: bool,
        /// Comma-separated tasks among t1 (valley), t2 (product), t3 (diagonal network),
        /// t4 (two-layer tanh network).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "t1,t2,t3,t4",
            value_parser = |s: &str| bench::Task::parse(s).ok_or(format!("unknown task `{s}`"))
        )]
        tasks: Vec<bench::Task>,
        /// Timed repetitions of every run; the median is reported.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        repeats: u32,
        /// Write throughputs and per-checkpoint ensemble statistics to this JSON file, and the
        /// task definitions (parameters, data, start points) to `tasks.json` beside it.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also time one full derivation (`derive`) for the diagonal network (p = 100,
        /// n = 40, dense path) and a two-layer tanh network with d = 10^5 parameters and
        /// n = 100 samples (low-rank Jacobian path), at manifold points.
        #[arg(long)]
        derive: bool,
        /// With --derive: also time one derivation at d = 10^6 (two-layer tanh network of
        /// width 10 000, n = 100; several GiB of memory, about a minute).
        #[arg(long, requires = "derive")]
        derive_large: bool,
        /// With --derive: derived SDE steps timed at d = 10^5 (reported per 1 000 steps).
        #[arg(long, default_value_t = 20, requires = "derive", value_parser = clap::value_parser!(u64).range(1..))]
        sde_steps: u64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scale {
    /// Seconds: smoke test (effects' directions only).
    Tiny,
    /// Minutes on two cores.
    Quick,
    Full,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_interrupt_handler();
    if let Some(t) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(t as usize)
            .build_global()
        {
            eprintln!("error: cannot start {t} threads: {e}");
            return ExitCode::from(1);
        }
    }
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit status of an error (README "Limits and failure behaviour"): 2 invalid input or a
/// run the machine cannot hold, 3 every trajectory diverged, 130 interrupted, 1 otherwise.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::InvalidConfig { .. }
        | Error::ConfigParse { .. }
        | Error::Data { .. }
        | Error::Resources { .. } => 2,
        Error::AllDiverged { .. } => 3,
        Error::Interrupted => EXIT_INTERRUPTED,
        Error::Io { .. } | Error::Numerical(_) => 1,
    }
}

/// Warn on stderr when `lr * lambda_max` at `theta` exceeds the optimizer's stability bound.
fn warn_stability(built: &quasistatic::config::Built, theta: &[f64], at: &str) {
    let s = quasistatic::with_model!(&built.model, m => quasistatic::derive::stability::stability_at(m, &built.optimizer, theta));
    if let Some(s) = s {
        if !s.holds() {
            eprintln!(
                "warning: lr * lambda_max = {} * {:.4e} = {:.4e} at {at} exceeds the stability bound {:.4} of {}: \
                 the normal oscillation grows, so trajectories will likely diverge (lower lr below {:.4e})",
                s.lr,
                s.lambda_max,
                s.product(),
                s.bound,
                built.optimizer.name(),
                s.bound / s.lambda_max
            );
        }
    }
}

fn print_estimate(est: &run::Estimate) {
    for (k, v) in run::describe_estimate(est) {
        eprintln!("estimate: {k:<7} {v}");
    }
}

fn execute(command: Command) -> quasistatic::Result<()> {
    match command {
        Command::Simulate {
            config,
            out,
            seed,
            steps,
            trajectories,
            record_every,
            no_progress,
            checkpoint_every,
            resume,
        } => {
            STOPS_CLEANLY.store(true, Ordering::SeqCst);
            let checkpoint_every =
                checkpoint_every.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            let options = run::SimulateOptions {
                progress: !no_progress,
                checkpoint_every,
                stop: Some(&STOP),
                on_estimate: Some(&print_estimate),
            };
            let result = match (&resume, config) {
                (Some(dir), _) => run::resume(dir, out.as_deref(), options),
                (None, Some(config)) => {
                    let mut cfg = Config::load(&config)?;
                    cfg.override_run(seed, steps, trajectories, record_every);
                    let out = out
                        .as_deref()
                        .expect("clap requires --out without --resume");
                    run::simulate(&cfg, out, options)
                }
                (None, None) => unreachable!("clap requires a config without --resume"),
            };
            let outcome = match result {
                Ok(o) => o,
                Err(Error::Interrupted) if checkpoint_every.is_some() || resume.is_some() => {
                    let kept = match (&resume, out.as_deref()) {
                        (Some(dir), _) => dir.clone(),
                        (None, Some(out)) => run::partial_dir(out)?,
                        (None, None) => unreachable!("clap requires --out without --resume"),
                    };
                    eprintln!(
                        "interrupted: the checkpoint is in {}; continue with\n  quasistatic simulate --resume {}",
                        kept.display(),
                        kept.display()
                    );
                    return Err(Error::Interrupted);
                }
                Err(e) => return Err(e),
            };
            println!(
                "simulated {} trajectories x {} steps in {:.2} s ({:.3e} trajectory-steps/s)",
                outcome.trajectories,
                outcome.gradient_evaluations / outcome.trajectories.max(1) as u64,
                outcome.seconds,
                outcome.gradient_evaluations as f64 / outcome.seconds.max(1e-9)
            );
            report_divergences(&outcome.divergences, outcome.diverged, outcome.trajectories);
            for f in &outcome.files {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Derive { config, at, out } => {
            let cfg = Config::load(&config)?;
            let built = cfg.build()?;
            let d = built.model.dim();
            let point = match at {
                Some(p) => {
                    if p.len() != d {
                        return Err(Error::invalid(
                            "--at",
                            format!("{} numbers", p.len()),
                            format!("exactly {d} comma-separated numbers (the model has d = {d} parameters)"),
                        ));
                    }
                    if let Some(x) = p.iter().find(|x| !x.is_finite()) {
                        return Err(Error::invalid("--at", x, "finite numbers"));
                    }
                    p
                }
                None => built.spec.start.clone(),
            };
            let staging = out.as_deref().map(staging::Staging::new).transpose()?;
            warn_stability(&built, &point, "the point");
            let options = quasistatic::derive::DeriveOptions {
                adam: built.adam_options.clone().unwrap_or_default(),
                ..quasistatic::derive::DeriveOptions::default()
            };
            let derivation = quasistatic::with_model!(&built.model, m => quasistatic::derive::derive(
                m, &built.noise, &built.optimizer, &point, &options))?;
            print!("{}", derivation.table());
            if let Some(staging) = staging {
                let json = serde_json::to_string_pretty(&derivation).map_err(|e| {
                    Error::Numerical(format!("cannot serialise the derivation: {e}"))
                })?;
                quasistatic_studies::output::write_atomic(
                    &staging.path().join("derivation.json"),
                    json.as_bytes(),
                )?;
                let dir = staging.commit()?;
                println!("wrote {}", dir.join("derivation.json").display());
            }
            Ok(())
        }
        Command::Compare {
            config,
            out,
            eta_sweep,
            h,
            tolerance,
            trajectories,
            steps,
            record_every,
        } => {
            if !(tolerance.is_finite() && tolerance > 0.0) {
                return Err(Error::invalid("--tolerance", tolerance, "a number > 0"));
            }
            let mut cfg = Config::load(&config)?;
            cfg.override_run(None, steps, trajectories, record_every);
            if let Some(h) = h {
                let every = cfg.record_every;
                if every == 0 || !every.is_multiple_of(h) {
                    let divisors: Vec<String> = (1..=every.min(1_000_000))
                        .filter(|k| every.is_multiple_of(*k))
                        .take(12)
                        .map(|k| k.to_string())
                        .collect();
                    return Err(Error::invalid(
                        "--h",
                        h,
                        format!(
                            "a divisor of record_every = {every}: {}{} (the SDE must land on every record)",
                            divisors.join(", "),
                            if divisors.len() == 12 { ", ..." } else { "" }
                        ),
                    ));
                }
            }
            let staging = staging::Staging::new(&out)?;
            let built = cfg.build()?;
            warn_stability(&built, &built.spec.start, "the start");
            let est = run::estimate(&cfg, &built)?;
            run::check_in_memory(&est, if eta_sweep { 6 } else { 3 })?;
            let dir = staging.path().to_path_buf();
            if eta_sweep {
                let sweep = validate::eta_sweep(&cfg, &dir, &[1.0, 0.5, 0.25], tolerance, true)?;
                let out = staging.commit()?;
                for c in &sweep.comparisons {
                    println!("eta {:.3e}: {}", c.eta, validate::verdict(c));
                }
                println!(
                    "slope of log gap vs log eta: {:.2} +- {:.2}",
                    sweep.slope, sweep.slope_se
                );
                println!("wrote {}", out.join("sweep.md").display());
            } else {
                let (c, report) = validate::compare(&cfg, &dir, h, tolerance, true)?;
                let out = staging.commit()?;
                let report = out.join(report.strip_prefix(&dir).unwrap_or(&report));
                println!("{}", validate::verdict(&c));
                println!(
                    "cost: true {} gradients in {:.2} s, derived {} gradient-equivalents in {:.2} s",
                    c.true_gradient_evaluations, c.true_seconds, c.derived_gradient_evaluations, c.derived_seconds
                );
                println!("wrote {}", report.display());
            }
            Ok(())
        }
        Command::Check { config } => {
            let cfg = Config::load(&config)?;
            let built = cfg.build()?;
            println!("{} is valid:", config.display());
            for (k, v) in run::describe(&cfg, &built) {
                println!("  {k:<13} {v}");
            }
            println!(
                "  {:<13} {}",
                "observables",
                built
                    .spec
                    .observables
                    .iter()
                    .map(|o| o.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let est = run::estimate(&cfg, &built)?;
            for (k, v) in run::describe_estimate(&est) {
                println!("  {k:<13} {v}");
            }
            warn_stability(&built, &built.spec.start, "the start");
            run::check_resources(&cfg, &est, None)?;
            Ok(())
        }
        Command::Reproduce { scale, out, only } => {
            let scale = match scale {
                Scale::Tiny => studies::Scale::Tiny,
                Scale::Quick => studies::Scale::Quick,
                Scale::Full => studies::Scale::Full,
            };
            let report = studies::reproduce(scale, &out, &only)?;
            println!("wrote {}", report.display());
            Ok(())
        }
        Command::Bench {
            quick,
            tasks,
            repeats,
            json,
            derive,
            derive_large,
            sde_steps,
        } => {
            let opts = bench::BenchOptions {
                quick,
                tasks,
                repeats: repeats as usize,
                json: json.clone(),
            };
            print!("{}", bench::run(&opts)?);
            if derive {
                println!("\n| derivation | d | n | path | normal rank | projection of the start (s) | derivation (s, best of {repeats}) |");
                println!("|---|---:|---:|---|---:|---:|---:|");
                for t in bench::derive::standard_benchmarks(
                    repeats as usize,
                    &bench::derive::ScaleOptions {
                        large: derive_large,
                        sde_steps,
                    },
                )? {
                    println!(
                        "| {} / {} | {} | {} | {} | {} | {:.3} | {:.3} |",
                        t.model,
                        t.optimizer,
                        t.dim,
                        t.samples,
                        t.path,
                        t.normal_rank,
                        t.projection_seconds,
                        t.best_seconds
                    );
                }
            }
            if let Some(path) = json {
                println!(
                    "wrote {} and {}",
                    path.display(),
                    path.with_file_name("tasks.json").display()
                );
            }
            Ok(())
        }
    }
}

fn report_divergences(
    divergences: &[quasistatic::simulate::Divergence],
    diverged: usize,
    trajectories: usize,
) {
    const SHOWN: usize = 10;
    for d in divergences.iter().take(SHOWN) {
        eprintln!("warning: {d}");
    }
    if diverged > SHOWN {
        eprintln!(
            "warning: ... and {} more diverged trajectories (see summary.json)",
            diverged - SHOWN
        );
    }
    if diverged > 0 {
        eprintln!("warning: {diverged} of {trajectories} trajectories diverged; the statistics are over the others");
    }
}
