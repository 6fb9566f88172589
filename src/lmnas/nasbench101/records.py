"""NAS-Bench-101 records from JSON, Parquet or the official tfrecord, as one `Record` type.

Accuracies are fractions in 0..1 everywhere in lmnas (JSON files in percent are converted).
Duplicate cells (same module hash, e.g. the same cell sampled twice, or isomorphic
copies) are merged into one record whose accuracies are the **mean** over the duplicates
that have one: each duplicate is one training run, so the mean estimates the cell's
expected accuracy, as the tfrecord reader does over the benchmark's three repeats.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from lmnas.errors import LmnasError
from lmnas.io import read_json
from lmnas.nasbench101.cell import CellSpec
from lmnas.nasbench101.tfrecord import read_runs, summarise_runs


@dataclass(frozen=True)
class Record:
    cell: CellSpec
    val_accuracy: float | None  # fraction 0..1
    test_accuracy: float | None  # fraction 0..1
    source_id: str  # the source's key of the (first) entry: JSON key, Parquet id/row, tfrecord hash
    trainable_parameters: int | None = None

    @property
    def hash(self) -> str:
        return self.cell.hash()


def load_records(path: str | os.PathLike[str], *, epochs: int = 108, verify_crc: bool = True) -> list[Record]:
    """Records from `.json`, `.parquet` or `.tfrecord`, deduplicated by module hash."""
    path = Path(path)
    if not path.is_file():
        raise LmnasError(f"NAS-Bench-101 records file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        records = load_json_records(path)
    elif suffix in (".parquet", ".pq"):
        records = load_parquet_records(path)
    elif suffix == ".tfrecord":
        records = load_tfrecord_records(path, epochs=epochs, verify_crc=verify_crc)
    else:
        raise LmnasError(f"{path}: unknown records format {suffix!r}; expected .json, .parquet or .tfrecord")
    return dedup_records(records)


def load_json_records(path: Path) -> list[Record]:
    """The shared subset layout: `{key: {pruned_matrix|matrix, pruned_ops|ops, val_acc_108 (%)}}`;
    a list of such entries (keyed by position) works too; `val_acc` / `test_acc` are fractions."""
    data = read_json(path)
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else None
    if items is None:
        raise LmnasError(f"{path}: expected a JSON object or list of NAS-Bench-101 entries")
    return [_json_record(path, str(key), entry) for key, entry in items]


def _json_record(path: Path, key: str, entry: Any) -> Record:
    if not isinstance(entry, dict):
        raise LmnasError(f"{path}: entry {key!r} is not an object")
    matrix = entry.get("pruned_matrix", entry.get("matrix"))
    ops = entry.get("pruned_ops", entry.get("ops"))
    if matrix is None or ops is None:
        raise LmnasError(f"{path}: entry {key!r} needs 'pruned_matrix'/'pruned_ops' or 'matrix'/'ops'")
    try:
        cell = CellSpec(matrix, ops)
    except LmnasError as exc:
        raise LmnasError(f"{path}: entry {key!r}: {exc}") from None
    val = _fraction(path, key, entry, percent="val_acc_108", fraction="val_acc")
    test = _fraction(path, key, entry, percent="test_acc_108", fraction="test_acc")
    params = entry.get("params")
    if params is None and entry.get("naslib_params_M") is not None:
        params = round(entry["naslib_params_M"] * 1e6)
    return Record(cell, val, test, key, None if params is None else int(params))


def _fraction(path: Path, key: str, entry: dict, *, percent: str, fraction: str) -> float | None:
    if entry.get(percent) is not None:
        return _checked(path, key, percent, float(entry[percent]) / 100.0)
    if entry.get(fraction) is not None:
        return _checked(path, key, fraction, float(entry[fraction]))
    return None


def _checked(path: Path, key: str, name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise LmnasError(f"{path}: entry {key!r} field {name!r} gives accuracy {value}; expected a fraction in 0..1")
    return value


def load_parquet_records(path: Path) -> list[Record]:
    """Columns `matrix` (list<list<int>>), `ops` (list<string>), `val_acc` (fraction, nullable);
    optional `test_acc`, `params` and `id` (else the row number is the source id). The joined table
    (`lmnas nb101 join`) works too: `val_acc_108` / `test_acc_108` then, and `hash` as the id."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    records = []
    for index, row in enumerate(rows):
        key = str(row.get("id", row.get("hash", index)))
        for name in ("val_acc", "test_acc"):
            if row.get(name) is None and row.get(f"{name}_108") is not None:
                row[name] = row[f"{name}_108"]
        for column in ("matrix", "ops"):
            if column not in row:
                raise LmnasError(f"{path}: missing column {column!r}; expected matrix, ops, val_acc")
        try:
            cell = CellSpec(row["matrix"], row["ops"])
        except LmnasError as exc:
            raise LmnasError(f"{path}: row {key}: {exc}") from None
        val = None if row.get("val_acc") is None else _checked(path, key, "val_acc", float(row["val_acc"]))
        test = None if row.get("test_acc") is None else _checked(path, key, "test_acc", float(row["test_acc"]))
        params = row.get("params")
        records.append(Record(cell, val, test, key, None if params is None else int(params)))
    return records


def load_tfrecord_records(path: Path, *, epochs: int = 108, verify_crc: bool = True) -> list[Record]:
    """One record per cell: final accuracies averaged over the repeats at `epochs`."""
    return [
        Record(s.cell, s.val_accuracy, s.test_accuracy, s.module_hash, s.trainable_parameters)
        for s in summarise_runs(read_runs(path, verify_crc=verify_crc), epochs=epochs)
    ]


def dedup_records(records: list[Record]) -> list[Record]:
    """Merge records with the same module hash (first-seen order, first cell and source id);
    accuracies become the mean over the duplicates that have one (None if none has)."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[record.hash].append(record)
    merged = []
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            merged.append(first)
            continue
        merged.append(
            Record(
                first.cell,
                _mean([r.val_accuracy for r in group]),
                _mean([r.test_accuracy for r in group]),
                first.source_id,
                first.trainable_parameters,
            )
        )
    return merged


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None
