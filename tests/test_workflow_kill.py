"""A search killed during `snakemake -R search` is finished by the plain command, with the results an
uninterrupted run gives, and the old search is kept whole beside it (kill -9 of the whole Snakemake
process group, as a user's Ctrl-\\ or a lost node does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The embedded default on less work (12 one-epoch candidates, short retrain/transfer, a 1-epoch GPT).
SMALL = REPO / "tests/small_chain.yaml"
RESULTS = ("best.json", "journal.parquet", "curve.png", "config.json")


def command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(root),
            "--cores", "2", "--configfile", str(SMALL), *args]


def snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(root, *args), cwd=root, capture_output=True, text=True, timeout=1800)


def kill_forced_search_when(root: Path, ready) -> float:
    """Start `snakemake -R search`, kill -9 its process group once ready(search folder) holds; the time."""
    with (root / "killed.log").open("w") as log:
        proc = subprocess.Popen(command(root, "-R", "search"), cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    search = root / "results/default/search"
    deadline = time.monotonic() + 1200
    while not ready(search):
        assert proc.poll() is None, (root / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at, before = time.time(), rows(search)
    time.sleep(3)
    assert rows(search) == before  # nothing of the killed run goes on writing
    return killed_at


def rows(search: Path) -> int:
    journal = search / "journal.jsonl"
    return len(journal.read_text().splitlines()) if journal.exists() else 0


def running_unfinished(search: Path) -> bool:
    status = search / "status.json"
    return rows(search) >= 3 and status.exists() and '"finished": false' in status.read_text()


def results(search: Path) -> dict[str, bytes]:
    return {name: (search / name).read_bytes() for name in RESULTS}


def finish_with_the_plain_command(root: Path, killed_at: float, reference: dict[str, bytes], test_acc: dict) -> str:
    assert snakemake(root, "--unlock").returncode == 0
    done = snakemake(root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Nothing to be done" not in done.stderr + done.stdout
    run = root / "results/default"
    assert results(run / "search") == reference  # byte for byte: what an uninterrupted run wrote
    for stage in ("retrain", "transfer"):  # rerun after the search, with the same result
        metrics = run / stage / "metrics.json"
        assert metrics.stat().st_mtime > killed_at and json.loads(metrics.read_text())["test_acc"] == test_acc[stage]
    assert (run / "report/report.md").stat().st_mtime > killed_at
    again = snakemake(root, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    return (run / "logs/search.log").read_text()


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_a_killed_forced_search_is_finished_by_the_plain_command(tmp_path):
    first = snakemake(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "results/default"
    reference = results(run / "search")
    test_acc = {stage: json.loads((run / stage / "metrics.json").read_text())["test_acc"]
                for stage in ("retrain", "transfer")}

    # 1. Killed right after Snakemake removed the search's outputs, before the search wrote any file:
    #    no output left to mark incomplete. The plain command recomputes the forced search.
    killed_at = kill_forced_search_when(tmp_path, lambda search: not (search / "best.json").exists())
    assert not (run / "search/best.json").exists() and (run / "retrain/metrics.json").exists()
    finish_with_the_plain_command(tmp_path, killed_at, reference, test_acc)
    aside = sorted(run.glob("search.old-*"))
    assert len(aside) == 1 and results(aside[0]) == reference  # the old search kept whole
    assert {"journal.jsonl", "fingerprint.json", "status.json", "timings.json"} <= {p.name for p in aside[0].iterdir()}

    # 2. Killed mid-search (some candidates journaled): the plain command resumes it.
    killed_at = kill_forced_search_when(tmp_path, running_unfinished)
    partial = rows(run / "search")
    assert 3 <= partial < 12 and not (run / "search/best.json").exists()
    log = finish_with_the_plain_command(tmp_path, killed_at, reference, test_acc)
    assert "lmnas: search results/default/search: resume" in log
    assert json.loads((run / "search/timings.json").read_text())["resumed_from"] == partial
    aside = sorted(run.glob("search.old-*"))
    assert len(aside) == 2 and all(results(folder) == reference for folder in aside)
