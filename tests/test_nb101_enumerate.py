"""The NAS-Bench-101 enumerator on small bounds, checked against an independent brute force."""

import itertools
import random

import pytest

from lmnas.errors import LmnasError
from lmnas.nasbench101 import CellSpec, build_network, count_parameters
from lmnas.nasbench101.cell import AVAILABLE_OPS, INPUT, OUTPUT
from lmnas.nasbench101.enumerate import (
    bits_matrix,
    decode_form,
    enumerate_cells,
    form_key,
    full_dag_bits,
    matrix_bits,
)
from lmnas.nasbench101.join import join_results, split_of
from lmnas.nasbench101.network import network_parameters
from lmnas.spaces.nas_bench_101 import cell_key


def brute_force(max_vertices):
    """Every upper-triangular matrix and labelling (pruned or not) through CellSpec: module hash →
    canonical key, and the first (V, bits, labels) seen per hash among cells that need no pruning."""
    keys, first = {}, {}
    for n in range(2, max_vertices + 1):
        slots = n * (n - 1) // 2
        for bits in range(1 << slots):
            matrix = bits_matrix(n, bits)
            for labels in itertools.product(range(3), repeat=n - 2):
                try:
                    cell = CellSpec(matrix, [INPUT, *(AVAILABLE_OPS[i] for i in labels), OUTPUT])
                except LmnasError:
                    continue
                h = cell.hash()
                keys.setdefault(h, set()).add(cell_key(cell))
                if cell.pruned() is cell:
                    first.setdefault(h, (n, bits, labels))
    return keys, first


@pytest.fixture(scope="module")
def small():
    return enumerate_cells(5, workers=1, progress=False), None


@pytest.fixture(scope="module")
def brute():
    return brute_force(5)


def test_full_dag_bits_are_the_unprunable_cells():
    for n in range(2, 6):
        expected = []
        for bits in range(1 << (n * (n - 1) // 2)):
            try:
                cell = CellSpec(bits_matrix(n, bits), [INPUT] + [AVAILABLE_OPS[0]] * (n - 2) + [OUTPUT])
            except LmnasError:
                continue
            if cell.pruned() is cell:
                expected.append(bits)
        assert full_dag_bits(n).tolist() == expected


def test_counts_and_hashes_match_brute_force(small, brute):
    table, (keys, _) = small[0], brute
    assert table.num_rows == len(keys) == 2532  # cells of <= 5 vertices
    assert set(table.column("hash").to_pylist()) == set(keys)
    # The hash separates exactly the isomorphism classes: one canonical key per hash, all distinct.
    assert all(len(k) == 1 for k in keys.values())
    assert table.column("hash").to_pylist() == sorted(table.column("hash").to_pylist())


def test_stored_cell_is_the_first_enumerated(small, brute):
    table, (_, first) = small[0], brute
    for row in table.to_pylist():
        cell = CellSpec(row["matrix"], row["ops"])
        assert cell.hash() == row["hash"]
        n, bits, labels = first[row["hash"]]
        assert (cell.num_vertices, matrix_bits(row["matrix"])) == (n, bits)
        assert row["forms"][0] == form_key(n, bits, labels)


def test_forms_index_every_vertex_order(small):
    table, _ = small
    rows = table.to_pylist()
    all_forms = [k for r in rows for k in r["forms"]]
    assert len(all_forms) == len(set(all_forms))
    for row in random.Random(0).sample(rows, 200):
        for key in row["forms"]:
            matrix, ops = decode_form(key)
            assert CellSpec(matrix, ops).hash() == row["hash"]


def test_small_bound_counts_per_vertices():
    # Independent small cases: 1 cell of 2 vertices; 3 vertices: 0→1→2 with or without 0→2, 3 ops each.
    table = enumerate_cells(3, workers=1, progress=False)
    assert sorted(len(o) for o in table.column("ops").to_pylist()) == [2] + [3] * 6
    with pytest.raises(LmnasError, match="max_vertices"):
        enumerate_cells(8, progress=False)


def test_join_finds_hashes_and_counts_params(small):
    table, _ = small
    rows = table.to_pylist()
    picked = random.Random(1).sample(rows, 12)
    results = {r["hash"]: {"val_acc_108": 0.9, "params": network_parameters(CellSpec(r["matrix"], r["ops"]))}
               for r in picked}
    results[picked[0]["hash"]]["params"] += 1  # a differing count must show up as such
    joined = join_results(table, results)
    assert joined.column("hash").to_pylist() == sorted(results)
    assert sum(a != b for a, b in zip(joined.column("params").to_pylist(),
                                      joined.column("params_built").to_pylist())) == 1
    assert set(joined.column("split").to_pylist()) <= {"a", "b"}
    assert all(s == split_of(h) for h, s in zip(joined.column("hash").to_pylist(), joined.column("split").to_pylist()))
    with pytest.raises(LmnasError, match="not among"):
        join_results(table, {**results, "0" * 32: {"params": 1}})


def test_closed_form_params_equal_the_built_network():
    from lmnas.encoding.trace import on_meta
    from lmnas.nasbench101 import random_cell

    rng = random.Random(3)
    for _ in range(15):
        cell = random_cell(rng)
        with on_meta():
            net = build_network(cell)
        assert network_parameters(cell) == count_parameters(net)


def test_joined_parquet_reads_as_records(small, tmp_path):
    from lmnas.nasbench101.enumerate import write_cells
    from lmnas.nasbench101.records import load_records

    table, _ = small
    rows = random.Random(4).sample(table.to_pylist(), 5)
    results = {r["hash"]: {"val_acc_108": 0.5 + i / 10, "params": 1} for i, r in enumerate(rows)}
    write_cells(tmp_path / "joined.parquet", join_results(table, results))
    records = {r.source_id: r for r in load_records(tmp_path / "joined.parquet")}
    assert {h: r.val_accuracy for h, r in records.items()} == {h: v["val_acc_108"] for h, v in results.items()}
    assert all(r.hash == h for h, r in records.items())
