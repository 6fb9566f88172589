"""The trials section of the report, in the GENIUS papers' layout (see lmnas.trials)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lmnas.report.tables import mean_std, table


def trials_section(summary: dict[str, Any]) -> str:
    runs = summary["runs"]
    by_strategy: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_strategy[run["strategy"]].append(run)
    ranked = summary.get("rank_by") is not None
    rank_note = (f" Rank: position of the architecture's {summary['rank_by'].replace('_', ' ')} among every "
                 "architecture of the benchmark table (1 = best)." if ranked else "")
    budget = summary.get("budget", {}).get("evaluations")
    best_rows = [
        (name, len(group), mean_std([r["best"]["accuracy"] for r in group]),
         mean_std([r["best"]["test_accuracy"] for r in group]), mean_std([r["best"]["rank"] for r in group], 1))
        for name, group in by_strategy.items()
    ]
    parts = [
        "## Trials side by side",
        f"Space **{summary['space']}**, evaluator **{summary['evaluator']}**, {budget} evaluations per trial, "
        f"seeds {summary['seeds']}. Best = the architecture with the highest searched-on accuracy in a trial; "
        f"mean ± std over the trials.{rank_note}",
        table(["strategy", "trials", "best accuracy (%)", "its test accuracy (%)", "its rank"], best_rows),
    ]
    # Per iteration, as GENIUS's Tables 1-3: the architecture evaluated at step T (not the best so far).
    steps = max(len(r["steps"]) for r in runs)
    header = ["T"] + [f"{name} {what}" for name in by_strategy for what in (("acc", "rank") if ranked else ("acc",))]
    rows = []
    for t in range(steps):
        row: list[Any] = [t + 1]
        for group in by_strategy.values():
            at = [r["steps"][t] for r in group if t < len(r["steps"])]
            row.append(mean_std([s["test_accuracy"] if s["test_accuracy"] is not None else s["accuracy"] for s in at]))
            if ranked:
                row.append(mean_std([s["rank"] for s in at], 1))
        rows.append(row)
    parts += ["Per iteration: (test) accuracy and rank of the architecture evaluated at step T, mean ± std over the "
              "trials:", table(header, rows)]
    method = summary["strategies"][0]
    group = by_strategy[method]
    header = ["T"] + [f"trial {r['seed']} {what}" for r in group for what in (("acc", "rank") if ranked else ("acc",))]
    rows = []
    for t in range(steps):
        row = [t + 1]
        for r in group:
            s = r["steps"][t] if t < len(r["steps"]) else None
            acc = None if s is None else (s["test_accuracy"] if s["test_accuracy"] is not None else s["accuracy"])
            row.append(acc)
            if ranked:
                row.append(None if s is None else s["rank"])
        rows.append(row)
    parts += [f"Every trial of **{method}**:", table(header, rows)]
    return "\n\n".join(parts)
