"""Zero-cost warm start on NAS-Bench-201 / NAS-Bench-Macro by table lookup: best found after N
queries, mean ± std over seeds, for strategies with and without `search.warm_start`.

Each seed's pool is drawn with that seed and scored through the proxy cache (data/cache/proxies;
the first run computes what is missing, later runs read it), so the prior's cost is reported
from the cached per-architecture CPU time: CPU-seconds per search (pool × cost per score). The
best is the reported accuracy (NAS-Bench-201: test of the val-best pick) among the first N.

    python benchmarks/warm_start_quality.py --proxy synflow --pool 1000 --top 10 \
        --space-overrides '{"channels": 8, "cells_per_stage": 1}'
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import print_table, write_result
from lmnas.evaluation import EVALUATORS
from lmnas.proxies.warm_start import WarmStart, warm_start_strategy
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

BENCHMARKS = {"nas-bench-201/cifar10": ("nas-bench-201", {"dataset": "cifar10"}), "nas-bench-macro": ("nas-bench-macro", {})}
STRATEGIES = {"random": {}, "regularized-evolution": {"population": 20, "sample_size": 5}}
CACHE = Path(__file__).resolve().parents[1] / "data" / "cache" / "proxies"


def best_at(rows: list[dict], budget: int) -> float:
    pick = max(rows[:budget], key=lambda r: (r["metrics"]["accuracy"], -r["step"]))
    return pick["metrics"].get("test_accuracy", pick["metrics"]["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", choices=list(BENCHMARKS), default="nas-bench-201/cifar10")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--proxy", default="synflow")
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--space-overrides", default="{}")
    parser.add_argument("--out")
    args = parser.parse_args()

    space_name, evaluator_settings = BENCHMARKS[args.benchmark]
    space = create_space(space_name)
    evaluator = EVALUATORS.create("table", **evaluator_settings)
    warm = WarmStart(proxy=args.proxy, pool=args.pool, top=args.top, batch_size=args.batch_size,
                     space_overrides=json.loads(args.space_overrides), cache_dir=str(CACHE))
    results, table_rows = {}, []
    for name in args.strategies:
        for label, use in (("plain", False), (f"+{args.proxy} warm start", True)):
            bests = {b: [] for b in args.budgets}
            cpu = []
            for seed in range(args.seeds):
                strategy = create_strategy(name, space=space, seed=seed, **STRATEGIES[name])
                if use:
                    cpu.append(warm_start_strategy(strategy, space, warm, seed, None, progress=True)["proxy_cpu_s_all"])
                rows = run_search(space, strategy, evaluator, None, Budget(max(args.budgets)), seed=seed,
                                  progress=False).journal.rows
                for b in args.budgets:
                    bests[b].append(best_at(rows, b))
            summary = {b: (statistics.mean(v), statistics.stdev(v)) for b, v in bests.items()}
            results[f"{name} {label}"] = {"best": {str(b): {"mean": m, "std": s, "values": bests[b]}
                                                   for b, (m, s) in summary.items()},
                                          "prior_cpu_s_per_search": statistics.mean(cpu) if cpu else 0.0}
            table_rows.append([f"{name} {label}", *[f"{m:.2f} ± {s:.2f}" for m, s in summary.values()],
                               f"{statistics.mean(cpu):.1f}" if cpu else "0"])
    print(f"\n{args.benchmark}, {args.seeds} seeds; warm start: {args.proxy}, pool {args.pool}, top {args.top}, "
          f"scored networks {json.loads(args.space_overrides) or 'as searched'}")
    print_table(["strategy", *[f"{b} queries" for b in args.budgets], "prior CPU-s / search"], table_rows)
    write_result(f"warm_start_quality_{args.benchmark.replace('/', '_')}", {
        "benchmark": args.benchmark, "seeds": args.seeds, "warm_start": {**vars(warm)}, "results": results}, args.out)


if __name__ == "__main__":
    main()
