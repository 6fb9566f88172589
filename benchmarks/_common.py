"""Shared by the benchmark scripts: the machine description and the JSON/table output."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "out"


def machine() -> dict[str, Any]:
    import torch

    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_result(name: str, data: dict[str, Any], out: str | None = None) -> Path:
    path = Path(out) if out else OUT_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    print(f"\nwrote {path}")
    return path
