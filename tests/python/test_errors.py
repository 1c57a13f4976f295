"""Invalid input raises ConfigError (a ValueError) with field, value and allowed, before
anything runs or is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import quasistatic as qs
from conftest import EXAMPLES


def valley(**optimizer: Any) -> dict[str, Any]:
    return {
        "steps": 100,
        "trajectories": 4,
        "record_every": 10,
        "model": {"kind": "valley"},
        "noise": {"kind": "label", "sigma": 1.0},
        "optimizer": {"kind": "sgd", "lr": 0.05, **optimizer},
    }


@pytest.mark.parametrize(
    "config,field,value,allowed",
    [
        (valley(lr=-0.5), "optimizer.lr", "-0.5", "a finite number > 0"),
        ({**valley(), "model": {"kind": "valey"}}, "model.kind", "valey", "`valley`"),
        ({**valley(), "stepz": 3}, "stepz", "stepz", "`steps`"),
        ({**valley(), "record_every": 1000}, "record_every", "1000", "1..=100"),
        ({**valley(), "observables": ["loss", "nope"]}, "observables[1]", "nope", "one of"),
        (valley(beta=0.9), "optimizer.beta", "given for kind `sgd`", "remove it"),
        (valley(lr=None), "optimizer.lr", "None", "a str, int, float, bool, list or dict"),
    ],
)
def test_config_error_fields(config: dict[str, Any], field: str, value: str, allowed: str) -> None:
    with pytest.raises(qs.ConfigError) as info:
        qs.simulate(config)
    e = info.value
    assert isinstance(e, ValueError)
    assert e.field == field
    assert e.value == value
    assert allowed in e.allowed
    assert field in str(e)


def test_overrides_are_validated() -> None:
    with pytest.raises(qs.ConfigError) as info:
        qs.simulate(valley(), steps=0)
    assert (info.value.field, info.value.value) == ("steps", "0")
    with pytest.raises(qs.ConfigError) as info:
        qs.simulate(valley(), trajectories=0)
    assert info.value.field == "trajectories"


def test_toml_syntax_and_missing_file() -> None:
    with pytest.raises(qs.ConfigError) as info:
        qs.simulate("steps = \n[model]\nkind = 'valley'\n")
    assert info.value.field == "config"
    with pytest.raises(qs.ConfigError) as info:
        qs.simulate(Path("no/such/config.toml"))
    assert info.value.field == "config"
    assert info.value.value == "no/such/config.toml"
    with pytest.raises(TypeError):
        qs.simulate(42)  # type: ignore[arg-type]


def test_derive_point_of_wrong_length() -> None:
    with pytest.raises(qs.ConfigError) as info:
        qs.derive(EXAMPLES / "valley_sgd.toml", at=[1.0, 2.0, 3.0])
    assert info.value.field == "at"
    assert info.value.value == "3 numbers"
    assert "exactly 2" in info.value.allowed


def test_nothing_is_written_on_invalid_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(qs.ConfigError):
        qs.compare(valley(lr=0.0), out=out)
    with pytest.raises(qs.ConfigError):
        qs.compare(valley(), out=out, tolerance=-1.0)
    with pytest.raises(qs.ConfigError) as info:
        qs.reproduce(scale="huge", out=out)
    assert info.value.field == "scale"
    with pytest.raises(qs.ConfigError) as info:
        qs.reproduce(scale="tiny", out=out, only=["nonsense"])
    assert info.value.value == "nonsense"
    assert not out.exists()


def test_sweep_validates_every_config_before_running() -> None:
    calls: list[object] = []

    class Recording:
        def submit(self, fn: Any, *args: Any) -> Any:  # pragma: no cover - must not be called
            calls.append(args)
            raise AssertionError("a run was submitted")

    with pytest.raises(qs.ConfigError) as info:
        qs.sweep([valley(), valley(lr=-1.0)], seeds=[0], executor=Recording())  # type: ignore[arg-type]
    assert info.value.field == "optimizer.lr"
    assert calls == []


def test_config_error_pickles() -> None:
    import pickle

    with pytest.raises(qs.ConfigError) as info:
        qs.simulate(valley(lr=-0.5))
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is qs.ConfigError
    assert (back.field, back.value, back.allowed) == ("optimizer.lr", "-0.5", "a finite number > 0")
    assert str(back) == str(info.value)
