"""Shared fixtures: the repository, the built CLI binary, and a runner for it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `quasistatic` binary built in release mode (scripts/test builds it first);
    `QUASISTATIC_CLI` names another. A missing binary fails the tests that need it."""
    path = Path(os.environ.get("QUASISTATIC_CLI", ROOT / "target" / "release" / "quasistatic"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cargo build --release -p quasistatic-cli` first")
    return path


def run_cli(cli: Path, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI with one thread per run count left to it; fail with its stderr."""
    proc = subprocess.run(
        [os.fspath(cli), *map(os.fspath, args)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"quasistatic {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc
