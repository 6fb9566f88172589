"""The trials section of the report, in the GENIUS papers' layout (see lmnas.trials)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lmnas.report.tables import mean_std, table

Run = dict[str, Any]


def trials_section(summary: dict[str, Any]) -> str:
    """Three tables: the best per strategy, every strategy per iteration, every trial of the first."""
    by_strategy: dict[str, list[Run]] = defaultdict(list)
    for run in summary["runs"]:
        by_strategy[run["strategy"]].append(run)
    ranked = summary.get("rank_by") is not None
    steps = max(len(r["steps"]) for r in summary["runs"])
    method = summary["strategies"][0]
    return "\n\n".join([
        *_best_part(summary, by_strategy, ranked),
        *_per_iteration_part(by_strategy, ranked, steps),
        f"Every trial of **{method}**:", _every_trial_table(by_strategy[method], ranked, steps),
    ])


def _best_part(summary: dict[str, Any], by_strategy: dict[str, list[Run]], ranked: bool) -> list[str]:
    rank_note = (f" Rank: position of the architecture's {summary['rank_by'].replace('_', ' ')} among every "
                 "architecture of the benchmark table (1 = best)." if ranked else "")
    budget = summary.get("budget", {}).get("evaluations")
    rows = [
        (name, len(group), mean_std([r["best"]["accuracy"] for r in group]),
         mean_std([r["best"]["test_accuracy"] for r in group]), mean_std([r["best"]["rank"] for r in group], 1))
        for name, group in by_strategy.items()
    ]
    return [
        "## Trials side by side",
        f"Space **{summary['space']}**, evaluator **{summary['evaluator']}**, {budget} evaluations per trial, "
        f"seeds {summary['seeds']}. Best = the architecture with the highest searched-on accuracy in a trial; "
        f"mean ± std over the trials.{rank_note}",
        table(["strategy", "trials", "best accuracy (%)", "its test accuracy (%)", "its rank"], rows),
    ]


def _shown_accuracy(step: dict[str, Any]) -> float:
    """The test accuracy where the evaluator gives one, else the searched-on accuracy."""
    return step["test_accuracy"] if step["test_accuracy"] is not None else step["accuracy"]


def _columns(ranked: bool) -> tuple[str, ...]:
    return ("acc", "rank") if ranked else ("acc",)


def _per_iteration_part(by_strategy: dict[str, list[Run]], ranked: bool, steps: int) -> list[str]:
    # As GENIUS's Tables 1-3: the architecture evaluated at step T (not the best so far).
    header = ["T"] + [f"{name} {what}" for name in by_strategy for what in _columns(ranked)]
    rows = []
    for t in range(steps):
        row: list[Any] = [t + 1]
        for group in by_strategy.values():
            at = [r["steps"][t] for r in group if t < len(r["steps"])]
            row.append(mean_std([_shown_accuracy(s) for s in at]))
            if ranked:
                row.append(mean_std([s["rank"] for s in at], 1))
        rows.append(row)
    return ["Per iteration: (test) accuracy and rank of the architecture evaluated at step T, mean ± std over the "
            "trials:", table(header, rows)]


def _every_trial_table(group: list[Run], ranked: bool, steps: int) -> str:
    header = ["T"] + [f"trial {r['seed']} {what}" for r in group for what in _columns(ranked)]
    rows = []
    for t in range(steps):
        row: list[Any] = [t + 1]
        for r in group:
            s = r["steps"][t] if t < len(r["steps"]) else None  # a trial that stopped early: blank cells
            row.append(None if s is None else _shown_accuracy(s))
            if ranked:
                row.append(None if s is None else s["rank"])
        rows.append(row)
    return table(header, rows)
