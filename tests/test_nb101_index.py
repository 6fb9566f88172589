"""The enumerated-cells index: rows by binary search, canonical cells, and the indexed space and
joined table evaluator that use it (small bound: cells of <= 5 vertices; the full space is slow)."""

import json
import random
from pathlib import Path

import pytest

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.nasbench101 import CellSpec
from lmnas.nasbench101.enumerate import enumerate_cells, form_key, matrix_bits, write_cells
from lmnas.nasbench101.index import CellIndex
from lmnas.nasbench101.join import split_of
from lmnas.spaces import create_space
from lmnas.spaces.nas_bench_101 import _OP_INDEX, _padded_form_key, canonical_cell

FULL_CELLS = Path(__file__).resolve().parents[1] / "data" / "nb101" / "cells.parquet"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb101") / "cells.parquet"
    table = enumerate_cells(5, workers=1, progress=False)
    write_cells(path, table)
    return path, [CellSpec(r["matrix"], r["ops"]) for r in table.select(["matrix", "ops"]).to_pylist()]


def relabelled(cell, rng):
    """The cell in a random topological vertex order (input first, output last)."""
    n = cell.num_vertices
    order, placed = [], set()
    while len(order) < n:
        ready = [v for v in range(n) if v not in placed and all(u in placed for u in range(n) if cell.matrix[u][v])]
        v = rng.choice(ready)
        order.append(v)
        placed.add(v)
    return CellSpec([[cell.matrix[a][b] for b in order] for a in order], [cell.ops[v] for v in order])


def test_rows_and_canonical_cells(small):
    path, cells = small
    index = CellIndex.load(path)
    rng = random.Random(0)
    for row, cell in enumerate(cells):
        other = relabelled(cell, rng)
        assert index.row(other) == row and index.hashes[row] == cell.hash()
        assert index.canonical(row) == canonical_cell(other)
    with pytest.raises(LmnasError, match="not in the enumerated"):
        chain = [[int(j == i + 1) for j in range(7)] for i in range(7)]  # 7 vertices: not in a <= 5-vertex index
        index.row(CellSpec(chain, ["input"] + ["maxpool3x3"] * 5 + ["output"]))


def test_padded_form_key_prunes_like_cellspec():
    rng = random.Random(1)
    for _ in range(3000):
        matrix = [[int(j > i and rng.random() < 0.4) for j in range(7)] for i in range(7)]
        ops = ["input"] + [rng.choice(list(_OP_INDEX)) for _ in range(5)] + ["output"]
        key = _padded_form_key(matrix, ops)
        try:
            cell = CellSpec(matrix, ops).pruned()
        except LmnasError as exc:
            if "no input→output path" in str(exc):
                assert key == -1
            continue
        assert key == form_key(cell.num_vertices, matrix_bits(cell.matrix), [_OP_INDEX[o] for o in cell.ops[1:-1]])


def test_indexed_space_agrees_with_the_plain_one(small):
    path, cells = small
    rng = random.Random(2)
    keys = [create_space("nas-bench-101").key(c) for c in rng.sample(cells, 300)]
    plain = create_space("nas-bench-101", candidates=keys)
    indexed = create_space("nas-bench-101", candidates=keys, cells=str(path))
    assert plain.candidates == indexed.candidates
    for cell in rng.sample(cells, 400):
        other = relabelled(cell, rng)
        assert plain.hash_key(other) == indexed.hash_key(other) == cell.hash()
        a, b = random.Random(5), random.Random(5)
        assert plain.nearest(canonical_cell(other), a) == indexed.nearest(indexed.canonical(other), b)
    for key in keys:
        assert indexed.parse(key) == plain.parse(key) and indexed.key(indexed.parse(key)) == key
    assert indexed.settings()["cells"] == str(path)


@pytest.fixture(scope="module")
def bench(small, tmp_path_factory):
    """A hash-keyed results file over the small cells, laid out like the 20k file."""
    _, cells = small
    folder = tmp_path_factory.mktemp("bench")
    rng = random.Random(3)
    rows = {c.hash(): {"val_acc_4": rng.random() / 2, "val_acc_12": 0.6, "val_acc_36": 0.8,
                       "val_acc_108": 0.8 + rng.random() / 10, "training_time_s_108": 1000.0, "params": 123}
            for c in rng.sample(cells, 400)}
    (folder / "nas_bench_101_hash_curves_20k.json").write_text(json.dumps(rows))
    return folder, rows


def test_joined_table_evaluator_serves_one_split(small, bench):
    path, _ = small
    folder, rows = bench
    evaluator = EVALUATORS.create("table", benchmarks_dir=folder, table="joined", cells=str(path), split="b")
    space = create_space("nas-bench-101", candidates=evaluator.keys(create_space("nas-bench-101")), cells=str(path))
    in_b = {h for h in rows if split_of(h) == "b"}
    assert {space.hash_key(c) for c in space.candidates} == in_b
    for cell in space.candidates[:50]:
        result = evaluator.evaluate(space, cell, seed=0)
        assert result.accuracy == pytest.approx(100 * rows[space.hash_key(cell)]["val_acc_108"])
        assert result.params == 123
    assert evaluator.optimum(space).best_metric == pytest.approx(100 * max(rows[h]["val_acc_108"] for h in in_b))
    early = EVALUATORS.create("table", benchmarks_dir=folder, table="joined", cells=str(path), split="b", epochs=4)
    cell = space.candidates[0]
    assert early.evaluate(space, cell, seed=0).accuracy == pytest.approx(100 * rows[space.hash_key(cell)]["val_acc_4"])
    outside = next(h for h in rows if split_of(h) == "a")
    plain = create_space("nas-bench-101")
    cell_a = next(c for c in small[1] if c.hash() == outside)
    with pytest.raises(LmnasError, match="not in the benchmark table"):
        evaluator.evaluate(plain, cell_a, seed=0)


def test_joined_table_refuses_bad_settings(small):
    with pytest.raises(LmnasError, match="needs the enumerated cells"):
        EVALUATORS.create("table", table="joined")
    with pytest.raises(LmnasError, match="split"):
        EVALUATORS.create("table", table="joined", cells=str(small[0]), split="c")
    with pytest.raises(LmnasError, match="apply to table 'joined' only"):
        EVALUATORS.create("table", table="hash20k", split="a")


@pytest.mark.slow
@pytest.mark.skipif(not FULL_CELLS.is_file(), reason="data/nb101/cells.parquet not made (lmnas nb101 enumerate)")
def test_indexed_mutation_and_crossover_draw_the_same_cells():
    keys = EVALUATORS.create("table", table="subset").keys(create_space("nas-bench-101"))
    spaces = [create_space("nas-bench-101", candidates=keys),
              create_space("nas-bench-101", candidates=keys, cells=str(FULL_CELLS))]
    draws = []
    for space in spaces:
        rng, out = random.Random(0), []
        population = [space.sample(rng) for _ in range(20)]
        for _ in range(300):
            child = space.mutate(rng.choice(population), rng)
            a, b = space.crossover(rng.choice(population), rng.choice(population), rng)
            out.append((space.key(child), space.key(a), space.key(b), space.hash_key(child)))
        draws.append(out)
    assert draws[0] == draws[1]
