"""NAS-Bench-101: the cell spec and hash, its records (JSON / Parquet / tfrecord), the network.

Names are imported on first use (PEP 562), so `lmnas --help`, which imports the `nb101`
sub-command's parser from this package, does not pay for torch (the network module).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "AVAILABLE_OPS": "cell", "CellSpec": "cell", "hash_module": "cell", "random_cell": "cell",
    "NB101Cell": "network", "NB101Network": "network", "build_network": "network", "count_parameters": "network",
    "Record": "records", "dedup_records": "records", "load_records": "records",
    "NasbenchRun": "tfrecord", "read_runs": "tfrecord", "summarise_runs": "tfrecord", "write_tfrecord": "tfrecord",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
