//! Output files of a run: the resolved config, tidy CSVs, a JSON summary, SVG plots and a
//! Markdown report, each written atomically.
//!
//! Every file is a pure function of its inputs (no timestamps, no hash-map ordering), so
//! identical inputs give byte-identical files; the only wall-clock value, the ensemble's
//! `seconds`, appears in `summary.json` alone. Floats in CSV files are written with Rust's
//! `{}` formatting of `f64`, which is the shortest string that reads back to the same value
//! (non-finite values as `NaN`, `inf`, `-inf`). In JSON, non-finite values are written as
//! `null`.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::plot::{band_plot, ensemble_series};
use quasistatic::simulate::{Divergence, EnsembleResult};
use quasistatic::stats::{Summary, SummaryAccumulator};
use quasistatic::Error;

/// Distinguishes concurrent atomic writes of the same file within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` atomically: readers see either the old file or the complete new
/// one, never a partial file.
///
/// The bytes go to a temporary file `.{file}.tmp-{pid}-{n}` in the same directory, which is
/// flushed and synced and then renamed over `path`. On failure the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> quasistatic::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        Error::io(
            format!("cannot write {}", path.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{n}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.flush()?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(
            format!(
                "cannot write temporary file {} for {}",
                tmp.display(),
                path.display()
            ),
            e,
        ));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(
            format!("cannot rename {} to {}", tmp.display(), path.display()),
            e,
        ));
    }
    Ok(())
}

/// What a run was, for the files next to its numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMeta {
    /// Title of the report and the plots.
    pub title: String,
    /// The resolved configuration, written verbatim to `config.toml`.
    pub config_toml: String,
    /// Key-value facts shown in the report and in `summary.json`, in this order (model,
    /// optimizer, noise, learning rate, ...). Keys should be distinct.
    pub description: Vec<(String, String)>,
    /// Whether to write every trajectory's values to `trajectories.csv`.
    pub save_trajectories: bool,
}

/// The statistics written to `summary.csv`, in order.
const CSV_STATISTICS: [&str; 9] = [
    "count", "mean", "std", "stderr", "q05", "q25", "q50", "q75", "q95",
];

/// Write the files of an ensemble run into `dir` (created if needed) and return their paths:
///
/// - `config.toml`: `meta.config_toml` verbatim;
/// - `trajectories.csv` (only if `meta.save_trajectories`): `step,trajectory,observable,value`,
///   one row per valid checkpoint of each trajectory and observable;
/// - `summary.csv`: `step,statistic,observable,value` with the statistics count, mean, std,
///   stderr, q05, q25, q50, q75, q95 over the trajectories valid at each checkpoint;
/// - `summary.json`: title, description, steps, trajectories, gradient evaluations, seconds,
///   divergences, and per observable the arrays of every [`Summary`] field over checkpoints;
/// - `plot_<observable>.svg`: mean, mean ± 1.96 stderr and q05..q95 against the step;
/// - `report.md`: the description, the divergences, the final-checkpoint summary and the plots.
///
/// Observable names are made file-name safe for the plots (characters other than ASCII
/// letters, digits, `-`, `_` and `.` become `_`).
pub fn write_ensemble(
    dir: &Path,
    result: &EnsembleResult,
    meta: &RunMeta,
) -> quasistatic::Result<Vec<PathBuf>> {
    let mut writer = EnsembleWriter::new(
        dir,
        &result.observables,
        &result.steps,
        result.trajectories,
        meta.save_trajectories,
    )?;
    writer.push(result)?;
    writer.finish(meta, result.seconds)
}

/// The name `trajectories.csv` has while it is being written (a run in progress or stopped
/// at a checkpoint).
const PARTIAL_CSV: &str = ".trajectories.csv.partial";
/// The checkpoint of a run in progress (see [`EnsembleWriter::checkpoint`]).
pub const CHECKPOINT: &str = "checkpoint.json";

