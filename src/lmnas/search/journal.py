"""The append-only journal of evaluations.

`journal.jsonl` is the write-ahead log (lmnas.jsonl): one JSON line per finished evaluation,
fsync'ed before the next one starts, so a killed run loses at most the evaluation in flight.
`journal.parquet` is the artefact, rewritten from the log whenever the run stops (without the
wall-clock fields, which stay in the log and timings.json: lmnas.search.outputs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lmnas.errors import LmnasError
from lmnas.io import write_with
from lmnas.jsonl import append_jsonl, read_jsonl


class Journal:
    """`path=None` keeps the journal in memory only (benchmarks of the strategies themselves)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.rows: list[dict[str, Any]] = self._read()
        self.by_key: dict[str, dict[str, Any]] = {row["key"]: row for row in self.rows}

    def _read(self) -> list[dict[str, Any]]:
        rows = read_jsonl(self.path, "journal") if self.path is not None else []
        for number, row in enumerate(rows, 1):
            missing = [k for k in ("key", "step", "metrics", "cost_s") if k not in row]
            if missing or not isinstance(row.get("metrics"), dict) or "accuracy" not in row["metrics"]:
                raise LmnasError(f"{self.path}: record {number} is not a journal row (missing "
                                 f"{missing or ['metrics.accuracy']}); start afresh with lmnas search --restart")
        return rows

    def append(self, row: dict[str, Any]) -> None:
        if row["key"] in self.by_key:
            raise LmnasError(f"{self.path}: genotype {row['key']!r} is already in the journal")
        if self.path is not None:
            append_jsonl(self.path, row)
        self.rows.append(row)
        self.by_key[row["key"]] = row

    def __len__(self) -> int:
        return len(self.rows)

    def to_parquet(self, path: str | os.PathLike[str], drop: tuple[str, ...] = ()) -> None:
        """`drop`: row fields left out (the search's wall-clock ones, lmnas.search.outputs)."""
        table = to_table([{k: v for k, v in row.items() if k not in drop} for row in self.rows])
        write_with(path, lambda tmp: pq.write_table(table, tmp))


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Flatten `metrics` into `metric_<name>` columns; nested values become JSON strings."""
    flat = []
    for row in rows:
        out = {k: v for k, v in row.items() if k != "metrics"}
        out.update({f"metric_{k}": v for k, v in row.get("metrics", {}).items()})
        flat.append({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in out.items()})
    columns = sorted({k for row in flat for k in row})
    return pa.table({c: [row.get(c) for row in flat] for c in columns}) if flat else pa.table(
        {c: pa.array([], pa.string()) for c in ("key", "step")}
    )
