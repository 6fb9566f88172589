"""Search artefacts: what later stages read holds the result only (byte-identical for the same
search), timings live beside it, and a folder moved aside by a rerun is kept whole."""

from __future__ import annotations

import json
from pathlib import Path

from bench_tables import needs

from lmnas.search.from_config import search_from_config

RESULTS = ("best.json", "journal.parquet", "curve.png", "config.json")
SECTION = {"space": "nas-bench-201", "strategy": "regularized-evolution", "evaluator": "table",
           "budget": {"evaluations": 15}, "options": {"table": {"dataset": "cifar10"},
                                                     "regularized-evolution": {"population": 5, "sample_size": 2}}}


def stage(out: Path) -> dict:
    return search_from_config(SECTION, data_dir=None, archgpt_dir=None, out_dir=out, seed=3, progress=False,
                              policy="workflow")


def contents(folder: Path, names=RESULTS) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


@needs("nasbench201_cifar10.json")
def test_the_same_search_twice_writes_byte_identical_results_and_its_timings_apart(tmp_path):
    stage(tmp_path / "a")
    stage(tmp_path / "b")
    assert contents(tmp_path / "a") == contents(tmp_path / "b")
    best = json.loads((tmp_path / "a" / "best.json").read_text())
    assert not {"search_cost_s", "wall_s", "resumed_from"} & set(best)
    timings = json.loads((tmp_path / "a" / "timings.json").read_text())
    assert timings["resumed_from"] == 0 and timings["wall_s"] > 0 and timings["evaluations"] == 15
    journal = [json.loads(line) for line in (tmp_path / "a" / "journal.jsonl").read_text().splitlines()]
    assert timings["search_cost_s"] == sum(r["cost_s"] for r in journal)  # the table's training times
    assert [s["cost_s"] for s in timings["steps"]] == [r["cost_s"] for r in journal]
    import pyarrow.parquet as pq

    columns = set(pq.read_schema(tmp_path / "a" / "journal.parquet").names)
    assert {"key", "step", "metric_accuracy", "generation"} <= columns and not {"cost_s", "finished_at"} & columns


@needs("nasbench201_cifar10.json")
def test_a_rerun_keeps_the_old_search_whole_beside_it_though_its_outputs_were_removed(tmp_path):
    out = tmp_path / "search"
    stage(out)
    before = contents(out, (*RESULTS, "timings.json", "journal.jsonl", "fingerprint.json", "status.json"))
    for name in (*RESULTS, "timings.json"):  # what Snakemake (-R search) and DVC remove before rerunning
        (out / name).unlink()
    stage(out)  # the workflow recomputes a finished search, moving the old one aside
    aside = list(tmp_path.glob("search.old-*"))
    assert len(aside) == 1
    assert contents(aside[0], before) == before  # every file, byte for byte
    assert sorted(p.name for p in aside[0].iterdir()) == sorted(before)  # and no hidden copies left
    assert contents(out) == {k: before[k] for k in RESULTS}  # the recomputation: the same result


@needs("nasbench201_cifar10.json")
def test_kept_outputs_are_not_restored_over_a_journal_that_moved_on(tmp_path):
    out = tmp_path / "search"
    stage(out)
    for name in RESULTS:
        (out / name).unlink()
    with (out / "journal.jsonl").open("a") as f:  # another run's rows since: the kept files are not its results
        f.write(json.dumps({"key": "x", "step": 16, "metrics": {"accuracy": 1.0}, "cost_s": 0.0}) + "\n")
    from lmnas.search.run_folder import move_aside

    aside = move_aside(out)
    assert not any((aside / name).exists() for name in RESULTS)
    assert (aside / ".outputs").is_dir() and (aside / "journal.jsonl").is_file()
