//! `quasistatic._quasistatic`: the Python extension module of quasistatic (built by maturin;
//! the package `python/quasistatic` wraps it). Every function calls the library crates, as the
//! CLI does: the same configuration schema, validation, engine and output files.
//!
//! Long computations run with the interpreter released (other Python threads run meanwhile);
//! `simulate` runs its ensemble on a worker thread while the calling thread waits in short
//! slices, each time checking for signals (Ctrl-C) and reporting progress: on a signal the
//! ensemble's stop flag is set and the signal's exception raised once the run has ended (every
//! group of trajectories checks the flag every 1024 steps).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use quasistatic::config::Config;
use quasistatic::simulate::{run_ensemble_until, Divergence, EnsembleResult, Progress};
use quasistatic::stats::summarize_ensemble;
use quasistatic::Error;
use quasistatic_studies::output::{self, RunMeta};
use quasistatic_studies::{run, studies, validate};

// Named `quasistatic.ConfigError` (where the package exports it), so that it pickles.
pyo3::create_exception!(
    quasistatic,
    ConfigError,
    PyValueError,
    "Invalid configuration or input: `.field` (dotted name), `.value` (as given) and `.allowed` (what is allowed)."
);

/// How often a waiting call checks for signals and reports progress.
const POLL: Duration = Duration::from_millis(50);

/// A library error as a Python exception: configuration and data errors as [`ConfigError`]
/// (with `field`, `value`, `allowed`), file-system errors as `OSError`, the rest as
/// `RuntimeError`.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let message = e.to_string();
    let (field, value, allowed) = match e {
        Error::InvalidConfig {
            field,
            value,
            allowed,
        } => (field, value, allowed),
        Error::ConfigParse { message: m, .. } => parse_error_parts(&m),
        Error::Data { path, message: m } => ("data.path".into(), path.display().to_string(), m),
        Error::Io { .. } => return PyOSError::new_err(message),
        Error::Interrupted | Error::Numerical(_) | Error::AllDiverged { .. } => {
            return PyRuntimeError::new_err(message)
        }
        Error::Resources { .. } => return pyo3::exceptions::PyMemoryError::new_err(message),
    };
    config_error(py, message, field, value, allowed)
}

/// A [`ConfigError`] with its attributes set.
fn config_error(
    py: Python<'_>,
    message: String,
    field: String,
    value: String,
    allowed: String,
) -> PyErr {
    let err = ConfigError::new_err(message);
    let exc = err.value(py);
    for (k, v) in [("field", field), ("value", value), ("allowed", allowed)] {
        if let Err(e) = exc.setattr(k, v) {
            return e;
        }
    }
    err
}

/// Field, value and allowed values of a TOML parse error (unknown field, wrong type, syntax):
/// the parser's message names the field in backquotes (`unknown field `stepz`, expected one of
/// ...`) and what was expected; the line and column stay in the message.
fn parse_error_parts(message: &str) -> (String, String, String) {
    let detail = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|'))
        .unwrap_or(message)
        .trim()
        .to_string();
    if let Some(rest) = detail.strip_prefix("unknown field `") {
        if let Some((field, allowed)) = rest.split_once('`') {
            let allowed = allowed.trim_start_matches(',').trim();
            let allowed = allowed
                .strip_prefix("expected ")
                .unwrap_or(allowed)
                .to_string();
            return (field.to_string(), field.to_string(), allowed);
        }
    }
    if let Some(rest) = detail.strip_prefix("missing field `") {
        if let Some((field, _)) = rest.split_once('`') {
            return (
                field.to_string(),
                "missing".into(),
                "a value (required)".into(),
            );
        }
    }
    if let Some(rest) = detail.strip_prefix("invalid type: ") {
        if let Some((value, allowed)) = rest.split_once(", expected ") {
            return ("config".into(), value.to_string(), allowed.to_string());
        }
    }
    (
        "config".into(),
        detail,
        "valid TOML of the configuration schema".into(),
    )
}