/// Writes the files of an ensemble (as [`write_ensemble`] describes them) from blocks of
/// consecutive trajectories, so that a run never holds all its records or its CSV text:
/// `trajectories.csv` is streamed to disk block by block and the statistics are accumulated
/// ([`SummaryAccumulator`]). Blocks of any size give the same files, byte for byte.
///
/// A writer can save its state between blocks ([`EnsembleWriter::checkpoint`]) and be
/// recreated from it ([`EnsembleWriter::resume`]): the files are then those of an
/// uninterrupted run.
pub struct EnsembleWriter {
    dir: PathBuf,
    observables: Vec<String>,
    steps: Vec<u64>,
    trajectories: usize,
    csv: Option<std::io::BufWriter<fs::File>>,
    csv_names: Vec<String>,
    acc: SummaryAccumulator,
    divergences: Vec<Divergence>,
    diverged: usize,
    gradient_evaluations: u64,
    seconds: f64,
}

/// Diverged trajectories listed one by one in `summary.json` and the report (the first ones;
/// the count is always complete).
pub const LISTED_DIVERGENCES: usize = 10_000;

/// What a checkpoint file holds besides the accumulator (`checkpoint.json`).
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointJson {
    /// Trajectories done (the next block starts here).
    next_trajectory: usize,
    /// Trajectories in all.
    trajectories: usize,
    /// Observable names.
    observables: Vec<String>,
    /// Checkpoint steps.
    steps: Vec<u64>,
    /// Bytes of the partial trajectory CSV written so far (`None`: not saved).
    csv_bytes: Option<u64>,
    /// The accumulator's state file, beside this one.
    state_file: String,
    divergences: Vec<Divergence>,
    diverged: usize,
    gradient_evaluations: u64,
    /// Wall time so far, bits of the `f64` (exact on resume).
    seconds_bits: u64,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(what, e)
}

impl EnsembleWriter {
    /// A writer into `dir` (created if needed) for `trajectories` trajectories recorded at
    /// `steps` with `observables`.
    pub fn new(
        dir: &Path,
        observables: &[String],
        steps: &[u64],
        trajectories: usize,
        save_trajectories: bool,
    ) -> quasistatic::Result<Self> {
        fs::create_dir_all(dir).map_err(io_err(format!(
            "cannot create output directory {}",
            dir.display()
        )))?;
        let csv = if save_trajectories {
            let path = dir.join(PARTIAL_CSV);
            let mut f = std::io::BufWriter::with_capacity(
                1 << 20,
                fs::File::create(&path)
                    .map_err(io_err(format!("cannot create {}", path.display())))?,
            );
            f.write_all(b"step,trajectory,observable,value\n")
                .map_err(io_err(format!("cannot write {}", path.display())))?;
            Some(f)
        } else {
            None
        };
        Ok(EnsembleWriter {
            dir: dir.to_path_buf(),
            observables: observables.to_vec(),
            steps: steps.to_vec(),
            trajectories,
            csv,
            csv_names: observables.iter().map(|n| csv_field(n)).collect(),
            acc: SummaryAccumulator::new(trajectories, steps.len(), observables.len()),
            divergences: Vec::new(),
            diverged: 0,
            gradient_evaluations: 0,
            seconds: 0.0,
        })
    }

    /// Trajectories written so far (the first trajectory of the next block).
    pub fn done(&self) -> usize {
        self.acc.seen()
    }

    /// Add the next block of trajectories (numbers `done() .. done() + block.trajectories`),
    /// recorded at the writer's steps with its observables, and its wall time.
    pub fn push(&mut self, block: &EnsembleResult) -> quasistatic::Result<()> {
        if block.steps != self.steps || block.observables != self.observables {
            return Err(Error::Numerical(
                "an ensemble block with other checkpoints or observables than its run".into(),
            ));
        }
        let first = self.done();
        if let Some(csv) = &mut self.csv {
            // One trajectory's rows at a time into a reused buffer, then one write.
            let mut rows = String::with_capacity(64 * block.steps.len() * self.csv_names.len());
            for j in 0..block.trajectories {
                rows.clear();
                for (c, step) in block.steps.iter().enumerate() {
                    for (o, name) in self.csv_names.iter().enumerate() {
                        if let Some(v) = block.get(j, c, o) {
                            let _ = writeln!(rows, "{step},{},{name},{v}", first + j);
                        }
                    }
                }
                if let Err(e) = csv.write_all(rows.as_bytes()) {
                    let path = self.dir.join(PARTIAL_CSV);
                    return Err(Error::io(format!("cannot write {}", path.display()), e));
                }
            }
        }
        self.acc.push_ensemble(block);
        let room = LISTED_DIVERGENCES.saturating_sub(self.divergences.len());
        self.divergences
            .extend(block.divergences.iter().take(room).cloned());
        self.diverged += block.divergences.len();
        self.gradient_evaluations += block.gradient_evaluations;
        self.seconds += block.seconds;
        Ok(())
    }

