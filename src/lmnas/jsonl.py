"""Append-only JSON-lines logs (the search journal, LLM transcripts).

Each record is flushed and fsync'ed before the call returns, so a killed process keeps every
finished record; a kill mid-write leaves at most a torn last line, which reading drops and
the next append cuts off. A bad line anywhere else is corruption and an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError


def read_jsonl(path: str | os.PathLike[str], what: str = "log") -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # torn by a kill mid-write
                break
            raise LmnasError(f"{path}:{number}: corrupt {what} line (expected one JSON object)") from None
    return records


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(path)
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _drop_torn_tail(path: Path) -> None:
    if path.exists() and path.stat().st_size:
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = path.read_bytes()
                f.seek(0)
                f.truncate(data.rfind(b"\n") + 1)
