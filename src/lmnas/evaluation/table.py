"""Table lookup: a candidate's fitness is the accuracy the benchmark measured for it.

One dict lookup per query (no network is built): the table's rows are turned once into
ready metrics, so a search over a tabular benchmark runs at well over 10,000 queries/s.
params/flops come from the table where it records them, otherwise None.

NAS-Bench-101 (`table`: "subset" = NASLib's 292 cells, keyed by the space's canonical cell key;
"hash20k" = 20,001 cells keyed by module hash, `epochs` 4/12/36/108): both hold CIFAR-10
validation accuracy only, so `accuracy` = `val_accuracy` and there is no `test_accuracy`.
`keys(space)` lists a structured table's keys, e.g. as the space's `candidates`.

"joined" (NAS-Bench-101): the hash20k rows joined with the enumerated cells (`cells`: the
Parquet of `lmnas nb101 enumerate`), so the table has structure; `split` "a" / "b" keeps one of
its two disjoint halves (`lmnas.nasbench101.join.split_of`), e.g. search on "b" while the
architecture GPT learnt from "a". Lookups stay one dict access by module hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmnas.nas_tables import (
    TableSpec,
    TableStats,
    load_spec_table,
    numeric,
    require_table,
    resolve_benchmarks_dir,
    table_path,
    table_spec,
    table_stats,
)
from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.spaces.base import Genotype, SearchSpace


@dataclass(frozen=True)
class _Row:
    metrics: dict[str, float]
    cost_s: float
    params: int | None
    flops: int | None


@dataclass
class _Lookup:
    spec: TableSpec
    path: Path
    rows: dict[str, _Row]
    cells: list[Any] | None = None  # joined table: the CellSpecs of `rows`, sorted by hash


@EVALUATORS.register("table")
class TableEvaluator(Evaluator):
    """metrics: accuracy (searched-on column, %), test_accuracy (reported column, %), and
    val_accuracy / std where the benchmark has them. cost_s: the table's training time where it
    records one, else `cost_per_query_s` (0 by default: a lookup costs no training)."""

    name = "table"

    def __init__(
        self,
        benchmarks_dir: str | Path | None = None,
        dataset: str = "cifar10",
        metric: str | None = None,
        epochs: int | None = None,
        cost_per_query_s: float = 0.0,
        table: str | None = None,
        cells: str | Path | None = None,
        split: str | None = None,
    ) -> None:
        if cost_per_query_s < 0:
            raise LmnasError(f"search.evaluator.cost_per_query_s: must be >= 0, got {cost_per_query_s}")
        self.benchmarks_dir = resolve_benchmarks_dir(benchmarks_dir)
        self.dataset = dataset
        self.metric = metric
        self.epochs = epochs
        self.cost_per_query_s = float(cost_per_query_s)
        self.table = table
        if (cells is not None or split is not None) and table != "joined":
            raise LmnasError("search.evaluator.cells / split: apply to table 'joined' only")
        if table == "joined" and cells is None:
            raise LmnasError("search.evaluator.cells: table 'joined' needs the enumerated cells Parquet "
                             "(lmnas nb101 enumerate --out cells.parquet)")
        if split not in (None, "a", "b"):
            raise LmnasError(f"search.evaluator.split: {split!r}; expected 'a', 'b' or null (both)")
        self.cells = None if cells is None else Path(cells).expanduser().resolve()
        self.split = split
        self._lookups: dict[str, _Lookup] = {}

    def spec(self, space: SearchSpace) -> TableSpec:
        return self._spec(space.name)

    def _spec(self, space_name: str) -> TableSpec:
        return table_spec(space_name, self.dataset, self.epochs, self.metric, self.table)

    def _lookup(self, space: SearchSpace) -> _Lookup:
        lookup = self._lookups.get(space.name)
        if lookup is None:
            spec = self.spec(space)
            path = table_path(spec, self.benchmarks_dir)
            rows = load_spec_table(spec, path)
            cells = None
            if self.table == "joined":
                from lmnas.nasbench101.join import joined_cells

                cells = joined_cells(self.cells, path, self.split)
                rows = {h: rows[h] for h in cells}
            lookup = _Lookup(spec, path, {k: self._row(spec, path, k, v) for k, v in rows.items()},
                             None if cells is None else list(cells.values()))
            self._lookups[space.name] = lookup
        return lookup

    def _row(self, spec: TableSpec, path: Path, key: str, record: dict[str, Any]) -> _Row:
        columns = {"accuracy": spec.metric, "test_accuracy": spec.test_metric, "val_accuracy": spec.val_metric,
                   "std": spec.std_metric}
        metrics = {name: numeric(path, key, record, column) for name, column in columns.items() if column}
        return _Row(
            metrics=metrics,
            cost_s=numeric(path, key, record, spec.cost) if spec.cost else self.cost_per_query_s,
            params=int(numeric(path, key, record, spec.params)) if spec.params else None,
            flops=int(numeric(path, key, record, spec.flops)) if spec.flops else None,
        )

    def evaluate(
        self, space: SearchSpace, genotype: Genotype, *, seed: int, lineage: dict[str, Any] | None = None
    ) -> EvalResult:
        """`seed` and `lineage` are unused: the table holds one (already averaged) result per architecture."""
        lookup = self._lookups.get(space.name) or self._lookup(space)
        try:
            key = space.key(genotype)
        except (TypeError, ValueError):  # not even shaped like a genotype: let the space say why
            key = space.key(space.validate(genotype))
        if lookup.spec.key_kind == "hash":
            module_hash = space.hash_key(genotype)  # type: ignore[attr-defined]
            row = lookup.rows.get(module_hash)
            if row is None:
                raise LmnasError(f"architecture {key!r} (module hash {module_hash}) is not in the benchmark table "
                                 f"{lookup.path} ({len(lookup.rows)} hashes)")
            return EvalResult(metrics=dict(row.metrics), cost_s=row.cost_s, params=row.params, flops=row.flops)
        row = lookup.rows.get(key)
        if row is None:
            raise LmnasError(f"architecture {key!r} is not in the benchmark table {lookup.path} "
                             f"({len(lookup.rows)} keys); expected a valid {space.name} key")
        return EvalResult(metrics=dict(row.metrics), cost_s=row.cost_s, params=row.params, flops=row.flops)

    def keys(self, space: SearchSpace) -> list[str]:
        """The space keys of every architecture in the table (sorted), e.g. for a space's `candidates`."""
        lookup = self._lookups.get(space.name) or self._lookup(space)
        if lookup.cells is not None:
            return sorted({space.key(cell) for cell in lookup.cells})
        if lookup.spec.key_kind == "hash":
            raise LmnasError(f"benchmark table {lookup.path} is keyed by module hash and holds no cell "
                             f"structure, so it cannot list {space.name} keys; use table 'subset'")
        return sorted(lookup.rows)

    def optimum(self, space: SearchSpace) -> TableStats:
        """Best searched-on value in the table and the test value of the architecture reaching it."""
        if self.table == "joined":  # the joined split, not the whole file
            lookup = self._lookups.get(space.name) or self._lookup(space)
            values = {k: row.metrics["accuracy"] for k, row in lookup.rows.items()}
            best = max(values.values())
            return TableStats(lookup.spec, len(values), best, tuple(sorted(k for k, v in values.items() if v == best)),
                              None, None, sum(values.values()) / len(values))
        return table_stats(space.name, self.dataset, self.epochs, self.metric, self.benchmarks_dir, self.table)

    def input_files_for(self, space_name: str) -> dict[str, Path]:
        path = table_path(self._spec(space_name), self.benchmarks_dir)
        require_table(path)  # a missing table stops here, with the line saying how to get it
        return {"table": path}  # the folder resolved, the file as named: a symlinked table stays under it

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "benchmarks_dir": str(self.benchmarks_dir), "dataset": self.dataset,
                "metric": self.metric, "epochs": self.epochs, "cost_per_query_s": self.cost_per_query_s,
                "table": self.table, "cells": None if self.cells is None else str(self.cells), "split": self.split}
