"""Fixtures and hooks shared by several test files."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import MARKER, require  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}(*names): reads these files of the benchmarks folder "
                                       "(skipped without them locally, failed under CI; see tests/bench_tables.py)")


def pytest_collection_modifyitems(config, items):
    # Longest files first (xdist hands out one file at a time; pyproject turns off its own
    # most-tests-first order): a file's own timeout marks say how long its tests take, then files
    # with a slow test. In name order the longest (test_workflow*.py) started last and ran alone.
    # The same order in every worker, as xdist requires; within a file the order is unchanged.
    longest: dict[Path, float] = {}
    for item in items:
        marks = [m.args[0] for m in item.iter_markers("timeout") if m.args]
        marks.append(1 if item.get_closest_marker("slow") else 0)
        longest[item.path] = max(longest.get(item.path, 0), *marks)
    items.sort(key=lambda item: -longest[item.path])


def pytest_runtest_setup(item):
    # before the test's fixtures: a missing table must not surface as a fixture's error
    names = [name for mark in item.iter_markers(MARKER) for name in mark.args]
    if names:
        require(*names)


def built_once(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """A folder made by `build(folder)` once per test session, whatever the number of pytest-xdist
    workers: the first worker to ask builds it under the session's shared base (a file lock holds the
    others back), every worker gets its own copy (mtimes kept), so a test may run Snakemake in it."""
    if worker_id == "master":  # no xdist: the session's own temporary folder
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    with FileLock(f"{shared}.lock"):
        if not (shared / ".built").exists():
            shutil.rmtree(shared, ignore_errors=True)  # a worker's failed build before this one
            shared.mkdir()
            build(shared)
            (shared / ".built").touch()
    copy = tmp_path_factory.mktemp(name)
    shutil.copytree(shared, copy, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".built"))
    return copy


@pytest.fixture(scope="session")
def archgpt_dir(tmp_path_factory, worker_id):
    """A tiny architecture GPT trained on a generated NAS-Bench-101 corpus + the torchvision families."""

    def build(root: Path) -> None:
        from lmnas.archgpt import ArchGPTConfig, train_archgpt
        from lmnas.corpus import encode_corpus

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            encode_corpus(root / "missing.json", root / "corpus", generate_if_missing=30, seed=0)
            train_archgpt(root / "corpus", root / "gpt", cfg=ArchGPTConfig(n_embd=32), pretrain_epochs=1,
                          finetune_epochs=1, batch_size=64, lr=1e-3, seed=0, progress=False)
        finally:
            torch.set_num_threads(threads)

    return built_once(tmp_path_factory, worker_id, "archgpt", build) / "gpt" / "finetuned"


@pytest.fixture(scope="session")
def embedded_default_run(tmp_path_factory, worker_id):
    """A working directory in which the whole embedded default chain has run (once per session, for
    all workers: the end-to-end test and the HTML-report test share it)."""

    def build(workdir: Path) -> None:
        out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                              str(workdir), "--cores", "2"], cwd=workdir, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-5000:]

    return built_once(tmp_path_factory, worker_id, "default-run", build)
