"""Atomic artefact writes (temp file + rename) so a killed job never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last: savefig and parquet writers infer the format from it.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike[str], fix: str = "rerun the stage that writes it") -> Any:
    """The JSON in `path`; a truncated or hand-broken file is one clear error naming it and the fix."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise LmnasError(f"{path}: not valid JSON ({exc}); {fix}") from None


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Atomically produce `path` with a writer that takes a file path (savefig, parquet…)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def _jsonable(value: Any) -> Any:
    # numpy / torch scalars and paths show up in metrics; make them plain JSON.
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
