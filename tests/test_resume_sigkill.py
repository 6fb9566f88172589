"""Real `kill -9` of `lmnas search`: the rerun ends with the uninterrupted run's journal, and no
worker process outlives a killed parent. (The one real-kill resume test: test_runner.py resumes
in process, from a partial and from a torn journal.)"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import needs  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
SEARCH = ["search", "--space", "nas-bench-201", "--strategy", "random", "--seed", "2", "--budget", "1000", "--quiet"]
pytestmark = needs("nasbench201_cifar10.json")  # the table evaluator's lookups


def lmnas(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lmnas.cli", *args], env=env or environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra}


def journal(out: Path) -> list[tuple]:
    text = (out / "journal.jsonl").read_text() if (out / "journal.jsonl").exists() else ""
    return [(r["step"], r["key"], r["metrics"]["accuracy"]) for r in map(json.loads, text.splitlines())]


def wait_for_rows(out: Path, at_least: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        path = out / "journal.jsonl"
        if path.exists() and path.read_text().count("\n") >= at_least:
            return
        time.sleep(0.02)
    stderr = proc.stderr.read() if proc.poll() is not None else ""
    raise AssertionError(f"the search did not reach {at_least} evaluations (rc {proc.poll()}): {stderr}")


@pytest.mark.slow  # four real processes of 1000 evaluations; the in-process resume tests: test_runner.py
def test_sigkill_at_random_points_then_rerun_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference"
    assert lmnas(*SEARCH, "--out", str(reference)).wait() == 0
    expected = journal(reference)
    assert len(expected) == 1000
    out = tmp_path / "killed"
    rng = random.Random(0)
    killed_at = []
    for target in sorted(rng.sample(range(50, 950), 3)):
        proc = lmnas(*SEARCH, "--out", str(out))
        wait_for_rows(out, target, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(len(journal(out)))
        assert journal(out) == expected[: len(journal(out))]  # nothing lost, nothing out of order
    proc = lmnas(*SEARCH, "--out", str(out))
    assert proc.wait() == 0, proc.stderr.read()
    assert journal(out) == expected
    assert json.loads((out / "best.json").read_text())["genotype"] == \
        json.loads((reference / "best.json").read_text())["genotype"]
    print(f"\nkill -9 after {killed_at} evaluations, then a rerun: journal identical to the uninterrupted run")


def processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    token = f"LMNAS_TEST_TOKEN={uuid.uuid4().hex}"
    name, value = token.split("=")
    out = tmp_path / "run"
    proc = lmnas(*SEARCH, "--workers", "2", "--out", str(out), env=environment(**{name: value}))
    wait_for_rows(out, 20, proc, timeout_s=300)
    assert len(processes_with(token)) >= 3  # the search and its two workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while processes_with(token) and time.time() < deadline:
        time.sleep(0.1)
    assert processes_with(token) == [], "worker processes outlived the killed search"
