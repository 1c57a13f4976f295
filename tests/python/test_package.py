"""The package: its stub matches the built module, it type-checks, results convert."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import quasistatic as qs
from conftest import EXAMPLES, ROOT


def test_stub_matches_the_built_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "quasistatic._quasistatic"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_package_type_checks() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", os.fspath(ROOT / "python" / "quasistatic")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_result_arrays_and_tidy_frame() -> None:
    r = qs.simulate(EXAMPLES / "valley_sgd.toml", steps=500, trajectories=16, record_every=100)
    assert r.trajectories is None  # not kept unless asked
    assert r.steps.dtype == np.uint64 and list(r.steps) == [0, 100, 200, 300, 400, 500]
    n_c, n_o = len(r.steps), len(r.observables)
    for name in ("mean", "std", "stderr", "q05", "q50", "q95", "min", "max"):
        assert r.stats[name].shape == (n_c, n_o) and r.stats[name].dtype == np.float64
    assert r.count.dtype == np.uint64 and (r.count == 16).all()
    assert set(r.quantiles) == {"q05", "q25", "q50", "q75", "q95"}
    assert r.stats is r.stats and r.steps is r.steps  # made once
    assert r.gradient_evaluations == 16 * 500 and r.seconds > 0
    assert r.divergences == []
    frame = r.to_pandas()
    assert list(frame.columns) == ["step", "statistic", "observable", "value"]
    assert len(frame) == n_c * n_o * len(qs.STATISTICS)
    loss = r.observable("loss")
    assert np.array_equal(loss["mean"], r.mean[:, r.observables.index("loss")])


def test_trajectories_agree_with_summaries() -> None:
    r = qs.simulate(
        EXAMPLES / "valley_sgd.toml", steps=300, trajectories=10, keep_trajectories=True
    )
    assert r.trajectories is not None
    assert np.allclose(r.trajectories.mean(axis=0), r.mean, rtol=1e-12, atol=1e-15)


def test_divergences_are_reported() -> None:
    config = {
        "steps": 200,
        "trajectories": 8,
        "record_every": 50,
        "model": {"kind": "valley"},
        "noise": {"kind": "label", "sigma": 1.0},
        "optimizer": {"kind": "sgd", "lr": 3.0},
    }
    r = qs.simulate(config, keep_trajectories=True)
    assert len(r.divergences) == 8
    d = r.divergences[0]
    assert d.trajectory == 0 and d.step >= 0 and isinstance(d.reason, str)
    assert (r.count[-1] == 0).all()


def test_check_returns_the_resolved_config() -> None:
    text = qs.check(EXAMPLES / "valley_sgd.toml")
    assert "record_every = 100" in text and "[optimizer]" in text


def test_reproduce_tiny(tmp_path: Path) -> None:
    report = qs.reproduce(scale="tiny", out=tmp_path, only=["adam_rotation"])
    assert report == tmp_path / "report.md"
    assert report.is_file() and (tmp_path / "claims.json").is_file()
