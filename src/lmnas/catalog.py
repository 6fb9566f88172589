"""What the space, strategy and evaluator registries hold (names, each factory's accepted settings),
for callers that must not import them: the registered modules import torch (~5 s), and every
`snakemake` start (each SLURM job re-reads the Snakefile) only asks which settings a name takes.

The answer is a pure function of the lmnas source, so it is kept as a JSON snapshot named by the
code version (`lmnas.identity.code_version`), like a .pyc beside its source: changed code is a
new name and rebuilds it from the registries; an unwritable cache only costs the import.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from lmnas.identity import code_version
from lmnas.registry import Catalog

KINDS = ("space", "strategy", "evaluator")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lmnas"


def catalog(kind: str) -> Catalog:
    """The registry of `kind` (space | strategy | evaluator) as names and accepted settings."""
    entry = _snapshot()[kind]
    return Catalog(entry["kind"], entry["settings"])


@lru_cache(maxsize=1)
def _snapshot() -> dict[str, dict]:
    path = cache_dir() / f"registries-{code_version()}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        snapshot = _from_registries()
    _write(path, snapshot)
    return snapshot


def _write(path: Path, snapshot: dict[str, dict]) -> None:
    """Written whole, then renamed: concurrent jobs see no file or a whole one, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump(snapshot, f)
    except OSError:
        return
    try:
        os.replace(f.name, path)
    except OSError:
        Path(f.name).unlink(missing_ok=True)


def _from_registries() -> dict[str, dict]:
    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import SPACES
    from lmnas.strategies import STRATEGIES

    registries = {"space": SPACES, "strategy": STRATEGIES, "evaluator": EVALUATORS}
    return {kind: {"kind": r.kind, "settings": r.catalog()} for kind, r in registries.items()}
