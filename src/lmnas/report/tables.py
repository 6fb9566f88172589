"""Markdown table helpers (plain strings; no extra dependency)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e6 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    # A literal "|" (NAS-Bench-201 keys are full of them) would split the cell.
    lines += ["| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values: Iterable[float | None], digits: int = 2, *, std_of_one: bool = False) -> str:
    """"mean ± std" of the values (None skipped): "–" for none, the lone value for one, or with
    `std_of_one` "v ± 0.00" (a benchmark column keeps one shape)."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return "–"
    if len(present) == 1 and not std_of_one:
        return f"{present[0]:.{digits}f}"
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    return f"{statistics.mean(present):.{digits}f} ± {std:.{digits}f}"
