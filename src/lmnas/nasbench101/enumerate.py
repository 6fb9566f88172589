"""Enumerate the whole NAS-Bench-101 space, as google-research/nasbench `generate_graphs.py` does.

For V = 2..7 vertices, every upper-triangular bit pattern (bit `x + y(y-1)/2` is the edge x→y,
`graph_util.gen_is_edge_fn`) that is a *full* DAG (every vertex but the output has an out-edge,
every vertex but the input an in-edge: `graph_util.is_full_dag`, i.e. nothing to prune) with at
most 9 edges, and every labelling of its V-2 interior vertices with the 3 ops, in
`itertools.product` order, is hashed with the module hash (`cell.hash_module`); the first cell
seen for each hash is the one kept, as the benchmark did, so the stored matrix and vertex order
are the benchmark's own (its parameter counts depend on the order). 423,624 hashes result.

Every labelled form met (about 3 per cell: the isomorphic vertex orders) is kept too, encoded
as one int64 (`form_key`), so that any pruned cell, in whatever vertex order, finds its row by
a binary search instead of a canonicalisation (`CellIndex`). Work is split by bit-pattern
ranges over a process pool; the filter is vectorised with numpy.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmnas.errors import LmnasError
from lmnas.nasbench101.cell import AVAILABLE_OPS, INPUT, MAX_EDGES, MAX_VERTICES, OUTPUT

NUM_CELLS = 423_624  # generate_graphs.py's count for 7 vertices, 9 edges, 3 ops
CELLS_SCHEMA = pa.schema(
    [
        ("hash", pa.string()),  # module hash, md5 hex
        ("matrix", pa.list_(pa.list_(pa.int8()))),  # the benchmark's (first-enumerated) vertex order
        ("ops", pa.list_(pa.string())),
        ("forms", pa.list_(pa.int64())),  # form_key of every labelled vertex order of the cell
    ]
)
_CHUNK = 200  # bit patterns per task (~4 s of hashing at 7 vertices): enough tasks to balance the workers


def form_key(num_vertices: int, bits: int, labels: Sequence[int]) -> int:
    """(V, edge bits, interior op indices) as one int: V << 29 | bits << 8 | labels in base 3 (first
    interior vertex most significant, so ascending keys follow generate_graphs' order)."""
    code = 0
    for label in labels:
        code = code * 3 + int(label)
    return (num_vertices << 29) | (bits << 8) | code


def matrix_bits(matrix: Sequence[Sequence[int]]) -> int:
    """gen_is_edge_fn's inverse: bit x + y(y-1)/2 set for each edge x→y."""
    n = len(matrix)
    return sum(1 << (x + y * (y - 1) // 2) for y in range(n) for x in range(y) if matrix[x][y])


def bits_matrix(num_vertices: int, bits: int) -> list[list[int]]:
    n = num_vertices
    return [[int(y > x and bits >> (x + y * (y - 1) // 2) & 1) for y in range(n)] for x in range(n)]


def full_dag_bits(num_vertices: int, max_edges: int = MAX_EDGES) -> np.ndarray:
    """Ascending bit patterns of the `num_vertices` full DAGs with at most `max_edges` edges."""
    n = num_vertices
    slots = n * (n - 1) // 2
    bits = np.arange(1 << slots, dtype=np.int64)
    edges = np.zeros_like(bits)
    for k in range(slots):
        edges += (bits >> k) & 1
    keep = edges <= max_edges
    for v in range(n):
        out_mask = sum(1 << (v + y * (y - 1) // 2) for y in range(v + 1, n))
        in_mask = sum(1 << (x + v * (v - 1) // 2) for x in range(v))
        if v < n - 1:
            keep &= (bits & out_mask) != 0
        if v > 0:
            keep &= (bits & in_mask) != 0
    return bits[keep]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _hash_labellings(num_vertices: int, bits: int, num_ops: int) -> Iterator[tuple[str, int]]:
    """(module hash, form key) of every labelling of one matrix: hash_module with the matrix's
    neighbour lists worked out once instead of once per labelling."""
    n = num_vertices
    matrix = bits_matrix(n, bits)
    ins = [[w for w in range(n) if matrix[w][v]] for v in range(n)]
    outs = [[w for w in range(n) if matrix[v][w]] for v in range(n)]
    degrees = [(len(outs[v]), len(ins[v])) for v in range(n)]
    base = (n << 29) | (bits << 8)
    for code, labels in enumerate(itertools.product(range(num_ops), repeat=n - 2)):
        labeling = (-1, *labels, -2)
        hashes = [_md5(str((degrees[v][0], degrees[v][1], labeling[v]))) for v in range(n)]
        for _ in range(n):
            hashes = [
                _md5("".join(sorted([hashes[w] for w in ins[v]])) + "|"
                     + "".join(sorted([hashes[w] for w in outs[v]])) + "|" + hashes[v])
                for v in range(n)
            ]
        yield _md5(str(sorted(hashes))), base | code


def _enumerate_task(task: tuple[int, np.ndarray, int]) -> dict[str, list[int]]:
    """hash → its form keys in enumeration order, for one range of bit patterns."""
    num_vertices, bit_patterns, num_ops = task
    found: dict[str, list[int]] = {}
    for bits in bit_patterns.tolist():
        for module_hash, key in _hash_labellings(num_vertices, bits, num_ops):
            found.setdefault(module_hash, []).append(key)
    return found


def _tasks(max_vertices: int, max_edges: int, num_ops: int) -> list[tuple[int, np.ndarray, int]]:
    tasks = []
    for n in range(2, max_vertices + 1):
        patterns = full_dag_bits(n, max_edges)
        tasks += [(n, patterns[i : i + _CHUNK], num_ops) for i in range(0, len(patterns), _CHUNK)]
    return tasks


def enumerate_cells(
    max_vertices: int = MAX_VERTICES,
    max_edges: int = MAX_EDGES,
    *,
    num_ops: int = len(AVAILABLE_OPS),
    workers: int | None = None,
    progress: bool = True,
) -> pa.Table:
    """Every cell of the space, one row per module hash, sorted by hash (CELLS_SCHEMA)."""
    if not 2 <= max_vertices <= MAX_VERTICES:
        raise LmnasError(f"max_vertices: {max_vertices}; NAS-Bench-101 cells have 2..{MAX_VERTICES} vertices")
    if not 1 <= num_ops <= len(AVAILABLE_OPS):
        raise LmnasError(f"num_ops: {num_ops}; NAS-Bench-101 has 1..{len(AVAILABLE_OPS)} ops")
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    tasks = _tasks(max_vertices, max_edges, num_ops)
    forms: dict[str, list[int]] = {}
    # Tasks come back in submission order, so setdefault keeps the first-enumerated form first.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_enumerate_task, tasks, chunksize=1) if workers > 1 else map(_enumerate_task, tasks)
        for found in tqdm(results, total=len(tasks), desc="nb101 enumerate", unit="task", disable=not progress):
            for module_hash, keys in found.items():
                forms.setdefault(module_hash, []).extend(keys)
    return cells_table(forms)


def cells_table(forms: dict[str, list[int]]) -> pa.Table:
    """Rows from hash → form keys (the first key is the stored form), sorted by hash."""
    hashes = sorted(forms)
    matrices, ops = [], []
    for module_hash in hashes:
        matrix, cell_ops = decode_form(forms[module_hash][0])
        matrices.append(matrix)
        ops.append(cell_ops)
    return pa.Table.from_arrays(
        [pa.array(hashes, pa.string()), pa.array(matrices, CELLS_SCHEMA.field("matrix").type),
         pa.array(ops, CELLS_SCHEMA.field("ops").type),
         pa.array([forms[h] for h in hashes], CELLS_SCHEMA.field("forms").type)],
        schema=CELLS_SCHEMA,
    )


def decode_form(key: int) -> tuple[list[list[int]], list[str]]:
    """The (matrix, ops) a form key stands for."""
    n, bits, code = key >> 29, (key >> 8) & ((1 << 21) - 1), key & 0xFF
    labels = []
    for _ in range(n - 2):
        code, label = divmod(code, 3)
        labels.append(label)
    return bits_matrix(n, bits), [INPUT, *(AVAILABLE_OPS[i] for i in reversed(labels)), OUTPUT]


def write_cells(path: str | os.PathLike[str], table: pa.Table) -> Path:
    from lmnas.io import write_with

    path = Path(path)
    write_with(path, lambda p: pq.write_table(table, p))
    return path


def read_cells(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise LmnasError(f"NAS-Bench-101 cells file not found: {path} (make it with `lmnas nb101 enumerate --out {path}`)")
    table = pq.read_table(path, columns=columns)
    missing = {"hash", "matrix", "ops"} - set(pq.read_schema(path).names)
    if missing:
        raise LmnasError(f"{path}: missing columns {sorted(missing)}; expected hash, matrix, ops (lmnas nb101 enumerate)")
    return table


def summary(table: pa.Table) -> dict[str, Any]:
    lengths = pa.compute.list_value_length(table.column("ops")).to_numpy()
    return {"cells": table.num_rows, "forms": int(pa.compute.sum(pa.compute.list_value_length(table.column("forms"))).as_py())
            if "forms" in table.column_names else None,
            "by_vertices": {int(v): int((lengths == v).sum()) for v in np.unique(lengths)}}
