"""NAS-Bench-101 (Ying et al., ICML 2019): one cell of at most 7 vertices and 9 edges, stacked.

Genotype: a pruned, **canonical** `CellSpec` (hashable). Of all relabellings of the interior
vertices 1..n-2 that keep the matrix upper-triangular (the topological orders, at most 5! = 120),
the canonical one has the lexicographically smallest (upper-triangle bits row-major, op indices
in `AVAILABLE_OPS` order). Isomorphic cells therefore have one genotype and one key; the key is
as fine as the benchmark's module hash (`hash_key`), which is what the 20k table is keyed by.

Key: `<upper-triangle bits, row-major>|<interior op codes>`; an n-vertex cell has n(n-1)/2 bits
and n-2 codes, `c3` = conv3x3-bn-relu, `c1` = conv1x1-bn-relu, `mp` = maxpool3x3. Input and
output are implicit. Example: `1100110001|c3,mp,c1`... for n = 5 read the bits as rows 0→(1,2,3,4),
1→(2,3,4), 2→(3,4), 3→(4). The 2-vertex cell (input → output) is `1|`. `parse` accepts any valid
cell key (also unpruned or non-canonical) and returns the canonical genotype.

Network (`lmnas.nasbench101.build_network`): 3x3 conv stem of 128 channels, 3 stacks of 3 cells,
2x2 max-pool and doubled channels between stacks, global average pool, linear. Its parameter
count is the benchmark's `trainable_parameters` for the vertex order built; the canonical order
can differ from the order stored in the benchmark by a few thousand parameters (see network.py).

`candidates` (keys) restricts the space to a finite set, e.g. the cells of a table
(`TableEvaluator.keys(space)`): sampling draws from it, and mutation/crossover children outside
it move to a random candidate at the smallest Hamming distance (padded 7x7 upper triangle + ops).

`cells` (the Parquet of `lmnas nb101 enumerate`) makes every cell operation an index lookup
(`nasbench101.index.CellIndex`): a child's canonical cell and module hash come from a binary
search over all vertex orders of all 423,624 cells, not from canonicalising it, and invalid
children are those the index lacks. Same genotypes, keys and draws as without it (tested);
it is what lets a table search run at thousands of evaluations per second.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from torch import nn

from lmnas.errors import LmnasError
from lmnas.nasbench101 import AVAILABLE_OPS, CellSpec, build_network, random_cell
from lmnas.nasbench101.canonical import canonical_cell
from lmnas.nasbench101.cell import INPUT, MAX_VERTICES, OUTPUT, Matrix
from lmnas.spaces import SPACES
from lmnas.spaces.base import REGENERATES_VERTEX_OPS, Choice, SearchSpace

# Key codes of AVAILABLE_OPS, in its order (conv3x3, conv1x1, maxpool3x3).
OP_CODES: tuple[str, ...] = ("c3", "c1", "mp")
_CODE_OF = dict(zip(AVAILABLE_OPS, OP_CODES))
_OP_OF = dict(zip(OP_CODES, AVAILABLE_OPS))
_OP_INDEX = {op: i for i, op in enumerate(AVAILABLE_OPS)}
_KEY_RE = re.compile(r"^([01]*)\|([a-z0-9,]*)$")

# Mutation as google-research/nasbench's regularized-evolution example (mutation_rate 1): each of
# the 21 edge slots of the 7-vertex cell flips with p = 1/7, each of the 5 interior ops changes
# with p = 1/5 (in expectation 3 flips, 1 op change; NASLib uses the same edge rate).
EDGE_FLIP_P = 1.0 / MAX_VERTICES
OP_CHANGE_P = 1.0 / (MAX_VERTICES - 2)
CROSSOVER_TRIES = 10
_PAD = -1  # op index of a padding vertex in the Hamming vectors
_NEAREST_CACHE = 1 << 16  # (cell, excluded) pairs whose nearest candidates are kept


# ---- canonical form and key ---------------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def _module_hash(cell: CellSpec) -> str:
    return cell.hash()  # ~80 µs of md5s: cached, as a search looks the same cells up again and again


def cell_key(cell: CellSpec) -> str:
    """`<upper-triangle bits>|<op codes>` of the canonical form of `cell`."""
    cell = canonical_cell(cell)
    n = cell.num_vertices
    bits = "".join(str(cell.matrix[i][j]) for i in range(n) for j in range(i + 1, n))
    return bits + "|" + ",".join(_CODE_OF[op] for op in cell.ops[1:-1])


def parse_cell_key(key: str) -> CellSpec:
    """The canonical cell of a key; LmnasError naming what is wrong."""
    match = _KEY_RE.match(key.strip()) if isinstance(key, str) else None
    if match is None:
        raise LmnasError(
            f"NAS-Bench-101 key {key!r}: expected '<0/1 upper-triangle bits>|<op codes>' with op codes "
            f"{list(OP_CODES)} separated by commas, e.g. '111000|c3,c1' for 4 vertices"
        )
    bits, codes_text = match.groups()
    codes = codes_text.split(",") if codes_text else []
    bad = [c for c in codes if c not in _OP_OF]
    if bad:
        raise LmnasError(f"NAS-Bench-101 key {key!r}: unknown op codes {bad}; expected {list(OP_CODES)} "
                         f"({', '.join(f'{c} = {op}' for c, op in _OP_OF.items())})")
    n = len(codes) + 2
    if len(bits) != n * (n - 1) // 2:
        raise LmnasError(f"NAS-Bench-101 key {key!r}: {len(codes)} op codes mean {n} vertices, whose upper "
                         f"triangle has {n * (n - 1) // 2} bits, but the key has {len(bits)}")
    it = iter(bits)
    upper = [[int(next(it)) if j > i else 0 for j in range(n)] for i in range(n)]
    try:
        cell = CellSpec(upper, [INPUT, *(_OP_OF[c] for c in codes), OUTPUT])
    except LmnasError as exc:
        raise LmnasError(f"NAS-Bench-101 key {key!r}: {exc}") from None
    return canonical_cell(cell)


def _as_cell(genotype: Any) -> CellSpec:
    """A CellSpec from a CellSpec, a key, {'matrix', 'ops'} or a (matrix, ops) pair."""
    if isinstance(genotype, CellSpec):
        return genotype
    if isinstance(genotype, str):
        return parse_cell_key(genotype)
    if isinstance(genotype, dict) and "matrix" in genotype and "ops" in genotype:
        matrix, ops = genotype["matrix"], genotype["ops"]
    elif isinstance(genotype, (tuple, list)) and len(genotype) == 2:
        matrix, ops = genotype
    else:
        matrix = ops = None
    if matrix is not None:
        try:
            return CellSpec(matrix, ops)
        except (LmnasError, TypeError) as exc:
            raise LmnasError(f"NAS-Bench-101 genotype {genotype!r}: {exc}") from None
    raise LmnasError(f"NAS-Bench-101 genotype {genotype!r}: expected a CellSpec, a key "
                     f"'<bits>|<op codes>', {{'matrix': ..., 'ops': ...}} or a (matrix, ops) pair")


# ---- padded 7-vertex form (mutation, crossover, Hamming distance) --------------------------------


def _padded(cell: CellSpec, pad_ops: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    """The cell as a 7x7 matrix: vertices 0..n-2 kept, output moved to 6, isolated vertices with
    `pad_ops` in between (what the unpruned benchmark cell would hold)."""
    n = cell.num_vertices
    position = [*range(n - 1), MAX_VERTICES - 1]  # old vertex → new index
    matrix = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
    for i in range(n):
        for j in range(n):
            matrix[position[i]][position[j]] = cell.matrix[i][j]
    ops = [*cell.ops[:-1], *pad_ops[: MAX_VERTICES - n], OUTPUT]
    return matrix, ops


def _vector(cell: CellSpec) -> np.ndarray:
    """21 padded upper-triangle bits + 5 interior op indices (-1 = padding), for Hamming distances."""
    n = cell.num_vertices
    matrix, _ = _padded(cell, [INPUT] * (MAX_VERTICES - n))
    labels = [_OP_INDEX[op] for op in cell.ops[1:-1]] + [_PAD] * (MAX_VERTICES - n)
    bits = [matrix[i][j] for i in range(MAX_VERTICES) for j in range(i + 1, MAX_VERTICES)]
    return np.array(bits + labels, dtype=np.int8)


def _packed(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 26) Hamming vectors → (K,) uint32 edge bits and (K,) uint32 one-hot ops (4 bits per vertex:
    padding, c3, c1, mp), so Hamming = popcount(edges ^ e) + popcount(ops ^ o) / 2."""
    weights = (1 << np.arange(21, dtype=np.uint32))
    edges = (vectors[:, :21].astype(np.uint32) * weights).sum(axis=1).astype(np.uint32)
    ops = np.zeros(len(vectors), dtype=np.uint32)
    for v in range(vectors.shape[1] - 21):
        ops |= (np.uint32(1) << (4 * v + vectors[:, 21 + v].astype(np.int64) + 1).astype(np.uint32))
    return edges, ops


