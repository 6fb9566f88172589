"""Locating and loading the NAS benchmark tables (../shared/benchmarks, see its README.md).

The folder is, in order: the `benchmarks_dir` setting, the LMNAS_BENCHMARKS_DIR environment
variable, or `shared/benchmarks` beside the repository checkout (only when lmnas runs from a
source checkout; an installed package has no such place and asks for one of the two). Tables are plain JSON objects
keyed by the space's key; a loaded table is cached per process by its resolved path (a cache,
not configuration: the same file always gives the same object).

`table_spec` says which file and which columns serve a space on a dataset: the column the
search maximises (`metric`, a validation accuracy where the benchmark has one) and the column
reported as test accuracy, per the benchmark's protocol. `load_spec_table` gives a spec's rows
keyed as the evaluator looks them up, accuracies in % (NAS-Bench-101 files are re-keyed / scaled).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

import lmnas
from lmnas.errors import LmnasError

ENV_VAR = "LMNAS_BENCHMARKS_DIR"
SETTING = "search.evaluator.benchmarks_dir"

_TABLES: dict[Path, dict[str, Any]] = {}
_SPEC_TABLES: dict[tuple[Path, str], dict[str, Any]] = {}


def default_benchmarks_dir() -> Path | None:
    """`shared/benchmarks` beside the repository when lmnas runs from a checkout
    (src/lmnas/__init__.py → repo, recognised by its pyproject.toml); None when installed."""
    repo = Path(lmnas.__file__).resolve().parents[2]
    return repo.parent / "shared" / "benchmarks" if (repo / "pyproject.toml").is_file() else None


def resolve_benchmarks_dir(benchmarks_dir: str | Path | None = None) -> Path:
    chosen = benchmarks_dir or os.environ.get(ENV_VAR) or default_benchmarks_dir()
    if chosen is None:
        raise LmnasError(
            f"no NAS benchmark folder: lmnas is installed, not run from a checkout, so set {SETTING} "
            f"(benchmarks_dir in a workflow config) or the environment variable {ENV_VAR}"
        )
    return Path(chosen).expanduser().resolve()


def require_table(path: str | Path) -> Path:
    """`path` if it is a file, else the error saying how to get it: for a Channel-Bench-Macro table
    (not shipped) the command that copies it from GENIUS's repository into that folder."""
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return path
    if path.name in CHANNEL_BENCH_FILES.values():
        raise LmnasError(
            f"benchmark table {path} not found: Channel-Bench-Macro is not shipped with the benchmarks; copy "
            f"{path.name} from {CHANNEL_BENCH_SOURCE.format(file=path.name)} into {path.parent}: "
            f"curl -L -o {path} {CHANNEL_BENCH_URL.format(file=path.name)} "
            f"(or point {SETTING}, benchmarks_dir in a workflow config, or {ENV_VAR} at a folder holding it)"
        )
    raise LmnasError(
        f"benchmark table {path} not found: set {SETTING} (benchmarks_dir in a workflow config) or the environment "
        f"variable {ENV_VAR} to the folder holding the NAS benchmark tables "
        f"(default: {default_benchmarks_dir() or 'none, installed package'})"
    )