    /// Save the writer's state into its folder (atomically: `checkpoint.json` names the state
    /// file written before it), so that [`EnsembleWriter::resume`] can continue after the
    /// trajectories pushed so far.
    pub fn checkpoint(&mut self) -> quasistatic::Result<()> {
        let csv_bytes = match &mut self.csv {
            Some(csv) => {
                let path = self.dir.join(PARTIAL_CSV);
                csv.flush()
                    .map_err(io_err(format!("cannot write {}", path.display())))?;
                let f = csv.get_ref();
                f.sync_data()
                    .map_err(io_err(format!("cannot sync {}", path.display())))?;
                Some(
                    f.metadata()
                        .map_err(io_err(format!("cannot inspect {}", path.display())))?
                        .len(),
                )
            }
            None => None,
        };
        let state_file = format!(".checkpoint-{}.bin", self.done());
        write_atomic(&self.dir.join(&state_file), &self.acc.to_bytes())?;
        let json = CheckpointJson {
            next_trajectory: self.done(),
            trajectories: self.trajectories,
            observables: self.observables.clone(),
            steps: self.steps.clone(),
            csv_bytes,
            state_file: state_file.clone(),
            divergences: self.divergences.clone(),
            diverged: self.diverged,
            gradient_evaluations: self.gradient_evaluations,
            seconds_bits: self.seconds.to_bits(),
        };
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| Error::io("cannot serialize the checkpoint", std::io::Error::other(e)))?;
        write_atomic(&self.dir.join(CHECKPOINT), text.as_bytes())?;
        // Older state files are no longer referenced.
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".checkpoint-") && name.ends_with(".bin") && name != state_file
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Recreate the writer saved by [`EnsembleWriter::checkpoint`] in `dir`: the partial
    /// trajectory CSV is cut back to its length at the checkpoint (rows of a block that was
    /// running when the run stopped are dropped). Errors name the file that is missing or
    /// does not match.
    pub fn resume(dir: &Path) -> quasistatic::Result<Self> {
        let path = dir.join(CHECKPOINT);
        let bad = |why: &str| {
            Error::invalid(
                "--resume",
                dir.display(),
                format!("a folder with a valid checkpoint ({why})"),
            )
        };
        let text = fs::read_to_string(&path)
            .map_err(|_| bad(&format!("cannot read {}", path.display())))?;
        let json: CheckpointJson = serde_json::from_str(&text)
            .map_err(|e| bad(&format!("{} is not a checkpoint: {e}", path.display())))?;
        let state = fs::read(dir.join(&json.state_file))
            .map_err(|_| bad(&format!("cannot read {}", json.state_file)))?;
        let acc = SummaryAccumulator::from_bytes(&state)
            .filter(|a| a.seen() == json.next_trajectory)
            .ok_or_else(|| bad(&format!("{} does not match {CHECKPOINT}", json.state_file)))?;
        let csv = match json.csv_bytes {
            Some(len) => {
                let p = dir.join(PARTIAL_CSV);
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|_| bad(&format!("cannot open {}", p.display())))?;
                let have = f.metadata().map(|m| m.len()).unwrap_or(0);
                if have < len {
                    return Err(bad(&format!(
                        "{} is shorter than at the checkpoint",
                        p.display()
                    )));
                }
                f.set_len(len)
                    .map_err(io_err(format!("cannot truncate {}", p.display())))?;
                let mut f = std::io::BufWriter::with_capacity(1 << 20, f);
                use std::io::Seek as _;
                f.seek(std::io::SeekFrom::End(0))
                    .map_err(io_err(format!("cannot seek {}", p.display())))?;
                Some(f)
            }
            None => None,
        };
        Ok(EnsembleWriter {
            dir: dir.to_path_buf(),
            csv_names: json.observables.iter().map(|n| csv_field(n)).collect(),
            observables: json.observables,
            steps: json.steps,
            trajectories: json.trajectories,
            csv,
            acc,
            divergences: json.divergences,
            diverged: json.diverged,
            gradient_evaluations: json.gradient_evaluations,
            seconds: f64::from_bits(json.seconds_bits),
        })
    }

    /// Divergences so far (the first [`LISTED_DIVERGENCES`]).
    pub fn divergences(&self) -> &[Divergence] {
        &self.divergences
    }

    /// How many trajectories diverged so far.
    pub fn diverged(&self) -> usize {
        self.diverged
    }

    /// Stochastic gradients evaluated so far.
    pub fn gradient_evaluations(&self) -> u64 {
        self.gradient_evaluations
    }

    /// Wall time of the blocks so far, seconds.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// Write the remaining files (config, summaries, plots, report; see [`write_ensemble`]),
    /// move `trajectories.csv` into place, remove the checkpoint, and return the paths.
    /// `seconds` is the wall time reported (the blocks' own sum if NaN).
    pub fn finish(mut self, meta: &RunMeta, seconds: f64) -> quasistatic::Result<Vec<PathBuf>> {
        let dir = self.dir.clone();
        let seconds = if seconds.is_nan() {
            self.seconds
        } else {
            seconds
        };
        let mut written = Vec::new();
        let mut put = |name: &str, bytes: &[u8]| -> quasistatic::Result<()> {
            let path = dir.join(name);
            write_atomic(&path, bytes)?;
            written.push(path);
            Ok(())
        };
        put("config.toml", meta.config_toml.as_bytes())?;
        let mut csv_path = None;
        if let Some(csv) = self.csv.take() {
            let partial = dir.join(PARTIAL_CSV);
            let f = csv.into_inner().map_err(|e| {
                Error::io(
                    format!("cannot write {}", partial.display()),
                    e.into_error(),
                )
            })?;
            f.sync_all()
                .map_err(io_err(format!("cannot sync {}", partial.display())))?;
            let path = dir.join("trajectories.csv");
            fs::rename(&partial, &path).map_err(io_err(format!(
                "cannot rename {} to {}",
                partial.display(),
                path.display()
            )))?;
            csv_path = Some(path);
        }
        let summaries = self.acc.finish();
        // The run's totals (no records: the files below use only these).
        let totals = EnsembleResult {
            observables: self.observables.clone(),
            steps: self.steps.clone(),
            trajectories: self.done(),
            values: Vec::new(),
            valid: Vec::new(),
            divergences: std::mem::take(&mut self.divergences),
            gradient_evaluations: self.gradient_evaluations,
            seconds,
        };
        put("summary.csv", summary_csv(&totals, &summaries).as_bytes())?;
        put(
            "summary.json",
            summary_json(
                &totals,
                &summaries,
                meta,
                self.acc.retained(),
                self.diverged,
            )?
            .as_bytes(),
        )?;
        written.splice(1..1, csv_path);
        let plot_names = plot_file_names(&totals.observables);
        for (o, (name, file)) in totals.observables.iter().zip(&plot_names).enumerate() {
            let series = ensemble_series(&totals, &summaries, o, name);
            let title = if meta.title.is_empty() {
                name.clone()
            } else {
                format!("{}: {name}", meta.title)
            };
            let path = dir.join(file);
            band_plot(&path, &title, "optimizer step", name, &[series])?;
            written.push(path);
        }
        let report = report_md(&totals, &summaries, meta, &plot_names, self.diverged);
        let path = dir.join("report.md");
        write_atomic(&path, report.as_bytes())?;
        written.push(path);
        let _ = fs::remove_file(dir.join(CHECKPOINT));
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".checkpoint-") && name.ends_with(".bin") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(written)
    }
}

