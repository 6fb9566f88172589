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
from lmnas.report.tables import fmt, mean_std, table


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
    top_rows = [(r["step"], r["key"], float(r["metric_accuracy"]), r.get("metric_test_accuracy"), r.get("params"),
                 r.get("flops")) for r in top]
    strategy = best["strategy"]
    per_generation = [
        "Accuracy per generation (mean ± std over the generation's distinct candidates):",
        table(["generation", "candidates", "accuracy (%)", "best (%)"], gen_rows),
    ] if len(gen_rows) > 1 else []
    return "\n\n".join([
        "## Search",
        f"Strategy **{strategy['name']}** on space **{best['space']['name']}**, evaluator "
        f"**{best['evaluator']['name']}**, seed {best['seed']}: {best['evaluations']} evaluations, "
        f"stopped because: {best['stopped_because']} (evaluation costs and wall time: "
        f"`{os.path.relpath(curve.parent / 'timings.json', out_dir)}`).",
        table(["best genotype", "accuracy (%)", "test accuracy (%)", "params", "FLOPs (MACs)", "found at step"],
              [(best["genotype"], best["accuracy"], best.get("test_accuracy"), best.get("params"), best.get("flops"),
                best["step"])]),
        *per_generation,
        "Top candidates (by the searched-on accuracy):",
        table(["step", "genotype", "accuracy (%)", "test accuracy (%)", "params", "FLOPs"], top_rows),
        _image(curve, out_dir, "search curve"),
    ])


def _pct(value: Any) -> Any:
    return None if value is None else 100.0 * float(value)


def corpus_section(summary: dict[str, Any]) -> str:
    rows = [
        ("NAS-Bench-101 records", summary.get("records_source")),
        ("distinct cells", summary.get("nb101_cells")),
        (f"cells with val. accuracy ≥ {summary.get('min_val_accuracy')}", summary.get("nb101_cells_passing_filter")),
        ("pre-training architectures / layers", f"{summary.get('pretrain_archs')} / {summary.get('pretrain_layers')}"),
        ("fine-tuning architectures / layers", f"{summary.get('finetune_archs')} / {summary.get('finetune_layers')}"),
        ("layer-structure vocabulary (with 4 specials)", summary.get("vocab_size")),
    ]
    return "## Architecture corpus\n\n" + table(["", "value"], rows)


def archgpt_section(metrics: dict[str, Any], curves: Path | None, out_dir: Path) -> str:
    rows = []
    for phase in ("pretrain", "finetune"):
        m = metrics.get(phase, {})
        final = m.get("final", {})
        rows.append((phase, m.get("n_arch"), _pct(final.get("val_top1")), _pct(final.get("val_top5")),
                     _pct(m.get("val_majority_top1")), final.get("val_loss")))
    parts = [
        "## Architecture GPT",
        f"{metrics.get('n_params')} parameters; held-out next-layer accuracy (%), against always guessing "
        "the most frequent layer:",
        table(["phase", "architectures", "top-1", "top-5", "majority guess", "val. loss"], rows),
    ]
    clf = metrics.get("block_classifier", {})
    if clf:
        parts.append(f"Block classifier (context + next layer → block class): held-out accuracy "
                     f"{fmt(_pct(clf.get('val_accuracy')))} % (majority guess {fmt(_pct(clf.get('val_majority_accuracy')))} %).")
    if curves is not None:
        parts.append(_image(curves, out_dir, "GPT loss curves"))
    return "\n\n".join(parts)


def retrain_section(metrics: dict[str, Any], log_csv: Path, out_dir: Path) -> str:
    with log_csv.open() as f:
        log = list(csv.DictReader(f))
    plot = out_dir / "retrain.png"
    plot_training_log(log, plot, "retrain")
    rows = [(_pct(metrics.get("test_acc")), _pct(metrics.get("val_acc")), metrics.get("epochs"),
             metrics.get("params"), metrics.get("device"))]
    return "\n\n".join([
        "## Retrain",
        table(["test acc. (%)", "val. acc. (%)", "epochs", "params", "device"], rows),
        _timings_note(log_csv.parent, out_dir),
        _image(plot, out_dir, "retrain curves"),
    ])


def _timings_note(stage_dir: Path, out_dir: Path) -> str:
    # Timings are no input of the report (a rerun to the same result must not rerun it): a pointer only.
    return f"Training time and throughput: `{os.path.relpath(stage_dir / 'timings.json', out_dir)}`."


def transfer_section(metrics: dict[str, Any], dataset: str | None = None) -> str:
    header = ["test acc. (%)", "val. acc. (%)", "epochs"]
    row = [_pct(metrics.get("test_acc")), _pct(metrics.get("val_acc")), metrics.get("epochs")]
    if "scratch_test_acc" in metrics:
        header += ["from scratch (%)", "gain (points)"]
        row += [_pct(metrics["scratch_test_acc"]), _pct(metrics["gain_over_scratch"])]
    return f"## Transfer{f' to {dataset}' if dataset else ''}\n\n" + table(header, [row])


def write_report(inputs: dict[str, Path], out_dir: Path, *, run_name: str, config: dict[str, Any]) -> Path:
    import pyarrow.parquet as pq
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [
        f"# lmnas report: {run_name}",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} with lmnas {__version__}, torch {torch.__version__}.",
    ]
    prepared = {role: inputs[f"data_{role}"] for role in ("search", "retrain", "transfer") if f"data_{role}" in inputs}
    if prepared:
        sections.append(data_section(prepared))
    if "corpus" in inputs:
        sections.append(corpus_section(read_json(inputs["corpus"])))
    if "archgpt" in inputs:
        sections.append(archgpt_section(read_json(inputs["archgpt"]), inputs.get("archgpt_curves"), out_dir))
    rows = pq.read_table(inputs["search_journal"]).to_pylist()
    sections.append(search_section(read_json(inputs["search_best"]), rows, inputs["search_curve"], out_dir))
    if "trials" in inputs:
        from lmnas.report.trials import trials_section

        sections.append(trials_section(read_json(inputs["trials"])))
    if "retrain" in inputs:
        sections.append(retrain_section(read_json(inputs["retrain"]), inputs["retrain_log"], out_dir))
    if "transfer" in inputs:
        names = config.get("transfer", {}).get("dataset")
        first = names if isinstance(names, str) or names is None else names[0]
        sections.append(transfer_section(read_json(inputs["transfer"]), first))
    for name in sorted(k for k in inputs if k.startswith("transfer_")):  # further transfer datasets
        sections.append(transfer_section(read_json(inputs[name]), name.removeprefix("transfer_")))
    sections.append("## Configuration\n\n```json\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```")
    path = out_dir / "report.md"
    write_text(path, "\n\n".join(sections) + "\n")
    return path
