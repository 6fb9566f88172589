"""The NAS-Bench-101 cell: a validated DAG of ops, pruned and hashed as the benchmark does.

Facts carried over from google-research/nasbench (`model_spec.py`, `graph_util.py`,
`config.py`): at most 7 vertices and 9 edges, vertex 0 is `input` and the last is
`output`, interior ops come from `available_ops` in the order below (the order fixes
the integer labels the hash uses), and a cell is pruned to the vertices that lie on an
input→output path before it is hashed or built.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Sequence

from lmnas.errors import LmnasError

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
# config['available_ops'] of the benchmark; the index is the hash label of the op.
AVAILABLE_OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
MAX_VERTICES = 7
MAX_EDGES = 9

Matrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class CellSpec:
    """Adjacency matrix (row = source vertex) and one op per vertex, validated on creation.

    The spec may hold unreachable vertices (as sampled); `pruned()` gives the cell the
    benchmark trains, and `hash()` is the benchmark's module hash of that pruned cell.
    """

    matrix: Matrix
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        # Accept lists / numpy rows; store plain int tuples so the spec is hashable.
        try:
            matrix = tuple(tuple(int(v) for v in row) for row in self.matrix)
        except (TypeError, ValueError) as exc:
            raise LmnasError(f"cell matrix must be a square 0/1 matrix, got {self.matrix!r}") from exc
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", tuple(str(op) for op in self.ops))
        _validate(self.matrix, self.ops)

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def pruned(self) -> CellSpec:
        """Drop vertices not on an input→output path (nasbench ModelSpec._prune)."""
        keep = _on_input_output_path(self.matrix)
        if len(keep) == self.num_vertices:
            return self
        matrix = tuple(tuple(self.matrix[i][j] for j in keep) for i in keep)
        return CellSpec(matrix, tuple(self.ops[i] for i in keep))

    def hash(self) -> str:
        """The NAS-Bench-101 module hash (md5 hex) of the pruned cell; isomorphism-invariant."""
        cell = self.pruned()
        labels = [-1] + [AVAILABLE_OPS.index(op) for op in cell.ops[1:-1]] + [-2]
        return hash_module(cell.matrix, labels)

    def as_dict(self) -> dict[str, list]:
        return {"matrix": [list(row) for row in self.matrix], "ops": list(self.ops)}

    @classmethod
    def from_flat(cls, adjacency: str, operations: str) -> CellSpec:
        """From the tfrecord form: a row-major string of 0/1 and comma-separated op names."""
        dim = int(round(len(adjacency) ** 0.5))
        if dim * dim != len(adjacency) or set(adjacency) - {"0", "1"}:
            raise LmnasError(f"adjacency {adjacency!r} is not a square 0/1 string")
        bits = [int(c) for c in adjacency]
        return cls(tuple(tuple(bits[r * dim : (r + 1) * dim]) for r in range(dim)), tuple(operations.split(",")))

    def to_flat(self) -> tuple[str, str]:
        return "".join(str(v) for row in self.matrix for v in row), ",".join(self.ops)


def hash_module(matrix: Sequence[Sequence[int]], labeling: Sequence[int]) -> str:
    """graph_util.hash_module: Weisfeiler-Lehman-style md5 over (out-degree, in-degree, label).

    The string forms (`str((out, in, label))`, `str(sorted(hashes))`) are part of the
    algorithm: they must match Python's reprs exactly for the hashes to match the benchmark.
    """
    n = len(matrix)
    in_edges = [sum(matrix[r][c] for r in range(n)) for c in range(n)]
    out_edges = [sum(matrix[r]) for r in range(n)]
    if not len(labeling) == n:
        raise LmnasError(f"labeling has {len(labeling)} entries for a {n}-vertex matrix")
    hashes = [_md5(str((out_edges[v], in_edges[v], int(labeling[v])))) for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5(
                "".join(sorted(hashes[w] for w in range(n) if matrix[w][v]))
                + "|"
                + "".join(sorted(hashes[w] for w in range(n) if matrix[v][w]))
                + "|"
                + hashes[v]
            )
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def random_cell(rng: random.Random, num_vertices: int = MAX_VERTICES) -> CellSpec:
    """A uniformly drawn raw cell (each forward edge with p=0.5, interior ops uniform), redrawn
    until it is in the space (as the NAS-Bench-101 / NASLib samplers do); returned pruned."""
    while True:
        matrix = [[int(j > i and rng.random() < 0.5) for j in range(num_vertices)] for i in range(num_vertices)]
        ops = [INPUT] + [rng.choice(AVAILABLE_OPS) for _ in range(num_vertices - 2)] + [OUTPUT]
        try:
            return CellSpec(matrix, ops).pruned()
        except LmnasError:
            continue


def _validate(matrix: Matrix, ops: tuple[str, ...]) -> None:
    n = len(matrix)
    if any(len(row) != n for row in matrix):
        raise LmnasError(f"cell matrix must be square, got row lengths {[len(r) for r in matrix]}")
    if len(ops) != n:
        raise LmnasError(f"cell has {len(ops)} ops for a {n}x{n} matrix; expected one op per vertex")
    if not 2 <= n <= MAX_VERTICES:
        raise LmnasError(f"cell has {n} vertices; NAS-Bench-101 allows 2..{MAX_VERTICES}")
    if any(v not in (0, 1) for row in matrix for v in row):
        raise LmnasError(f"cell matrix entries must be 0 or 1, got {matrix}")
    if any(matrix[i][j] for i in range(n) for j in range(i + 1)):
        raise LmnasError(f"cell matrix must be strictly upper-triangular (a DAG in vertex order), got {matrix}")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise LmnasError(f"cell ops must start with {INPUT!r} and end with {OUTPUT!r}, got {list(ops)}")
    bad = [op for op in ops[1:-1] if op not in AVAILABLE_OPS]
    if bad:
        raise LmnasError(f"cell has unknown ops {bad}; allowed: {list(AVAILABLE_OPS)}")
    if not _on_input_output_path(matrix):
        raise LmnasError(f"cell has no input→output path: {matrix}")
    # The benchmark checks the edge limit on the pruned cell: dangling edges do not count.
    keep = _on_input_output_path(matrix)
    edges = sum(matrix[i][j] for i in keep for j in keep)
    if edges > MAX_EDGES:
        raise LmnasError(f"cell has {edges} edges after pruning; NAS-Bench-101 allows at most {MAX_EDGES}")


def _on_input_output_path(matrix: Sequence[Sequence[int]]) -> list[int]:
    """Vertices reachable from vertex 0 and reaching the last vertex; [] if none connect."""
    n = len(matrix)
    forward, backward = {0}, {n - 1}
    for v in range(n):  # vertex order is topological (upper-triangular)
        if v in forward:
            forward.update(w for w in range(v + 1, n) if matrix[v][w])
    for v in reversed(range(n)):
        if v in backward:
            backward.update(u for u in range(v) if matrix[u][v])
    both = sorted(forward & backward)
    return both if 0 in both and n - 1 in both else []


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()