/// `summary.csv`: checkpoint-major, then statistic (in [`CSV_STATISTICS`] order), then
/// observable.
fn summary_csv(result: &EnsembleResult, summaries: &[Vec<Summary>]) -> String {
    let mut out = String::from("step,statistic,observable,value\n");
    let names: Vec<String> = result.observables.iter().map(|n| csv_field(n)).collect();
    for (step, row) in result.steps.iter().zip(summaries) {
        for stat in CSV_STATISTICS {
            for (name, s) in names.iter().zip(row) {
                let _ = match stat {
                    "count" => writeln!(out, "{step},{stat},{name},{}", s.count),
                    _ => writeln!(out, "{step},{stat},{name},{}", statistic(s, stat)),
                };
            }
        }
    }
    out
}

/// A float field of a [`Summary`] by name (`count` as a float).
fn statistic(s: &Summary, name: &str) -> f64 {
    match name {
        "count" => s.count as f64,
        "mean" => s.mean,
        "std" => s.std,
        "stderr" => s.stderr,
        "q05" => s.q05,
        "q25" => s.q25,
        "q50" => s.q50,
        "q75" => s.q75,
        "q95" => s.q95,
        "min" => s.min,
        "max" => s.max,
        _ => unreachable!("unknown statistic {name}"),
    }
}

