"""The canonical form of a NAS-Bench-101 cell: pruned, vertices in the topological order whose
upper-triangle bits and op labels sort first, so isomorphic cells are one cell (nasbench's ModelSpec).

A property of the cell, not of the search space: the space, the architecture GPT's slot scoring and the
GPT strategies all canonicalise through here (the GPT package then does not depend on `spaces`)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from lmnas.nasbench101.cell import AVAILABLE_OPS, CellSpec, Matrix

_OP_INDEX = {op: i for i, op in enumerate(AVAILABLE_OPS)}


def _topological_orders(matrix: Matrix) -> Iterator[tuple[int, ...]]:
    """Every vertex order (new position → old vertex) that keeps the matrix upper-triangular.
    In a pruned cell input comes first and output last in every such order."""
    n = len(matrix)
    preds = [{u for u in range(n) if matrix[u][v]} for v in range(n)]

    def extend(order: list[int], placed: set[int]) -> Iterator[tuple[int, ...]]:
        if len(order) == n:
            yield tuple(order)
            return
        for v in range(n):
            if v not in placed and preds[v] <= placed:
                order.append(v)
                placed.add(v)
                yield from extend(order, placed)
                order.pop()
                placed.discard(v)

    yield from extend([], set())


@lru_cache(maxsize=1 << 16)
def _canonical(matrix: Matrix, ops: tuple[str, ...]) -> CellSpec:
    n = len(ops)
    best: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
    for order in _topological_orders(matrix):
        bits = tuple(matrix[order[i]][order[j]] for i in range(n) for j in range(i + 1, n))
        labels = tuple(_OP_INDEX[ops[v]] for v in order[1:-1])
        if best is None or (bits, labels) < best[:2]:
            best = (bits, labels, order)
    assert best is not None  # a validated cell has at least one topological order
    order = best[2]
    return CellSpec(tuple(tuple(matrix[order[i]][order[j]] for j in range(n)) for i in range(n)),
                    tuple(ops[v] for v in order))


def canonical_cell(cell: CellSpec) -> CellSpec:
    """The pruned cell in canonical vertex order (cached: cheap for a cell seen before)."""
    pruned = cell.pruned()
    return _canonical(pruned.matrix, pruned.ops)
