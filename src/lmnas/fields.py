"""A config mapping → one of the settings dataclasses, the single place that names unknown keys.

Bounds are the dataclass's own checks (its __post_init__), kept equal to the config schema's by
tests/test_schema_bounds.py; defaults equal to the schema's by tests/test_wiring.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from lmnas.errors import LmnasError

T = TypeVar("T")


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str, noun: str = "field(s)",
                 required: tuple[str, ...] = ()) -> T:
    """`cls(**data)` once `check_keys` passes."""
    check_keys(cls, data, where, noun, required)
    return cls(**data)


def check_keys(cls: type, data: Mapping[str, Any], where: str, noun: str = "field(s)",
               required: tuple[str, ...] = (), internal: tuple[str, ...] = ()) -> None:
    """Refuse keys that are not fields of `cls` (then missing `required` ones) with one line naming
    `where`, the keys and the known ones (`noun`: what a key is called there: field(s), settings;
    `internal`: fields the code fills in, not the config)."""
    known = [f.name for f in dataclasses.fields(cls) if f.name not in internal]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise LmnasError(f"{where}: unknown {noun} {unknown}; known: {sorted(known)}")
    missing = [name for name in required if name not in data]
    if missing:
        raise LmnasError(f"{where}: missing required {noun} {missing}")
