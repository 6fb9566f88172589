"""Assemble results/<run>/report/report.md from the stage artefacts."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from lmnas import __version__
from lmnas.io import read_json, write_text
from lmnas.report.plots import plot_training_log
from lmnas.report.tables import fmt, key_value_table, mean_std, table


def _image(path: Path, out_dir: Path, alt: str) -> str:
    return f"![{alt}]({os.path.relpath(path, out_dir)})"


def data_section(prepared_dirs: dict[str, Path]) -> str:
    rows = []
    for role, folder in prepared_dirs.items():
        manifest = read_json(folder / "manifest.json")
        counts = {split: manifest["splits"][split]["count"] for split in ("train", "val", "test")}
        rows.append((role, folder.name, manifest["source"], manifest["num_classes"],
                     "×".join(map(str, manifest["image_shape"])), counts["train"], counts["val"], counts["test"]))
    return "## Data\n\n" + table(["role", "dataset", "source", "classes", "C×H×W", "train", "val", "test"], rows)


def search_section(best: dict[str, Any], journal_rows: list[dict[str, Any]], curve: Path, out_dir: Path) -> str:
    by_generation: dict[int, list[float]] = defaultdict(list)
    for row in journal_rows:
        by_generation[int(row["generation"])].append(float(row["metric_accuracy"]))
    gen_rows = [(g, len(v), mean_std(v), max(v)) for g, v in sorted(by_generation.items())]
    top = sorted(journal_rows, key=lambda r: -float(r["metric_accuracy"]))[:5]
    top_rows = [(r["step"], r["key"], float(r["metric_accuracy"]), r.get("params"), r.get("flops")) for r in top]
    strategy = best["strategy"]
    return "\n\n".join([
        "## Search",
        f"Strategy **{strategy['name']}** on space **{best['space']['name']}**, evaluator "
        f"**{best['evaluator']['name']}**, seed {best['seed']}: {best['evaluations']} evaluations "
        f"({fmt(best['search_cost_s'])} s of evaluation), stopped because: {best['stopped_because']}.",
        table(["best genotype", "accuracy (%)", "params", "FLOPs (MACs)", "found at step"],
              [(best["genotype"], best["accuracy"], best.get("params"), best.get("flops"), best["step"])]),
        "Accuracy per generation (mean ± std over the generation's distinct candidates):",
        table(["generation", "candidates", "accuracy (%)", "best (%)"], gen_rows),
        "Top candidates:",
        table(["step", "genotype", "accuracy (%)", "params", "FLOPs"], top_rows),
        _image(curve, out_dir, "search curve"),
    ])


def retrain_section(metrics: dict[str, Any], log_csv: Path, out_dir: Path) -> str:
    with log_csv.open() as f:
        log = list(csv.DictReader(f))
    plot = out_dir / "retrain.png"
    plot_training_log(log, plot, "retrain")
    keep = ["test_acc", "val_acc", "test_loss", "epochs", "seconds", "params", "images_per_s", "device"]
    return "\n\n".join(["## Retrain", key_value_table(metrics, keep), _image(plot, out_dir, "retrain curves")])


def transfer_section(metrics: dict[str, Any]) -> str:
    keep = ["test_acc", "val_acc", "scratch_test_acc", "gain_over_scratch", "epochs", "seconds", "input_size"]
    return "## Transfer\n\n" + key_value_table(metrics, keep)


def write_report(inputs: dict[str, Path], out_dir: Path, *, run_name: str, config: dict[str, Any]) -> Path:
    import pyarrow.parquet as pq
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [
        f"# lmnas report: {run_name}",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} with lmnas {__version__}, torch {torch.__version__}.",
    ]
    prepared = {"search": inputs["data_search"]}
    if "data_transfer" in inputs:
        prepared["transfer"] = inputs["data_transfer"]
    sections.append(data_section(prepared))
    if "corpus" in inputs:
        sections.append("## Architecture corpus\n\n" + key_value_table(read_json(inputs["corpus"])))
    if "archgpt" in inputs:
        part = "## Architecture GPT\n\n" + key_value_table(read_json(inputs["archgpt"]))
        if "archgpt_curves" in inputs:
            part += "\n\n" + _image(inputs["archgpt_curves"], out_dir, "GPT loss curves")
        sections.append(part)
    rows = pq.read_table(inputs["search_journal"]).to_pylist()
    sections.append(search_section(read_json(inputs["search_best"]), rows, inputs["search_curve"], out_dir))
    sections.append(retrain_section(read_json(inputs["retrain"]), inputs["retrain_log"], out_dir))
    sections.append(transfer_section(read_json(inputs["transfer"])))
    sections.append("## Configuration\n\n```json\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```")
    path = out_dir / "report.md"
    write_text(path, "\n\n".join(sections) + "\n")
    return path
