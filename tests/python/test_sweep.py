"""Sweeps: in process and on a Dask cluster of two worker processes, bit for bit the same."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import quasistatic as qs
from conftest import EXAMPLES


def configs() -> dict[str, Any]:
    base = {
        "steps": 400,
        "trajectories": 12,
        "record_every": 100,
        "model": {"kind": "valley"},
        "noise": {"kind": "label", "sigma": 1.0},
    }
    return {
        "sgd": {**base, "optimizer": {"kind": "sgd", "lr": 0.05}},
        "heavy_ball": {**base, "optimizer": {"kind": "heavy_ball", "lr": 0.01, "beta": 0.9}},
        "product": EXAMPLES / "product_minibatch.toml",
    }


SEEDS = [0, 7]


def assert_same(a: qs.SweepResult, b: qs.SweepResult) -> None:
    assert list(a.runs) == list(b.runs)
    assert a.table.keys() == b.table.keys()
    for k in a.table:
        if a.table[k].dtype == np.float64:
            assert np.array_equal(a.table[k].view(np.uint64), b.table[k].view(np.uint64)), k
        else:
            assert np.array_equal(a.table[k], b.table[k]), k
    for key in a.runs:
        for stat, v in a.runs[key].stats.items():
            assert np.array_equal(v, b.runs[key].stats[stat], equal_nan=True), (key, stat)


@pytest.fixture(scope="module")
def serial() -> qs.SweepResult:
    return qs.sweep(configs(), SEEDS, steps=400, trajectories=12, record_every=100)


def test_serial_sweep_table(serial: qs.SweepResult) -> None:
    t = serial.table
    assert set(t) == {"config_id", "seed", "step", "observable", "statistic", "value"}
    n = len(t["value"])
    assert all(len(c) == n for c in t.values())
    assert list(serial.runs) == [(c, s) for c in ("sgd", "heavy_ball", "product") for s in SEEDS]
    # Every run's rows, in summary.csv order, with its id and seed.
    r = serial.runs[("heavy_ball", 7)]
    rows = (t["config_id"] == "heavy_ball") & (t["seed"] == 7)
    mine = r.tidy()
    assert np.array_equal(t["value"][rows], mine["value"], equal_nan=True)
    mean_loss = rows & (t["statistic"] == "mean") & (t["observable"] == "loss")
    assert np.array_equal(t["value"][mean_loss], r.observable("loss")["mean"])
    # Different seeds, different runs; same seed, the run of simulate.
    assert not np.array_equal(serial.runs[("sgd", 0)].mean, serial.runs[("sgd", 7)].mean)
    alone = qs.simulate(configs()["sgd"], seed=7)
    assert np.array_equal(alone.mean, serial.runs[("sgd", 7)].mean)
    frame = serial.to_pandas()
    assert len(frame) == n and list(frame.columns)[:2] == ["config_id", "seed"]


def test_results_pickle(serial: qs.SweepResult) -> None:
    r = serial.runs[("product", 0)]
    back = pickle.loads(pickle.dumps(r))
    assert back.config_toml == r.config_toml
    assert back.divergences == r.divergences
    for k, v in r.stats.items():
        assert np.array_equal(back.stats[k], v, equal_nan=True)


def test_thread_pool_executor_equals_serial(serial: qs.SweepResult) -> None:
    with ThreadPoolExecutor(max_workers=2) as ex:
        assert_same(serial, qs.sweep(configs(), SEEDS, executor=ex, steps=400, trajectories=12, record_every=100))


def test_dask_local_cluster_equals_serial(serial: qs.SweepResult) -> None:
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        on_dask = qs.sweep(
            configs(), SEEDS, executor=client.get_executor(), steps=400, trajectories=12, record_every=100, threads=1
        )
    assert_same(serial, on_dask)