/// A Python value as a TOML value (`field` names it in errors).
fn to_toml_value(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<toml::Value> {
    let py = obj.py();
    if obj.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Ok(toml::Value::Integer(i)),
            Err(_) => Err(config_error(
                py,
                format!("invalid value for `{field}`: {obj} (an integer that fits in 64 bits)"),
                field.into(),
                obj.to_string(),
                "an integer that fits in 64 bits".into(),
            )),
        };
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(obj.extract()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(obj.extract()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut table = toml::Table::new();
        for (k, v) in d.iter() {
            let Ok(key) = k.extract::<String>() else {
                let name = if field.is_empty() { "config" } else { field };
                return Err(config_error(
                    py,
                    format!("invalid key in `{name}`: {k} (string keys)"),
                    name.into(),
                    k.repr()?.to_string(),
                    "string keys".into(),
                ));
            };
            let sub = if field.is_empty() {
                key.clone()
            } else {
                format!("{field}.{key}")
            };
            table.insert(key, to_toml_value(&v, &sub)?);
        }
        return Ok(toml::Value::Table(table));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, v) in obj.try_iter()?.enumerate() {
            items.push(to_toml_value(&v?, &format!("{field}[{i}]"))?);
        }
        return Ok(toml::Value::Array(items));
    }
    // NumPy scalars and other numbers.
    if let Ok(x) = obj.extract::<f64>() {
        return Ok(toml::Value::Float(x));
    }
    let allowed = "a str, int, float, bool, list or dict";
    Err(config_error(
        py,
        format!("invalid value for `{field}`: {} ({allowed})", obj.repr()?),
        field.into(),
        obj.repr()?.to_string(),
        allowed.into(),
    ))
}

/// The TOML text of a configuration given as a dict (the schema of the TOML files).
#[pyfunction]
fn toml_from_dict(config: &Bound<'_, PyDict>) -> PyResult<String> {
    let value = to_toml_value(config.as_any(), "")?;
    toml::to_string(&value).map_err(|e| {
        config_error(
            config.py(),
            format!("cannot write the config as TOML: {e}"),
            "config".into(),
            e.to_string(),
            "a dict of the TOML configuration schema".into(),
        )
    })
}

/// Parse a configuration from TOML text (`path` is its file, for relative data paths) or
/// read it from `path`.
fn load(py: Python<'_>, text: Option<&str>, path: Option<PathBuf>) -> PyResult<Config> {
    match (text, path) {
        (Some(t), p) => {
            let p = p.unwrap_or_else(|| PathBuf::from("<config>"));
            Config::from_toml(t, &p).map_err(|e| to_py(py, e))
        }
        (None, Some(p)) => Config::load(&p).map_err(|e| match e {
            Error::Io { .. } => config_error(
                py,
                format!("cannot read config {}", p.display()),
                "config".into(),
                p.display().to_string(),
                "a TOML string, a dict or the path of an existing TOML file".into(),
            ),
            e => to_py(py, e),
        }),
        (None, None) => Err(PyValueError::new_err("no configuration given")),
    }
}

/// Validate a configuration with the given overrides (as the CLI's `check`); returns its
/// resolved TOML.
#[pyfunction]
#[pyo3(signature = (text=None, path=None, *, seed=None, steps=None, trajectories=None, record_every=None))]
fn check(
    py: Python<'_>,
    text: Option<&str>,
    path: Option<PathBuf>,
    seed: Option<u64>,
    steps: Option<u64>,
    trajectories: Option<usize>,
    record_every: Option<u64>,
) -> PyResult<String> {
    let cfg = load_with(py, text, path, seed, steps, trajectories, record_every)?;
    py.detach(|| cfg.build().map(|_| ()))
        .map_err(|e| to_py(py, e))?;
    Ok(cfg.to_toml())
}

/// [`load`], then the overrides.
fn load_with(
    py: Python<'_>,
    text: Option<&str>,
    path: Option<PathBuf>,
    seed: Option<u64>,
    steps: Option<u64>,
    trajectories: Option<usize>,
    record_every: Option<u64>,
) -> PyResult<Config> {
    let mut cfg = load(py, text, path)?;
    cfg.override_run(seed, steps, trajectories, record_every);
    Ok(cfg)
}

