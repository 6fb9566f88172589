"""Search quality on tabular benchmarks: best accuracy found after N queries, mean ± std over seeds.

For each table benchmark × strategy, one search of the largest budget per seed; the best
at smaller budgets is read off the same query sequence (no strategy here looks at its
budget, so a prefix of a 300-query run is exactly a 100-query run). NAS-Bench-201 reports
the test accuracy of the best-on-validation pick (the papers' protocol); NAS-Bench-Macro
has one (test) metric. Also the table's optimum and the runner's evaluations/s (strategy +
lookup + runner, journal kept in memory).

    python benchmarks/search_quality.py                       # 20 seeds, budgets 10 50 100 300
    python benchmarks/search_quality.py --seeds 50 --strategies random ga
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _common import print_table, write_result
from lmnas.evaluation import EVALUATORS
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

BENCHMARKS: dict[str, dict[str, Any]] = {
    "nas-bench-macro": {"space": {"name": "nas-bench-macro"}, "evaluator": {"name": "table"}},
    "nas-bench-201/cifar10": {"space": {"name": "nas-bench-201"}, "evaluator": {"name": "table", "dataset": "cifar10"}},
    "nas-bench-201/cifar100": {"space": {"name": "nas-bench-201", "num_classes": 100},
                               "evaluator": {"name": "table", "dataset": "cifar100"}},
    "nas-bench-201/imagenet16": {"space": {"name": "nas-bench-201", "num_classes": 120, "input_shape": [3, 16, 16]},
                                 "evaluator": {"name": "table", "dataset": "imagenet16"}},
    # 292 distinct cells with validation accuracy only: the search is restricted to them.
    "nas-bench-101/subset": {"space": {"name": "nas-bench-101"}, "evaluator": {"name": "table", "table": "subset"},
                             "candidates_from_table": True},
}
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {},
    "regularized-evolution": {"population": 20, "sample_size": 5},
    "ga": {"population": 30, "generations": 20, "crossover_rate": 0.7, "mutation_rate": 0.5},
}


def build(spec: dict[str, Any]) -> Any:
    settings = dict(spec)
    return settings.pop("name"), settings


def reported(row: dict[str, Any]) -> float:
    return row["metrics"].get("test_accuracy", row["metrics"]["accuracy"])


def best_at(rows: list[dict[str, Any]], budget: int) -> float:
    """Reported accuracy of the best-on-searched-metric candidate among the first `budget` queries."""
    prefix = rows[:budget]
    pick = max(prefix, key=lambda r: (r["metrics"]["accuracy"], -r["step"]))
    return reported(pick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 50, 100, 300])
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--benchmarks-dir", help="default: ../shared/benchmarks or $LMNAS_BENCHMARKS_DIR")
    parser.add_argument("--out")
    args = parser.parse_args()

    results, rows_out = [], []
    for bench in args.benchmarks:
        space_name, space_settings = build(BENCHMARKS[bench]["space"])
        evaluator_name, evaluator_settings = build(BENCHMARKS[bench]["evaluator"])
        if args.benchmarks_dir:
            evaluator_settings["benchmarks_dir"] = args.benchmarks_dir
        evaluator = EVALUATORS.create(evaluator_name, **evaluator_settings)
        space = create_space(space_name, **space_settings)
        if BENCHMARKS[bench].get("candidates_from_table"):
            space = create_space(space_name, **space_settings, candidates=evaluator.keys(space))
        optimum = evaluator.optimum(space)
        # The reported oracle: test accuracy of the val-best arch, or the best value where no test column exists.
        oracle = optimum.test_of_best if optimum.test_of_best is not None else optimum.best_metric
        for strategy_name in args.strategies:
            finals: dict[int, list[float]] = {b: [] for b in args.budgets}
            evaluations, seconds = 0, 0.0
            for seed in range(args.seeds):
                strategy = create_strategy(strategy_name, space=space, seed=seed, **STRATEGIES[strategy_name])
                start = time.perf_counter()
                outcome = run_search(space, strategy, evaluator, None, Budget(max(args.budgets)), seed=seed,
                                     progress=False)
                seconds += time.perf_counter() - start
                rows = outcome.journal.rows
                evaluations += len(rows)
                for b in args.budgets:
                    finals[b].append(best_at(rows, b))
            entry = {
                "benchmark": bench, "strategy": strategy_name, "seeds": args.seeds,
                "mean": {b: statistics.mean(v) for b, v in finals.items()},
                "std": {b: statistics.stdev(v) if len(v) > 1 else 0.0 for b, v in finals.items()},
                "optimum": oracle, "optimum_best_test": optimum.best_test,
                "evaluations_per_s": evaluations / seconds,
            }
            results.append(entry)
            rows_out.append([bench, strategy_name]
                            + [f"{entry['mean'][b]:.2f} ± {entry['std'][b]:.2f}" for b in args.budgets]
                            + [f"{oracle:.2f}", f"{entry['evaluations_per_s']:,.0f}"])
    print(f"best accuracy found (%), mean ± std over {args.seeds} seeds (NAS-Bench-201: test accuracy of the "
          "best-on-validation pick; NAS-Bench-101 subset: validation accuracy, 292 cells, so 300 queries = all)")
    print_table(["benchmark", "strategy"] + [f"{b} queries" for b in args.budgets] + ["optimum", "evals/s"], rows_out)
    write_result("search_quality", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
