"""The example script runs (at tiny size)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_sweep_momentum_example(tmp_path: Path) -> None:
    env = {**os.environ, "QUASISTATIC_EXAMPLE_SIZE": "tiny", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, os.fspath(ROOT / "examples" / "python" / "sweep_momentum.py"), "--out", os.fspath(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "sweep_momentum.csv").is_file()
    lines = (tmp_path / "sweep_momentum.csv").read_text().splitlines()
    assert lines[0] == "k,eta,batch,seed,step,slow_time,trace_hessian_mean"
    assert len(lines) > 4
