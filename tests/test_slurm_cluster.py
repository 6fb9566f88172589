"""The slurm candidate executor on a real SLURM cluster (.ci/slurm.sh brings one up in CI).

Skipped when no SLURM controller answers, unless LMNAS_SLURM_EXPECTED=1 (set by .ci/slurm.sh):
then a missing cluster is a failure. Job states come from sacct where the cluster has accounting,
else from squeue; LMNAS_SLURM_STATUS=sacct|squeue forces one.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmnas import slurm
from lmnas.jsonl import read_jsonl

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import needs  # noqa: E402

EXPECTED = os.environ.get("LMNAS_SLURM_EXPECTED") == "1"
UP = slurm.available()
# sacct where the cluster keeps accounting, squeue where it does not (LMNAS_SLURM_STATUS forces one)
STATUS = os.environ.get("LMNAS_SLURM_STATUS") or ("sacct" if UP and slurm.accounting_error() is None else "squeue")
SETTINGS = {"status": STATUS, "mem_mb": 1000, "timeout_min": 10, "poll_s": 1}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not UP and not EXPECTED, reason="no SLURM controller answers here (sinfo)"),
    needs("nas-bench-macro_cifar10.json"),  # skipped without it locally, failed under CI
]


@pytest.fixture(autouse=True)
def cluster_up():
    if EXPECTED and not UP:
        pytest.fail("LMNAS_SLURM_EXPECTED=1 but no SLURM controller answers (sinfo failed)")


def command(out, executor, budget, settings=None):
    config = out.parent / f"{out.name}.yaml"
    config.write_text(json.dumps({"search": {"options": {"ga": {"population": 4, "generations": 3}}}}))
    cmd = [sys.executable, "-m", "lmnas.cli", "search", "--config", str(config), "--space", "nas-bench-macro",
           "--strategy", "ga", "--budget", str(budget), "--out", str(out), "--quiet", "--executor", executor]
    return cmd + (["--executor-settings", json.dumps(settings)] if settings else [])


def journal(out):
    return {r["key"]: (r["metric_accuracy"], r["generation"]) for r in pq.read_table(out / "journal.parquet").to_pylist()}


def submitted(out):
    return [r for r in read_jsonl(out / "slurm/jobs.jsonl") if r["event"] == "submitted"]


def sacct_states(job_ids):
    if STATUS != "sacct":
        return {}
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", *[f"-j{j}" for j in job_ids]],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split("|")[:2] for line in out.splitlines())


def wait_for(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def test_candidates_as_slurm_jobs_match_the_local_executor(tmp_path):
    subprocess.run(command(tmp_path / "local", "local", 6), check=True, capture_output=True, timeout=600)
    subprocess.run(command(tmp_path / "slurm", "slurm", 6, SETTINGS), check=True, capture_output=True, timeout=900)
    assert journal(tmp_path / "slurm") == journal(tmp_path / "local")
    jobs = submitted(tmp_path / "slurm")
    assert sorted(k for j in jobs for k in j["keys"]) == sorted(journal(tmp_path / "local"))  # one job each
    states = sacct_states([j["job_id"] for j in jobs])
    assert all(state == "COMPLETED" for state in states.values()) and len(states) in (0, 6)


def test_kill_9_of_the_search_then_rerun_loses_nothing_and_pays_nothing_twice(tmp_path):
    out = tmp_path / "run"
    search = subprocess.Popen(command(out, "slurm", 8, SETTINGS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journaled = lambda: len(read_jsonl(out / "journal.jsonl")) if (out / "journal.jsonl").exists() else 0
    # killed while candidates of the second batch are queued or running
    wait_for(lambda: (out / "slurm/jobs.jsonl").exists() and len(submitted(out)) > 4, 600, "the second batch")
    os.kill(search.pid, signal.SIGKILL)
    search.wait()
    before = journaled()
    assert 4 <= before < 8
    subprocess.run(command(out, "slurm", 8, SETTINGS), check=True, capture_output=True, timeout=900)
    subprocess.run(command(tmp_path / "local", "local", 8), check=True, capture_output=True, timeout=600)
    assert journal(out) == journal(tmp_path / "local")
    keys = [k for j in submitted(out) for k in j["keys"]]
    assert sorted(keys) == sorted(set(keys)) == sorted(journal(out))  # every candidate submitted exactly once
    states = sacct_states([j["job_id"] for j in submitted(out)])
    assert all(state == "COMPLETED" for state in states.values()) and len(states) in (0, 8)


def test_a_cancelled_candidate_job_is_resubmitted(tmp_path):
    out = tmp_path / "run"
    search = subprocess.Popen(command(out, "slurm", 4, SETTINGS), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    wait_for(lambda: (out / "slurm/jobs.jsonl").exists() and submitted(out), 300, "the first job")
    victim = submitted(out)[0]
    subprocess.run(["scancel", victim["job_id"]], check=True)
    _, stderr = search.communicate(timeout=900)
    assert search.returncode == 0, stderr
    events = read_jsonl(out / "slurm/jobs.jsonl")
    retried = [e for e in events if e["event"] == "retried"]
    assert [e["job_id"] for e in retried] == [victim["job_id"]]
    again = [e for e in events if e["event"] == "submitted" and e["keys"] == victim["keys"]]
    assert [e["attempt"] for e in again] == [1, 2]
    assert len(journal(out)) == 4