def load_table(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path`, loaded once per process."""
    path = Path(path).expanduser().resolve()
    table = _TABLES.get(path)
    if table is not None:
        return table
    require_table(path)
    try:
        with path.open(encoding="utf-8") as f:
            table = json.load(f)
    except UnicodeDecodeError as exc:  # random bytes, a zip, a pickle: json.load never gets to parse it
        raise LmnasError(f"benchmark table {path}: not JSON text (byte {exc.start} is not UTF-8); expected a "
                         f"JSON object keyed by architecture, as in the benchmarks folder's README") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LmnasError(f"benchmark table {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(table, dict) or not table:
        raise LmnasError(f"benchmark table {path}: expected a non-empty JSON object keyed by architecture")
    _TABLES[path] = table
    return table


@dataclass(frozen=True)
class TableSpec:
    """Where a space's measured results live and which columns mean what (accuracies in %)."""

    space: str
    dataset: str
    epochs: int
    file: str  # file name inside the benchmarks folder
    metric: str  # column the search maximises
    test_metric: str | None  # column reported as test accuracy (None: the source has none)
    val_metric: str | None = None  # validation column, where the benchmark has a validation split
    std_metric: str | None = None
    params: str | None = None  # columns with the trained network's size, where the table has them
    flops: str | None = None  # multiply-adds
    cost: str | None = None  # training seconds, where the table records them
    layout: str = "keyed"  # how the file is stored: see load_spec_table
    key_kind: str = "key"  # rows keyed by the space's `key` or by its `hash_key` (module hash)


NB201_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet16",
                  "imagenet16-120": "imagenet16", "imagenet": "imagenet16"}
# per-dataset 200-epoch files are named by GENIUS (imagenet = ImageNet16-120)
_NB201_FILE_NAME = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet"}
NO_TABLE: dict[str, str] = {}
# Channel-Bench-Macro (Su et al.) is not shipped in the benchmarks folder. GENIUS's repository holds
# its result tables (keys: 7 digits k in 1..4, width = k x base; `mean` = mean CIFAR-10 test accuracy
# of 3 runs, %): copy them into the benchmarks folder under these names.
CHANNEL_BENCH_FILES = {"channel-bench-macro-resnet": "Results_ResNet.json",
                       "channel-bench-macro-mobilenet": "Results_MobileNet.json"}
CHANNEL_BENCH_COMMIT = "97361d30b2da337edd0c8e1ed71b7c88b4a85d38"
CHANNEL_BENCH_SOURCE = ("github.com/mingkai-zheng/GENIUS, benchmark/{file} (commit " + CHANNEL_BENCH_COMMIT + "; "
                        "also in github.com/xiusu/Channel-Bench-Macro)")
CHANNEL_BENCH_URL = f"https://raw.githubusercontent.com/mingkai-zheng/GENIUS/{CHANNEL_BENCH_COMMIT}/benchmark/{{file}}"
TABLE_SPACES = ("nas-bench-macro", "nas-bench-201", "nas-bench-101", *CHANNEL_BENCH_FILES)
NB101_TABLES = ("subset", "hash20k", "joined")
NB101_HASH20K_EPOCHS = (4, 12, 36, 108)


def _pick_metric(space: str, metric: str | None, allowed: dict[str, str], default: str) -> str:
    if metric is None:
        return default
    if metric not in allowed:
        raise LmnasError(
            f"search.evaluator.metric: {metric!r} is not a column of the {space} table; choose one of {sorted(allowed)}"
        )
    return allowed[metric]


def table_spec(space: str, dataset: str = "cifar10", epochs: int | None = None, metric: str | None = None,
               table: str | None = None) -> TableSpec:
    """The table serving `space` on `dataset`; raises LmnasError saying why there is none.
    `table` picks among several tables of one space (NAS-Bench-101: subset | hash20k | joined)."""
    if table is not None and space != "nas-bench-101":
        raise LmnasError(f"search.evaluator.table: {table!r} applies to nas-bench-101 only, not {space}")
    if space in NO_TABLE:
        raise LmnasError(f"no table for this space: {space} ({NO_TABLE[space]}); evaluate it by training "
                         f"(evaluator 'proxy') instead of table lookup")
    if space == "nas-bench-macro":
        if dataset != "cifar10":
            raise LmnasError(f"search.evaluator.dataset: NAS-Bench-Macro has only cifar10, not {dataset!r}")
        if epochs not in (None, 50):
            raise LmnasError(f"search.evaluator.epochs: NAS-Bench-Macro was trained for 50 epochs only, not {epochs}")
        # mean_acc is the best CIFAR-10 *test* accuracy over 50 epochs (no validation split exists)
        column = _pick_metric(space, metric, {"mean_acc": "mean_acc"}, "mean_acc")
        return TableSpec(space, "cifar10", 50, "nas-bench-macro_cifar10.json", column, "mean_acc",
                         std_metric="std", params="params", flops="flops")
    if space == "nas-bench-201":
        ds = NB201_DATASETS.get(dataset.lower())
        if ds is None:
            known = sorted(set(NB201_DATASETS.values()))
            raise LmnasError(f"search.evaluator.dataset: NAS-Bench-201 has {known}, not {dataset!r}")
        if epochs is None and metric is not None and metric.rsplit("_", 1)[-1] in ("12", "200"):
            epochs = int(metric.rsplit("_", 1)[-1])
        epochs = 200 if epochs is None else epochs
        if epochs not in (12, 200):
            raise LmnasError(f"search.evaluator.epochs: NAS-Bench-201 tables hold 12 or 200 epochs, not {epochs}")
        if epochs == 200:  # the per-dataset file, smaller to load
            file, val, test = f"nasbench201_{_NB201_FILE_NAME[ds]}.json", "val_acc_200", "test_acc_200"
        else:
            file, val, test = "nas_bench_201.json", f"{ds}_val_acc_12", f"{ds}_test_acc_12"
        allowed = {"val_acc": val, "test_acc": test, f"val_acc_{epochs}": val, f"test_acc_{epochs}": test}
        column = _pick_metric(space, metric, allowed, val)
        return TableSpec(space, ds, epochs, file, column, test, val_metric=val)
    if space == "nas-bench-101":
        return _nb101_spec(dataset, epochs, metric, table)
    if space in CHANNEL_BENCH_FILES:
        if dataset != "cifar10":
            raise LmnasError(f"search.evaluator.dataset: Channel-Bench-Macro has only cifar10, not {dataset!r}")
        column = _pick_metric(space, metric, {"mean": "mean"}, "mean")  # mean test accuracy of 3 runs
        return TableSpec(space, "cifar10", epochs or 0, CHANNEL_BENCH_FILES[space], column, "mean",
                         std_metric="std", params="params", flops="flops")
    raise LmnasError(f"no table for this space: {space}; table lookup knows {list(TABLE_SPACES)}")


def _nb101_spec(dataset: str, epochs: int | None, metric: str | None, table: str | None) -> TableSpec:
    """Both NAS-Bench-101 sources hold CIFAR-10 *validation* accuracy only (no test accuracy):
    the NASLib subset (292 cells with structure, 108 epochs) and the first 20,001 cells by module
    hash (4/12/36/108 epochs, no structure: looked up by the hash of a cell). "joined" is that
    hash table joined with the enumerated cells (the evaluator's `cells` file): same rows and
    columns, with structure, optionally one split of them (`lmnas.nasbench101.join`)."""
    space = "nas-bench-101"
    if dataset != "cifar10":
        raise LmnasError(f"search.evaluator.dataset: NAS-Bench-101 has only cifar10, not {dataset!r}")
    table = "subset" if table is None else table
    if table not in NB101_TABLES:
        raise LmnasError(f"search.evaluator.table: {table!r}; NAS-Bench-101 tables are {list(NB101_TABLES)}")
    if epochs is None and metric is not None and metric.rsplit("_", 1)[-1].isdigit():
        epochs = int(metric.rsplit("_", 1)[-1])
    epochs = 108 if epochs is None else epochs
    allowed_epochs = (108,) if table == "subset" else NB101_HASH20K_EPOCHS
    if epochs not in allowed_epochs:
        raise LmnasError(f"search.evaluator.epochs: the NAS-Bench-101 {table} table holds "
                         f"{' / '.join(map(str, allowed_epochs))} epochs, not {epochs}")
    val = f"val_acc_{epochs}"
    column = _pick_metric(space, metric, {"val_acc": val, val: val}, val)
    if table == "subset":
        return TableSpec(space, "cifar10", epochs, "nas_bench_101_subset.json", column, None, val_metric=val,
                         params="params", layout="nb101-naslib")
    return TableSpec(space, "cifar10", epochs, "nas_bench_101_hash_curves_20k.json", column, None, val_metric=val,
                     params="params", cost="training_time_s_108" if epochs == 108 else None,
                     layout="nb101-hash", key_kind="hash")


def table_path(spec: TableSpec, benchmarks_dir: str | Path | None = None) -> Path:
    return resolve_benchmarks_dir(benchmarks_dir) / spec.file


def load_spec_table(spec: TableSpec, path: str | Path) -> dict[str, Any]:
    """The rows of `spec`'s file keyed as the evaluator looks them up, accuracies in %.

    layouts: `keyed` = the JSON object as stored; `nb101-naslib` = the NASLib subset re-keyed by the
    canonical NAS-Bench-101 cell key of `pruned_matrix`/`pruned_ops`, duplicates (one sampled run
    each) merged: `val_acc_108` the mean, `params` NASLib's count of the first entry (its vertex
    order), `runs` how many; `nb101-hash` = keyed by module hash, fractions × 100.
    """
    path = Path(path).expanduser().resolve()
    raw = load_table(path)
    if spec.layout == "keyed":
        return raw
    cached = _SPEC_TABLES.get((path, spec.layout))
    if cached is None:
        if spec.layout == "nb101-naslib":
            cached = _nb101_naslib_rows(path, raw)
        elif spec.layout == "nb101-hash":
            cached = {h: _nb101_hash_row(path, h, r) for h, r in raw.items()}
        else:
            raise AssertionError(spec.layout)
        _SPEC_TABLES[(path, spec.layout)] = cached
    return cached


def _nb101_naslib_rows(path: Path, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from lmnas.nasbench101 import CellSpec  # the cell key is the space's; imported late (spaces import us)
    from lmnas.spaces.nas_bench_101 import cell_key

    groups: dict[str, list[dict[str, Any]]] = {}
    for name, entry in raw.items():
        try:
            cell = CellSpec(entry["pruned_matrix"], entry["pruned_ops"])
            float(entry["val_acc_108"])
        except (KeyError, TypeError, ValueError, LmnasError) as exc:
            raise LmnasError(f"benchmark table {path}: entry {name!r} needs pruned_matrix, pruned_ops and a "
                             f"numeric val_acc_108 ({exc})") from None
        groups.setdefault(cell_key(cell), []).append(entry)
    return {
        key: {
            "val_acc_108": fmean(float(e["val_acc_108"]) for e in group),
            "params": round(float(group[0]["naslib_params_M"]) * 1e6),
            "nb101_hash": group[0]["nb101_hash"],
            "runs": len(group),
        }
        for key, group in groups.items()
    }


def numeric(path: Path, key: str, record: Any, column: str) -> float:
    """`record[column]` as a number, or a LmnasError naming the file, record, column and value."""
    if not isinstance(record, dict):
        raise LmnasError(f"benchmark table {path}: record {key!r} is {type(record).__name__}, "
                         f"expected an object of columns such as {column!r}")
    if column not in record:
        raise LmnasError(f"benchmark table {path}: record {key!r} has no column {column!r} "
                         f"(it has {sorted(record)[:8]})")
    value = record[column]
    try:
        if isinstance(value, bool):  # float(True) is 1.0: a flag is not a measurement
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise LmnasError(f"benchmark table {path}: record {key!r}, column {column!r}: {value!r} "
                         f"is not a number") from None


def _nb101_hash_row(path: Path, module_hash: str, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {f"val_acc_{e}": 100.0 * numeric(path, module_hash, row, f"val_acc_{e}")
                           for e in NB101_HASH20K_EPOCHS}
    out["params"] = int(numeric(path, module_hash, row, "params"))
    out["training_time_s_108"] = numeric(path, module_hash, row, "training_time_s_108")
    return out


@dataclass(frozen=True)
class TableStats:
    """The oracle a search is judged against: the best searched-on value, and the test value
    of the architecture a perfect search would pick (mean over ties in the searched-on value)."""

    spec: TableSpec
    size: int
    best_metric: float  # max of spec.metric
    best_keys: tuple[str, ...]  # keys reaching it, sorted
    test_of_best: float | None  # spec.test_metric of those keys (mean over ties); None without one
    best_test: float | None  # max of spec.test_metric over the table; None without one
    mean_metric: float


def table_stats(space: str, dataset: str = "cifar10", epochs: int | None = None, metric: str | None = None,
                benchmarks_dir: str | Path | None = None, table_name: str | None = None) -> TableStats:
    spec = table_spec(space, dataset, epochs, metric, table_name)
    table = load_spec_table(spec, table_path(spec, benchmarks_dir))
    values = {k: float(v[spec.metric]) for k, v in table.items()}
    best = max(values.values())
    keys = tuple(sorted(k for k, v in values.items() if v == best))
    test = spec.test_metric
    tests = [float(table[k][test]) for k in keys] if test else []
    return TableStats(
        spec=spec,
        size=len(table),
        best_metric=best,
        best_keys=keys,
        test_of_best=sum(tests) / len(tests) if test else None,
        best_test=max(float(v[test]) for v in table.values()) if test else None,
        mean_metric=sum(values.values()) / len(values),
    )
