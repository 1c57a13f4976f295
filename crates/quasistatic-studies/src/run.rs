//! Configuration-driven runs: build from a [`Config`], estimate what the run needs, run it in
//! blocks of trajectories, and write the output folder transactionally.
//!
//! A run of `simulate`:
//! 1. checks `--out` ([`Staging::new`]) and estimates memory, disk and time ([`estimate`]),
//!    refusing a run the machine cannot hold ([`check_resources`]);
//! 2. runs the ensemble in blocks of consecutive trajectories ([`block_size`]); each block's
//!    rows are appended to `trajectories.csv` and its records folded into streaming statistics
//!    ([`EnsembleWriter`]), so memory does not grow with the records written;
//! 3. with checkpoints, saves the writer's state after every `checkpoint_every` trajectories
//!    into the staging folder `<out>.partial`, which survives an interruption and which
//!    [`resume`] continues: the files are the same bytes as an uninterrupted run's (the wall
//!    time in `summary.json` aside);
//! 4. renames the staging folder into place ([`Staging::commit`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::output::{EnsembleWriter, RunMeta, CHECKPOINT};
use crate::staging::Staging;
use quasistatic::config::{Built, Config};
use quasistatic::engine::LANES;
use quasistatic::error::{Error, Result};
use quasistatic::record::{checkpoint_count, checkpoints};
use quasistatic::simulate::{run_ensemble_until, Divergence, EnsembleSpec};
use quasistatic::stats::SummaryAccumulator;

/// What a finished simulation produced.
#[derive(Debug)]
pub struct SimulationOutcome {
    /// Trajectories run.
    pub trajectories: usize,
    /// Stochastic gradients evaluated.
    pub gradient_evaluations: u64,
    /// Wall time of the ensemble in seconds (all sessions of a resumed run).
    pub seconds: f64,
    /// Diverged trajectories (the first [`crate::output::LISTED_DIVERGENCES`] of them).
    pub divergences: Vec<Divergence>,
    /// How many trajectories diverged.
    pub diverged: usize,
    /// The output folder.
    pub out: PathBuf,
    /// Files written (their final paths).
    pub files: Vec<PathBuf>,
}

/// How a run of [`simulate`] is driven.
#[derive(Clone, Copy, Default)]
pub struct SimulateOptions<'a> {
    /// Draw a progress bar on a terminal.
    pub progress: bool,
    /// Save a checkpoint after every this many trajectories (rounded up to a multiple of
    /// [`LANES`]); `None`: no checkpoints.
    pub checkpoint_every: Option<usize>,
    /// Stop the run when set (e.g. by Ctrl-C): it ends with [`Error::Interrupted`]; with
    /// checkpoints, the last complete block's checkpoint is kept for [`resume`].
    pub stop: Option<&'a AtomicBool>,
    /// Told the run's [`Estimate`] before it starts (e.g. to print it).
    pub on_estimate: Option<&'a dyn Fn(&Estimate)>,
}

/// Key facts of a built configuration, for reports.
pub fn describe(config: &Config, built: &Built) -> Vec<(String, String)> {
    let noise = match &built.noise {
        quasistatic::noise::NoiseModel::Label { sigma, batch } => {
            format!(
                "{} (sigma {sigma}, batch {})",
                built.noise.name(),
                batch.map_or("full".into(), |b| b.to_string())
            )
        }
        quasistatic::noise::NoiseModel::Isotropic { sigma, batch }
        | quasistatic::noise::NoiseModel::Hessian { sigma, batch } => {
            format!("{} (sigma {sigma}, divisor {batch})", built.noise.name())
        }
        other => other.name().to_string(),
    };
    vec![
        (
            "model".into(),
            format!(
                "{} (d = {}, n = {})",
                built.model.name(),
                built.model.dim(),
                built.model.n_samples()
            ),
        ),
        ("noise".into(), noise),
        ("optimizer".into(), built.optimizer.to_string()),
        ("steps".into(), config.steps.to_string()),
        ("trajectories".into(), config.trajectories.to_string()),
        ("record_every".into(), config.record_every.to_string()),
        ("seed".into(), config.seed.to_string()),
    ]
}

/// Records held by one block of a run at most (2^22 values, 32 MiB), unless a block of
/// [`min_block`] trajectories needs more.
const BLOCK_VALUES: usize = 1 << 22;

