"""The Python call against the CLI on bench's T1 and T3 sizes (full: N = 4096 x 100 000
steps on the valley; N = 16 x 100 000 steps on the diagonal network, p = 100, n = 40; 101
records each), SGD, label noise.

    python bench/python/overhead.py [--cli target/release/quasistatic] [--repeats 3] [--quick]

Times, medians of the repeats, alternating the two: the CLI's whole process (`simulate
--out`, writing its files) and, in this interpreter, `simulate(...)` alone and
`simulate(...).save(dir)` (the same files); and of each the part outside the engine (wall
time minus the ensemble's own `seconds`), which is what the Python layer can add: on a shared
machine the engine's time varies by more than the whole difference. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import quasistatic as qs

T1 = """
title = "T1"
seed = 0
steps = {steps}
trajectories = 4096
record_every = {every}
observables = ["loss", "y0", "distance_to_manifold"]
save_trajectories = false
[model]
kind = "valley"
profile = "quadratic"
c = 1.0
start_y = 2.0
[noise]
kind = "label"
sigma = 1.0
[optimizer]
kind = "sgd"
lr = 0.05
"""

T3 = """
title = "T3"
seed = 0
steps = {steps}
trajectories = 16
record_every = {every}
observables = ["loss", "teacher_distance", "weight_l1"]
save_trajectories = false
[model]
kind = "diagonal"
floor = 0.01
[data]
kind = "synthetic"
n = 40
n_test = 0
dim = 100
teacher = "sparse"
teacher_k = 5
teacher_value = 1.0
seed = 0
[noise]
kind = "label"
sigma = 0.5
[optimizer]
kind = "sgd"
lr = 0.01
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cli", default="target/release/quasistatic")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="10x fewer steps")
    a = p.parse_args()
    steps = 10_000 if a.quick else 100_000
    print(
        "| task | CLI process (s) | Python simulate (s) | Python simulate + save (s) "
        "| overhead | CLI outside the engine (s) | Python outside the engine (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, template in (("T1", T1), ("T3", T3)):
            path = Path(tmp) / f"{name}.toml"
            path.write_text(template.format(steps=steps, every=steps // 100))
            qs.simulate(path, steps=100, record_every=10)  # warm up
            cli, py, py_save, cli_rest, py_rest = [], [], [], [], []
            for i in range(a.repeats):
                t0 = time.perf_counter()
                subprocess.run(
                    [a.cli, "simulate", str(path), "--out", f"{tmp}/cli{i}", "--no-progress"],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                cli.append(time.perf_counter() - t0)
                engine = json.loads(Path(f"{tmp}/cli{i}/summary.json").read_text())["seconds"]
                cli_rest.append(cli[-1] - engine)
                t0 = time.perf_counter()
                r = qs.simulate(path)
                py.append(time.perf_counter() - t0)
                r.save(f"{tmp}/py{i}")
                py_save.append(time.perf_counter() - t0)
                py_rest.append(py_save[-1] - r.seconds)
            c, s, ss, cr, pr = (statistics.median(x) for x in (cli, py, py_save, cli_rest, py_rest))
            print(
                f"| {name} | {c:.3f} | {s:.3f} | {ss:.3f} | {100 * (ss / c - 1):+.1f}% "
                f"| {cr:.3f} | {pr:.3f} |"
            )


if __name__ == "__main__":
    main()
