"""quasistatic: simulate stochastic optimizers near manifolds of minima and derive their
effective manifold dynamics, from Python.

Every function runs the Rust library that the ``quasistatic`` command-line tool runs: the
same configuration schema, defaults, validation and output files, and the same numbers for
the same configuration and seed. A configuration is a ``dict`` (the TOML schema: top-level
run settings and the ``model``, ``data``, ``noise``, ``optimizer`` and ``start`` tables), a
TOML string, or the path of a TOML file (``str`` or ``os.PathLike``).

- :func:`simulate` runs an ensemble of the true optimizer dynamics;
- :func:`derive` derives the quasistatic manifold dynamics at a point;
- :func:`compare` runs the true and the derived dynamics side by side;
- :func:`reproduce` runs the built-in studies;
- :func:`sweep` runs every (config, seed) ensemble, in process or on an executor (Dask).

Invalid input raises :class:`ConfigError` (a ``ValueError``) with ``.field``, ``.value`` and
``.allowed``. Computations release the GIL; Ctrl-C stops a running :func:`simulate` within
about a second (usually much less) with ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np

from . import _quasistatic
from ._quasistatic import ConfigError, __version__

__all__ = [
    "ConfigError",
    "ConfigLike",
    "Divergence",
    "SimulationResult",
    "SweepResult",
    "__version__",
    "check",
    "compare",
    "derive",
    "reproduce",
    "simulate",
    "sweep",
]

ConfigLike = Union[Mapping[str, Any], str, "os.PathLike[str]"]
"""A configuration: a dict of the TOML schema, TOML text, or the path of a TOML file."""

ProgressLike = Union[bool, Callable[[int, int], object], None]

STATISTICS = ("count", "mean", "std", "stderr", "q05", "q25", "q50", "q75", "q95")
"""The statistics of ``summary.csv`` and of the tidy tables, in their order."""


def _source(config: ConfigLike) -> tuple[str | None, str | None]:
    """``(toml_text, path)`` of a configuration (one of them, or both for a file)."""
    if isinstance(config, Mapping):
        return _quasistatic.toml_from_dict(_plain(config)), None
    if isinstance(config, os.PathLike):
        return None, os.fspath(config)
    if isinstance(config, str):
        # TOML text has a key = value; a path has neither `=` nor a newline.
        if "=" in config or "\n" in config:
            return config, None
        return None, config
    raise TypeError(
        "config must be a dict, a TOML string or a path, not " + type(config).__name__
    )


def _plain(m: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping (nested mappings included) as plain dicts."""
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in m.items()}


def _portable(config: ConfigLike) -> tuple[str | None, str | None]:
    """Like :func:`_source`, with a file's text read here (for other processes or machines;
    the path stays for resolving relative data paths)."""
    text, path = _source(config)
    if text is None and path is not None:
        try:
            text = Path(path).read_text()
        except OSError:
            pass  # the library reports the unreadable path as a ConfigError
    return text, path


def check(config: ConfigLike) -> str:
    """Validate ``config`` (building its model, noise and optimizer, as ``quasistatic
    check``) and return the resolved configuration as TOML (every default written out)."""
    text, path = _source(config)
    return _quasistatic.check(text, path)


class Divergence(NamedTuple):
    """A trajectory that diverged: which, at which step, its last finite loss, and why."""

    trajectory: int
    step: int
    last_finite_loss: float
    reason: str


