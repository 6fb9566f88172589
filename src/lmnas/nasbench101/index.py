"""Cell → row of the enumerated space by binary search, instead of canonicalising.

The enumerated cells (`lmnas nb101 enumerate`) list, per module hash, every labelled vertex
order of the cell (`forms`, encoded by `enumerate.form_key`). Any pruned cell is one of them, so
sorting all forms (about 1.2 M int64) once gives its row in O(log N): no topological orders, no
md5s. A row's canonical cell in the space's sense (`spaces.nas_bench_101`: the smallest
(row-major upper-triangle bits, op indices) over its vertex orders) is the smallest of its forms,
computed from those few forms rather than from up to 120 orders.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from lmnas.errors import LmnasError
from lmnas.nasbench101.cell import AVAILABLE_OPS, CellSpec
from lmnas.nasbench101.enumerate import decode_form, read_cells

_OP_INDEX = {op: i for i, op in enumerate(AVAILABLE_OPS)}
_INDEXES: dict[Path, CellIndex] = {}


class CellIndex:
    def __init__(self, hashes: np.ndarray, form_keys: np.ndarray, form_rows: np.ndarray,
                 row_forms: list[list[int]] | None = None) -> None:
        order = np.argsort(form_keys, kind="stable")
        self.hashes = hashes  # (rows,) str, sorted
        self.keys = form_keys[order]  # (forms,) int64, sorted
        self.rows = form_rows[order]  # (forms,) int32: the row of each key
        self._row_forms = row_forms
        self._canonical: dict[int, CellSpec] = {}
        self._row_of_hash: dict[str, int] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CellIndex:
        """The index of a cells Parquet, once per process."""
        path = Path(path).expanduser().resolve()
        if path not in _INDEXES:
            table = read_cells(path, ["hash", "forms"])
            if "forms" not in table.column_names:
                raise LmnasError(f"{path}: no 'forms' column; rewrite it with `lmnas nb101 enumerate`")
            lengths = pc.list_value_length(table.column("forms")).to_numpy()
            keys = pc.list_flatten(table.column("forms")).to_numpy().astype(np.int64)
            rows = np.repeat(np.arange(table.num_rows, dtype=np.int32), lengths)
            _INDEXES[path] = cls(table.column("hash").to_numpy(zero_copy_only=False), keys, rows)
        return _INDEXES[path]

    def __len__(self) -> int:
        return len(self.hashes)

    def row_of_key(self, key: int) -> int:
        """The row of a form key, -1 if it is no cell of the space."""
        i = int(np.searchsorted(self.keys, key))
        return int(self.rows[i]) if i < len(self.keys) and self.keys[i] == key else -1

    def row(self, cell: CellSpec) -> int:
        """The row of a pruned cell (any vertex order)."""
        n = cell.num_vertices
        m = cell.matrix
        bits = sum(1 << (x + y * (y - 1) // 2) for y in range(n) for x in range(y) if m[x][y])
        code = 0
        for op in cell.ops[1:-1]:
            code = code * 3 + _OP_INDEX[op]
        row = self.row_of_key((n << 29) | (bits << 8) | code)
        if row < 0:
            raise LmnasError(f"cell {cell.as_dict()} is not in the enumerated NAS-Bench-101 space")
        return row

    def row_of_hash(self, module_hash: str) -> int:
        i = int(np.searchsorted(self.hashes, module_hash))
        if i >= len(self.hashes) or self.hashes[i] != module_hash:
            raise LmnasError(f"module hash {module_hash} is not in the enumerated NAS-Bench-101 space")
        return i

    def forms(self, row: int) -> list[int]:
        if self._row_forms is None:  # rows → their keys, built on first use
            order = np.argsort(self.rows, kind="stable")
            bounds = np.searchsorted(self.rows[order], np.arange(len(self.hashes) + 1))
            keys = self.keys[order]
            self._row_forms = [keys[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
        return self._row_forms[row]

    def canonical(self, row: int) -> CellSpec:
        """The space's canonical cell of a row: the smallest (row-major bits, op indices) form."""
        cell = self._canonical.get(row)
        if cell is None:
            best = None
            for key in self.forms(row):
                matrix, ops = decode_form(key)
                n = len(ops)
                rank = (tuple(matrix[i][j] for i in range(n) for j in range(i + 1, n)),
                        tuple(_OP_INDEX[op] for op in ops[1:-1]))
                if best is None or rank < best[0]:
                    best = (rank, matrix, ops)
            assert best is not None
            cell = self._canonical[row] = CellSpec(best[1], best[2])
        return cell