/// The smallest block: four groups of [`LANES`] trajectories per thread, so that every thread
/// stays busy.
fn min_block() -> usize {
    4 * LANES * rayon::current_num_threads()
}

/// Trajectories per block of a run of `trajectories` with `cells` records each
/// (checkpoints x observables): as many as fit in [`BLOCK_VALUES`] values, at least
/// [`min_block`], a multiple of [`LANES`], at most `checkpoint_every` (rounded up to
/// [`LANES`]) and at most the run. Blocks do not change results (each trajectory draws from
/// its own streams).
pub fn block_size(trajectories: usize, cells: usize, checkpoint_every: Option<usize>) -> usize {
    let mut b = (BLOCK_VALUES / cells.max(1)).max(min_block());
    if let Some(c) = checkpoint_every {
        b = b.min(c.max(1).div_ceil(LANES) * LANES);
    }
    b = b.div_ceil(LANES) * LANES;
    b.min(trajectories).max(1)
}

/// What a run is estimated to need, from its configuration and a short timed pilot run.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Peak memory of the run beyond the model and its data (records of a block, streaming
    /// statistics, per-thread work buffers), bytes.
    pub memory_bytes: u64,
    /// Size of the output folder, bytes (dominated by `trajectories.csv` if saved).
    pub disk_bytes: u64,
    /// Measured throughput of the pilot, trajectory-steps per second (all threads).
    pub trajectory_steps_per_second: f64,
    /// Estimated wall time, seconds.
    pub seconds: f64,
    /// Checkpoints (records per trajectory and observable).
    pub checkpoints: usize,
    /// Bytes of every record of the ensemble at once (what a command that keeps the whole
    /// ensemble in memory, such as `compare`, needs per ensemble).
    pub records_bytes: u64,
    /// Trajectories per block.
    pub block: usize,
}

/// Bytes of a `trajectories.csv` row besides the value: step, trajectory and observable
/// name with separators (an upper estimate; values take up to 24 characters).
fn csv_row_bytes(steps: u64, trajectories: usize, name_len: usize) -> u64 {
    let digits = |x: u64| x.max(1).ilog10() as u64 + 1;
    digits(steps) + digits(trajectories as u64) + name_len as u64 + 3 + 22
}

/// Estimate memory, disk and time of the run of `config` (built as `built`); the time comes
/// from a pilot of one group per thread over at most 4096 steps (fewer for large models).
pub fn estimate(config: &Config, built: &Built) -> Result<Estimate> {
    let spec = &built.spec;
    let n = spec.trajectories;
    let cps =
        usize::try_from(checkpoint_count(spec.steps, spec.record_every)).unwrap_or(usize::MAX);
    let n_obs = spec.observables.len();
    let cells = cps.saturating_mul(n_obs);
    let block = block_size(n, cells, None);
    let d = built.model.dim() as u64;
    let threads = rayon::current_num_threads() as u64;
    // A block's records twice (per-trajectory outputs and the assembled block), the streaming
    // statistics, and per thread a group's parameters, gradients, optimizer state and noise
    // work space (about 12 vectors of d x LANES).
    let memory_bytes = (2 * 8 * block as u64)
        .saturating_mul(cells as u64)
        .saturating_add(SummaryAccumulator::memory_bytes(n, cps, n_obs))
        .saturating_add(threads * 12 * 8 * LANES as u64 * d)
        .saturating_add(crate::output::LISTED_DIVERGENCES as u64 * 200);
    let name_len = spec
        .observables
        .iter()
        .map(|o| o.name().len())
        .max()
        .unwrap_or(4);
    let summary_bytes = (cells as u64).saturating_mul(9 * 40 + 9 * 25);
    let disk_bytes = if config.save_trajectories {
        (n as u64)
            .saturating_mul(cells as u64)
            .saturating_mul(csv_row_bytes(spec.steps, n, name_len))
    } else {
        0
    }
    .saturating_add(summary_bytes)
    .saturating_add(n_obs as u64 * 60_000);
    // Pilot: one group per thread, at most 4096 steps and about 2e7 parameter-sample
    // products per trajectory.
    let work = (d * built.model.n_samples().max(1) as u64).max(1);
    let pilot_steps = (20_000_000 / work).clamp(1, 4096).min(spec.steps);
    let pilot = EnsembleSpec {
        steps: pilot_steps,
        record_every: pilot_steps,
        // One trajectory for a large model (a gradient of more than 10^6 products).
        trajectories: if work > 1_000_000 {
            1
        } else {
            (LANES * threads as usize).min(n)
        },
        first_trajectory: 0,
        progress: None,
        ..spec.clone()
    };
    let never = AtomicBool::new(false);
    let t0 = Instant::now();
    let r = quasistatic::with_model!(&built.model, m => run_ensemble_until(m, &built.noise, &built.optimizer, &pilot, &never))?;
    let elapsed = t0.elapsed().as_secs_f64().max(1e-6);
    // A one-trajectory pilot ran on one thread; the run uses them all.
    let parallel = if pilot.trajectories == 1 {
        threads.min(n as u64) as f64
    } else {
        1.0
    };
    let rate = parallel * (r.gradient_evaluations.max(1)) as f64 / elapsed;
    let total = n as f64 * spec.steps as f64;
    Ok(Estimate {
        memory_bytes,
        disk_bytes,
        trajectory_steps_per_second: rate,
        seconds: total / rate,
        checkpoints: cps,
        records_bytes: (n as u64).saturating_mul(cells as u64).saturating_mul(8),
        block,
    })
}