/// Quote a CSV field if it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A list of key-value pairs serialized as a JSON object in list order.
struct OrderedMap<'a, V>(&'a [(String, V)]);

impl<V: Serialize> Serialize for OrderedMap<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Per-observable arrays over checkpoints; `None` (JSON `null`) for non-finite values.
#[derive(serde::Serialize)]
struct ObservableJson {
    count: Vec<usize>,
    mean: Vec<Option<f64>>,
    std: Vec<Option<f64>>,
    stderr: Vec<Option<f64>>,
    q05: Vec<Option<f64>>,
    q25: Vec<Option<f64>>,
    q50: Vec<Option<f64>>,
    q75: Vec<Option<f64>>,
    q95: Vec<Option<f64>>,
    min: Vec<Option<f64>>,
    max: Vec<Option<f64>>,
}

#[derive(serde::Serialize)]
struct SummaryJson<'a> {
    title: &'a str,
    description: OrderedMap<'a, String>,
    steps: &'a [u64],
    trajectories: usize,
    gradient_evaluations: u64,
    seconds: Option<f64>,
    /// How many trajectories diverged.
    diverged: usize,
    /// The first [`LISTED_DIVERGENCES`] of them.
    divergences: &'a [Divergence],
    /// Trajectories whose records give the quantiles (all of them unless the ensemble is
    /// larger than [`SummaryAccumulator`] keeps; then the first ones).
    quantiles_from_trajectories: usize,
    observables: OrderedMap<'a, ObservableJson>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// `summary.json`, pretty-printed with a final newline.
fn summary_json(
    result: &EnsembleResult,
    summaries: &[Vec<Summary>],
    meta: &RunMeta,
    quantiles_from_trajectories: usize,
    diverged: usize,
) -> quasistatic::Result<String> {
    let observables: Vec<(String, ObservableJson)> = result
        .observables
        .iter()
        .enumerate()
        .map(|(o, name)| {
            let field = |stat: &str| -> Vec<Option<f64>> {
                summaries
                    .iter()
                    .map(|row| finite(statistic(&row[o], stat)))
                    .collect()
            };
            let json = ObservableJson {
                count: summaries.iter().map(|row| row[o].count).collect(),
                mean: field("mean"),
                std: field("std"),
                stderr: field("stderr"),
                q05: field("q05"),
                q25: field("q25"),
                q50: field("q50"),
                q75: field("q75"),
                q95: field("q95"),
                min: field("min"),
                max: field("max"),
            };
            (name.clone(), json)
        })
        .collect();
    let doc = SummaryJson {
        title: &meta.title,
        description: OrderedMap(&meta.description),
        steps: &result.steps,
        trajectories: result.trajectories,
        gradient_evaluations: result.gradient_evaluations,
        seconds: finite(result.seconds),
        diverged,
        divergences: &result.divergences,
        quantiles_from_trajectories,
        observables: OrderedMap(&observables),
    };
    // serde_json writes non-finite floats (e.g. a `last_finite_loss` of NaN) as `null`.
    let mut text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::io("cannot serialize summary.json", std::io::Error::other(e)))?;
    text.push('\n');
    Ok(text)
}

