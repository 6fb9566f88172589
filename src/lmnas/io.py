"""Atomic artefact writes (temp file + rename) so a killed job never leaves half a file.

Temp files and folders are private (mkstemp: 0600, mkdtemp: 0700); before the rename they get
the mode a plain `open()`/`mkdir()` would give (0666 / 0777 minus the umask), so results on a
shared cluster stay readable to colleagues whenever the umask allows it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError


def umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def publish_mode(path: str | os.PathLike[str]) -> None:
    """Give a (temp) file 0666 & ~umask, a folder 0777 & ~umask: what open()/mkdir() would."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~umask())


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
        publish_mode(tmp_path)
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
