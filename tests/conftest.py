"""Fixtures and hooks shared by several test files."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import MARKER, require  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}(*names): reads these files of the benchmarks folder "
                                       "(skipped without them locally, failed under CI; see tests/bench_tables.py)")


def pytest_runtest_setup(item):
    # before the test's fixtures: a missing table must not surface as a fixture's error
    names = [name for mark in item.iter_markers(MARKER) for name in mark.args]
    if names:
        require(*names)


@pytest.fixture(scope="session")
def archgpt_dir(tmp_path_factory):
    """A tiny architecture GPT trained on a generated NAS-Bench-101 corpus + the torchvision families."""
    from lmnas.archgpt import ArchGPTConfig, train_archgpt
    from lmnas.corpus import encode_corpus

    root = tmp_path_factory.mktemp("archgpt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encode_corpus(root / "missing.json", root / "corpus", generate_if_missing=30, seed=0)
        train_archgpt(root / "corpus", root / "gpt", cfg=ArchGPTConfig(n_embd=32), pretrain_epochs=1,
                      finetune_epochs=1, batch_size=64, lr=1e-3, seed=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return root / "gpt" / "finetuned"


@pytest.fixture(scope="session")
def embedded_default_run(tmp_path_factory):
    """A working directory in which the whole embedded default chain has run (once per session:
    the end-to-end test and the HTML-report test share it)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    workdir = tmp_path_factory.mktemp("default-run")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory",
                          str(workdir), "--cores", "2"], cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-5000:]
    return workdir
