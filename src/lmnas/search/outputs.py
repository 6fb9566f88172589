"""Search artefacts: best.json, journal.parquet and the search-curve plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.io import write_json, write_with
from lmnas.search.runner import best_row


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
        "search_cost_s": sum(r["cost_s"] for r in rows),
    }
    if "test_accuracy" in best["metrics"]:
        summary["test_accuracy"] = best["metrics"]["test_accuracy"]
    summary.update(context)
    return summary


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


def write_search_outputs(out_dir: Path, journal, summary: dict[str, Any], title: str) -> None:
    journal.to_parquet(out_dir / "journal.parquet")
    plot_curve(journal.rows, out_dir / "curve.png", title)
    write_json(out_dir / "best.json", summary)  # last: its presence marks the stage done