/// A rayon pool of `threads` workers, if given.
fn pool(threads: Option<usize>) -> PyResult<Option<rayon::ThreadPool>> {
    match threads {
        None => Ok(None),
        Some(0) => Err(PyValueError::new_err("threads must be >= 1")),
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map(Some)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start {t} threads: {e}"))),
    }
}

/// Run `work` on a worker thread with the interpreter released, while this thread checks
/// for signals and calls `progress(done, total)` every [`POLL`]. On a signal (or an exception
/// in `progress`) `stop` is set and the exception returned once `work` has ended.
fn run_interruptibly<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> T + Send,
    stop: &AtomicBool,
    done: &AtomicU64,
    total: u64,
    progress: Option<&Py<PyAny>>,
) -> Result<T, PyErr> {
    let (value, raised) = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel::<()>();
            let worker = s.spawn(move || {
                let value = work();
                let _ = tx.send(());
                value
            });
            let mut raised: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(POLL) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                if raised.is_some() {
                    continue;
                }
                raised = Python::attach(|py| {
                    py.check_signals().err().or_else(|| {
                        progress
                            .and_then(|p| p.call1(py, (done.load(Ordering::Relaxed), total)).err())
                    })
                });
                if raised.is_some() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            let value = match worker.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (value, raised)
        })
    });
    if let Some(e) = raised {
        return Err(e);
    }
    if let Some(p) = progress {
        p.call1(py, (done.load(Ordering::Relaxed), total))?;
    }
    Ok(value)
}

/// One ensemble: the recorded values, the divergences, the cost, and what its files say
/// about it. The Python class `quasistatic.SimulationResult` wraps it.
#[pyclass(frozen, module = "quasistatic._quasistatic")]
struct Ensemble {
    result: EnsembleResult,
    meta: RunMeta,
}

#[pymethods]
impl Ensemble {
    /// Observable names, in storage order.
    #[getter]
    fn observables(&self) -> Vec<String> {
        self.result.observables.clone()
    }

    /// Number of trajectories.
    #[getter]
    fn trajectories(&self) -> usize {
        self.result.trajectories
    }

    /// Stochastic gradients evaluated.
    #[getter]
    fn gradient_evaluations(&self) -> u64 {
        self.result.gradient_evaluations
    }

    /// Wall time of the ensemble in seconds.
    #[getter]
    fn seconds(&self) -> f64 {
        self.result.seconds
    }

    /// The title of the run's report.
    #[getter]
    fn title(&self) -> String {
        self.meta.title.clone()
    }

    /// The resolved configuration (every default written out), as `config.toml`.
    #[getter]
    fn config_toml(&self) -> String {
        self.meta.config_toml.clone()
    }

    /// The run's description (model, noise, optimizer, ...), as in the report.
    #[getter]
    fn description(&self) -> Vec<(String, String)> {
        self.meta.description.clone()
    }

    /// Diverged trajectories: `(trajectory, step, last_finite_loss, reason)`.
    #[getter]
    fn divergences(&self) -> Vec<(usize, u64, f64, String)> {
        self.result
            .divergences
            .iter()
            .map(|d| (d.trajectory, d.step, d.last_finite_loss, d.reason.clone()))
            .collect()
    }

