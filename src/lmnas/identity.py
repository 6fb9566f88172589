"""Run identity: a fingerprint of everything that determines a stage's results.

A stage folder records `fingerprint.json` (the inputs below, each a plain JSON value or a
sha256). A later run into the same folder resumes only when every entry matches; otherwise
the caller refuses (naming the keys that differ) or moves the old folder aside. Code is part
of the identity: `code_version(...)` hashes the source of the lmnas packages a stage uses, so
a changed library never extends results computed by the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import lmnas
from lmnas.errors import LmnasError
from lmnas.io import read_json

FINGERPRINT_FILE = "fingerprint.json"
_CODE_SUFFIXES = {".py", ".json", ".txt", ".md", ".jinja", ".yaml"}


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | os.PathLike[str], suffixes: set[str] | None = None) -> str:
    """One hash of a folder's files (relative names + contents, sorted), or of a single file."""
    root = Path(root)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts or (suffixes is not None and path.suffix not in suffixes):
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@lru_cache(maxsize=None)
def code_version(*packages: str) -> str:
    """sha256 over the source of the named lmnas sub-packages/modules (all of lmnas if none).

    Names are relative to the package: "spaces", "search", "retrain.py". Short (16 hex) because
    it lands in Snakemake params and logs."""
    base = Path(lmnas.__file__).resolve().parent
    targets = [base / p for p in packages] if packages else [base]
    digest = hashlib.sha256()
    for target in sorted(targets):
        if not target.exists():
            raise LmnasError(f"code_version: no lmnas module {target.relative_to(base)}")
        digest.update(target.name.encode() + b"\0" + sha256_tree(target, _CODE_SUFFIXES).encode())
    return digest.hexdigest()[:16]


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys (dotted, one level into mappings) whose values differ between two fingerprints."""
    keys = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            keys += [f"{key}.{k}" for k in differences(old, new)]
        elif old != new:
            keys.append(key)
    return keys


def read_fingerprint(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(folder) / FINGERPRINT_FILE
    if not path.exists():
        return None
    value = read_json(path, fix="move the folder aside, or start afresh with --restart")
    if not isinstance(value, dict):
        raise LmnasError(f"{path}: expected a JSON object; move the folder aside or rerun with --restart")
    return value
