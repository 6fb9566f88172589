"""Check in sacct that every stage of a workflow run was a COMPLETED SLURM job with its rule's resources.

    python .ci/slurm_check.py --since 2026-01-01T12:00:00 [--configfile override.yaml ...]

Expected resources come from config/config.yaml merged with the override files (the config's
`resources:` section, as workflow/rules/common.smk maps it to sbatch). Prints the table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lmnas.config import load_yaml, merge  # noqa: E402

# The embedded default's cluster jobs: rule -> how many (prepare_data runs once per dataset). The
# report is a `localrules` entry (a few seconds of plotting): it runs beside Snakemake, not as a job.
STAGES = {"prepare_data": 2, "encode_corpus": 1, "train_archgpt": 1, "search": 1, "retrain": 1,
          "transfer": 1}
FIELDS = ["JobID", "Comment", "State", "AllocCPUS", "ReqMem", "Timelimit", "Elapsed", "AllocTRES"]


def minutes_to_slurm(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def sacct_jobs(since: str) -> list[dict[str, str]]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(f"{f}%200" for f in FIELDS)],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(FIELDS, line.split("|"))) for line in out.splitlines() if line.startswith(tuple("0123456789"))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--since", required=True, help="sacct -S: only jobs submitted after this time")
    parser.add_argument("--configfile", action="append", default=[])
    args = parser.parse_args()
    config = load_yaml(REPO / "config/config.yaml")
    for path in args.configfile:
        config = merge(config, load_yaml(path))
    jobs = [j for j in sacct_jobs(args.since) if j["Comment"].startswith("rule_")]
    problems: list[str] = []
    print(f"{'rule':<34} {'job':>6} {'state':<10} {'cpus':>4} {'mem':>7} {'limit':>9} {'elapsed':>9}  gpus")
    seen: dict[str, int] = {}
    for job in jobs:
        rule = job["Comment"][len("rule_"):].split("_wildcards_")[0]
        seen[rule] = seen.get(rule, 0) + 1
        spec = config.get("resources", {}).get(rule, {})
        gpus = next((int(t.split("=")[1]) for t in job["AllocTRES"].split(",") if t.startswith("gres/gpu=")), 0)
        expected = {"State": "COMPLETED", "AllocCPUS": str(spec.get("threads", 1)),
                    "ReqMem": f"{spec.get('mem_mb', 4000)}M", "Timelimit": minutes_to_slurm(spec.get("runtime", 60))}
        for field, want in expected.items():
            if job[field] != want:
                problems.append(f"{job['Comment']} (job {job['JobID']}): {field} is {job[field]}, expected {want}")
        # retrain asks nodes x gpus_per_node (AllocTRES counts the whole job); other rules `gpus`
        want_gpus = spec.get("gpus", spec.get("gpus_per_node", 0) * spec.get("nodes", 1))
        if gpus != want_gpus:
            problems.append(f"{job['Comment']} (job {job['JobID']}): {gpus} GPUs allocated, expected {want_gpus}")
        print(f"{job['Comment'][5:]:<34} {job['JobID']:>6} {job['State']:<10} {job['AllocCPUS']:>4} "
              f"{job['ReqMem']:>7} {job['Timelimit']:>9} {job['Elapsed']:>9}  {gpus}")
    for rule, count in STAGES.items():
        if seen.get(rule, 0) != count:
            problems.append(f"rule {rule}: {seen.get(rule, 0)} SLURM jobs, expected {count}")
    for problem in problems:
        print(f"slurm-check: FAIL {problem}", file=sys.stderr)
    if not problems:
        print(f"slurm-check: ok, {len(jobs)} jobs COMPLETED with their rules' resources")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