/// Bytes in words: `"41.2 GiB"`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds in words: `"3.2 s"`, `"14 min"`, `"5.1 h"`, `"9.3 days"`, `"2.1 years"`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        "forever".into()
    } else if s < 0.1 {
        "under 0.1 s".into()
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 86_400.0 * 2.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s < 86_400.0 * 365.0 {
        format!("{:.1} days", s / 86_400.0)
    } else {
        format!("{:.1} years", s / (86_400.0 * 365.25))
    }
}

/// Memory available to a new run: `MemAvailable` of `/proc/meminfo` (Linux), else `None`.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Free disk space of the file system holding `path` (or its nearest existing ancestor).
pub fn available_disk(path: &Path) -> Option<u64> {
    let mut p = if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path.to_path_buf()
    };
    while !p.exists() {
        p = match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => q.to_path_buf(),
            _ => PathBuf::from("."),
        };
    }
    free_space(&p)
}

#[cfg(unix)]
fn free_space(p: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter;
    // statvfs writes only into `s`. No crate in the workspace reports free disk space.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_space(_: &Path) -> Option<u64> {
    None
}

/// Refuse (with [`Error::Resources`], exit code 2 in the command-line interface) a run whose
/// estimated memory exceeds the memory available, or whose output exceeds the free disk
/// space where `out` goes; the message says what to change.
pub fn check_resources(config: &Config, est: &Estimate, out: Option<&Path>) -> Result<()> {
    if let Some(avail) = available_memory() {
        if est.memory_bytes > avail {
            let per_checkpoint = (est.memory_bytes / est.checkpoints.max(1) as u64).max(1);
            let fits = (avail / 2 / per_checkpoint).max(1);
            let every = config.steps.div_ceil(fits).max(config.record_every + 1);
            return Err(Error::Resources {
                what: format!(
                    "the run ({} records per trajectory and observable)",
                    est.checkpoints
                ),
                needed: bytes(est.memory_bytes),
                available: format!("{} of memory is available", bytes(avail)),
                suggestion: format!(
                    "record less often (`record_every` = {every} or more), or run fewer `steps`"
                ),
            });
        }
    }
    if let Some(free) = out.and_then(available_disk) {
        if est.disk_bytes > free {
            return Err(Error::Resources {
                what: "the output folder".into(),
                needed: bytes(est.disk_bytes),
                available: format!("{} of disk is free there", bytes(free)),
                suggestion: if config.save_trajectories {
                    "set `save_trajectories` = false (summaries only), raise `record_every`, or run fewer `trajectories`".into()
                } else {
                    "raise `record_every`".into()
                },
            });
        }
    }
    Ok(())
}

/// Refuse (as [`check_resources`]) a command that holds `copies` whole ensembles of records
/// in memory (`compare`: the true and the derived ensemble, and their summaries).
pub fn check_in_memory(est: &Estimate, copies: u64) -> Result<()> {
    let needed = est.records_bytes.saturating_mul(copies);
    match available_memory() {
        Some(avail) if needed > avail => Err(Error::Resources {
            what: "comparing the ensembles in memory".into(),
            needed: bytes(needed),
            available: format!("{} of memory is available", bytes(avail)),
            suggestion:
                "use fewer `trajectories` (--trajectories) or a larger `record_every` (--record-every)"
                    .into(),
        }),
        _ => Ok(()),
    }
}

