"""The encode_corpus stage: pre-training / fine-tuning tables, vocab, summary, missing records."""

from __future__ import annotations

import json
import logging
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmnas.corpus import (
    CORPUS_SCHEMA,
    GENERATED_SOURCE,
    build_finetune_corpus,
    build_pretrain_corpus,
    encode_corpus,
    table_layers,
)
from lmnas.encoding import VARIANTS, Vocab, get_variant, parse_text
from lmnas.errors import LmnasError
from lmnas.nasbench101 import Record, random_cell

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import BENCH, needs  # noqa: E402

SUBSET = BENCH / "nas_bench_101_subset.json"
SMALL_VARIANTS = (get_variant("resnet18"), get_variant("shufflenet_v2_x0_5"))


def _records() -> list[Record]:
    rng = random.Random(0)
    cells = []
    while len(cells) < 4:
        cell = random_cell(rng)
        if cell.num_vertices > 3 and cell not in cells:
            cells.append(cell)
    accs = [0.91, 0.85, None, 0.95]
    return [Record(c, a, None, f"r{i}") for i, (c, a) in enumerate(zip(cells, accs))]


def test_pretrain_corpus_filters_and_orders_by_accuracy() -> None:
    records = _records()
    table = build_pretrain_corpus(records, min_val_accuracy=0.90)
    assert table.schema.equals(CORPUS_SCHEMA)
    # 0.85 is filtered out; best first; the record without accuracy is kept, last.
    assert table.column("arch_id").to_pylist() == [records[3].hash, records[0].hash, records[2].hash]
    assert table.column("val_accuracy").to_pylist() == [0.95, 0.91, None]
    assert set(table.column("source").to_pylist()) == {"nasbench101"}
    row = table.slice(0, 1).to_pylist()[0]
    layers = table_layers(table)[0]
    assert parse_text(row["text"]) == layers
    assert row["structures"] == [layer.structure() for layer in layers]
    assert row["blocks"] == [layer.block for layer in layers]
    assert layers[0].in_size == (32, 32, 3) and layers[-1].out_size == (10,)
    assert build_pretrain_corpus(records, max_archs=1).column("arch_id").to_pylist() == [records[3].hash]
    gray = build_pretrain_corpus(records[:1], input_shape=(1, 28, 28))
    assert table_layers(gray)[0][0].in_size == (28, 28, 1)


def test_finetune_corpus_all_36() -> None:
    table = build_finetune_corpus()
    assert table.num_rows == 36 and table.schema.equals(CORPUS_SCHEMA)
    assert table.column("arch_id").to_pylist() == [v.name for v in VARIANTS]
    assert Counter(table.column("family").to_pylist())["RegNet"] == 14
    assert set(table.column("val_accuracy").to_pylist()) == {None}
    layers = table_layers(table)
    by_name = dict(zip(table.column("arch_id").to_pylist(), layers))
    assert len(by_name["resnet18"]) == 60
    assert by_name["efficientnet_b7"][0].in_size == (600, 600, 3)
    assert {layer.block for layer in by_name["googlenet"]} >= {"Inception", ""}


def test_encode_corpus_missing_records_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nasbench_only108.tfrecord"
    with pytest.raises(LmnasError, match=re.escape(f"not found: {missing}")):
        encode_corpus(missing, tmp_path / "out", variants=SMALL_VARIANTS)
    assert not (tmp_path / "out").exists()


def test_encode_corpus_generates_when_allowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "corpus"
    with caplog.at_level(logging.WARNING, logger="lmnas.corpus"):
        summary = encode_corpus(None, out, generate_if_missing=5, seed=1, variants=SMALL_VARIANTS)
    assert "WITHOUT accuracies" in caplog.text
    assert summary["records_source"] == GENERATED_SOURCE
    assert summary["nb101_cells"] == summary["pretrain_archs"] == 5
    assert summary["nb101_cells_with_accuracy"] == 0 and summary["finetune_archs"] == 2
    timings = json.loads((out / "timings.json").read_text())  # the caller gets both files' content
    assert json.loads((out / "summary.json").read_text()) == {k: v for k, v in summary.items() if k not in timings}
    pretrain = pq.read_table(out / "pretrain.parquet")
    assert pretrain.num_rows == 5 and len(set(pretrain.column("arch_id").to_pylist())) == 5
    again = encode_corpus(None, tmp_path / "again", generate_if_missing=5, seed=1, variants=SMALL_VARIANTS)
    assert pq.read_table(tmp_path / "again" / "pretrain.parquet").equals(pretrain)
    assert again["vocab_size"] == summary["vocab_size"]


def test_encode_corpus_sized_encoding(tmp_path: Path) -> None:
    # The paper's encoding: tokens carry in/out sizes, so there are more of them; vocab.json says which.
    free = encode_corpus(None, tmp_path / "free", generate_if_missing=5, seed=1, variants=SMALL_VARIANTS)
    sized = encode_corpus(None, tmp_path / "sized", generate_if_missing=5, seed=1, variants=SMALL_VARIANTS,
                          encoding="sized")
    assert (free["encoding"], sized["encoding"]) == ("size-free", "sized")
    assert sized["num_structures"] > free["num_structures"]
    vocab = Vocab.load(tmp_path / "sized" / "vocab.json")
    assert vocab.encoding == "sized" and all(re.search(r"\|i[-0-9]+\|o[-0-9]+$", s) for s in vocab.structures)
    structures = pq.read_table(tmp_path / "sized" / "pretrain.parquet").column("structures").to_pylist()
    assert vocab.unk_id not in [vocab.id_of(s) for seq in structures for s in seq]


@needs(SUBSET.name)
def test_encode_corpus_on_the_shared_subset(tmp_path: Path) -> None:
    summary = encode_corpus(SUBSET, tmp_path, max_archs=6, variants=SMALL_VARIANTS)
    assert summary["records_source"] == str(SUBSET)
    assert (summary["nb101_cells"], summary["nb101_cells_passing_filter"], summary["pretrain_archs"]) == (292, 199, 6)
    pretrain = pq.read_table(tmp_path / "pretrain.parquet")
    finetune = pq.read_table(tmp_path / "finetune.parquet")
    # the 6 best cells, read here from the raw file: runs of one cell (module hash) averaged, as fractions
    runs: dict[str, list[float]] = {}
    for entry in json.loads(SUBSET.read_text()).values():
        runs.setdefault(entry["nb101_hash"], []).append(entry["val_acc_108"] / 100)
    means = {h: sum(r) / len(r) for h, r in runs.items()}
    assert (len(means), sum(m >= 0.90 for m in means.values())) == (292, 199)
    best = sorted(means.items(), key=lambda kv: -kv[1])[:6]
    assert pretrain.column("arch_id").to_pylist() == [h for h, _ in best]
    assert pretrain.column("val_accuracy").to_pylist() == pytest.approx([m for _, m in best], abs=1e-12)
    vocab = Vocab.load(tmp_path / "vocab.json")
    assert len(vocab) == summary["vocab_size"]
    seen = Counter(s for t in (pretrain, finetune) for seq in t.column("structures").to_pylist() for s in seq)
    assert set(vocab.structures) == set(seen) and vocab.counts == dict(seen)
    assert vocab.structures[0] == seen.most_common(1)[0][0]
