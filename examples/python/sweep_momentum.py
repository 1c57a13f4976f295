"""Heavy ball with mini-batch noise: sweep (eta, B) = k (eta0, B0) and seeds, and watch the
curves of tr H collapse against rescaled time (step x eta).

    python examples/python/sweep_momentum.py [--out DIR] [--dask SCHEDULER_ADDRESS]

Writes DIR/sweep_momentum.csv (the mean of tr H per run and checkpoint) and, when matplotlib
is installed, DIR/sweep_momentum.png. QUASISTATIC_EXAMPLE_SIZE=tiny runs it in seconds (the
test-suite does); the default size takes a minute or two on two cores. With --dask the runs go
to an existing Dask cluster (its workers need quasistatic installed).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import quasistatic as qs

ETA0, B0, BETA = 0.002, 2, 0.9
SIZES = {
    # horizon in rescaled steps (k x step), trajectories per run, seeds
    "tiny": (960, 8, [0]),
    "default": (24_000, 64, [0, 1]),
}


def config(k: int, horizon: int) -> dict[str, object]:
    """Depth-3 scalar factorisation on noisy data, heavy ball at eta = k eta0, B = k B0, for
    a horizon fixed in rescaled time (24 records at the same rescaled times for every k)."""
    steps = horizon // k
    return {
        "title": f"heavy ball, eta = {k * ETA0:g}, B = {k * B0}",
        "steps": steps,
        "record_every": steps // 24,
        "observables": ["loss", "trace_hessian"],
        "model": {"kind": "product", "depth": 3},
        "data": {
            "kind": "synthetic",
            "n": 64,
            "dim": 1,
            "teacher": "linear",
            "teacher_weights": [1.0],
            "label_noise": 0.3,
            "seed": 11,
        },
        "noise": {"kind": "minibatch", "batch": k * B0},
        "optimizer": {"kind": "heavy_ball", "lr": k * ETA0, "beta": BETA},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/sweep_momentum"))
    parser.add_argument("--dask", metavar="ADDRESS", help="scheduler address, e.g. tcp://host:8786")
    args = parser.parse_args()
    size = os.environ.get("QUASISTATIC_EXAMPLE_SIZE", "default")
    horizon, trajectories, seeds = SIZES[size]
    ks = [1, 2, 4]
    configs = {k: config(k, horizon) for k in ks}

    if args.dask:
        from distributed import Client

        with Client(args.dask) as client:
            result = qs.sweep(configs, seeds, executor=client.get_executor(), trajectories=trajectories)
    else:
        result = qs.sweep(configs, seeds, trajectories=trajectories)

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for (k, seed), run in result.runs.items():
        eta = k * ETA0
        tr = run.observable("trace_hessian")["mean"]
        for step, value in zip(run.steps, tr):
            rows.append((k, eta, k * B0, seed, int(step), float(step) * eta, float(value)))
    with open(args.out / "sweep_momentum.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["k", "eta", "batch", "seed", "step", "slow_time", "trace_hessian_mean"])
        w.writerows(rows)
    for k in ks:
        final = [r[-1] for r in rows if r[0] == k and r[4] == configs[k]["steps"]]
        print(f"k = {k}: eta = {k * ETA0:g}, B = {k * B0}, final mean tr H = {sum(final) / len(final):.4f}")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"wrote {args.out / 'sweep_momentum.csv'} (matplotlib not installed: no plot)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for (k, seed), run in result.runs.items():
        eta = k * ETA0
        ax.plot(run.steps * eta, run.observable("trace_hessian")["mean"], label=f"eta={eta:g}, B={k * B0}, seed {seed}")
    ax.set_xlabel("rescaled time (step x eta)")
    ax.set_ylabel("mean tr H")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(args.out / "sweep_momentum.png", dpi=120)
    print(f"wrote {args.out / 'sweep_momentum.csv'} and {args.out / 'sweep_momentum.png'}")


if __name__ == "__main__":
    main()