class SimulationResult:
    """One ensemble of :func:`simulate`.

    Attributes: ``steps`` (checkpoint steps), ``observables`` (names), ``stats`` (statistic
    -> array ``[checkpoint, observable]``: ``count``, ``mean``, ``std``, ``stderr``, ``q05``,
    ``q25``, ``q50``, ``q75``, ``q95``, ``min``, ``max``, over the trajectories alive at each
    checkpoint), the shortcuts ``mean``, ``std``, ``stderr``, ``count`` and ``quantiles``,
    ``trajectories`` (``[trajectory, checkpoint, observable]``, with ``keep_trajectories``;
    NaN from a trajectory's divergence on), ``divergences``, ``gradient_evaluations``,
    ``seconds``, ``config_toml`` (the resolved config). Each array is made once, on first
    use. Results pickle (for executors).
    """

    def __init__(self, raw: _quasistatic.Ensemble, keep_trajectories: bool = False) -> None:
        self._raw = raw
        self.keep_trajectories = keep_trajectories

    def __getstate__(self) -> dict[str, Any]:
        return {"state": self._raw.to_state(), "keep_trajectories": self.keep_trajectories}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._raw = _quasistatic.ensemble_from_state(state["state"])
        self.keep_trajectories = state["keep_trajectories"]

    def __repr__(self) -> str:
        return (
            f"SimulationResult({self.title!r}, trajectories={self.n_trajectories}, "
            f"checkpoints={len(self.steps)}, observables={self.observables}, "
            f"divergences={len(self.divergences)})"
        )

    @property
    def title(self) -> str:
        """The run's title (as in its report)."""
        return self._raw.title

    @property
    def config_toml(self) -> str:
        """The resolved configuration, every default written out (``config.toml``)."""
        return self._raw.config_toml

    @property
    def description(self) -> list[tuple[str, str]]:
        """Model, noise, optimizer, steps, ... as in the report."""
        return self._raw.description

    @property
    def observables(self) -> list[str]:
        """Observable names, in the order of the arrays' last axis."""
        return self._raw.observables

    @property
    def n_trajectories(self) -> int:
        """Ensemble size."""
        return self._raw.trajectories

    @property
    def gradient_evaluations(self) -> int:
        """Stochastic gradients evaluated (the run's cost)."""
        return self._raw.gradient_evaluations

    @property
    def seconds(self) -> float:
        """Wall time of the ensemble in seconds."""
        return self._raw.seconds

    @property
    def cost(self) -> dict[str, float]:
        """``gradient_evaluations`` and ``seconds``."""
        return {"gradient_evaluations": self.gradient_evaluations, "seconds": self.seconds}

    @cached_property
    def divergences(self) -> list[Divergence]:
        """Diverged trajectories, by trajectory."""
        return [Divergence(*d) for d in self._raw.divergences]

    @cached_property
    def steps(self) -> np.ndarray:
        """Checkpoint steps (``uint64``)."""
        return self._raw.steps()

    @cached_property
    def valid(self) -> np.ndarray:
        """Per trajectory, the number of valid checkpoints (all unless it diverged)."""
        return self._raw.valid()

    @cached_property
    def stats(self) -> dict[str, np.ndarray]:
        """Statistic -> array ``[checkpoint, observable]``."""
        return self._raw.summary()

    @property
    def mean(self) -> np.ndarray:
        """Ensemble mean, ``[checkpoint, observable]``."""
        return self.stats["mean"]

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation over the ensemble, ``[checkpoint, observable]``."""
        return self.stats["std"]

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of the mean, ``[checkpoint, observable]``."""
        return self.stats["stderr"]

    @property
    def count(self) -> np.ndarray:
        """Trajectories alive at each checkpoint, ``[checkpoint, observable]``."""
        return self.stats["count"]

    @property
    def quantiles(self) -> dict[str, np.ndarray]:
        """``q05``, ``q25``, ``q50``, ``q75``, ``q95``, each ``[checkpoint, observable]``."""
        return {q: self.stats[q] for q in ("q05", "q25", "q50", "q75", "q95")}

    @cached_property
    def trajectories(self) -> np.ndarray | None:
        """Every trajectory's records ``[trajectory, checkpoint, observable]`` (with
        ``keep_trajectories=True``; else ``None``)."""
        return self._raw.values() if self.keep_trajectories else None

    def observable(self, name: str) -> dict[str, np.ndarray]:
        """Every statistic of one observable over the checkpoints."""
        try:
            o = self.observables.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not recorded; recorded: {self.observables}") from None
        return {k: v[:, o] for k, v in self.stats.items()}

    def tidy(self) -> dict[str, np.ndarray]:
        """The summaries as a tidy table of columns ``step``, ``statistic``, ``observable``,
        ``value`` (the rows and order of ``summary.csv``)."""
        n_c, n_o = len(self.steps), len(self.observables)
        n_s = len(STATISTICS)
        values = np.stack([self.stats[s].astype(np.float64) for s in STATISTICS], axis=1)
        return {
            "step": np.repeat(self.steps, n_s * n_o),
            "statistic": np.tile(np.repeat(np.array(STATISTICS, dtype=object), n_o), n_c),
            "observable": np.tile(np.array(self.observables, dtype=object), n_c * n_s),
            "value": values.reshape(-1),
        }

    def to_pandas(self) -> Any:
        """:meth:`tidy` as a ``pandas.DataFrame`` (needs pandas)."""
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        return pd.DataFrame(self.tidy())

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the files ``quasistatic simulate --out`` writes (``config.toml``,
        ``trajectories.csv``, ``summary.csv``, ``summary.json``, plots, ``report.md``), each
        atomically, into ``directory`` (created if needed). Returns the paths."""
        return [Path(p) for p in self._raw.save(os.fspath(directory))]


def _progress_callback(
    progress: ProgressLike,
) -> tuple[Callable[[int, int], object] | None, Callable[[], None]]:
    """The ``(done, total)`` callback for ``progress`` and a function closing it."""
    if progress is None or progress is False:
        return None, lambda: None
    if progress is True:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            return None, lambda: None
        bar = None

        def update(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="step", unit_scale=True, desc="simulate")
            bar.update(done - bar.n)

        def close() -> None:
            if bar is not None:
                bar.close()

        return update, close
    if callable(progress):
        return progress, lambda: None
    raise TypeError("progress must be a bool or a callable (done, total)")


def simulate(
    config: ConfigLike,
    *,
    seed: int | None = None,
    steps: int | None = None,
    trajectories: int | None = None,
    record_every: int | None = None,
    threads: int | None = None,
    progress: ProgressLike = False,
    keep_trajectories: bool = False,
) -> SimulationResult:
    """Run the ensemble of ``config`` (as ``quasistatic simulate``; ``seed``, ``steps``,
    ``trajectories`` and ``record_every`` override the config's).

    ``threads``: worker threads for this run (default: all cores; results do not depend on
    it). ``progress``: ``True`` draws a tqdm bar (when tqdm is installed), a callable is
    called with ``(done, total)`` trajectory-steps about every 50 ms and at the end.
    ``keep_trajectories``: expose every trajectory's records as ``.trajectories``.

    The GIL is released while the ensemble runs. Ctrl-C (seen within 50 ms) stops the run
    within 1024 steps of every group of trajectories and raises ``KeyboardInterrupt``.
    """
    text, path = _source(config)
    callback, close = _progress_callback(progress)
    try:
        raw = _quasistatic.simulate(
            text,
            path,
            seed=seed,
            steps=steps,
            trajectories=trajectories,
            record_every=record_every,
            threads=threads,
            progress=callback,
        )
    finally:
        close()
    return SimulationResult(raw, keep_trajectories)


def derive(config: ConfigLike, at: Sequence[float] | None = None) -> dict[str, Any]:
    """The derived manifold dynamics of ``config``'s optimizer and noise at ``at`` (default:
    the config's start), projected onto the manifold first (as ``quasistatic derive``).

    A dict of the fields of ``derivation.json`` (numeric lists as NumPy arrays, matrices as
    2-d arrays; non-finite numbers as NaN in arrays and ``None`` alone): ``point`` (the
    manifold point), ``projection``, ``geometry`` (normal rank, curvatures, ``tr H``),
    ``equilibrium`` (normal covariance ``S``, exact and leading order), ``preconditioner``
    (Adam / RMSProp), ``drift_per_step``, ``drift_per_step_leading``,
    ``drift_cross_per_step``, ``drift_per_slow_time``, ``tangent_noise``, ``regularisers``,
    ``diagnostics``, ``warnings``, ``seconds``, and ``table`` (the CLI's printed table).
    """
    text, path = _source(config)
    point = None if at is None else [float(x) for x in at]
    return _quasistatic.derive(text, path, point)


def compare(
    config: ConfigLike,
    eta_sweep: bool = False,
    *,
    out: str | os.PathLike[str] | None = None,
    h: int | None = None,
    tolerance: float = 0.1,
    trajectories: int | None = None,
    steps: int | None = None,
    record_every: int | None = None,
) -> dict[str, Any]:
    """True against derived dynamics (as ``quasistatic compare``), writing its files into
    ``out`` (default: a new temporary directory). Returns the comparison (gaps, verdict
    ``agrees``, costs, ...) as a dict with ``report`` (the report's path); with
    ``eta_sweep``, ``comparisons`` at eta, eta/2, eta/4 and the fitted ``slope``."""
    directory = tempfile.mkdtemp(prefix="quasistatic-compare-") if out is None else out
    text, path = _source(config)
    return _quasistatic.compare(
        os.fspath(directory),
        text,
        path,
        eta_sweep=eta_sweep,
        h=h,
        tolerance=tolerance,
        trajectories=trajectories,
        steps=steps,
        record_every=record_every,
    )


def reproduce(
    scale: str = "quick",
    out: str | os.PathLike[str] = "results",
    only: Iterable[str] | None = None,
) -> Path:
    """Run the built-in studies (as ``quasistatic reproduce``): ``scale`` is ``tiny``,
    ``quick`` or ``full``; ``only`` a subset of ``closeness``, ``momentum_scaling``,
    ``adam_rotation``, ``flatness``. Writes ``out/report.md``, ``report.html``,
    ``claims.json`` and the studies' folders; returns the report's path."""
    return Path(_quasistatic.reproduce(scale, os.fspath(out), list(only or [])))


def _sweep_task(
    text: str | None,
    path: str | None,
    seed: int,
    steps: int | None,
    trajectories: int | None,
    record_every: int | None,
    threads: int | None,
    keep_trajectories: bool,
) -> SimulationResult:
    """One run of a sweep (a module-level function, so that executors can ship it)."""
    raw = _quasistatic.simulate(
        text,
        path,
        seed=seed,
        steps=steps,
        trajectories=trajectories,
        record_every=record_every,
        threads=threads,
    )
    return SimulationResult(raw, keep_trajectories)


@dataclass
class SweepResult:
    """What :func:`sweep` returns: ``runs[(config_id, seed)]`` (every
    :class:`SimulationResult`, in sweep order) and ``table``, one tidy table of columns
    ``config_id``, ``seed``, ``step``, ``observable``, ``statistic``, ``value``."""

    runs: dict[tuple[Any, int], SimulationResult]
    table: dict[str, np.ndarray]

    def to_pandas(self) -> Any:
        """``table`` as a ``pandas.DataFrame`` (needs pandas)."""
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        return pd.DataFrame(self.table)


def sweep(
    configs: Mapping[Any, ConfigLike] | Sequence[ConfigLike],
    seeds: Iterable[int],
    executor: Executor | None = None,
    *,
    steps: int | None = None,
    trajectories: int | None = None,
    record_every: int | None = None,
    threads: int | None = None,
    keep_trajectories: bool = False,
) -> SweepResult:
    """Run the ensemble of every (config, seed) pair.

    ``configs``: a sequence (ids 0, 1, ...) or a mapping id -> config. Runs go one after the
    other in this process (each using every core) unless ``executor`` is given: any
    ``concurrent.futures.Executor``, e.g. ``ProcessPoolExecutor`` or a Dask cluster's
    ``distributed.Client(address).get_executor()``; then every run is one task, and configs
    travel as TOML text (a file's relative data paths must resolve on the workers). The
    results are bitwise identical whatever the executor (each run depends only on its config
    and seed). ``steps``, ``trajectories`` and ``record_every`` override every config's;
    ``threads`` sets each run's worker threads (default: all cores of the machine
    it runs on).
    """
    items = list(configs.items()) if isinstance(configs, Mapping) else list(enumerate(configs))
    seed_list = [int(s) for s in seeds]
    # Validate every run here, before anything runs (ConfigError names the field).
    sources = [(cid, _portable(cfg)) for cid, cfg in items]
    for _, (text, path) in sources:
        for seed in seed_list:
            _quasistatic.check(
                text, path, seed=seed, steps=steps, trajectories=trajectories, record_every=record_every
            )
    jobs = [
        (cid, seed, (text, path, seed, steps, trajectories, record_every, threads, keep_trajectories))
        for cid, (text, path) in sources
        for seed in seed_list
    ]
    if executor is None:
        results = [_sweep_task(*args) for _, _, args in jobs]
    else:
        futures = [executor.submit(_sweep_task, *args) for _, _, args in jobs]
        results = [f.result() for f in futures]
    runs = {(cid, seed): r for (cid, seed, _), r in zip(jobs, results)}
    return SweepResult(runs=runs, table=_sweep_table(runs))


def _sweep_table(runs: Mapping[tuple[Any, int], SimulationResult]) -> dict[str, np.ndarray]:
    """The runs' tidy summaries, one after the other, with their config id and seed."""
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("config_id", "seed", "step", "observable", "statistic", "value")
    }
    for (cid, seed), r in runs.items():
        t = r.tidy()
        n = len(t["value"])
        ids = np.empty(n, dtype=object)
        ids[:] = [cid] * n
        columns["config_id"].append(ids)
        columns["seed"].append(np.full(n, seed, dtype=np.int64))
        for k in ("step", "observable", "statistic", "value"):
            columns[k].append(t[k])
    if not runs:
        return {
            "config_id": np.empty(0, dtype=object),
            "seed": np.empty(0, dtype=np.int64),
            "step": np.empty(0, dtype=np.uint64),
            "observable": np.empty(0, dtype=object),
            "statistic": np.empty(0, dtype=object),
            "value": np.empty(0, dtype=np.float64),
        }
    return {k: np.concatenate(v) for k, v in columns.items()}
