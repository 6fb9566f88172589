"""Search quality on tabular benchmarks: best found after N queries, mean ± std over seeds.

For each table benchmark × strategy, one search of the largest budget per seed; the best at
smaller budgets is read off the same query sequence (no strategy here looks at its budget, so
a prefix of a 300-query run is exactly a 100-query run). Reported: the test accuracy of the
best-on-validation pick for NAS-Bench-201 (the papers' protocol); the one metric the table has
for NAS-Bench-Macro (test, best over 50 epochs) and NAS-Bench-101 (108-epoch validation).
Also: the share of seeds that found the optimum (the val-best architecture) at each budget and
the queries-to-optimum distribution (quartiles over the seeds that found it), seconds per search,
paired Wilcoxon signed-rank tests (same seeds) of the model-based strategies against GA and
regularized evolution, and reference rows from papers / the tables' README with their sources.

Strategies: random, regularized evolution, GA (GPT-NAS settings), bananas, optuna-tpe (defaults
of the config schema). `--warm-start '<json>'` (the `search.warm_start` section: proxy, pool, top,
space_overrides, ...) adds a "+ws" row per strategy: the same search started from the proxy's top
ranked pool (lmnas.proxies.warm_start, as SearchRequest(warm_start=...) does it; scores read from
data/cache/proxies where computed before). The prior's CPU seconds per search are reported apart
from the queries; without it the column says "none".

    python benchmarks/search_quality.py                                   # 20 seeds, 10 20 50 100 300
    python benchmarks/search_quality.py --seeds 5 --strategies bananas --benchmarks nas-bench-201/cifar10
    python benchmarks/search_quality.py --model-budget 100                # model-based runs stop at 100
    python benchmarks/search_quality.py --benchmarks nas-bench-201/cifar10 --budgets 10 20 50 100 \
        --warm-start '{"proxy": "synflow", "pool": 1000, "top": 10, "space_overrides": {"channels": 8, "cells_per_stage": 1}}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _common import print_table, write_result

BENCHMARKS: dict[str, dict[str, Any]] = {
    "nas-bench-201/cifar10": {"space": {"name": "nas-bench-201"}, "evaluator": {"name": "table", "dataset": "cifar10"}},
    "nas-bench-201/cifar100": {"space": {"name": "nas-bench-201", "num_classes": 100},
                               "evaluator": {"name": "table", "dataset": "cifar100"}},
    "nas-bench-201/imagenet16": {"space": {"name": "nas-bench-201", "num_classes": 120, "input_shape": [3, 16, 16]},
                                 "evaluator": {"name": "table", "dataset": "imagenet16"}},
    "nas-bench-macro": {"space": {"name": "nas-bench-macro"}, "evaluator": {"name": "table"}},
    # The 20k hashed cells joined with the enumerated space, split b (~10,000 cells; see nb101_search.py).
    "nas-bench-101/b": {"space": {"name": "nas-bench-101"}, "evaluator": {"name": "table", "table": "joined",
                                                                          "split": "b"}, "needs_cells": True},
    # 292 distinct cells with validation accuracy only: the search is restricted to them.
    "nas-bench-101/subset": {"space": {"name": "nas-bench-101"}, "evaluator": {"name": "table", "table": "subset"},
                             "candidates_from_table": True},
}
DEFAULT_BENCHMARKS = [b for b in BENCHMARKS if b != "nas-bench-101/subset"]
# label -> (registered strategy, settings over the schema's defaults)
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "regularized-evolution": ("regularized-evolution", {"population": 20, "sample_size": 5}),
    "ga": ("ga", {"population": 30, "generations": 20, "crossover_rate": 0.7, "mutation_rate": 0.5}),
    "bananas": ("bananas", {}),
    "bananas-init3": ("bananas", {"initial": 3}),  # the predictor from the 4th query on
    # all one-mutation neighbours of the top 10 scored, refit after every query: ~3x slower
    "bananas-dense": ("bananas", {"candidates": 200, "max_mutations": 1, "retrain_growth": 0.0}),
    "optuna-tpe": ("optuna-tpe", {}),
}
MODEL_BASED = {"bananas", "optuna-tpe"}
BASELINES = ("ga", "regularized-evolution")  # what the paired tests compare against (and their +ws rows)
CACHE = Path(__file__).resolve().parents[1] / "data" / "cache" / "proxies"
# Reference rows: (benchmark, source, label, {budget: (mean, std)}).
REFERENCES: list[tuple[str, str, str, dict[int, tuple[float, float]]]] = [
    ("nas-bench-201/cifar10", "GENIUS with GPT-4, 3 trials (Zheng et al. 2023, 'Can GPT-4 Perform Neural "
     "Architecture Search?', arXiv:2304.10970, NAS-Bench-201 table)", "GENIUS GPT-4 (paper)", {10: (93.79, 0.09)}),
]
README_RANDOM = {  # ../shared/benchmarks/README.md, "Random search, for reference (5,000 simulated runs)"
    "nas-bench-macro": {10: (92.43, 0.34), 50: (92.78, 0.16), 100: (92.87, 0.13)},
    "nas-bench-201/cifar10": {10: (93.02, 0.60), 50: (93.62, 0.35), 100: (93.79, 0.28)},
    "nas-bench-201/cifar100": {10: (69.74, 1.20), 50: (71.01, 0.92), 100: (71.45, 0.88)},
    "nas-bench-201/imagenet16": {10: (43.26, 1.78), 50: (45.00, 0.92), 100: (45.38, 0.81)},
}
for _bench, _figures in README_RANDOM.items():
    REFERENCES.append((_bench, "../shared/benchmarks/README.md: random search, 5,000 simulated runs without "
                       "replacement", "random (tables' README)", _figures))


def _warm_startable() -> set[str]:
    from lmnas.strategies import STRATEGIES as REGISTRY

    return {n for n in {name for name, _ in STRATEGIES.values()} if getattr(REGISTRY.get(n), "warm_startable", False)}


def split(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    settings = dict(spec)
    return settings.pop("name"), settings


def reported(row: dict[str, Any]) -> float:
    return row["metrics"].get("test_accuracy", row["metrics"]["accuracy"])


def best_at(rows: list[dict[str, Any]], budget: int) -> float:
    """Reported accuracy of the best-on-searched-metric candidate among the first `budget` queries."""
    pick = max(rows[:budget], key=lambda r: (r["metrics"]["accuracy"], -r["step"]))
    return reported(pick)


def queries_to_optimum(rows: list[dict[str, Any]], best_metric: float) -> int | None:
    """1-based query at which the val-best (searched-metric optimum) architecture was evaluated."""
    return next((i + 1 for i, r in enumerate(rows) if r["metrics"]["accuracy"] >= best_metric), None)


def quartiles(values: list[int]) -> list[float] | None:
    if not values:
        return None
    if len(values) == 1:
        return [float(values[0])] * 3
    q = statistics.quantiles(values, n=4, method="inclusive")
    return [q[0], q[1], q[2]]


def load(bench: str, args: argparse.Namespace) -> tuple[Any, Any]:
    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import create_space

    spec = BENCHMARKS[bench]
    space_name, space_settings = split(spec["space"])
    evaluator_name, evaluator_settings = split(spec["evaluator"])
    if args.benchmarks_dir:
        evaluator_settings["benchmarks_dir"] = args.benchmarks_dir
    if spec.get("needs_cells"):
        evaluator_settings["cells"] = args.cells
        space_settings["cells"] = args.cells
    evaluator = EVALUATORS.create(evaluator_name, **evaluator_settings)
    space = create_space(space_name, **space_settings)
    if spec.get("candidates_from_table") or spec.get("needs_cells"):
        space = create_space(space_name, **space_settings, candidates=evaluator.keys(space))
    return space, evaluator


def run_strategy(bench: str, label: str, name: str, settings: dict[str, Any], space: Any, evaluator: Any,
                 optimum: Any, budget: int, args: argparse.Namespace, warm: Any = None) -> dict[str, Any]:
    """`warm`: a lmnas.proxies.warm_start.WarmStart ranked per seed before the first ask (its time
    is not in seconds_per_search; its CPU seconds are reported apart)."""
    from lmnas.proxies.warm_start import warm_start_strategy
    from lmnas.search.runner import Budget, run_search
    from lmnas.strategies import create_strategy

    budgets = [b for b in args.budgets if b <= budget]
    finals: dict[int, list[float]] = {b: [] for b in budgets}
    hits: list[int | None] = []
    seconds = 0.0
    prior: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        strategy = create_strategy(name, space=space, seed=seed, **settings)
        if warm is not None:
            prior.append(warm_start_strategy(strategy, space, warm, seed, None))
        start = time.perf_counter()
        rows = run_search(space, strategy, evaluator, None, Budget(budget), seed=seed, progress=False).journal.rows
        seconds += time.perf_counter() - start
        for b in budgets:
            finals[b].append(best_at(rows, b))
        hits.append(queries_to_optimum(rows, optimum.best_metric))
    found = [h for h in hits if h is not None]
    return {
        "benchmark": bench, "strategy": label, "name": name, "settings": settings, "seeds": args.seeds,
        "warm_start": "none" if warm is None else warm.identity(), "max_budget": budget,
        "mean": {b: statistics.mean(v) for b, v in finals.items()},
        "std": {b: statistics.stdev(v) if len(v) > 1 else 0.0 for b, v in finals.items()},
        "finals": finals,
        "optimum_share": {b: sum(h is not None and h <= b for h in hits) / len(hits) for b in budgets},
        "queries_to_optimum": hits, "queries_to_optimum_quartiles": quartiles(found),
        "seconds_per_search": seconds / args.seeds,
        # CPU-s of every proxy score a search used (cached ones at their first cost) / computed by this run
        "prior_cpu_s_per_search": statistics.mean(p["proxy_cpu_s_all"] for p in prior) if prior else 0.0,
        "prior_cpu_s_computed": sum(p["proxy_cpu_s"] for p in prior),
        "prior_wall_s_per_search": statistics.mean(p["wall_s"] for p in prior) if prior else 0.0,
        "prior_pool": prior[0]["pool"] if prior else 0,
    }


def paired_tests(results: list[dict[str, Any]], budgets: list[int]) -> list[dict[str, Any]]:
    """Wilcoxon signed-rank (same seeds; exact for small samples) of every model-based row against GA
    and regularized evolution of the same benchmark (a +ws row also against their +ws rows), at each
    budget both reached."""
    from scipy.stats import wilcoxon

    tests = []
    for r in results:
        if r["name"] not in MODEL_BASED:
            continue
        for ref in results:
            if ref["benchmark"] != r["benchmark"] or ref["strategy"].removesuffix("+ws") not in BASELINES:
                continue
            if ref["warm_start"] != "none" and r["warm_start"] == "none":  # plain vs warm-started baselines: not asked
                continue
            for b in budgets:
                if b not in r["finals"] or b not in ref["finals"]:
                    continue
                diff = [x - y for x, y in zip(r["finals"][b], ref["finals"][b])]
                nonzero = [d for d in diff if d]
                p = float(wilcoxon(nonzero, alternative="greater").pvalue) if nonzero else 1.0
                tests.append({"benchmark": r["benchmark"], "strategy": r["strategy"], "against": ref["strategy"],
                              "budget": b, "mean_diff": statistics.mean(diff), "wins": sum(d > 0 for d in diff),
                              "losses": sum(d < 0 for d in diff), "p_greater": p})
    return tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 50, 100, 300])
    parser.add_argument("--model-budget", type=int, help="largest budget for bananas / optuna-tpe (default: all)")
    parser.add_argument("--benchmarks", nargs="+", default=DEFAULT_BENCHMARKS, choices=list(BENCHMARKS))
    parser.add_argument("--strategies", nargs="+", default=[s for s in STRATEGIES if s != "bananas-dense"],
                        choices=list(STRATEGIES))
    parser.add_argument("--warm-start", help="JSON search.warm_start section (proxy, pool, top, space_overrides...): "
                        "an extra '+ws' row per strategy")
    parser.add_argument("--no-plain", action="store_true", help="with --warm-start: only the '+ws' rows")
    parser.add_argument("--cells", default="data/nb101/cells.parquet", help="lmnas nb101 enumerate output")
    parser.add_argument("--benchmarks-dir", help="default: ../shared/benchmarks or $LMNAS_BENCHMARKS_DIR")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from lmnas.proxies.warm_start import WarmStart

    plain = [(label, *STRATEGIES[label], None) for label in args.strategies]
    variants = [] if args.no_plain and args.warm_start else list(plain)
    if args.warm_start:
        section = json.loads(args.warm_start)
        warm = WarmStart.from_dict({"cache_dir": str(CACHE), **section})
        if not all(STRATEGIES[label][0] in _warm_startable() for label in args.strategies):
            parser.error(f"--warm-start: strategies without a warm start seam: "
                         f"{[l for l in args.strategies if STRATEGIES[l][0] not in _warm_startable()]}")
        variants += [(f"{label}+ws", name, settings, warm) for label, name, settings, _ in plain]
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    optima: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for bench in args.benchmarks:
        if BENCHMARKS[bench].get("needs_cells") and not Path(args.cells).is_file():
            skipped.append(f"{bench}: {args.cells} missing (lmnas nb101 enumerate --out {args.cells})")
            print(f"skipped {skipped[-1]}", flush=True)
            continue
        space, evaluator = load(bench, args)
        optimum = evaluator.optimum(space)
        oracle = optimum.test_of_best if optimum.test_of_best is not None else optimum.best_metric
        optima[bench] = {"reported_optimum": oracle, "best_metric": optimum.best_metric}
        for label, name, settings, warm in variants:
            budget = max(args.budgets)
            if name in MODEL_BASED and args.model_budget:
                budget = min(budget, args.model_budget)
            entry = run_strategy(bench, label, name, dict(settings), space, evaluator, optimum, budget, args, warm)
            entry["optimum"] = oracle
            results.append(entry)
            print(f"[{time.perf_counter() - t0:6.0f}s] {bench} {label}: "
                  + ", ".join(f"{b}: {entry['mean'][b]:.2f}" for b in entry["mean"])
                  + f" ({entry['seconds_per_search']:.2f} s/search, prior {entry['prior_cpu_s_per_search']:.1f} "
                  f"CPU-s/search)", flush=True)
            write_result("search_quality", {"args": vars(args), "partial": True, "results": results,
                                            "optima": optima}, args.out)
    report(results, optima, skipped, args, time.perf_counter() - t0)


def report(results: list[dict[str, Any]], optima: dict[str, dict[str, Any]], skipped: list[str],
           args: argparse.Namespace, seconds: float) -> None:
    budgets = args.budgets
    rows = []
    for r in results:
        q = r["queries_to_optimum_quartiles"]
        rows.append([r["benchmark"], r["strategy"], r["warm_start"] if r["warm_start"] == "none" else "yes"]
                    + [f"{r['mean'][b]:.2f} ± {r['std'][b]:.2f}" if b in r["mean"] else "—" for b in budgets]
                    + [f"{r['optimum']:.2f}",
                       " ".join(f"{100 * r['optimum_share'][b]:.0f}" for b in (100, max(budgets)) if b in r["optimum_share"]),
                       "—" if q is None else f"{q[0]:.0f}/{q[1]:.0f}/{q[2]:.0f}", f"{r['seconds_per_search']:.2f}",
                       f"{r['prior_cpu_s_per_search']:.1f}"])
    for bench, source, label, figures in REFERENCES:
        if bench in optima:
            rows.append([bench, label, "ref"] + [f"{figures[b][0]:.2f} ± {figures[b][1]:.2f}" if b in figures else "—"
                                                 for b in budgets] + [f"{optima[bench]['reported_optimum']:.2f}", "", "", "", ""])
    warm = next((r["warm_start"] for r in results if r["warm_start"] != "none"), None)
    if warm is not None:
        print(f"\nwarm start (+ws rows): {json.dumps(warm)}; prior CPU-s/search: proxy CPU time of the pool's "
              "scores (cached ones at their first cost), not counted in the queries")
    print(f"\nbest found (%), mean ± std over {args.seeds} seeds; NAS-Bench-201: test accuracy of the best-on-validation "
          "pick; NAS-Bench-Macro: test (best of 50 epochs); NAS-Bench-101 split b: 108-epoch validation")
    print_table(["benchmark", "strategy", "warm start"] + [f"{b} q" for b in budgets]
                + ["optimum", "% optimum @100 @max", "q-to-opt Q1/med/Q3", "s/search",
                   "prior CPU-s/search"], rows)
    tests = paired_tests(results, budgets)
    print("\npaired Wilcoxon signed-rank, model-based vs GA / RE (H1: model-based better), same seeds:")
    for t in tests:
        if t["budget"] in (10, 100):
            print(f"  {t['benchmark']:26s} {t['strategy']:16s} vs {t['against']:25s} @{t['budget']:3d}: "
                  f"Δ {t['mean_diff']:+.3f}, {t['wins']}-{t['losses']}, p = {t['p_greater']:.3g}")
    print("\nreferences: " + "; ".join(f"{label} [{bench}]: {source}" for bench, source, label, _ in REFERENCES
                                     if bench in optima))
    for line in skipped:
        print(f"skipped {line}")
    write_result("search_quality", {"args": vars(args), "partial": False, "seconds": seconds, "results": results,
                                    "optima": optima, "paired_tests": tests, "skipped": skipped,
                                    "references": [{"benchmark": b, "source": s, "label": l, "figures": f}
                                                   for b, s, l, f in REFERENCES]}, args.out)


if __name__ == "__main__":
    main()
