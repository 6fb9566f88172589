"""The encode_corpus stage: NAS-Bench-101 and torchvision networks as GPT-NAS layer corpora.

Pre-training corpus: NAS-Bench-101 cells with validation accuracy >= 0.90 (GPT-NAS),
each expanded into the layers of its full network (stem, 3 stacks x 3 cells, head) at
CIFAR size. Fine-tuning corpus: the 36 torchvision variants. One Parquet row per
architecture; the vocabulary of layer-structure tokens is built over both corpora, in the
chosen encoding (`Layer.structure`: size-free by default, or sized as GPT-NAS's).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from lmnas.encoding.families import VARIANTS, Variant
from lmnas.encoding.layers import Layer, encode_text
from lmnas.encoding.trace import trace_layers
from lmnas.encoding.vocab import Vocab
from lmnas.errors import LmnasError
from lmnas.io import write_json, write_with
from lmnas.nasbench101.cell import random_cell
from lmnas.encoding.nb101_layers import cell_layers
from lmnas.nasbench101.records import Record, load_records

log = logging.getLogger(__name__)

GENERATED_SOURCE = "generated (no accuracies)"

_SIZE = pa.list_(pa.int32())
LAYER_TYPE = pa.struct(
    [
        ("id", pa.int32()),
        ("type", pa.string()),
        ("name", pa.string()),
        ("in_size", _SIZE),
        ("out_size", _SIZE),
        ("kernel", _SIZE),
        ("stride", _SIZE),
        ("padding", _SIZE),
        ("dilation", _SIZE),
        ("groups", pa.int32()),
        ("value", pa.float64()),
        ("bias_used", pa.bool_()),
        ("block", pa.string()),
    ]
)
CORPUS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),  # "nasbench101" | "torchvision"
        ("arch_id", pa.string()),  # NB101 module hash | torchvision constructor name
        ("family", pa.string()),
        ("layers", pa.list_(LAYER_TYPE)),
        ("text", pa.string()),  # encode_text(layers): one layer per line
        ("structures", pa.list_(pa.string())),  # Layer.structure() per layer: the GPT tokens
        ("blocks", pa.list_(pa.string())),  # Layer.block per layer
        pa.field("val_accuracy", pa.float64(), nullable=True),  # fraction 0..1; null for torchvision
    ]
)


def build_pretrain_corpus(
    records: Sequence[Record],
    *,
    min_val_accuracy: float = 0.90,
    max_archs: int | None = None,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    encoding: str = "size-free",
    progress: bool = False,
) -> pa.Table:
    """Rows for the records passing the accuracy filter, best first; `max_archs` keeps the best.

    Records without an accuracy (generated cells) cannot be judged and are kept.
    """
    kept = select_records(records, min_val_accuracy=min_val_accuracy, max_archs=max_archs)
    rows = []
    # Layers computed from the cell, not traced (equal, tested; ~100x faster: the whole space in minutes).
    for record in tqdm(kept, desc="nb101 corpus", unit="cell", disable=not progress):
        layers = cell_layers(record.cell, input_shape=input_shape)
        rows.append(_row("nasbench101", record.hash, "NAS-Bench-101", layers, record.val_accuracy, encoding))
    return pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA)


def select_records(
    records: Sequence[Record], *, min_val_accuracy: float = 0.90, max_archs: int | None = None
) -> list[Record]:
    kept = [r for r in records if r.val_accuracy is None or r.val_accuracy >= min_val_accuracy]
    # Stable sort: descending accuracy, records without one last in input order.
    kept.sort(key=lambda r: -r.val_accuracy if r.val_accuracy is not None else float("inf"))
    return kept if max_archs is None else kept[:max_archs]


def build_finetune_corpus(variants: Sequence[Variant] = VARIANTS, encoding: str = "size-free") -> pa.Table:
    rows = [
        _row("torchvision", v.name, v.family, trace_layers(v.build, v.input_shape), None, encoding)
        for v in variants
    ]
    return pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA)


def table_layers(table: pa.Table) -> list[list[Layer]]:
    """The layer lists of a corpus table, back as `Layer` objects."""
    return [[Layer.from_dict(d) for d in arch] for arch in table.column("layers").to_pylist()]


def encode_corpus(
    records_path: Path | None,
    out_dir: Path,
    *,
    min_val_accuracy: float = 0.90,
    max_archs: int | None = None,
    generate_if_missing: int = 0,
    seed: int = 0,
    variants: Sequence[Variant] = VARIANTS,
    encoding: str = "size-free",
) -> dict[str, Any]:
    """Write `pretrain.parquet`, `finetune.parquet`, `vocab.json` and `summary.json` to `out_dir`.

    A missing records file is an error unless `generate_if_missing` > 0: then that many
    distinct random valid cells (seeded) stand in, without accuracies, and a warning says so.
    """
    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if records_path is not None and Path(records_path).is_file():
        records = load_records(records_path)
        source = str(records_path)
    elif generate_if_missing > 0:
        log.warning(
            "NAS-Bench-101 records %s not found: pre-training corpus uses %d random cells WITHOUT "
            "accuracies (no >= %.2f filter possible); give the real records for a GPT-NAS corpus",
            records_path,
            generate_if_missing,
            min_val_accuracy,
        )
        records = generate_records(generate_if_missing, seed)
        source = GENERATED_SOURCE
    else:
        raise LmnasError(
            f"NAS-Bench-101 records file not found: {records_path} "
            "(give a .tfrecord/.json/.parquet path, or set generate_if_missing > 0)"
        )
    seconds["load_records"] = time.perf_counter() - start

    start = time.perf_counter()
    pretrain = build_pretrain_corpus(records, min_val_accuracy=min_val_accuracy, max_archs=max_archs,
                                     encoding=encoding)
    seconds["pretrain_corpus"] = time.perf_counter() - start
    start = time.perf_counter()
    finetune = build_finetune_corpus(variants, encoding)
    seconds["finetune_corpus"] = time.perf_counter() - start

    vocab = Vocab.build(pretrain.column("structures").to_pylist() + finetune.column("structures").to_pylist(),
                        encoding=encoding)
    write_with(out_dir / "pretrain.parquet", lambda p: pq.write_table(pretrain, p))
    write_with(out_dir / "finetune.parquet", lambda p: pq.write_table(finetune, p))
    vocab.save(out_dir / "vocab.json")

    with_accuracy = [r for r in records if r.val_accuracy is not None]
    summary = {
        "records_source": source,
        "records_path": None if records_path is None else str(records_path),
        "seed": seed,
        "min_val_accuracy": min_val_accuracy,
        "max_archs": max_archs,
        "nb101_cells": len(records),  # distinct cells (deduplicated by module hash)
        "nb101_cells_with_accuracy": len(with_accuracy),
        "nb101_cells_passing_filter": sum(1 for r in with_accuracy if r.val_accuracy >= min_val_accuracy),
        "pretrain_archs": pretrain.num_rows,
        "pretrain_layers": sum(len(s) for s in pretrain.column("structures").to_pylist()),
        "finetune_archs": finetune.num_rows,
        "finetune_layers": sum(len(s) for s in finetune.column("structures").to_pylist()),
        "encoding": encoding,
        "vocab_size": len(vocab),
        "num_structures": len(vocab.structures),
    }
    # Timings apart from summary.json, which later stages hash (lmnas.search.outputs says why).
    timings = {"seconds": {k: round(v, 3) for k, v in seconds.items()}}
    write_json(out_dir / "timings.json", timings)
    write_json(out_dir / "summary.json", summary)
    return {**summary, **timings}


def generate_records(count: int, seed: int) -> list[Record]:
    """`count` distinct random valid cells (by module hash), without accuracies."""
    rng = random.Random(seed)
    by_hash: dict[str, Record] = {}
    while len(by_hash) < count:
        cell = random_cell(rng)
        by_hash.setdefault(cell.hash(), Record(cell, None, None, f"generated-{len(by_hash)}"))
    return list(by_hash.values())


def _row(
    source: str, arch_id: str, family: str, layers: list[Layer], val_accuracy: float | None, encoding: str
) -> dict[str, Any]:
    return {
        "source": source,
        "arch_id": arch_id,
        "family": family,
        "layers": [layer.to_dict() for layer in layers],
        "text": encode_text(layers),
        "structures": [layer.structure(encoding) for layer in layers],
        "blocks": [layer.block for layer in layers],
        "val_accuracy": val_accuracy,
    }
