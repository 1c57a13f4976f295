//! `quasistatic`: the command-line interface. It parses and validates arguments, then calls
//! the library; all logic lives in the library crates (`quasistatic`, `quasistatic-studies`, `quasistatic-bench`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use quasistatic::config::Config;
use quasistatic::Error;
use quasistatic_bench as bench;
use quasistatic_studies::{run, studies, validate};

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
        config: PathBuf,
        /// Output folder (created if missing; files in it are replaced atomically).
        #[arg(long, short)]
        out: PathBuf,
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
        /// Optimizer steps per step of the derived SDE (default: automatic from the
        /// diagnostics, a divisor of record_every).
        #[arg(long)]
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
            match e {
                Error::InvalidConfig { .. } | Error::ConfigParse { .. } | Error::Data { .. } => {
                    ExitCode::from(2)
                }
                _ => ExitCode::from(1),
            }
        }
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
        } => {
            let mut cfg = Config::load(&config)?;
            if let Some(s) = seed {
                cfg.seed = s;
            }
            if let Some(s) = steps {
                cfg.steps = s;
            }
            if let Some(n) = trajectories {
                cfg.trajectories = n;
            }
            if let Some(k) = record_every {
                cfg.record_every = k;
            }
            let outcome = run::simulate(&cfg, &out, !no_progress)?;
            let r = &outcome.result;
            println!(
                "simulated {} trajectories x {} steps in {:.2} s ({:.3e} trajectory-steps/s)",
                r.trajectories,
                cfg.steps,
                r.seconds,
                r.gradient_evaluations as f64 / r.seconds.max(1e-9)
            );
            report_divergences(r);
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
            let options = quasistatic::derive::DeriveOptions::default();
            let derivation = quasistatic::with_model!(&built.model, m => quasistatic::derive::derive(
                m, &built.noise, &built.optimizer, &point, &options))?;
            print!("{}", derivation.table());
            if let Some(dir) = out {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
                let path = dir.join("derivation.json");
                let json = serde_json::to_string_pretty(&derivation).map_err(|e| {
                    Error::Numerical(format!("cannot serialise the derivation: {e}"))
                })?;
                quasistatic_studies::output::write_atomic(&path, json.as_bytes())?;
                println!("wrote {}", path.display());
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
            if h == Some(0) {
                return Err(Error::invalid("--h", 0, "an integer >= 1"));
            }
            let mut cfg = Config::load(&config)?;
            if let Some(n) = trajectories {
                cfg.trajectories = n;
            }
            if let Some(s) = steps {
                cfg.steps = s;
            }
            if let Some(k) = record_every {
                cfg.record_every = k;
            }
            if eta_sweep {
                let sweep = validate::eta_sweep(&cfg, &out, &[1.0, 0.5, 0.25], tolerance, true)?;
                for c in &sweep.comparisons {
                    println!("eta {:.3e}: {}", c.eta, validate::verdict(c));
                }
                println!(
                    "slope of log gap vs log eta: {:.2} +- {:.2}",
                    sweep.slope, sweep.slope_se
                );
                println!("wrote {}", out.join("sweep.md").display());
            } else {
                let (c, report) = validate::compare(&cfg, &out, h, tolerance, true)?;
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
                for t in bench::derive::standard_benchmarks(repeats as usize)? {
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

fn report_divergences(r: &quasistatic::simulate::EnsembleResult) {
    const SHOWN: usize = 10;
    for d in r.divergences.iter().take(SHOWN) {
        eprintln!("warning: {d}");
    }
    if r.divergences.len() > SHOWN {
        eprintln!(
            "warning: ... and {} more diverged trajectories (see summary.json)",
            r.divergences.len() - SHOWN
        );
    }
}
