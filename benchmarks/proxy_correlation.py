"""Zero-cost proxies against a benchmark table: cost and rank correlation.

For a seeded random subset of a table space's architectures, every proxy's score (from the
proxy cache, `lmnas.proxies.cache`, computed where missing: rerun to resume), then per proxy:
CPU-seconds per 1,000 architectures (process time, one torch thread, as cached per row),
Spearman rho and Kendall tau against the table's reported accuracy (NAS-Bench-201: the 200-epoch
test accuracy, the figure reported for a val-best pick; NAS-Bench-Macro: mean test accuracy),
Spearman against the searched-on column, and top-1 % recall (the share of the subset's top 1 %
by accuracy that are also in its top 1 % by the proxy).

    python benchmarks/proxy_correlation.py --space nas-bench-201 --archs 1000 \
        --space-overrides '{"channels": 8, "cells_per_stage": 1}'
    python benchmarks/proxy_correlation.py --space nas-bench-macro --archs 300
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

from scipy import stats

from _common import print_table, write_result
from lmnas.evaluation import EVALUATORS
from lmnas.proxies import PROXIES
from lmnas.proxies.cache import ProxySpec, ProxyTable
from lmnas.spaces import create_space

SPACES = {"nas-bench-201": ({}, {"dataset": "cifar10"}), "nas-bench-macro": ({}, {})}


def top_recall(scores: list[float], accuracies: list[float], fraction: float = 0.01) -> float:
    n = max(1, math.ceil(fraction * len(scores)))
    best = set(sorted(range(len(accuracies)), key=lambda i: -accuracies[i])[:n])
    picked = set(sorted(range(len(scores)), key=lambda i: -scores[i])[:n])
    return len(best & picked) / n


def subset(space, count: int, seed: int) -> list[str]:
    """`count` distinct keys drawn with `seed` (the space's own sampler)."""
    rng, keys = random.Random(seed), {}
    while len(keys) < count:
        keys.setdefault(space.key(space.sample(rng)), None)
    return list(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", choices=list(SPACES), default="nas-bench-201")
    parser.add_argument("--archs", type=int, default=1000, help="seeded random subset size")
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--proxies", nargs="+", default=PROXIES.names())
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="the proxies' seed (init and batch)")
    parser.add_argument("--space-overrides", default="{}", help="JSON over the space's settings for the scored networks")
    parser.add_argument("--cache-dir", default=str(Path(__file__).resolve().parents[1] / "data" / "cache" / "proxies"))
    parser.add_argument("--out")
    args = parser.parse_args()

    space_settings, evaluator_settings = SPACES[args.space]
    space = create_space(args.space, **space_settings)
    evaluator = EVALUATORS.create("table", **evaluator_settings)
    keys = subset(space, args.archs, args.subset_seed)
    results = [evaluator.evaluate(space, space.parse(k), seed=0) for k in keys]
    reported = [r.metrics.get("test_accuracy", r.accuracy) for r in results]
    searched = [r.accuracy for r in results]
    overrides = json.loads(args.space_overrides)
    rows, out = [], {}
    for name in args.proxies:
        spec = ProxySpec(name, batch_size=args.batch_size, seed=args.seed, space_overrides=overrides)
        table = ProxyTable(space, spec, args.cache_dir)
        start = time.perf_counter()
        scores = table.scores(keys, progress=True)
        wall = time.perf_counter() - start
        values = [scores[k] for k in keys]
        cpu_per_1000 = table.cpu_s(keys) / len(keys) * 1000
        rho = stats.spearmanr(values, reported).statistic
        tau = stats.kendalltau(values, reported).statistic
        rho_searched = stats.spearmanr(values, searched).statistic
        recall = top_recall(values, reported)
        out[name] = {"cpu_s_per_1000": cpu_per_1000, "spearman": rho, "kendall": tau,
                     "spearman_searched": rho_searched, "top1_recall": recall, "computed_now": table.computed,
                     "wall_s_now": wall, "cache": str(table.path), "non_finite": sum(not math.isfinite(v) for v in values)}
        rows.append([name, cpu_per_1000, rho, tau, rho_searched, recall])
    print(f"\n{args.space}: {len(keys)} architectures (subset seed {args.subset_seed}), batch {args.batch_size}, "
          f"scored networks {table.space.settings()}")
    print_table(["proxy", "CPU-s / 1000 archs", "Spearman (reported)", "Kendall (reported)",
                 "Spearman (searched)", "top-1% recall"], rows)
    write_result(f"proxy_correlation_{args.space}", {
        "space": args.space, "archs": len(keys), "subset_seed": args.subset_seed, "batch_size": args.batch_size,
        "proxy_seed": args.seed, "scored_space": table.space.settings(), "accuracy": evaluator.settings(),
        "proxies": out}, args.out)


if __name__ == "__main__":
    main()
