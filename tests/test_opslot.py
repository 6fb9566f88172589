"""Op-slot encoding of NAS-Bench-101 cells and whole-sequence scoring of masked vertices (issue 18)."""

from __future__ import annotations

import random

import pytest

from lmnas.archgpt.model import ArchGPTConfig
from lmnas.archgpt.slot_scoring import (
    DecodePolicy,
    candidate_cells,
    choose,
    quantile_buckets,
    reconstruct_cell,
    sequence_log_likelihood,
    train_opslot,
    with_ops,
)
from lmnas.errors import LmnasError
from lmnas.nasbench101.cell import AVAILABLE_OPS, CONV3X3, MAXPOOL3X3, random_cell
from lmnas.encoding.nb101_opslot import CELL_ENCODINGS, OP_TOKEN, decode_cell, encode_cell, op_position, to_ids
from lmnas.spaces.nas_bench_101 import canonical_cell

TINY = ArchGPTConfig(n_layer=2, n_head=2, n_embd=32, window=16, dropout=0.0)


def sample(count: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    cells = []
    while len(cells) < count:
        c = canonical_cell(random_cell(rng))
        if c.num_vertices >= 4:
            cells.append(c)
    return cells


@pytest.fixture(scope="module")
def model():
    # A GPT that learnt "conv3x3 in the top bucket, maxpool in the bottom": the prefix must matter.
    cells = sample(60)
    top = [with_ops(c, {v: CONV3X3 for v in range(1, c.num_vertices - 1)}) for c in cells]
    low = [with_ops(c, {v: MAXPOOL3X3 for v in range(1, c.num_vertices - 1)}) for c in cells]
    return train_opslot(top + low, TINY, buckets=[3] * len(top) + [0] * len(low), steps=150, lr=3e-3)


def test_round_trip_and_one_token_per_vertex() -> None:
    for cell in sample(200, seed=1):
        tokens = encode_cell(cell, bucket=2)
        assert decode_cell(tokens) == cell
        ids = to_ids(tokens)
        for v in range(1, cell.num_vertices - 1):
            assert ids[op_position(v, bucket=True)] == to_ids([OP_TOKEN[cell.ops[v]]])[1]
    assert {"op-slot", "layers"} <= set(CELL_ENCODINGS.names())


def test_decode_rejects_bad_tokens() -> None:
    with pytest.raises(LmnasError):
        decode_cell(["<in>", "op:conv3x3", "<out>", "r:1"])  # 3 vertices need 2 rows


@pytest.mark.slow  # trains the module's GPT (~40 s on a busy 2-core machine)
def test_legal_choices_only_and_scores_finite(model) -> None:
    for cell in sample(20, seed=2):
        masked = list(range(1, cell.num_vertices - 1))
        for c in candidate_cells(cell, masked):
            assert set(c.ops[1:-1]) <= set(AVAILABLE_OPS)
        out = reconstruct_cell(model, cell, masked, random.Random(0), DecodePolicy(temperature=1.0, top_k=2))
        assert set(out.ops[1:-1]) <= set(AVAILABLE_OPS)
        assert out.matrix == canonical_cell(out).matrix


@pytest.mark.slow  # trains the module's GPT (~40 s on a busy 2-core machine)
def test_in_table_decoding_returns_table_cells_not_the_original(model) -> None:
    cells = sample(30, seed=3)
    table = set(cells)
    # Add, for each cell, one variant that differs at vertex 1: the only other legal candidate.
    variants = {c: canonical_cell(with_ops(c, {1: MAXPOOL3X3 if c.ops[1] != MAXPOOL3X3 else CONV3X3})) for c in cells}
    table |= set(variants.values())
    for cell in cells:
        out = reconstruct_cell(model, cell, [1], random.Random(0), in_space=table.__contains__)
        assert out in table
        if variants[cell] != cell:
            assert out != cell
    lonely = canonical_cell(sample(1, seed=9)[0])
    assert candidate_cells(lonely, [1], {lonely}.__contains__) == [lonely]  # no other candidate: the original


@pytest.mark.slow  # trains the module's GPT (~40 s on a busy 2-core machine)
def test_bucket_prefix_changes_the_generation(model) -> None:
    cell = sample(1, seed=4)[0]
    masked = list(range(1, cell.num_vertices - 1))
    top = reconstruct_cell(model, cell, masked, random.Random(0), bucket=3)
    low = reconstruct_cell(model, cell, masked, random.Random(0), bucket=0)
    assert top != low
    assert top.ops[1:-1].count(CONV3X3) > low.ops[1:-1].count(CONV3X3)


def test_likelihood_and_choose() -> None:
    assert choose([0.0, 5.0, 1.0], random.Random(0), DecodePolicy()) == 1
    picks = {choose([0.0, 5.0, 4.9], random.Random(s), DecodePolicy(temperature=1.0, top_k=1)) for s in range(20)}
    assert picks == {1}
    buckets, edges = quantile_buckets([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 4)
    assert buckets == [0, 0, 1, 1, 2, 2, 3, 3] and len(edges) == 3


@pytest.mark.slow  # trains the module's GPT (~40 s on a busy 2-core machine)
def test_sequence_likelihood_is_negative(model) -> None:
    scores = sequence_log_likelihood(model, [encode_cell(c) for c in sample(3, seed=5)])
    assert all(s < 0 for s in scores)
