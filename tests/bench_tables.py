"""Where the tests find the real benchmark tables, and what a missing one does.

The folder is the one the library reads (lmnas.nas_tables.resolve_benchmarks_dir: the
LMNAS_BENCHMARKS_DIR variable, else `shared/benchmarks` beside the checkout). A test that reads a
file of it is marked `@needs("file", ...)` (or calls `require(...)` in its body or fixture).
Locally a missing file skips the test, naming the file and how to point at the folder. Under CI
(the `CI` variable set to anything but empty/0/false, as CI services set it) it fails the test
instead: a CI run that skipped the benchmark tests would pass without having run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmnas.nas_tables import ENV_VAR, resolve_benchmarks_dir

BENCH = resolve_benchmarks_dir()
MARKER = "benchmark_tables"
TRANSCRIPTS = "genius_transcripts/chat_history"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def needs(*names: str) -> pytest.MarkDecorator:
    """Mark a test (or, as `pytestmark`, a module) as reading these paths inside the benchmarks folder."""
    return getattr(pytest.mark, MARKER)(*names)


def missing(names: tuple[str, ...]) -> list[Path]:
    return [BENCH / name for name in names if not (BENCH / name).exists()]


def require(*names: str) -> None:
    """Skip (locally) or fail (under CI) unless every named path exists in the benchmarks folder."""
    gone = missing(names)
    if not gone:
        return
    what = ", ".join(str(p) for p in gone)
    if in_ci():
        pytest.fail(f"benchmark tables missing under CI: {what}. CI must provide the real tables "
                    f"(check out ../shared/benchmarks beside the repository or set {ENV_VAR}); "
                    f"they are never skipped there.", pytrace=False)
    pytest.skip(f"benchmark tables not found: {what} (set {ENV_VAR} to the folder holding them)")