/// File names `plot_<name>.svg`, made file-name safe and distinct.
fn plot_file_names(observables: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(observables.len());
    for (o, name) in observables.iter().enumerate() {
        let safe: String = name
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || "-_.".contains(ch) {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        let mut file = format!("plot_{safe}.svg");
        if names.contains(&file) {
            file = format!("plot_{safe}_{o}.svg");
        }
        names.push(file);
    }
    names
}

/// `report.md`.
fn report_md(
    result: &EnsembleResult,
    summaries: &[Vec<Summary>],
    meta: &RunMeta,
    plot_files: &[String],
    diverged: usize,
) -> String {
    let mut out = String::new();
    let title = if meta.title.is_empty() {
        "Ensemble run"
    } else {
        &meta.title
    };
    let _ = writeln!(out, "# {title}\n");

    let _ = writeln!(out, "| setting | value |\n| --- | --- |");
    for (k, v) in &meta.description {
        let _ = writeln!(out, "| {} | {} |", md_cell(k), md_cell(v));
    }
    let _ = writeln!(out, "| trajectories | {} |", result.trajectories);
    let _ = writeln!(out, "| checkpoints | {} |", result.steps.len());
    let _ = writeln!(
        out,
        "| gradient evaluations | {} |",
        result.gradient_evaluations
    );
    out.push('\n');

    let _ = writeln!(out, "## Divergences\n");
    if diverged == 0 {
        let _ = writeln!(out, "none\n");
    } else {
        let _ = writeln!(
            out,
            "{diverged} of {} trajectories diverged{}:\n",
            result.trajectories,
            if diverged > result.divergences.len() {
                format!(" (the first {} listed)", result.divergences.len())
            } else {
                String::new()
            }
        );
        for d in &result.divergences {
            let _ = writeln!(out, "- {}", md_cell(&d.to_string()));
        }
        out.push('\n');
    }

    if let (Some(last), Some(step)) = (summaries.last(), result.steps.last()) {
        let _ = writeln!(out, "## Final checkpoint (step {step})\n");
        let _ = writeln!(
            out,
            "| observable | mean ± 1.96 stderr | std | median | trajectories |\n\
             | --- | --- | --- | --- | --- |"
        );
        for (name, s) in result.observables.iter().zip(last) {
            let _ = writeln!(
                out,
                "| {} | {} ± {} | {} | {} | {} |",
                md_cell(name),
                fmt_sig(s.mean),
                fmt_sig(1.96 * s.stderr),
                fmt_sig(s.std),
                fmt_sig(s.q50),
                s.count
            );
        }
        out.push('\n');
    }

    if !plot_files.is_empty() {
        let _ = writeln!(out, "## Plots\n");
        let _ = writeln!(
            out,
            "Line: mean over the trajectories valid at each checkpoint; dark band: mean ± 1.96 \
             stderr (95% confidence interval of the mean); light band: 5% to 95% quantiles.\n"
        );
        for (name, file) in result.observables.iter().zip(plot_files) {
            let alt = name.replace(['[', ']'], "");
            let _ = writeln!(out, "![{alt}]({file})\n");
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Escape a Markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A float with 6 significant digits for the report (`NaN`, `inf` as such).
fn fmt_sig(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if (1e-3..1e6).contains(&a) {
        let decimals = (5 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.5e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("quasistatic-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn leftover_temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    /// 4 trajectories, 3 checkpoints (steps 0, 10, 20), observables `loss` and `dist`.
    /// Trajectory 2 diverged after 2 checkpoints. Values: loss = 1 + j + c, dist = 10 j + c.
    fn small_result() -> EnsembleResult {
        let (n, steps, obs) = (4, vec![0u64, 10, 20], 2);
        let valid = vec![3, 3, 2, 3];
        let mut values = vec![f64::NAN; n * steps.len() * obs];
        for (j, &vj) in valid.iter().enumerate() {
            for c in 0..vj {
                values[(j * steps.len() + c) * obs] = 1.0 + j as f64 + c as f64;
                values[(j * steps.len() + c) * obs + 1] = 10.0 * j as f64 + c as f64;
            }
        }
        EnsembleResult {
            observables: vec!["loss".into(), "dist".into()],
            steps,
            trajectories: n,
            values,
            valid,
            divergences: vec![Divergence {
                trajectory: 2,
                step: 17,
                last_finite_loss: 3.5,
                reason: "loss inf".into(),
            }],
            gradient_evaluations: 77,
            seconds: 0.25,
        }
    }

    fn meta(save: bool) -> RunMeta {
        RunMeta {
            title: "valley with SGD".into(),
            config_toml: "[model]\nkind = \"valley\"\n".into(),
            description: vec![
                ("model".into(), "valley".into()),
                ("optimizer".into(), "sgd".into()),
                ("eta".into(), "0.01".into()),
            ],
            save_trajectories: save,
        }
    }

    #[test]
    fn write_atomic_writes_overwrites_and_leaves_no_temp_file() {
        let dir = test_dir("atomic");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.txt");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert!(leftover_temp_files(&dir).is_empty());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_atomic_error_names_the_path() {
        let dir = test_dir("atomic-missing");
        let path = dir.join("no-such-dir").join("a.txt");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().contains("a.txt"), "{err}");
    }

    #[test]
    fn write_ensemble_writes_all_files() {
        let dir = test_dir("all");
        let paths = write_ensemble(&dir, &small_result(), &meta(true)).unwrap();
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "config.toml",
                "trajectories.csv",
                "summary.csv",
                "summary.json",
                "plot_loss.svg",
                "plot_dist.svg",
                "report.md"
            ]
        );
        for p in &paths {
            assert!(p.is_file(), "{} missing", p.display());
            assert!(p.starts_with(&dir));
        }
        assert_eq!(
            fs::read_to_string(dir.join("config.toml")).unwrap(),
            meta(true).config_toml
        );
        assert!(leftover_temp_files(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn trajectories_csv_has_only_valid_checkpoints() {
        let dir = test_dir("traj");
        write_ensemble(&dir, &small_result(), &meta(true)).unwrap();
        let csv = fs::read_to_string(dir.join("trajectories.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "step,trajectory,observable,value");
        // (3 + 3 + 2 + 3) valid checkpoints x 2 observables.
        assert_eq!(lines.len() - 1, 22);
        assert!(lines.contains(&"10,3,dist,31"));
        assert!(lines.contains(&"10,2,loss,4"));
        assert!(!lines.iter().any(|l| l.starts_with("20,2,")));
        assert!(!csv.contains("NaN"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn trajectories_csv_is_skipped_unless_requested() {
        let dir = test_dir("notraj");
        let paths = write_ensemble(&dir, &small_result(), &meta(false)).unwrap();
        assert!(!dir.join("trajectories.csv").exists());
        assert!(!paths.iter().any(|p| p.ends_with("trajectories.csv")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summary_csv_rows() {
        let dir = test_dir("sumcsv");
        write_ensemble(&dir, &small_result(), &meta(false)).unwrap();
        let csv = fs::read_to_string(dir.join("summary.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "step,statistic,observable,value");
        // 3 checkpoints x 9 statistics x 2 observables.
        assert_eq!(lines.len() - 1, 54);
        // Step 20: loss over trajectories 0, 1, 3 = 3, 4, 6 -> mean 13/3; count 3.
        assert!(lines.contains(&"20,count,loss,3"));
        let mean = format!("20,mean,loss,{}", 13.0f64 / 3.0);
        assert!(lines.contains(&mean.as_str()), "{mean}");
        // Step 0: loss 1, 2, 3, 4 -> q25 = 1.75, sample std as in the stats tests.
        assert!(lines.contains(&"0,q25,loss,1.75"));
        assert!(lines.contains(&"0,std,loss,1.2909944487358056"));
        // Every value reads back as a float.
        for l in &lines[1..] {
            let v = l.rsplit(',').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summary_json_parses_with_right_means() {
        let dir = test_dir("json");
        write_ensemble(&dir, &small_result(), &meta(false)).unwrap();
        let text = fs::read_to_string(dir.join("summary.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["title"], "valley with SGD");
        assert_eq!(v["description"]["optimizer"], "sgd");
        assert_eq!(v["steps"], serde_json::json!([0, 10, 20]));
        assert_eq!(v["trajectories"], 4);
        assert_eq!(v["gradient_evaluations"], 77);
        assert_eq!(v["seconds"], 0.25);
        assert_eq!(v["divergences"][0]["trajectory"], 2);
        assert_eq!(v["divergences"][0]["step"], 17);
        assert_eq!(v["divergences"][0]["reason"], "loss inf");
        // loss: step 0 -> 1,2,3,4; step 10 -> 2,3,4,5; step 20 -> 3,4,6.
        let loss = &v["observables"]["loss"];
        assert_eq!(loss["mean"], serde_json::json!([2.5, 3.5, 13.0 / 3.0]));
        assert_eq!(loss["count"], serde_json::json!([4, 4, 3]));
        assert_eq!(loss["q25"][0], 1.75);
        // dist: step 10 -> 1, 11, 21, 31.
        assert_eq!(v["observables"]["dist"]["mean"][1], 16.0);
        // Key order follows the inputs, not the alphabet.
        assert!(text.find("\"model\"").unwrap() < text.find("\"eta\"").unwrap());
        assert!(text.find("\"loss\"").unwrap() < text.find("\"dist\"").unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nan_statistics_are_null_in_json_and_nan_in_csv() {
        // Trajectory 0 is valid only at step 0; trajectory 1 diverged at step 0, before any
        // record and with no finite loss yet. At step 10 nobody is left.
        let result = EnsembleResult {
            observables: vec!["loss".into()],
            steps: vec![0, 10],
            trajectories: 2,
            values: vec![1.0, f64::NAN, f64::NAN, f64::NAN],
            valid: vec![1, 0],
            divergences: vec![
                Divergence {
                    trajectory: 0,
                    step: 3,
                    last_finite_loss: 0.5,
                    reason: "loss is inf".into(),
                },
                Divergence {
                    trajectory: 1,
                    step: 0,
                    last_finite_loss: f64::NAN,
                    reason: "loss is NaN".into(),
                },
            ],
            gradient_evaluations: 3,
            seconds: 0.0,
        };
        let dir = test_dir("nan");
        write_ensemble(&dir, &result, &meta(true)).unwrap();
        let text = fs::read_to_string(dir.join("summary.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let loss = &v["observables"]["loss"];
        assert_eq!(loss["count"], serde_json::json!([1, 0]));
        assert_eq!(loss["mean"], serde_json::json!([1.0, null]));
        assert_eq!(loss["std"], serde_json::json!([null, null]));
        assert!(v["divergences"][1]["last_finite_loss"].is_null());
        let csv = fs::read_to_string(dir.join("summary.csv")).unwrap();
        assert!(csv.contains("0,std,loss,NaN\n"));
        assert!(csv.contains("10,count,loss,0\n"));
        let report = fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(
            report.contains("| loss | NaN ± NaN | NaN | NaN | 0 |"),
            "{report}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn report_mentions_divergence_summary_and_plots() {
        let dir = test_dir("report");
        write_ensemble(&dir, &small_result(), &meta(false)).unwrap();
        let report = fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(report.starts_with("# valley with SGD\n"));
        assert!(report.contains("| optimizer | sgd |"));
        assert!(report.contains("1 of 4 trajectories diverged"));
        assert!(report.contains("trajectory 2 diverged at step 17: loss inf"));
        // Final loss 3, 4, 6: mean 4.33333, std 1.52753, median 4.
        assert!(report.contains("| loss | 4.33333 ± "), "{report}");
        assert!(report.contains("| 1.52753 | 4.00000 | 3 |"), "{report}");
        assert!(report.contains("![loss](plot_loss.svg)"));
        assert!(report.contains("![dist](plot_dist.svg)"));

        let mut quiet = small_result();
        quiet.divergences.clear();
        quiet.valid = vec![3; 4];
        write_ensemble(&dir, &quiet, &meta(false)).unwrap();
        let report = fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(report.contains("## Divergences\n\nnone\n"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_is_byte_identical_for_identical_inputs() {
        let (a, b) = (test_dir("same-a"), test_dir("same-b"));
        let pa = write_ensemble(&a, &small_result(), &meta(true)).unwrap();
        let pb = write_ensemble(&b, &small_result(), &meta(true)).unwrap();
        for (x, y) in pa.iter().zip(&pb) {
            assert_eq!(
                fs::read(x).unwrap(),
                fs::read(y).unwrap(),
                "{}",
                x.display()
            );
        }
        fs::remove_dir_all(&a).unwrap();
        fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn awkward_names_are_quoted_and_sanitized() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("loss"), "loss");
        let files = plot_file_names(&["x,0".into(), "x/0".into(), "loss".into()]);
        assert_eq!(files, ["plot_x_0.svg", "plot_x_0_1.svg", "plot_loss.svg"]);
        assert_eq!(md_cell("a|b"), "a\\|b");
    }

    #[test]
    fn report_numbers_have_six_significant_digits() {
        assert_eq!(fmt_sig(4.333333333), "4.33333");
        assert_eq!(fmt_sig(0.0123456789), "0.0123457");
        assert_eq!(fmt_sig(123456.7), "123457");
        assert_eq!(fmt_sig(1.5e-7), "1.50000e-7");
        assert_eq!(fmt_sig(0.0), "0");
        assert_eq!(fmt_sig(f64::NAN), "NaN");
    }
}
