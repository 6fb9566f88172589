"""Candidates as SLURM jobs vs the local executor: same results, one job each, kill -9 + rerun.

Runs one search three ways with `lmnas search`: locally; with --executor slurm; with --executor
slurm killed (SIGKILL) once the second batch is submitted, then rerun. Prints per mode the
candidates journaled, the candidate jobs sacct saw (name lmnas-candidate, submitted in that
mode's window, and their states), whether the journal equals the local one (keys, accuracies,
generations), and wall time. Needs a SLURM cluster with accounting (sacct).

    python benchmarks/slurm_candidates.py table      # GA on NAS-Bench-Macro, table lookup
    python benchmarks/slurm_candidates.py digits --data data/prepared/digits04 --archgpt <run>/archgpt/finetuned
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from _common import print_table, write_result
from lmnas.jsonl import read_jsonl
from lmnas.search.slurm_executor import JOB_NAME

REPO = Path(__file__).resolve().parents[1]


def base_command(args: argparse.Namespace, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "lmnas.cli", "search", "--out", str(out), "--budget", str(args.budget), "--quiet",
           "--device", "cpu"]
    if args.problem == "table":
        config = out.parent / "table.yaml"
        config.write_text(json.dumps({"search": {"options": {"ga": {"population": 4, "generations": 10}}}}))
        return cmd + ["--config", str(config), "--space", "nas-bench-macro", "--strategy", "ga"]
    # the embedded default's search: GA+GPT with the proxy evaluator on digits 0-4
    return cmd + ["--config", str(REPO / "config/config.yaml"), "--data", args.data, "--archgpt", args.archgpt]


def journal(out: Path) -> dict[str, tuple[float, int]]:
    return {r["key"]: (r["metric_accuracy"], r["generation"]) for r in pq.read_table(out / "journal.parquet").to_pylist()}


def sacct_jobs(since: str, until: str) -> Counter[str]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-E", until, "--name", JOB_NAME, "-o", "JobID,State"],
                         capture_output=True, text=True, check=True).stdout
    return Counter(line.split("|")[1].split()[0] for line in out.splitlines() if line)


def timed(fn) -> tuple[float, str, str]:
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    time.sleep(2)  # let slurmdbd record the last job
    return wall, since, datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", choices=["table", "digits"])
    parser.add_argument("--budget", type=int, default=None, help="default: 12 (table), 16 (digits)")
    parser.add_argument("--data", help="prepared digits folder (digits)")
    parser.add_argument("--archgpt", help="fine-tuned architecture GPT folder (digits)")
    parser.add_argument("--settings", default='{"mem_mb": 2000, "timeout_min": 20, "poll_s": 1}')
    parser.add_argument("--out")
    args = parser.parse_args()
    args.budget = args.budget or (12 if args.problem == "table" else 16)
    work = Path(tempfile.mkdtemp(prefix=f"slurm-candidates-{args.problem}-"))
    slurm = ["--executor", "slurm", "--executor-settings", args.settings]
    rows, runs = [], {}

    wall, *_ = timed(lambda: subprocess.run(base_command(args, work / "local"), check=True, capture_output=True))
    local = journal(work / "local")
    rows.append(["local", len(local), "-", "-", True, wall])

    wall, since, until = timed(lambda: subprocess.run(base_command(args, work / "slurm") + slurm, check=True,
                                                      capture_output=True))
    states = sacct_jobs(since, until)
    rows.append(["slurm", len(journal(work / "slurm")), sum(states.values()), dict(states),
                 journal(work / "slurm") == local, wall])

    out = work / "killed"
    killed_at = {}

    def kill_then_rerun() -> None:
        search = subprocess.Popen(base_command(args, out) + slurm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log, journal_log = out / "slurm/jobs.jsonl", out / "journal.jsonl"
        while search.poll() is None:
            submitted = [r for r in read_jsonl(log) if r["event"] == "submitted"] if log.exists() else []
            journaled = len(read_jsonl(journal_log)) if journal_log.exists() else 0
            if journaled >= 2 and len(submitted) > journaled:  # mid-way: some journaled, others in flight
                os.kill(search.pid, signal.SIGKILL)
                break
            time.sleep(0.5)
        search.wait()
        killed_at.update(journaled=len(read_jsonl(out / "journal.jsonl")), submitted=len(submitted))
        subprocess.run(base_command(args, out) + slurm, check=True, capture_output=True)

    wall, since, until = timed(kill_then_rerun)
    states = sacct_jobs(since, until)
    keys = [k for r in read_jsonl(out / "slurm/jobs.jsonl") if r["event"] == "submitted" for k in r["keys"]]
    rows.append([f"slurm, kill -9 at {killed_at['journaled']} journaled, rerun", len(journal(out)),
                 sum(states.values()), dict(states), journal(out) == local, wall])
    runs["killed"] = {**killed_at, "keys_submitted": len(keys), "distinct_keys_submitted": len(set(keys))}

    header = ["mode", "candidates", "sacct jobs", "sacct states", "= local", "wall s"]
    print_table(header, rows)
    print(f"kill -9: {runs['killed']}")
    write_result(f"slurm_candidates_{args.problem}", {"problem": args.problem, "budget": args.budget,
                                                       "settings": json.loads(args.settings), "work": str(work),
                                                       "rows": [dict(zip(header, r)) for r in rows], **runs}, args.out)


if __name__ == "__main__":
    main()
