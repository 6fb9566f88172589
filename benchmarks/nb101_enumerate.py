"""Enumerating NAS-Bench-101 and joining it with the 20k hash table: counts, time, params check.

1. Enumerate the space up to --max-vertices (default 6: seconds; 7 = the whole space, minutes)
   with --workers processes: wall and CPU time (parent + workers), cells, forms hashed; the CPU
   time per form hashed extrapolates to the 1,293,208 forms of the whole space.
2. With --cells (a whole-space Parquet from `lmnas nb101 enumerate`): its count (must be 423,624),
   every hash of the 20k table found, and our network's parameter count vs the file's for each.

    python benchmarks/nb101_enumerate.py --cells data/nb101/cells.parquet
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from _common import print_table, write_result

FORMS_7 = 1_293_208  # labelled full DAGs of <= 7 vertices / 9 edges hashed by generate_graphs (and by us)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-vertices", type=int, default=6)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--cells", help="a whole-space Parquet to check (count, join, params)")
    parser.add_argument("--benchmarks-dir", help="default: ../shared/benchmarks or $LMNAS_BENCHMARKS_DIR")
    parser.add_argument("--out")
    args = parser.parse_args()

    from lmnas.nas_tables import resolve_benchmarks_dir
    from lmnas.nasbench101.enumerate import NUM_CELLS, enumerate_cells, read_cells, summary
    from lmnas.nasbench101.join import join_results, load_hash_results, params_mismatches

    load = os.getloadavg()
    wall, cpu = time.perf_counter(), cpu_seconds()
    table = enumerate_cells(args.max_vertices, workers=args.workers, progress=False)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    info = summary(table)
    per_form = cpu / info["forms"]
    result = {"max_vertices": args.max_vertices, "workers": args.workers, "wall_s": wall, "cpu_s": cpu, **info,
              "cpu_per_form_us": 1e6 * per_form, "whole_space_cpu_s_extrapolated": per_form * FORMS_7,
              "load_before": load, "load_after": os.getloadavg()}
    rows = [[f"<= {args.max_vertices} vertices", f"{info['cells']:,}", f"{info['forms']:,}", f"{wall:.1f}",
             f"{cpu:.1f}", f"{1e6 * per_form:.0f}"],
            ["whole space (extrapolated)", f"{NUM_CELLS:,}", f"{FORMS_7:,}", f"~{per_form * FORMS_7 / args.workers:.0f}",
             f"~{per_form * FORMS_7:.0f}", ""]]
    if args.cells:
        cells = read_cells(args.cells, ["hash", "matrix", "ops"])
        results = load_hash_results(resolve_benchmarks_dir(args.benchmarks_dir) / "nas_bench_101_hash_curves_20k.json")
        joined = join_results(cells, results)  # raises if any hash is missing
        differ = params_mismatches(joined)
        result["check"] = {"cells": cells.num_rows, "unique_hashes": len(set(cells.column("hash").to_pylist())),
                           "table_hashes": len(results), "found": joined.num_rows,
                           "params_equal": joined.num_rows - len(differ), "params_differ": [r["hash"] for r in differ]}
    print(f"{args.workers} workers; load average {load[0]:.1f} before (a shared machine: CPU time is the fairer measure)")
    print_table(["enumeration", "cells", "forms hashed", "wall s", "CPU s", "CPU us/form"], rows)
    if args.cells:
        c = result["check"]
        print(f"\n{args.cells}: {c['cells']:,} rows, {c['unique_hashes']:,} unique hashes; 20k table: "
              f"{c['found']:,} of {c['table_hashes']:,} hashes found; params equal for {c['params_equal']:,}, "
              f"differ for {len(c['params_differ'])}")
    write_result("nb101_enumerate", {"args": vars(args), **result}, args.out)


if __name__ == "__main__":
    main()
