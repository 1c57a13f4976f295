"""The Python API against the CLI: the same config and seed give the same files and the same
numbers, bit for bit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import quasistatic as qs
from conftest import EXAMPLES, run_cli

CASES = [
    # (config, overrides): small enough for the test-suite; the register path (valley, label
    # noise), the general path (mini-batch noise, data), momentum in d > 2, Adam, CSV data.
    ("valley_sgd.toml", dict(seed=3, steps=600, trajectories=20, record_every=50)),
    ("product_minibatch.toml", dict(seed=2, steps=400, trajectories=10, record_every=100)),
    ("valley_nd_momentum.toml", dict(seed=4, steps=300, trajectories=9, record_every=30)),
    ("valley_rotated_adam.toml", dict(seed=0, steps=300, trajectories=12, record_every=60)),
    ("csv_diagonal.toml", dict(seed=1, steps=200, trajectories=8, record_every=50)),
]


def cli_args(overrides: dict[str, int]) -> list[str]:
    return [
        a
        for k, v in overrides.items()
        for a in (f"--{k.replace('_', '-')}", str(v))
    ]


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


@pytest.mark.parametrize("name,overrides", CASES, ids=[c[0] for c in CASES])
def test_simulate_matches_cli(cli: Path, tmp_path: Path, name: str, overrides: dict[str, int]) -> None:
    config = EXAMPLES / name
    run_cli(cli, "simulate", config, "--out", tmp_path / "cli", "--no-progress", *cli_args(overrides))
    result = qs.simulate(config, keep_trajectories=True, **overrides)
    written = result.save(tmp_path / "py")

    # Both folders carry the marker that lets a rerun replace them; `save` lists the run's files.
    cli_files = sorted(p.name for p in (tmp_path / "cli").iterdir() if p.name != ".quasistatic-output")
    assert sorted(p.name for p in written) == cli_files
    assert (tmp_path / "py" / ".quasistatic-output").is_file()
    for f in cli_files:
        a = (tmp_path / "cli" / f).read_bytes()
        b = (tmp_path / "py" / f).read_bytes()
        if f == "summary.json":
            ja, jb = json.loads(a), json.loads(b)
            ja.pop("seconds"), jb.pop("seconds")
            assert ja == jb
        else:
            assert a == b, f"{f} differs"

    # The arrays hold the numbers of the CLI's CSVs (shortest round-trip formatting).
    with open(tmp_path / "cli" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    steps = list(result.steps)
    obs = result.observables
    seen = 0
    for row in rows:
        c, o = steps.index(int(row["step"])), obs.index(row["observable"])
        got = result.stats[row["statistic"]][c, o]
        want = float(row["value"])
        assert bits(np.array(got)) == bits(np.array(want)) or (np.isnan(got) and np.isnan(want))
        seen += 1
    assert seen == len(steps) * len(obs) * len(qs.STATISTICS)

    traj = result.trajectories
    assert traj is not None
    assert traj.shape == (result.n_trajectories, len(steps), len(obs))
    with open(tmp_path / "cli" / "trajectories.csv") as fh:
        for row in csv.DictReader(fh):
            c, o = steps.index(int(row["step"])), obs.index(row["observable"])
            got = traj[int(row["trajectory"]), c, o]
            assert bits(np.array(got)) == bits(np.array(float(row["value"])))


def test_dict_and_toml_string_give_the_same_run() -> None:
    config = EXAMPLES / "valley_sgd.toml"
    by_path = qs.simulate(config, steps=300, trajectories=8)
    text = config.read_text()
    by_text = qs.simulate(text, steps=300, trajectories=8)
    as_dict = {
        "title": "Valley, label-noise SGD",
        "seed": 1,
        "record_every": 100,
        "model": {"kind": "valley", "profile": "quadratic", "c": 1.0, "start_y": 2.0},
        "noise": {"kind": "label", "sigma": 1.0},
        "optimizer": {"kind": "sgd", "lr": 0.05},
    }
    by_dict = qs.simulate(as_dict, steps=300, trajectories=8)
    for r in (by_text, by_dict):
        assert r.config_toml == by_path.config_toml
        for k, v in by_path.stats.items():
            assert np.array_equal(bits(r.stats[k]), bits(v)), k


def test_threads_do_not_change_results() -> None:
    config = EXAMPLES / "product_minibatch.toml"
    one = qs.simulate(config, steps=300, trajectories=24, record_every=100, threads=1, keep_trajectories=True)
    two = qs.simulate(config, steps=300, trajectories=24, record_every=100, threads=2, keep_trajectories=True)
    assert one.trajectories is not None and two.trajectories is not None
    assert np.array_equal(bits(one.trajectories), bits(two.trajectories))


def test_derive_matches_cli(cli: Path, tmp_path: Path) -> None:
    for name in ("valley_sgd.toml", "valley_rotated_adam.toml"):
        config = EXAMPLES / name
        run_cli(cli, "derive", config, "--out", tmp_path / name)
        want = json.loads((tmp_path / name / "derivation.json").read_text())
        got = qs.derive(config)
        for key in ("point", "drift_per_step", "drift_per_step_leading", "drift_per_slow_time"):
            assert np.array_equal(got[key], np.array(want[key], dtype=np.float64)), key
        for which in ("exact", "leading"):
            assert np.array_equal(
                got["equilibrium"][which]["matrix"], np.array(want["equilibrium"][which]["matrix"])
            )
        assert got["tangent_noise"]["trace_per_step"] == want["tangent_noise"]["trace_per_step"]
        assert got["geometry"]["trace_hessian"] == want["geometry"]["trace_hessian"]
        assert got["diagnostics"]["separation_ratio"] == want["diagnostics"]["separation_ratio"]
        assert [r["value"] for r in got["regularisers"]] == [r["value"] for r in want["regularisers"]]
        assert isinstance(got["table"], str) and "drift" in got["table"]


def test_derive_at_a_point() -> None:
    got = qs.derive(EXAMPLES / "valley_sgd.toml", at=[0.1, 1.0])
    assert np.allclose(got["start"], [0.1, 1.0])
    assert got["point"].shape == (2,)
    assert abs(got["point"][0]) < 1e-8  # projected onto the manifold x = 0


def test_compare_matches_cli(cli: Path, tmp_path: Path) -> None:
    config = EXAMPLES / "valley_sgd.toml"
    args = dict(trajectories=16, steps=400, record_every=100)
    run_cli(cli, "compare", config, "--out", tmp_path / "cli", *cli_args(args))
    got = qs.compare(config, out=tmp_path / "py", **args)
    assert Path(got["report"]).is_file()
    assert (tmp_path / "py" / "gaps.csv").read_bytes() == (tmp_path / "cli" / "gaps.csv").read_bytes()
    assert isinstance(got["agrees"], bool)
    assert [g["observable"] for g in got["gaps"]]