    /// Checkpoint steps.
    fn steps<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        PyArray1::from_slice(py, &self.result.steps)
    }

    /// Valid checkpoints per trajectory (all unless it diverged).
    fn valid<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        PyArray1::from_vec(py, self.result.valid.iter().map(|&v| v as u64).collect())
    }

    /// Every trajectory's records, `[trajectory, checkpoint, observable]` (NaN from a
    /// trajectory's divergence on).
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = &self.result;
        let a = PyArray1::from_slice(py, &r.values);
        Ok(
            a.reshape([r.trajectories, r.steps.len(), r.observables.len()])?
                .into_any(),
        )
    }

    /// The summaries over the trajectories valid at each checkpoint (`count`, `mean`, `std`,
    /// `stderr`, `q05`, `q25`, `q50`, `q75`, `q95`, `min`, `max`), each `[checkpoint,
    /// observable]` (`count` as integers).
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = &self.result;
        let s = py.detach(|| summarize_ensemble(r));
        let shape = [r.steps.len(), r.observables.len()];
        let out = PyDict::new(py);
        let count: Vec<u64> = s.iter().flatten().map(|x| x.count as u64).collect();
        out.set_item("count", PyArray1::from_vec(py, count).reshape(shape)?)?;
        type Field = fn(&quasistatic::stats::Summary) -> f64;
        let fields: [(&str, Field); 10] = [
            ("mean", |x| x.mean),
            ("std", |x| x.std),
            ("stderr", |x| x.stderr),
            ("q05", |x| x.q05),
            ("q25", |x| x.q25),
            ("q50", |x| x.q50),
            ("q75", |x| x.q75),
            ("q95", |x| x.q95),
            ("min", |x| x.min),
            ("max", |x| x.max),
        ];
        for (name, f) in fields {
            let v: Vec<f64> = s.iter().flatten().map(f).collect();
            out.set_item(name, PyArray1::from_vec(py, v).reshape(shape)?)?;
        }
        Ok(out)
    }

    /// Write the CLI's files of this run into the folder `dir`, as the CLI does: written
    /// beside it and renamed into place, replacing an earlier quasistatic output folder whole
    /// (a folder holding other files is refused): `config.toml`, `trajectories.csv` (unless
    /// `save_trajectories = false`), `summary.csv`, `summary.json`, the plots and
    /// `report.md`. Returns the paths written.
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<Vec<PathBuf>> {
        py.detach(|| -> quasistatic::Result<Vec<PathBuf>> {
            let staging = quasistatic_studies::staging::Staging::new(&dir)?;
            let staged = staging.path().to_path_buf();
            let files = output::write_ensemble(&staged, &self.result, &self.meta)?;
            let out = staging.commit()?;
            Ok(files
                .into_iter()
                .map(|f| out.join(f.strip_prefix(&staged).unwrap_or(&f)))
                .collect())
        })
        .map_err(|e| to_py(py, e))
    }

    /// Everything, as plain values (for pickling; [`ensemble_from_state`] inverts it).
    fn to_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let r = &self.result;
        let values: Vec<u8> = r.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        (
            r.observables.clone(),
            r.steps.clone(),
            r.trajectories,
            pyo3::types::PyBytes::new(py, &values),
            r.valid.clone(),
            self.divergences(),
            r.gradient_evaluations,
            r.seconds,
            (
                self.meta.title.clone(),
                self.meta.config_toml.clone(),
                self.meta.description.clone(),
                self.meta.save_trajectories,
            ),
        )
            .into_pyobject(py)
    }
}

/// What [`Ensemble::to_state`] returned, as an ensemble again.
type State = (
    Vec<String>,
    Vec<u64>,
    usize,
    Vec<u8>,
    Vec<usize>,
    Vec<(usize, u64, f64, String)>,
    u64,
    f64,
    (String, String, Vec<(String, String)>, bool),
);

/// The ensemble of a state from `Ensemble.to_state()`.
#[pyfunction]
fn ensemble_from_state(state: State) -> PyResult<Ensemble> {
    let (observables, steps, trajectories, bytes, valid, divs, grads, seconds, meta) = state;
    if bytes.len() != trajectories * steps.len() * observables.len() * 8
        || valid.len() != trajectories
    {
        return Err(PyValueError::new_err("inconsistent ensemble state"));
    }
    let values = bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    Ok(Ensemble {
        result: EnsembleResult {
            observables,
            steps,
            trajectories,
            values,
            valid,
            divergences: divs
                .into_iter()
                .map(|(trajectory, step, last_finite_loss, reason)| Divergence {
                    trajectory,
                    step,
                    last_finite_loss,
                    reason,
                })
                .collect(),
            gradient_evaluations: grads,
            seconds,
        },
        meta: RunMeta {
            title: meta.0,
            config_toml: meta.1,
            description: meta.2,
            save_trajectories: meta.3,
        },
    })
}