def _cell_of_key(key: str) -> CellSpec:
    """The cell a key writes, in the key's own vertex order (not canonicalised); LmnasError if invalid."""
    bits, codes_text = _KEY_RE.match(key.strip()).groups()  # type: ignore[union-attr]
    codes = codes_text.split(",") if codes_text else []
    n = len(codes) + 2
    if any(c not in _OP_OF for c in codes) or len(bits) != n * (n - 1) // 2:
        return parse_cell_key(key)  # raises with the reason
    it = iter(bits)
    upper = [[int(next(it)) if j > i else 0 for j in range(n)] for i in range(n)]
    try:
        return CellSpec(upper, [INPUT, *(_OP_OF[c] for c in codes), OUTPUT])
    except LmnasError as exc:
        raise LmnasError(f"NAS-Bench-101 key {key!r}: {exc}") from None


def _padded_form_key(matrix: list[list[int]], ops: list[str]) -> int:
    """enumerate.form_key of the pruned form of a padded 7-vertex cell; -1 if nothing connects."""
    n = len(matrix)
    outs = [sum(1 << w for w in range(v + 1, n) if matrix[v][w]) for v in range(n)]  # out-neighbour bitmasks
    forward, backward = 1, 1 << (n - 1)
    for v in range(n):  # vertex order is topological
        if forward >> v & 1:
            forward |= outs[v]
    for v in range(n - 2, -1, -1):
        if outs[v] & backward:
            backward |= 1 << v
    both = forward & backward
    keep = [v for v in range(n) if both >> v & 1]
    if not keep or keep[0] != 0 or keep[-1] != n - 1:
        return -1
    bits = 0
    for y in range(1, len(keep)):
        for x in range(y):
            if matrix[keep[x]][keep[y]]:
                bits |= 1 << (x + y * (y - 1) // 2)
    code = 0
    for v in keep[1:-1]:
        code = code * 3 + _OP_INDEX[ops[v]]
    return (len(keep) << 29) | (bits << 8) | code


# ---- categorical view and features (model-based strategies) --------------------------------------

# The padded 7-vertex cell as decisions: 21 upper-triangle edges, 5 interior ops.
_EDGE_SLOTS = tuple((i, j) for i in range(MAX_VERTICES) for j in range(i + 1, MAX_VERTICES))
CATEGORICAL: tuple[Choice, ...] = (
    *(Choice(f"e{i}{j}", (0, 1)) for i, j in _EDGE_SLOTS),
    *(Choice(f"op{v}", AVAILABLE_OPS) for v in range(1, MAX_VERTICES - 1)),
)
# Path encoding (BANANAS): one feature per sequence of interior ops on an input→output path,
# sum over k = 0..5 of 3^k = 364 features.
_PATH_OFFSET = [sum(len(AVAILABLE_OPS) ** k for k in range(n)) for n in range(MAX_VERTICES - 1)]
NUM_PATHS = _PATH_OFFSET[-1] + len(AVAILABLE_OPS) ** (MAX_VERTICES - 2)


@lru_cache(maxsize=1 << 17)
def cell_features(cell: CellSpec) -> np.ndarray:
    """21 padded edge bits, 5 x 3 one-hot interior ops (padding: zeros), then the 364-long path
    encoding of the (pruned) cell; float32, 400 long. Read-only: it is shared through the cache."""
    n = cell.num_vertices
    matrix, _ = _padded(cell, [INPUT] * (MAX_VERTICES - n))
    out = np.zeros(len(_EDGE_SLOTS) + 3 * (MAX_VERTICES - 2) + NUM_PATHS, dtype=np.float32)
    for k, (i, j) in enumerate(_EDGE_SLOTS):
        out[k] = matrix[i][j]
    for v, op in enumerate(cell.ops[1:-1]):
        out[len(_EDGE_SLOTS) + 3 * v + _OP_INDEX[op]] = 1.0
    base = len(_EDGE_SLOTS) + 3 * (MAX_VERTICES - 2)
    stack: list[tuple[int, int, int]] = [(0, 0, 0)]  # (vertex, ops on the path so far, their base-3 code)
    while stack:
        v, length, code = stack.pop()
        for w in range(v + 1, n):
            if not cell.matrix[v][w]:
                continue
            if w == n - 1:
                out[base + _PATH_OFFSET[length] + code] = 1.0
            else:
                stack.append((w, length + 1, code * 3 + _OP_INDEX[cell.ops[w]]))
    out.setflags(write=False)
    return out


def _random_ops(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(AVAILABLE_OPS) for _ in range(count)]


def _try_cell(matrix: list[list[int]], ops: list[str]) -> CellSpec | None:
    try:
        return canonical_cell(CellSpec(matrix, ops))
    except LmnasError:
        return None


# ---- the space ------------------------------------------------------------------------------------


@SPACES.register("nas-bench-101")
class NASBench101Space(SearchSpace):
    name = "nas-bench-101"
    regenerates = REGENERATES_VERTEX_OPS

    def __init__(
        self,
        num_classes: int = 10,
        stem_channels: int = 128,
        num_stacks: int = 3,
        cells_per_stack: int = 3,
        input_shape: Sequence[int] = (3, 32, 32),
        candidates: Sequence[str] | None = None,
        cells: str | None = None,
    ) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise LmnasError(f"search.space.input_shape: expected [C, H, W], got {list(input_shape)}")
        if num_classes < 2 or stem_channels < 1 or num_stacks < 1 or cells_per_stack < 1:
            raise LmnasError(
                "search.space: need num_classes >= 2 and stem_channels, num_stacks, cells_per_stack >= 1; got "
                f"{num_classes}, {stem_channels}, {num_stacks}, {cells_per_stack}"
            )
        self.num_classes = int(num_classes)
        self.stem_channels = int(stem_channels)
        self.num_stacks = int(num_stacks)
        self.cells_per_stack = int(cells_per_stack)
        self.input_shape = tuple(int(s) for s in input_shape)  # type: ignore[assignment]
        self.candidates: list[CellSpec] | None = None
        self.cells = cells
        self.index = None
        self._canon: dict[CellSpec, CellSpec] = {}  # any cell seen -> canonical (index path)
        self._keys: dict[CellSpec, str] = {}  # canonical cell -> key (index path)
        self._parsed: dict[str, CellSpec] = {}  # key -> canonical cell (index path)
        self._hashes: dict[CellSpec, str] = {}  # canonical cell -> module hash (index path)
        if cells is not None:
            from lmnas.nasbench101.index import CellIndex

            self.index = CellIndex.load(cells)
        if candidates is not None:
            self._set_candidates(candidates)

    def _set_candidates(self, keys: Sequence[str]) -> None:
        if isinstance(keys, str) or not keys:
            raise LmnasError("search.space.candidates: expected a non-empty list of NAS-Bench-101 keys")
        cells: dict[CellSpec, None] = {}
        for i, key in enumerate(keys):
            try:
                cells[self._parse_key(key)] = None
            except LmnasError as exc:
                raise LmnasError(f"search.space.candidates[{i}]: {exc}") from None
        # Sorted by key: the same set gives the same sampling sequence whatever the order given.
        self.candidates = sorted(cells, key=cell_key)
        self._candidate_set = frozenset(self.candidates)
        self._candidate_index = {c: i for i, c in enumerate(self.candidates)}
        self._nearest: dict[tuple[CellSpec, CellSpec | None], np.ndarray] = {}  # a cache: same result, less work
        # Hamming distances by popcount: (K,) edge bits and one-hot op codes (2 bits per differing op)
        self._candidate_edges, self._candidate_ops = _packed(np.stack([_vector(c) for c in self.candidates]))

    def _parse_key(self, key: str) -> CellSpec:
        if self.index is None:
            return parse_cell_key(key)
        cell = self._parsed.get(key) if isinstance(key, str) else None
        if cell is None:
            if not isinstance(key, str) or _KEY_RE.match(key.strip()) is None:
                return parse_cell_key(key)  # raises, saying what a key looks like
            cell = self._parsed[key] = self.canonical(_cell_of_key(key))
        return cell

    def canonical(self, cell: CellSpec) -> CellSpec:
        """canonical_cell(cell), by index lookup when the space has `cells`."""
        if self.index is None:
            return canonical_cell(cell)
        canon = self._canon.get(cell)
        if canon is None:
            canon = self._canon[cell] = self.index.canonical(self.index.row(cell.pruned()))
            self._canon.setdefault(canon, canon)
        return canon

    def _padded_child(self, matrix: list[list[int]], ops: list[str]) -> CellSpec | None:
        """The canonical cell of a padded 7-vertex child, None if it is not a valid cell."""
        if self.index is None:
            return _try_cell(matrix, ops)
        row = self.index.row_of_key(_padded_form_key(matrix, ops))
        return None if row < 0 else self.index.canonical(row)

    # -- genotype operators -----------------------------------------------------------------------
    def sample(self, rng: random.Random) -> CellSpec:
        """NAS-Bench-101's sampler (edges p = 0.5, ops uniform, redrawn until valid), or a
        uniformly drawn candidate."""
        if self.candidates is not None:
            return rng.choice(self.candidates)
        return canonical_cell(random_cell(rng))

    def mutate(self, genotype: CellSpec, rng: random.Random) -> CellSpec:
        """Flip edges / change ops of the padded 7-vertex cell, redrawn until valid and a different
        cell; with candidates, the nearest other candidate to that child."""
        parent = self.canonical(_as_cell(genotype))
        while True:
            matrix, ops = _padded(parent, _random_ops(rng, MAX_VERTICES - parent.num_vertices))
            for i in range(MAX_VERTICES - 1):
                for j in range(i + 1, MAX_VERTICES):
                    if rng.random() < EDGE_FLIP_P:
                        matrix[i][j] = 1 - matrix[i][j]
            for v in range(1, MAX_VERTICES - 1):
                if rng.random() < OP_CHANGE_P:
                    ops[v] = rng.choice([op for op in AVAILABLE_OPS if op != ops[v]])
            child = self._padded_child(matrix, ops)
            if child is not None and child != parent:
                break
        return self.nearest(child, rng, exclude=parent)

    def crossover(self, a: CellSpec, b: CellSpec, rng: random.Random) -> tuple[CellSpec, CellSpec]:
        """Swap adjacency rows (a vertex's out-edges) and interior ops between the padded parents,
        each with p = 1/2; children that are not valid cells after `CROSSOVER_TRIES` draws fall
        back to their parent (child 1 ← a, child 2 ← b)."""
        a, b = self.canonical(_as_cell(a)), self.canonical(_as_cell(b))
        ma, oa = _padded(a, _random_ops(rng, MAX_VERTICES - a.num_vertices))
        mb, ob = _padded(b, _random_ops(rng, MAX_VERTICES - b.num_vertices))
        first: CellSpec | None = None
        second: CellSpec | None = None
        for _ in range(CROSSOVER_TRIES):
            rows = [rng.random() < 0.5 for _ in range(MAX_VERTICES)]
            swap_ops = [rng.random() < 0.5 for _ in range(MAX_VERTICES)]
            if first is None:
                first = self._padded_child([mb[i] if s else ma[i] for i, s in enumerate(rows)],
                                  [y if s else x for x, y, s in zip(oa, ob, swap_ops)])
            if second is None:
                second = self._padded_child([ma[i] if s else mb[i] for i, s in enumerate(rows)],
                                   [x if s else y for x, y, s in zip(oa, ob, swap_ops)])
            if first is not None and second is not None:
                break
        return self.nearest(first or a, rng), self.nearest(second or b, rng)

    def nearest(self, cell: CellSpec, rng: random.Random, exclude: CellSpec | None = None) -> CellSpec:
        """`cell` if it is a candidate (or there are none), else a random candidate at the smallest
        Hamming distance to it, `exclude` left out unless it is the only candidate."""
        if self.candidates is None or (cell in self._candidate_set and cell != exclude):
            return cell
        nearest = self._nearest.get((cell, exclude))
        if nearest is None:
            nearest = self._nearest_candidates(cell, exclude)
            if len(self._nearest) >= _NEAREST_CACHE:
                self._nearest.clear()
            self._nearest[(cell, exclude)] = nearest
        return self.candidates[int(nearest[rng.randrange(len(nearest))])]

    def _nearest_candidates(self, cell: CellSpec, exclude: CellSpec | None) -> np.ndarray:
        """Indices of the candidates at the smallest Hamming distance to `cell` (`exclude` left out)."""
        return self._nearest_to_vector(_vector(cell), exclude)

    def _nearest_to_vector(self, vector_array: np.ndarray, exclude: CellSpec | None) -> np.ndarray:
        vector = vector_array.tolist()
        edges = sum(1 << k for k in range(21) if vector[k])
        ops = sum(1 << (4 * v + vector[21 + v] + 1) for v in range(len(vector) - 21))  # as _packed does
        distance = (np.bitwise_count(self._candidate_edges ^ np.uint32(edges)).astype(np.int64)
                    + np.bitwise_count(self._candidate_ops ^ np.uint32(ops)) // 2)
        if exclude is not None and len(self.candidates) > 1 and exclude in self._candidate_set:
            distance[self._candidate_index[exclude]] = np.iinfo(np.int64).max
        return np.flatnonzero(distance == distance.min())

    # -- categorical view and features -------------------------------------------------------------
    def categorical(self) -> tuple[Choice, ...]:
        return CATEGORICAL

    def to_categorical(self, genotype: CellSpec) -> dict[str, Any]:
        """The padded 7-vertex form of the canonical cell (padding vertices: isolated conv3x3)."""
        cell = self.validate(genotype)
        matrix, ops = _padded(cell, [AVAILABLE_OPS[0]] * (MAX_VERTICES - cell.num_vertices))
        values: dict[str, Any] = {f"e{i}{j}": matrix[i][j] for i, j in _EDGE_SLOTS}
        values.update({f"op{v}": ops[v] for v in range(1, MAX_VERTICES - 1)})
        return values

    def from_categorical(self, values: Mapping[str, Any], rng: random.Random) -> CellSpec:
        """Most combinations are no cell (no input→output path, or > 9 edges after pruning): with
        candidates, the nearest candidate by Hamming distance of the padded form; without, the
        input→output edge is added and random edges dropped until the cell is valid."""
        matrix = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
        for i, j in _EDGE_SLOTS:
            matrix[i][j] = int(values[f"e{i}{j}"])
        ops = [INPUT, *(str(values[f"op{v}"]) for v in range(1, MAX_VERTICES - 1)), OUTPUT]
        cell = self._padded_child(matrix, ops)
        if cell is not None:
            return self.nearest(cell, rng)
        if self.candidates is not None:
            labels = [_OP_INDEX[op] for op in ops[1:-1]]
            bits = [matrix[i][j] for i, j in _EDGE_SLOTS]
            nearest = self._nearest_to_vector(np.array(bits + labels, dtype=np.int8), None)
            return self.candidates[int(nearest[rng.randrange(len(nearest))])]
        matrix[0][MAX_VERTICES - 1] = 1
        while (cell := self._padded_child(matrix, ops)) is None:
            i, j = rng.choice([(i, j) for i, j in _EDGE_SLOTS if matrix[i][j] and (i, j) != (0, MAX_VERTICES - 1)])
            matrix[i][j] = 0
        return cell

    def features(self, genotype: CellSpec) -> np.ndarray:
        return cell_features(self.canonical(_as_cell(genotype)))

    def validate(self, genotype: Any) -> CellSpec:
        """The canonical pruned cell of a CellSpec, key, {'matrix', 'ops'} or (matrix, ops)."""
        cell = self.canonical(_as_cell(genotype))
        if self.candidates is not None and cell not in self._candidate_set:
            raise LmnasError(f"NAS-Bench-101 cell {cell_key(cell)!r} is not among the "
                             f"{len(self.candidates)} candidate cells of this space (search.space.candidates)")
        return cell

    def key(self, genotype: CellSpec) -> str:
        if self.index is None:
            return cell_key(_as_cell(genotype))
        cell = self.canonical(_as_cell(genotype))
        key = self._keys.get(cell)
        if key is None:
            key = self._keys[cell] = cell_key(cell)  # canonical already: cell_key's canonical_cell is a cache hit
        return key

    def parse(self, key: str) -> CellSpec:
        return self.validate(self._parse_key(key))

    def hash_key(self, genotype: CellSpec) -> str:
        """The benchmark's module hash (md5 hex), the key of the hash-keyed tables."""
        if self.index is not None:
            cell = self.canonical(_as_cell(genotype))
            module_hash = self._hashes.get(cell)
            if module_hash is None:
                module_hash = self._hashes[cell] = str(self.index.hashes[self.index.row(cell)])
            return module_hash
        return _module_hash(_as_cell(genotype))

    # -- networks ---------------------------------------------------------------------------------
    def build(self, genotype: CellSpec) -> nn.Module:
        return build_network(self.validate(genotype), self.num_classes, self.stem_channels, self.num_stacks,
                             self.cells_per_stack, self.input_shape[0])

    def describe(self) -> str:
        widths = ", ".join(str(self.stem_channels * 2**s) for s in range(self.num_stacks))
        restricted = (f" This search is restricted to {len(self.candidates)} given cells."
                      if self.candidates is not None else "")
        return (
            "NAS-Bench-101 (CIFAR-10): the architecture is one cell, a directed acyclic graph of at most "
            "7 vertices (an input vertex, up to 5 operation vertices, an output vertex) and at most 9 edges, "
            "edges only going from a lower- to a higher-numbered vertex. Each operation vertex is one of: "
            "c3 = 3x3 convolution + batch norm + ReLU, c1 = 1x1 convolution + batch norm + ReLU, "
            "mp = 3x3 max pooling (stride 1). An operation vertex sums its inputs; the output vertex "
            "concatenates its inputs along channels (an edge from the input vertex goes through a 1x1 "
            "projection). Vertices not on an input-to-output path are removed, and isomorphic graphs are "
            "the same architecture. The cell is stacked "
            f"{self.cells_per_stack} times in each of {self.num_stacks} stacks of {widths} channels after a "
            f"3x3 convolution stem of {self.stem_channels} channels; a 2x2 max pooling halves the resolution "
            "between stacks; global average pooling and a linear classifier end the network. "
            "An architecture is written '<bits>|<ops>': the rows of the upper triangle of the n x n "
            "adjacency matrix (row i = edges from vertex i to vertices i+1..n-1) concatenated, then the "
            "operations of vertices 1..n-2 separated by commas, e.g. '110011|c3,mp' (4 vertices: input→1, "
            "input→2, 1→output, 2→output; vertex 1 = c3, vertex 2 = mp) or '1|' (input straight to "
            "output). About 423,624 distinct cells; the benchmark measured the CIFAR-10 validation accuracy "
            f"of each after 4, 12, 36 and 108 epochs. Input {list(self.input_shape)}, "
            f"{self.num_classes} classes.{restricted}"
        )

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "stem_channels": self.stem_channels,
            "num_stacks": self.num_stacks,
            "cells_per_stack": self.cells_per_stack,
            "input_shape": list(self.input_shape),
            "candidates": None if self.candidates is None else [cell_key(c) for c in self.candidates],
            "cells": self.cells,
        }