/// Lines of an estimate for `check` and `simulate` (with a warning for a run of more than a
/// day).
pub fn describe_estimate(est: &Estimate) -> Vec<(String, String)> {
    let mut lines = vec![
        (
            "memory".into(),
            format!("about {}", bytes(est.memory_bytes)),
        ),
        ("disk".into(), format!("about {}", bytes(est.disk_bytes))),
        (
            "time".into(),
            format!(
                "about {} ({:.2e} trajectory-steps/s measured)",
                duration(est.seconds),
                est.trajectory_steps_per_second
            ),
        ),
    ];
    if est.seconds > 86_400.0 {
        lines.push((
            "warning".into(),
            format!(
                "this run would take about {}: fewer trajectories or steps?",
                duration(est.seconds)
            ),
        ));
    }
    lines
}

/// The file in a checkpointed staging folder that says where the run goes.
const TARGET: &str = ".out";

/// Validate `config`, run its ensemble and write the output folder `out` (resolved config,
/// CSVs, JSON summary, plots, report), transactionally: `out` is checked before any work and
/// replaced whole at the end. Every trajectory diverging is [`Error::AllDiverged`] (and
/// nothing is written).
pub fn simulate(
    config: &Config,
    out: &Path,
    options: SimulateOptions<'_>,
) -> Result<SimulationOutcome> {
    let staging = match options.checkpoint_every {
        None => Staging::new(out)?,
        Some(_) => {
            let partial = partial_dir(out)?;
            if partial.join(CHECKPOINT).is_file() {
                return Err(Error::invalid(
                    "--out",
                    out.display(),
                    format!(
                        "a folder without an interrupted run: {} holds a checkpoint; continue it \
                         with `quasistatic simulate --resume {}` or remove it",
                        partial.display(),
                        partial.display()
                    ),
                ));
            }
            let name = partial
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            Staging::new_named(out, &name.unwrap_or_default())?
        }
    };
    let built = config.build()?;
    let est = estimate(config, &built)?;
    if let Some(f) = options.on_estimate {
        f(&est);
    }
    check_resources(config, &est, Some(out))?;
    let meta = run_meta(config, &built);
    std::fs::write(staging.path().join("config.toml"), &meta.config_toml)
        .map_err(|e| Error::io(format!("cannot write into {}", staging.path().display()), e))?;
    if options.checkpoint_every.is_some() {
        let target = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
        std::fs::write(
            staging.path().join(TARGET),
            target.to_string_lossy().as_bytes(),
        )
        .map_err(|e| Error::io(format!("cannot write into {}", staging.path().display()), e))?;
    }
    let names: Vec<String> = built.spec.observables.iter().map(|o| o.name()).collect();
    let cps = checkpoints(built.spec.steps, built.spec.record_every);
    let writer = EnsembleWriter::new(
        staging.path(),
        &names,
        &cps,
        built.spec.trajectories,
        config.save_trajectories,
    )?;
    run_blocks(&built, staging, writer, &meta, options)
}

/// The checkpoint folder `<out>.partial` beside `out` of a run with checkpoints (where
/// [`resume`] continues from).
pub fn partial_dir(out: &Path) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| {
        Error::invalid(
            "--out",
            out.display(),
            "a folder path that ends in a folder name",
        )
    })?;
    Ok(out.with_file_name(format!("{}.partial", name.to_string_lossy())))
}

/// Continue the run whose checkpointed staging folder is `dir` (`<out>.partial`), into its
/// output folder (or `out` if given).
pub fn resume(
    dir: &Path,
    out: Option<&Path>,
    options: SimulateOptions<'_>,
) -> Result<SimulationOutcome> {
    let bad = |why: String| {
        Error::invalid(
            "--resume",
            dir.display(),
            format!("the `<out>.partial` folder of a checkpointed run ({why})"),
        )
    };
    if !dir.join(CHECKPOINT).is_file() {
        return Err(bad(format!("{} has no {CHECKPOINT}", dir.display())));
    }
    let config = Config::load(&dir.join("config.toml"))?;
    let target = match out {
        Some(o) => o.to_path_buf(),
        None => PathBuf::from(
            std::fs::read_to_string(dir.join(TARGET))
                .map_err(|_| bad(format!("{} has no {TARGET} file", dir.display())))?,
        ),
    };
    let built = config.build()?;
    let writer = EnsembleWriter::resume(dir)?;
    let staging = Staging::adopt(dir, &target)?;
    let meta = run_meta(&config, &built);
    run_blocks(&built, staging, writer, &meta, options)
}

