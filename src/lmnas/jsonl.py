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
    data = path.read_text()
    lines = data.splitlines()
    torn_tail = not data.endswith("\n")  # a kill mid-write leaves the last line without its newline
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if number == len(lines) and torn_tail:
                break
            raise LmnasError(f"{path}:{number}: corrupt {what} line (expected one JSON object); "
                             "delete that line to resume, or start afresh (lmnas search --restart)")
        records.append(record)
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
