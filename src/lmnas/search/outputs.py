"""Search artefacts: best.json (written here, read back by `load_best`), journal.parquet and the
search-curve plot (the result), and timings.json (how the run went).

The result files are what later stages read (retrain, transfer, report) and what DVC and
Snakemake hash: they hold only what the search found, so a search that reruns to the same result
writes the same bytes and nothing after it reruns. Wall-clock figures (evaluation costs, the run's
wall time, when each evaluation finished, where a resumed run started) change from run to run:
they live in timings.json and journal.jsonl, which no later stage reads.

The finished run's artefacts are also hard-linked under `.outputs/` (tied to its journal by the
journal's sha256), so a folder moved aside by a rerun keeps them even after Snakemake or DVC removed
the declared outputs before starting that rerun (lmnas.search.run_folder.move_aside).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.identity import sha256_file
from lmnas.io import read_json, write_json, write_text, write_with
from lmnas.search.runner import best_row
from lmnas.spaces import SearchSpace, create_space

RESULT_FILES = ("config.json", "journal.parquet", "curve.png", "timings.json", "best.json")
KEPT_DIR = ".outputs"
KEPT_JOURNAL = "journal.sha256"
# Journal row fields measured by the clock, not found by the search.
TIMING_FIELDS = ("cost_s", "finished_at")


def best_summary(rows: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    best = best_row(rows)
    summary = {
        "genotype": best["key"],
        "accuracy": best["metrics"]["accuracy"],
        "evaluations": len(rows),
        "step": best["step"],
        "params": best.get("params"),
        "flops": best.get("flops"),
        "metrics": best["metrics"],
    }
    if "test_accuracy" in best["metrics"]:
        summary["test_accuracy"] = best["metrics"]["test_accuracy"]
    summary.update(context)
    return summary


def timings(rows: list[dict[str, Any]], *, wall_s: float, resumed_from: int) -> dict[str, Any]:
    """search_cost_s: the evaluations' cost (measured training time, or a table's recorded one);
    wall_s: this process's time (a resumed run's, not the whole run's)."""
    return {
        "search_cost_s": sum(r["cost_s"] for r in rows),
        "wall_s": wall_s,
        "resumed_from": resumed_from,
        "evaluations": len(rows),
        "steps": [{"step": r["step"], **{k: r.get(k) for k in TIMING_FIELDS}} for r in rows],
    }


def plot_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Every evaluation as a dot and the best-so-far as a line, against evaluations spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    accs = [r["metrics"]["accuracy"] for r in rows]
    best, running = [], float("-inf")
    for a in accs:
        running = max(running, a)
        best.append(running)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.scatter(steps, accs, s=10, alpha=0.5, label="candidate")
    ax.plot(steps, best, color="C3", label="best so far")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)


def write_search_outputs(out_dir: Path, journal, summary: dict[str, Any], run_timings: dict[str, Any],
                         title: str) -> None:
    journal.to_parquet(out_dir / "journal.parquet", drop=TIMING_FIELDS)
    plot_curve(journal.rows, out_dir / "curve.png", title)
    write_json(out_dir / "timings.json", run_timings)
    write_json(out_dir / "best.json", summary)  # last: its presence marks the stage done
    keep_outputs(out_dir)


def keep_outputs(out_dir: Path) -> None:
    """Hard links (copies where links fail) of the result files under .outputs/."""
    kept = out_dir / KEPT_DIR
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir()
    for name in RESULT_FILES:
        if (out_dir / name).is_file():
            try:
                os.link(out_dir / name, kept / name)
            except OSError:
                shutil.copy2(out_dir / name, kept / name)
    write_text(kept / KEPT_JOURNAL, sha256_file(out_dir / "journal.jsonl") + "\n")


def restore_outputs(folder: Path) -> list[str]:
    """Put back the result files a finished run kept under .outputs/ where they are missing, if the
    folder still holds the journal they were made from; return the names restored."""
    kept = folder / KEPT_DIR
    journal = folder / "journal.jsonl"
    if not (kept / KEPT_JOURNAL).is_file() or not journal.is_file():
        return []
    if (kept / KEPT_JOURNAL).read_text().strip() != sha256_file(journal):
        return []  # the journal moved on (resumed, extended): these are no longer its results
    restored = []
    for name in RESULT_FILES:
        if (kept / name).is_file() and not (folder / name).exists():
            os.replace(kept / name, folder / name)
            restored.append(name)
    shutil.rmtree(kept, ignore_errors=True)
    return restored


def load_best(best_json: Path) -> tuple[SearchSpace, Any, dict[str, Any]]:
    """The space (rebuilt from its saved settings) and the best genotype of a search."""
    fix = "rerun the search stage (snakemake -R search), or point --best at a search's best.json"
    if not Path(best_json).is_file():
        raise LmnasError(f"{best_json}: not found; {fix}")
    best = read_json(best_json, fix=fix)
    if not isinstance(best, dict) or not isinstance(best.get("space"), dict) or "genotype" not in best:
        raise LmnasError(f"{best_json}: not a search result (needs 'space' and 'genotype'); {fix}")
    settings = dict(best["space"])
    space = create_space(settings.pop("name"), **settings)
    return space, space.parse(best["genotype"]), best
