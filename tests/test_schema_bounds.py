"""The config schema's numeric bounds and the dataclasses' own checks agree: at every bound the
schema states, a value just inside is accepted by both and a value just outside refused by both
(a library caller and a config file meet the same limits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from lmnas.config import schema
from lmnas.data.spec import HfSpec
from lmnas.data.spec import DatasetSpec
from lmnas.errors import LmnasError
from lmnas.search.slurm_executor import SlurmSettings
from lmnas.training.recipe import TrainRecipe

BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def _sections() -> dict[str, tuple[dict[str, Any], Callable[..., Any]]]:
    s = schema()
    dataset = s["$defs"]["dataset"]["properties"]
    return {
        "recipe": (s["$defs"]["recipe"]["properties"], lambda **kw: TrainRecipe(**{"epochs": 3, "batch_size": 8, "lr": 0.1, **kw})),
        "dataset": (dataset, lambda **kw: DatasetSpec(**{"source": "digits", **kw})),
        "dataset.hf": (dataset["hf"]["properties"], lambda **kw: HfSpec(**kw)),
        "search.executor_settings": (s["properties"]["search"]["properties"]["executor_settings"]["properties"],
                                     lambda **kw: SlurmSettings.from_dict(kw)),
    }


def _probes(spec: dict[str, Any]) -> list[float]:
    """Values around each bound: on it and one step (1 for integers, 1e-6 otherwise) either side."""
    step = 1 if "integer" in ([spec["type"]] if isinstance(spec.get("type"), str) else spec.get("type", [])) else 1e-6
    return sorted({b + d for key in BOUNDS if key in spec for b in [spec[key]] for d in (-step, 0, step)})


def _cases() -> list[tuple[str, str, float]]:
    return [(section, name, value) for section, (props, _) in _sections().items()
            for name, spec in props.items() for value in _probes(spec)]


def _accepts(build: Callable[..., Any], name: str, value: float) -> bool:
    try:
        build(**{name: value})
    except (LmnasError, TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize(("section", "name", "value"), _cases())
def test_schema_and_dataclass_bounds_agree(section: str, name: str, value: float) -> None:
    props, build = _sections()[section]
    by_schema = jsonschema.Draft202012Validator(props[name]).is_valid(value)
    assert _accepts(build, name, value) == by_schema, (
        f"{section}.{name}={value}: schema {'accepts' if by_schema else 'refuses'} it, the dataclass does not agree")


def test_the_comparison_covers_every_bounded_setting() -> None:
    cases = _cases()
    assert len({(s, n) for s, n, _ in cases}) >= 30 and len(cases) >= 90
