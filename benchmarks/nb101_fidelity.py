"""Few-epoch accuracy as a stand-in for 108-epoch accuracy on NAS-Bench-101 (GPT-NAS's acceleration).

Over all 20,001 cells of the hash-keyed table: Spearman and Kendall (tau-b) rank correlation of the
4 / 12 / 36-epoch validation accuracy with the 108-epoch one (scipy.stats), plus how often the
top-1 % by the short budget is in the top-1 % by 108 epochs.

    python benchmarks/nb101_fidelity.py
"""

from __future__ import annotations

import argparse

from _common import print_table, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks-dir", help="default: ../shared/benchmarks or $LMNAS_BENCHMARKS_DIR")
    parser.add_argument("--out")
    args = parser.parse_args()

    import numpy as np
    from scipy import stats

    from lmnas.nas_tables import resolve_benchmarks_dir
    from lmnas.nasbench101.join import EPOCHS, load_hash_results

    results = load_hash_results(resolve_benchmarks_dir(args.benchmarks_dir) / "nas_bench_101_hash_curves_20k.json")
    acc = {e: np.array([row[f"val_acc_{e}"] for row in results.values()]) for e in EPOCHS}
    final = acc[108]
    top = final >= np.quantile(final, 0.99)
    rows, out = [], []
    for e in EPOCHS[:-1]:
        spearman = stats.spearmanr(acc[e], final)
        kendall = stats.kendalltau(acc[e], final)
        pearson = stats.pearsonr(acc[e], final)
        short_top = acc[e] >= np.quantile(acc[e], 0.99)
        overlap = float((short_top & top).sum() / top.sum())
        out.append({"epochs": e, "spearman": float(spearman.statistic), "spearman_p": float(spearman.pvalue),
                    "kendall": float(kendall.statistic), "kendall_p": float(kendall.pvalue),
                    "pearson": float(pearson.statistic), "top1pct_overlap": overlap,
                    "mean_acc": float(acc[e].mean())})
        rows.append([e, f"{spearman.statistic:.4f}", f"{kendall.statistic:.4f}", f"{pearson.statistic:.4f}",
                     f"{overlap:.3f}", f"{100 * acc[e].mean():.2f}"])
    print(f"correlation with 108-epoch validation accuracy over {len(final):,} NAS-Bench-101 cells")
    print_table(["epochs", "Spearman", "Kendall tau-b", "Pearson", "top-1% overlap", "mean acc %"], rows)
    write_result("nb101_fidelity", {"args": vars(args), "cells": len(final), "results": out}, args.out)


if __name__ == "__main__":
    main()
