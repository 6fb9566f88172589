"""The op-slot encoding of a NAS-Bench-101 cell: one token per vertex, one per adjacency row.

The paper's layer encoding (`encoding.nb101_layers`) spells a cell as the layers of the built
network, where a vertex's op is several tokens and 1x1 projections look like the conv1x1 op, so
a masked slot is not one decision (issue 18). Here a cell is

    [<bos>] [quality bucket] <in> op_1 … op_{n-2} <out> row_0 … row_{n-2} [<eos>]

with op tokens `op:conv3x3`, `op:conv1x1`, `op:maxpool`, and `row_i` the bits of
matrix[i][i+1:] as one token (`r:0101`), so vertex i's op is exactly one token and a masked
vertex is exactly one choice among three. Vertex order is the cell's own (callers canonicalise
first when they want one spelling per cell). The vocabulary is fixed (no corpus needed):
specials, the bucket tokens `q0`…`q{BUCKETS-1}`, the vertex tokens, every row of 1..6 bits.
"""

from __future__ import annotations

from itertools import product

from lmnas.errors import LmnasError
from lmnas.nasbench101.cell import CONV1X1, CONV3X3, MAX_VERTICES, MAXPOOL3X3, CellSpec
from lmnas.registry import Registry

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
MAX_BUCKETS = 10
IN, OUT = "<in>", "<out>"
OP_TOKEN = {CONV3X3: "op:conv3x3", CONV1X1: "op:conv1x1", MAXPOOL3X3: "op:maxpool"}
OP_OF_TOKEN = {t: op for op, t in OP_TOKEN.items()}
ROW_TOKENS = tuple("r:" + "".join(bits) for n in range(1, MAX_VERTICES) for bits in product("01", repeat=n))
TOKENS: tuple[str, ...] = (PAD, BOS, EOS, *(f"q{b}" for b in range(MAX_BUCKETS)), IN, OUT, *OP_TOKEN.values(),
                           *ROW_TOKENS)
TOKEN_ID = {t: i for i, t in enumerate(TOKENS)}
PAD_ID, BOS_ID, EOS_ID = TOKEN_ID[PAD], TOKEN_ID[BOS], TOKEN_ID[EOS]
MAX_LENGTH = 3 + 2 * MAX_VERTICES  # <bos> bucket 7 vertices 6 rows <eos>

# Cell encodings a GPT can be trained on: the paper's layer tokens stay available beside op-slot.
CELL_ENCODINGS: Registry = Registry("cell encoding")


def bucket_token(bucket: int) -> str:
    if not 0 <= bucket < MAX_BUCKETS:
        raise LmnasError(f"op-slot encoding: quality bucket {bucket} outside 0..{MAX_BUCKETS - 1}")
    return f"q{bucket}"


@CELL_ENCODINGS.register("op-slot")
def encode_cell(cell: CellSpec, bucket: int | None = None) -> list[str]:
    """The op-slot tokens of `cell` (no <bos>/<eos>), with a quality-bucket prefix if given."""
    n = cell.num_vertices
    head = [bucket_token(bucket)] if bucket is not None else []
    ops = [OP_TOKEN[op] for op in cell.ops[1:-1]]
    rows = ["r:" + "".join(str(cell.matrix[i][j]) for j in range(i + 1, n)) for i in range(n - 1)]
    return [*head, IN, *ops, OUT, *rows]


@CELL_ENCODINGS.register("layers")
def encode_cell_layers(cell: CellSpec, bucket: int | None = None) -> list[str]:
    """The paper's encoding (GPT-NAS layer structures of the built network); no bucket prefix."""
    from lmnas.encoding.nb101_layers import cell_structures

    if bucket is not None:
        raise LmnasError("the layer encoding has no quality-bucket prefix; use the op-slot encoding")
    return cell_structures(cell)


def decode_cell(tokens: list[str]) -> CellSpec:
    """The cell of op-slot tokens (a bucket prefix, <bos>/<eos> are skipped); validated by CellSpec."""
    body = [t for t in tokens if t not in (PAD, BOS, EOS) and not (t.startswith("q") and t[1:].isdigit())]
    if not body or body[0] != IN or OUT not in body:
        raise LmnasError(f"op-slot tokens {tokens}: expected {IN} op… {OUT} rows…")
    end = body.index(OUT)
    try:
        ops = [OP_OF_TOKEN[t] for t in body[1:end]]
    except KeyError as e:
        raise LmnasError(f"op-slot tokens {tokens}: {e.args[0]!r} is not an op token") from None
    rows = body[end + 1:]
    n = len(ops) + 2
    if len(rows) != n - 1 or any(not r.startswith("r:") or len(r) - 2 != n - 1 - i for i, r in enumerate(rows)):
        raise LmnasError(f"op-slot tokens {tokens}: expected {n - 1} rows of {n - 1}..1 bits")
    matrix = [[0] * n for _ in range(n)]
    for i, row in enumerate(rows):
        for k, bit in enumerate(row[2:]):
            matrix[i][i + 1 + k] = int(bit)
    return CellSpec(tuple(map(tuple, matrix)), ("input", *ops, "output"))


def to_ids(tokens: list[str]) -> list[int]:
    """<bos> + tokens + <eos> as ids."""
    try:
        return [BOS_ID, *(TOKEN_ID[t] for t in tokens), EOS_ID]
    except KeyError as e:
        raise LmnasError(f"op-slot encoding: unknown token {e.args[0]!r}") from None


def op_position(vertex: int, bucket: bool) -> int:
    """The index, in `to_ids(encode_cell(...))`, of interior `vertex`'s op token."""
    return 1 + int(bucket) + vertex  # <bos> [bucket] <in> at vertex 0
