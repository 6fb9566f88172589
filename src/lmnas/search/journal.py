"""The append-only journal of evaluations.

`journal.jsonl` is the write-ahead log: one JSON line per finished evaluation, flushed and
fsync'ed before the next one starts, so a killed run loses at most the evaluation in flight.
`journal.parquet` is the artefact, rewritten from the log whenever the run stops.
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


class Journal:
    """`path=None` keeps the journal in memory only (benchmarks of the strategies themselves)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.rows: list[dict[str, Any]] = self._read()
        self.by_key: dict[str, dict[str, Any]] = {row["key"]: row for row in self.rows}

    def _read(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        rows = []
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):  # a kill mid-write leaves a torn last line: drop it
                    break
                raise LmnasError(f"{self.path}:{number}: corrupt journal line") from None
        return rows

    def append(self, row: dict[str, Any]) -> None:
        if row["key"] in self.by_key:
            raise LmnasError(f"{self.path}: genotype {row['key']!r} is already in the journal")
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_torn_tail()
            with self.path.open("a") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
        self.rows.append(row)
        self.by_key[row["key"]] = row

    def _drop_torn_tail(self) -> None:
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # rewrite without the torn line
                    data = self.path.read_bytes()
                    f.seek(0)
                    f.truncate(data.rfind(b"\n") + 1)

    def __len__(self) -> int:
        return len(self.rows)

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        table = to_table(self.rows)
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
