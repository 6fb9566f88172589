"""`lmnas nb101 ...`: enumerate the space and join it with a hash-keyed results table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError


def add_nb101_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("nb101", help="NAS-Bench-101: enumerate the 423,624 cells; join them with a results table")
    nb = parser.add_subparsers(dest="nb101_command", required=True)
    e = nb.add_parser("enumerate", help="every cell (hash, matrix, ops) to a Parquet file")
    e.add_argument("--out", required=True, help="Parquet file to write")
    e.add_argument("--workers", type=int, help="processes (default: all cores)")
    e.add_argument("--max-vertices", type=int, default=7, help="a smaller space for a quick look (default 7)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    j = nb.add_parser("join", help="the enumerated cells joined with a hash-keyed results table")
    j.add_argument("--cells", required=True, help="Parquet from `lmnas nb101 enumerate`")
    j.add_argument("--results", required=True, help="the 20k hash-curves JSON or an official .tfrecord")
    j.add_argument("--out", required=True, help="Parquet file to write")
    return parser


def nb101_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.nb101_command == "enumerate":
        from lmnas.nasbench101.enumerate import enumerate_cells, summary, write_cells

        if args.workers is not None and args.workers < 1:
            raise LmnasError(f"--workers: {args.workers}; expected >= 1")
        start = time.perf_counter()
        table = enumerate_cells(args.max_vertices, workers=args.workers, progress=not args.quiet)
        seconds = time.perf_counter() - start
        write_cells(args.out, table)
        return {"out": str(args.out), **summary(table), "seconds": round(seconds, 1)}
    if args.nb101_command == "join":
        from lmnas.nasbench101.enumerate import read_cells, write_cells
        from lmnas.nasbench101.join import join_results, load_hash_results, params_mismatches

        joined = join_results(read_cells(args.cells, ["hash", "matrix", "ops"]), load_hash_results(args.results),
                              source=str(args.results))
        write_cells(args.out, joined)
        mismatches = params_mismatches(joined)
        return {"out": str(Path(args.out)), "rows": joined.num_rows,
                "split": {s: joined.column("split").to_pylist().count(s) for s in ("a", "b")},
                "params_equal": joined.num_rows - len(mismatches), "params_differ": len(mismatches)}
    raise AssertionError(args.nb101_command)