/// Run the ensemble of a configuration (TOML `text`, or the file at `path`) with the given
/// overrides, as `quasistatic simulate` does; `progress(done, total)` is called with the
/// trajectory-steps done every 50 ms and at the end.
#[pyfunction]
#[pyo3(signature = (text=None, path=None, *, seed=None, steps=None, trajectories=None, record_every=None, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn simulate(
    py: Python<'_>,
    text: Option<&str>,
    path: Option<PathBuf>,
    seed: Option<u64>,
    steps: Option<u64>,
    trajectories: Option<usize>,
    record_every: Option<u64>,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Ensemble> {
    let cfg = load_with(py, text, path, seed, steps, trajectories, record_every)?;
    let pool = pool(threads)?;
    let mut built = py.detach(|| cfg.build()).map_err(|e| to_py(py, e))?;
    let total = built.spec.trajectories as u64 * built.spec.steps;
    let done = Arc::new(AtomicU64::new(0));
    let counter = done.clone();
    built.spec.progress = Some(Progress(Arc::new(move |n| {
        counter.fetch_add(n, Ordering::Relaxed);
    })));
    let stop = AtomicBool::new(false);
    let work = || {
        let go = || quasistatic::with_model!(&built.model, m => run_ensemble_until(m, &built.noise, &built.optimizer, &built.spec, &stop));
        match &pool {
            Some(p) => p.install(go),
            None => go(),
        }
    };
    let result = run_interruptibly(py, work, &stop, &done, total, progress.as_ref())?
        .map_err(|e| to_py(py, e))?;
    built.spec.progress = None;
    Ok(Ensemble {
        meta: run::run_meta(&cfg, &built),
        result,
    })
}

/// The derived manifold dynamics at `at` (default: the configuration's start), as
/// `quasistatic derive` computes it: a dict of the derivation's fields (`derivation.json`),
/// numeric lists as NumPy arrays.
#[pyfunction]
#[pyo3(signature = (text=None, path=None, at=None))]
fn derive<'py>(
    py: Python<'py>,
    text: Option<&str>,
    path: Option<PathBuf>,
    at: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = load(py, text, path)?;
    let built = py.detach(|| cfg.build()).map_err(|e| to_py(py, e))?;
    let d = built.model.dim();
    let point = match at {
        Some(p) => {
            if p.len() != d {
                return Err(to_py(
                    py,
                    Error::invalid(
                        "at",
                        format!("{} numbers", p.len()),
                        format!("exactly {d} numbers (the model has d = {d} parameters)"),
                    ),
                ));
            }
            if let Some(x) = p.iter().find(|x| !x.is_finite()) {
                return Err(to_py(py, Error::invalid("at", x, "finite numbers")));
            }
            p
        }
        None => built.spec.start.clone(),
    };
    let options = quasistatic::derive::DeriveOptions::default();
    let derivation = py
        .detach(|| {
            quasistatic::with_model!(&built.model, m => quasistatic::derive::derive(
                m, &built.noise, &built.optimizer, &point, &options))
        })
        .map_err(|e| to_py(py, e))?;
    let value = serde_json::to_value(&derivation)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot convert the derivation: {e}")))?;
    let table = derivation.table();
    let out = json_to_py(py, &value)?;
    out.set_item("table", table)?;
    Ok(out)
}

