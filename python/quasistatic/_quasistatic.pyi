"""Types of the extension module `quasistatic._quasistatic` (checked against the built module
by `mypy.stubtest` in the tests)."""

from os import PathLike
from pathlib import Path
from typing import Any, Callable, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "ConfigError",
    "__version__",
    "Ensemble",
    "toml_from_dict",
    "check",
    "simulate",
    "ensemble_from_state",
    "derive",
    "compare",
    "reproduce",
]

class ConfigError(ValueError):
    """Invalid configuration or input: `.field` (dotted name), `.value` (as given) and
    `.allowed` (what is allowed)."""

    field: str
    value: str
    allowed: str

_State = tuple[
    list[str],
    list[int],
    int,
    bytes,
    list[int],
    list[tuple[int, int, float, str]],
    int,
    float,
    tuple[str, str, list[tuple[str, str]], bool],
]

@final
class Ensemble:
    """One ensemble: the recorded values, the divergences, the cost, and what its files say
    about it."""

    @property
    def observables(self) -> list[str]: ...
    @property
    def trajectories(self) -> int: ...
    @property
    def gradient_evaluations(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def title(self) -> str: ...
    @property
    def config_toml(self) -> str: ...
    @property
    def description(self) -> list[tuple[str, str]]: ...
    @property
    def divergences(self) -> list[tuple[int, int, float, str]]: ...
    def steps(self) -> npt.NDArray[np.uint64]: ...
    def valid(self) -> npt.NDArray[np.uint64]: ...
    def values(self) -> npt.NDArray[np.float64]: ...
    def summary(self) -> dict[str, npt.NDArray[Any]]: ...
    def save(self, dir: str | PathLike[str]) -> list[Path]: ...
    def to_state(self) -> _State: ...

def toml_from_dict(config: dict[str, Any]) -> str: ...
def check(
    text: str | None = None,
    path: str | PathLike[str] | None = None,
    *,
    seed: int | None = None,
    steps: int | None = None,
    trajectories: int | None = None,
    record_every: int | None = None,
) -> str: ...
def simulate(
    text: str | None = None,
    path: str | PathLike[str] | None = None,
    *,
    seed: int | None = None,
    steps: int | None = None,
    trajectories: int | None = None,
    record_every: int | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> Ensemble: ...
def ensemble_from_state(state: _State) -> Ensemble: ...
def derive(
    text: str | None = None,
    path: str | PathLike[str] | None = None,
    at: list[float] | None = None,
) -> dict[str, Any]: ...
def compare(
    out: str | PathLike[str],
    text: str | None = None,
    path: str | PathLike[str] | None = None,
    *,
    eta_sweep: bool = False,
    h: int | None = None,
    tolerance: float = 0.1,
    trajectories: int | None = None,
    steps: int | None = None,
    record_every: int | None = None,
) -> dict[str, Any]: ...
def reproduce(
    scale: str = "quick",
    out: str | PathLike[str] = ...,
    only: list[str] = ...,
) -> Path: ...
