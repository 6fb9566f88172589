"""Encoding the whole NAS-Bench-101 space as GPT-NAS layer sequences, without tracing.

1. The GPT tokens (`cell_structures`) of all 423,624 enumerated cells, over a process pool:
   wall time, CPU time, tokens. 2. Full `Layer` records (`cell_layers`, what the corpus Parquet
   stores with the text) on a sample, extrapolated to the space. 3. Tracing
   (`trace_layers(build_network(cell))`, the old path) on a smaller sample, extrapolated; the
   sample's direct and traced sequences are checked equal.

    python benchmarks/nb101_encode.py --cells data/nb101/cells.parquet --workers 2
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from _common import print_table, write_result


def encode_chunk(rows: list[tuple[list[list[int]], list[str]]]) -> Counter:
    from lmnas.nasbench101 import CellSpec
    from lmnas.encoding.nb101_layers import cell_structures

    counts: Counter = Counter()
    for matrix, ops in rows:
        counts.update(cell_structures(CellSpec(matrix, ops)))
    return counts


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="data/nb101/cells.parquet")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--layer-sample", type=int, default=2000)
    parser.add_argument("--trace-sample", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()

    from tqdm import tqdm

    from lmnas.encoding.trace import trace_layers
    from lmnas.nasbench101 import CellSpec, build_network
    from lmnas.nasbench101.enumerate import read_cells
    from lmnas.encoding.nb101_layers import cell_layers

    table = read_cells(args.cells, ["matrix", "ops"])
    rows = list(zip(table.column("matrix").to_pylist(), table.column("ops").to_pylist()))
    chunks = [rows[i : i + 5000] for i in range(0, len(rows), 5000)]
    wall, cpu = time.perf_counter(), cpu_seconds()
    tokens: Counter = Counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for counts in tqdm(pool.map(encode_chunk, chunks), total=len(chunks), desc="encode", unit="chunk"):
            tokens.update(counts)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu

    sample = [CellSpec(m, o) for m, o in random.Random(0).sample(rows, args.layer_sample)]
    t = time.perf_counter()
    layer_count = sum(len(cell_layers(c)) for c in sample)
    layers_s = (time.perf_counter() - t) / len(sample)
    traced = sample[: args.trace_sample]
    t = time.perf_counter()
    traces = [trace_layers(lambda: build_network(c), (3, 32, 32)) for c in traced]
    trace_s = (time.perf_counter() - t) / len(traced)
    equal = all(a == cell_layers(c) for a, c in zip(traces, traced))

    n = len(rows)
    result = {"cells": n, "workers": args.workers, "tokens_wall_s": wall, "tokens_cpu_s": cpu,
              "tokens": sum(tokens.values()), "distinct_tokens": len(tokens),
              "layers_per_cell_s": layers_s, "layers_space_cpu_s": layers_s * n, "layers_sample": len(sample),
              "mean_layers": layer_count / len(sample), "trace_per_cell_s": trace_s, "trace_space_cpu_s": trace_s * n,
              "trace_sample": len(traced), "direct_equals_traced": equal, "load": os.getloadavg()}
    print(f"{n:,} cells, {args.workers} workers, load average {os.getloadavg()[0]:.1f} (shared machine)")
    print_table(["what", "per cell ms", "whole space", "how"], [
        ["GPT tokens (cell_structures)", f"{1e3 * cpu / n:.3f}", f"{wall:.0f} s wall, {cpu:.0f} s CPU", "measured"],
        ["Layer records (cell_layers)", f"{1e3 * layers_s:.2f}", f"{layers_s * n / 60:.1f} CPU min",
         f"{len(sample)} cells, extrapolated"],
        ["tracing (old path)", f"{1e3 * trace_s:.1f}", f"{trace_s * n / 3600:.2f} CPU h",
         f"{len(traced)} cells, extrapolated"],
    ])
    print(f"tokens: {result['tokens']:,} ({result['distinct_tokens']} distinct); direct == traced on the "
          f"sample: {equal}")
    write_result("nb101_encode", {"args": vars(args), **result}, args.out)


if __name__ == "__main__":
    main()
