"""Shared plumbing of the baseline benchmarks: task file, command line, timing, statistics.

Every baseline runs the tasks defined in `tasks.json` (written by `quasistatic bench --json`),
checkpoint by checkpoint: advance all trajectories `record_every` steps, then evaluate the
observables. Throughput is trajectory-steps per second of the timed part (everything after
the warm-up / compilation, observables included, like the Rust side). If the projected time
of a run exceeds `--budget` seconds, only the first checkpoints are run and the throughput is
measured on them (marked `extrapolated` in the output).
"""

import argparse
import json
import os
import platform
import time

import numpy as np


def parse_args(framework, dtypes=("float64",)):
    ap = argparse.ArgumentParser(description=f"{framework} baseline of the quasistatic benchmark")
    ap.add_argument("--tasks-file", required=True, help="tasks.json written by quasistatic bench")
    ap.add_argument("--tasks", default="t1,t2,t3,t4", help="comma-separated task keys")
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--dtype", default=dtypes[0], choices=list(dtypes))
    ap.add_argument("--repeats", type=int, default=1, help="timed repetitions (median reported)")
    ap.add_argument("--budget", type=float, default=600.0,
                    help="max seconds per (task, optimizer) run before falling back to fewer steps")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variant", default=None, help="implementation variant (see the script)")
    return ap.parse_args()


def load_tasks(path, keys):
    with open(path) as f:
        spec = json.load(f)
    out = {}
    for k in keys.split(","):
        k = k.strip()
        if k and k in spec["tasks"]:
            out[k] = spec["tasks"][k]
    return spec, out


def stats(values):
    """values: array (N, n_obs) of one checkpoint -> (mean, std (ddof 1), count)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.all(np.isfinite(v), axis=1)
    v = v[ok]
    n = v.shape[0]
    mean = v.mean(axis=0) if n else np.full(v.shape[1], np.nan)
    std = v.std(axis=0, ddof=1) if n > 1 else np.zeros(v.shape[1])
    return mean.tolist(), std.tolist(), int(n)


def median(xs):
    return float(np.median(np.asarray(xs)))


def run_task(task, opt_name, make_runner, repeats, budget, log=print):
    """Time one (task, optimizer).

    make_runner() -> (warmup, advance, observe, state0):
      warmup(): compile / warm caches (not timed);
      advance(state, chunk_index) -> state, running record_every steps;
      observe(state) -> array (N, n_obs) (host values).
    """
    n_traj, steps, every = task["trajectories"], task["steps"], task["record_every"]
    n_chunks = steps // every
    assert n_chunks * every == steps, "steps must be a multiple of record_every"
    t0 = time.perf_counter()
    warmup, advance, observe, state0 = make_runner()
    warmup()
    compile_seconds = time.perf_counter() - t0
    seconds = []
    result = None
    chunks_run = n_chunks
    for rep in range(max(1, repeats)):
        state = state0()
        records = [stats(observe(state))]
        t = time.perf_counter()
        done = 0
        for c in range(n_chunks):
            state = advance(state, c)
            records.append(stats(observe(state)))
            done += 1
            elapsed = time.perf_counter() - t
            if rep == 0 and c == 0 and elapsed * n_chunks > budget:
                chunks_run = max(1, min(n_chunks, int(budget / max(elapsed, 1e-9))))
                log(f"  {opt_name}: projected {elapsed * n_chunks:.0f} s > budget {budget:.0f} s, "
                    f"running {chunks_run} of {n_chunks} checkpoints")
            if done >= chunks_run:
                break
        seconds.append(time.perf_counter() - t)
        if result is None:
            result = records
    steps_run = chunks_run * every
    sec_med = median(seconds)
    out = {
        "seconds": seconds,
        "seconds_median": sec_med,
        "throughput": n_traj * steps_run / sec_med,
        "compile_seconds": compile_seconds,
        "steps_run": steps_run,
        "extrapolated": steps_run < steps,
        "checkpoints": [c * every for c in range(len(result))],
        "mean": [r[0] for r in result],
        "std": [r[1] for r in result],
        "count": [r[2] for r in result],
        "divergences": int(n_traj - result[-1][2]),
    }
    log(f"  {opt_name}: {out['throughput']:.3e} trajectory-steps/s "
        f"(median of {[round(s, 3) for s in seconds]} s, compile/warm-up {compile_seconds:.2f} s)")
    return out


def write_results(path, framework, version, dtype, args, tasks, results, extra=None):
    doc = {
        "framework": framework,
        "version": version,
        "dtype": dtype,
        "threads": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "repeats": args.repeats,
        "variant": args.variant,
        "tasks": {},
    }
    if extra:
        doc.update(extra)
    for k, runs in results.items():
        t = tasks[k]
        doc["tasks"][k] = {
            "trajectories": t["trajectories"],
            "steps": t["steps"],
            "record_every": t["record_every"],
            "observables": t["observables"],
            "runs": runs,
        }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def data_arrays(task):
    """(X (n, p), y (n,)) of a data task, float64."""
    n, p = task["n"], task["p"]
    x = np.asarray(task["x"], dtype=np.float64).reshape(n, p)
    y = np.asarray(task["y"], dtype=np.float64)
    return x, y