/// A JSON value as Python: lists of numbers (with `null` for non-finite values) as float64
/// arrays (int64 when all are integers), rectangular lists of such lists as 2-d arrays.
fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(x)) => x.into_pyobject(py)?.into_any(),
            _ => py.None().into_bound(py),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            if let Some(a) = numeric_array(py, items)? {
                return Ok(a);
            }
            if !items.is_empty() && items.iter().all(|x| x.is_array()) {
                let rows: Vec<&Vec<Value>> = items.iter().filter_map(|x| x.as_array()).collect();
                let n = rows[0].len();
                if n > 0 && rows.iter().all(|r| r.len() == n && is_numeric(r)) {
                    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().map(as_f64)).collect();
                    return Ok(PyArray1::from_vec(py, flat)
                        .reshape([rows.len(), n])?
                        .into_any());
                }
            }
            let list = PyList::empty(py);
            for x in items {
                list.append(json_to_py(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, x) in map {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn is_numeric(items: &[serde_json::Value]) -> bool {
    items.iter().all(|x| x.is_number() || x.is_null()) && items.iter().any(|x| x.is_number())
}

fn as_f64(x: &serde_json::Value) -> f64 {
    x.as_f64().unwrap_or(f64::NAN)
}

fn numeric_array<'py>(
    py: Python<'py>,
    items: &[serde_json::Value],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if !is_numeric(items) {
        return Ok(None);
    }
    if items.iter().all(|x| x.is_i64()) {
        let v: Vec<i64> = items.iter().filter_map(|x| x.as_i64()).collect();
        return Ok(Some(PyArray1::from_vec(py, v).into_any()));
    }
    let v: Vec<f64> = items.iter().map(as_f64).collect();
    Ok(Some(PyArray1::from_vec(py, v).into_any()))
}

/// True against derived dynamics (as `quasistatic compare`), writing the files into `out`:
/// the comparison's fields as a dict (with `report`, the report's path); with `eta_sweep`, the
/// sweep's (`comparisons`, `slope`, `slope_se`, `report`).
#[pyfunction]
#[pyo3(signature = (out, text=None, path=None, *, eta_sweep=false, h=None, tolerance=0.1, trajectories=None, steps=None, record_every=None))]
#[allow(clippy::too_many_arguments)]
fn compare<'py>(
    py: Python<'py>,
    out: PathBuf,
    text: Option<&str>,
    path: Option<PathBuf>,
    eta_sweep: bool,
    h: Option<u64>,
    tolerance: f64,
    trajectories: Option<usize>,
    steps: Option<u64>,
    record_every: Option<u64>,
) -> PyResult<Bound<'py, PyAny>> {
    if !(tolerance.is_finite() && tolerance > 0.0) {
        return Err(to_py(
            py,
            Error::invalid("tolerance", tolerance, "a number > 0"),
        ));
    }
    if h == Some(0) {
        return Err(to_py(py, Error::invalid("h", 0, "an integer >= 1")));
    }
    let cfg = load_with(py, text, path, None, steps, trajectories, record_every)?;
    let (value, report) = py
        .detach(|| -> quasistatic::Result<(serde_json::Value, PathBuf)> {
            let json = |v: serde_json::Result<serde_json::Value>| {
                v.map_err(|e| Error::Numerical(format!("cannot convert the comparison: {e}")))
            };
            if eta_sweep {
                let sweep = validate::eta_sweep(&cfg, &out, &[1.0, 0.5, 0.25], tolerance, false)?;
                Ok((json(serde_json::to_value(&sweep))?, out.join("sweep.md")))
            } else {
                let (c, report) = validate::compare(&cfg, &out, h, tolerance, false)?;
                Ok((json(serde_json::to_value(&c))?, report))
            }
        })
        .map_err(|e| to_py(py, e))?;
    let d = json_to_py(py, &value)?;
    d.set_item("report", report)?;
    Ok(d)
}

/// The studies (as `quasistatic reproduce`): writes `out/report.md`, `report.html`,
/// `claims.json` and the studies' folders; returns the report's path.
#[pyfunction]
#[pyo3(signature = (scale="quick", out=PathBuf::from("results"), only=Vec::new()))]
fn reproduce(py: Python<'_>, scale: &str, out: PathBuf, only: Vec<String>) -> PyResult<PathBuf> {
    let scale = match scale {
        "tiny" => studies::Scale::Tiny,
        "quick" => studies::Scale::Quick,
        "full" => studies::Scale::Full,
        other => {
            return Err(to_py(
                py,
                Error::invalid("scale", other, "one of tiny, quick, full"),
            ))
        }
    };
    py.detach(|| studies::reproduce(scale, &out, &only))
        .map_err(|e| to_py(py, e))
}

#[pymodule]
fn _quasistatic(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Ensemble>()?;
    m.add_function(wrap_pyfunction!(toml_from_dict, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(ensemble_from_state, m)?)?;
    m.add_function(wrap_pyfunction!(derive, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(reproduce, m)?)?;
    Ok(())
}