fn run_blocks(
    built: &Built,
    staging: Staging,
    mut writer: EnsembleWriter,
    meta: &RunMeta,
    options: SimulateOptions<'_>,
) -> Result<SimulationOutcome> {
    let spec = &built.spec;
    let n = spec.trajectories;
    let cells = checkpoints(spec.steps, spec.record_every).len() * spec.observables.len();
    let block = block_size(n, cells, options.checkpoint_every);
    let every = options
        .checkpoint_every
        .map(|c| c.max(1).div_ceil(LANES) * LANES);
    let never = AtomicBool::new(false);
    let stop = options.stop.unwrap_or(&never);
    let remaining = (n - writer.done()) as u64 * spec.steps;
    let bar = crate::progress::terminal_bar(options.progress, remaining);
    let mut last_checkpoint = writer.done();
    while writer.done() < n {
        let first = writer.done();
        let block_spec = EnsembleSpec {
            trajectories: block.min(n - first),
            first_trajectory: first,
            progress: bar.as_ref().map(|(_, p)| p.clone()),
            ..spec.clone()
        };
        let result = quasistatic::with_model!(&built.model, m => run_ensemble_until(m, &built.noise, &built.optimizer, &block_spec, stop));
        let result = match result {
            Ok(r) => r,
            Err(Error::Interrupted) => {
                if let Some((b, _)) = &bar {
                    b.finish_and_clear();
                }
                if every.is_some() {
                    writer.checkpoint()?;
                    staging.keep();
                }
                return Err(Error::Interrupted);
            }
            Err(e) => return Err(e),
        };
        writer.push(&result)?;
        if let Some(e) = every {
            if writer.done() - last_checkpoint >= e && writer.done() < n {
                writer.checkpoint()?;
                last_checkpoint = writer.done();
            }
        }
        if stop.load(Ordering::Relaxed) {
            if every.is_some() {
                writer.checkpoint()?;
                staging.keep();
            }
            return Err(Error::Interrupted);
        }
    }
    if let Some((b, _)) = &bar {
        b.finish_and_clear();
    }
    let diverged = writer.diverged();
    if diverged == n {
        let first = writer.divergences().iter().min_by_key(|d| d.step).cloned();
        return Err(Error::AllDiverged {
            trajectories: n,
            first_step: first.as_ref().map_or(0, |d| d.step),
            reason: first.map_or_else(String::new, |d| d.reason),
        });
    }
    let divergences = writer.divergences().to_vec();
    let gradient_evaluations = writer.gradient_evaluations();
    let seconds = writer.seconds();
    let files = writer.finish(meta, f64::NAN)?;
    let staged = staging.path().to_path_buf();
    let _ = std::fs::remove_file(staged.join(TARGET));
    let out = staging.commit()?;
    let files = files
        .into_iter()
        .map(|f| out.join(f.strip_prefix(&staged).unwrap_or(&f)))
        .collect();
    Ok(SimulationOutcome {
        trajectories: n,
        gradient_evaluations,
        seconds,
        divergences,
        diverged,
        out,
        files,
    })
}

/// What the files of a configuration's run say about it (title, resolved config,
/// description): with [`crate::output::write_ensemble`], the output folder of an ensemble of
/// `config` run elsewhere (e.g. from the Python package), the same files as [`simulate`].
pub fn run_meta(config: &Config, built: &Built) -> RunMeta {
    RunMeta {
        title: config.title.clone().unwrap_or_else(|| {
            format!(
                "{} / {} / {}",
                built.model.name(),
                built.optimizer.name(),
                built.noise.name()
            )
        }),
        config_toml: {
            // Every default written out, the observables included.
            let mut resolved = config.clone();
            resolved.observables = Some(built.spec.observables.iter().map(|o| o.name()).collect());
            resolved.to_toml()
        },
        description: describe(config, built),
        save_trajectories: config.save_trajectories,
    }
}
