"""Join the enumerated cells (structure, by module hash) with a hash-keyed results table.

Sources of results: the 20k multi-fidelity JSON (`{hash: {val_acc_4, val_acc_12, val_acc_36,
val_acc_108 (fractions), training_time_s_108, params}}`) or the official tfrecord (runs
averaged per hash and epoch budget). Every hash of the results must be among the cells: one
that is not is an error naming it (the enumeration or the file is then wrong).

The joined table is split in two disjoint halves by the parity of the hash's last hex digit
(md5 is uniform, so this is a seeded-free random split, stable whatever the table's size):
split "a" (pre-training corpus) and split "b" (search), as issue 12 asks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
import pyarrow as pa

from lmnas.errors import LmnasError
from lmnas.io import read_json
from lmnas.nasbench101.cell import CellSpec
from lmnas.nasbench101.network import network_parameters

EPOCHS = (4, 12, 36, 108)
SPLITS = ("a", "b")


def split_of(module_hash: str) -> str:
    return SPLITS[int(module_hash[-1], 16) & 1]


def load_hash_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """hash → {val_acc_E (fraction) for E in 4/12/36/108 where present, test_acc_108, params,
    training_time_s_108}, from the 20k JSON or an official `.tfrecord`."""
    path = Path(path)
    if not path.is_file():
        raise LmnasError(f"NAS-Bench-101 results file not found: {path}")
    if path.suffix.lower() == ".tfrecord":
        from lmnas.nasbench101.tfrecord import read_runs

        return _tfrecord_results(read_runs(path))
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise LmnasError(f"{path}: expected a JSON object keyed by module hash")
    out = {}
    for module_hash, row in raw.items():
        try:
            out[module_hash] = {**{f"val_acc_{e}": float(row[f"val_acc_{e}"]) for e in EPOCHS if f"val_acc_{e}" in row},
                                "params": int(row["params"]),
                                "training_time_s_108": float(row.get("training_time_s_108", float("nan")))}
        except (KeyError, TypeError, ValueError) as exc:
            raise LmnasError(f"{path}: record {module_hash!r} lacks a numeric {exc} field") from None
    return out


def _tfrecord_results(runs: Iterable[Any]) -> dict[str, dict[str, Any]]:
    grouped: dict[tuple[str, int], list[Any]] = {}
    for run in runs:
        grouped.setdefault((run.module_hash, run.epochs), []).append(run)
    out: dict[str, dict[str, Any]] = {}
    for (module_hash, epochs), group in grouped.items():
        row = out.setdefault(module_hash, {})
        row[f"val_acc_{epochs}"] = fmean(r.final.validation_accuracy for r in group)
        if epochs == 108:
            row["test_acc_108"] = fmean(r.final.test_accuracy for r in group)
            row["training_time_s_108"] = fmean(r.final.training_time for r in group)
        row["params"] = group[0].metrics.trainable_parameters
    return out


def join_results(cells: pa.Table, results: dict[str, dict[str, Any]], *, source: str = "results") -> pa.Table:
    """One row per result hash: hash, matrix, ops (the enumerated cell), the results' columns,
    `params_built` (our network's parameter count for that matrix) and `split`; sorted by hash."""
    hashes = cells.column("hash").to_numpy(zero_copy_only=False)
    wanted = np.array(sorted(results), dtype=hashes.dtype)
    index = np.searchsorted(hashes, wanted)
    found = (index < len(hashes)) & (hashes[np.minimum(index, len(hashes) - 1)] == wanted)
    if not found.all():
        missing = wanted[~found]
        raise LmnasError(f"{source}: {len(missing)} of {len(wanted)} hashes are not among the {len(hashes):,} "
                         f"enumerated cells, e.g. {list(missing[:3])}")
    picked = cells.take(pa.array(index)).select(["hash", "matrix", "ops"])
    matrices, ops = picked.column("matrix").to_pylist(), picked.column("ops").to_pylist()
    columns: dict[str, Any] = {"hash": picked.column("hash"), "matrix": picked.column("matrix"),
                               "ops": picked.column("ops")}
    names = sorted({k for row in results.values() for k in row})
    for name in names:
        columns[name] = pa.array([results[h].get(name) for h in wanted.tolist()],
                                 pa.int64() if name == "params" else pa.float64())
    columns["params_built"] = pa.array([network_parameters(CellSpec(m, o)) for m, o in zip(matrices, ops)], pa.int64())
    columns["split"] = pa.array([split_of(h) for h in wanted.tolist()], pa.string())
    return pa.table(columns)


def params_mismatches(joined: pa.Table) -> list[dict[str, Any]]:
    """Rows whose file params differ from our built network's."""
    rows = joined.select(["hash", "matrix", "ops", "params", "params_built"]).to_pylist()
    return [r for r in rows if r["params"] != r["params_built"]]


_JOINED: dict[tuple[Path, Path], pa.Table] = {}


def load_joined(cells_path: str | os.PathLike[str], results_path: str | os.PathLike[str]) -> pa.Table:
    """The enumerated cells joined with a results file, once per process."""
    from lmnas.nasbench101.enumerate import read_cells

    key = (Path(cells_path).resolve(), Path(results_path).resolve())
    if key not in _JOINED:
        _JOINED[key] = join_results(read_cells(key[0], ["hash", "matrix", "ops"]), load_hash_results(key[1]),
                                    source=str(key[1]))
    return _JOINED[key]


def joined_cells(cells_path: str | os.PathLike[str], results_path: str | os.PathLike[str],
                 split: str | None = None) -> dict[str, CellSpec]:
    """hash → cell (the benchmark's vertex order) of the joined table, one split or both."""
    if split not in (None, *SPLITS):
        raise LmnasError(f"split: {split!r}; expected one of {list(SPLITS)} or None")
    table = load_joined(cells_path, results_path).select(["hash", "matrix", "ops", "split"])
    return {r["hash"]: CellSpec(r["matrix"], r["ops"]) for r in table.to_pylist() if split in (None, r["split"])}
