"""Markdown table helpers (plain strings; no extra dependency)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e6 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def flatten(data: dict[str, Any], prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Scalars of a metrics JSON, nested keys joined with '.', lists and deep levels left out."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth > 0:
            out.update(flatten(value, f"{name}.", depth - 1))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value
    return out


def key_value_table(data: dict[str, Any], keep: Sequence[str] | None = None) -> str:
    flat = flatten(data)
    keys = [k for k in keep if k in flat] if keep else sorted(flat)
    return table(["metric", "value"], [(k, flat[k]) for k in keys])
