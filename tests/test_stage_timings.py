"""Every stage whose files a later stage reads writes the same bytes when it reruns to the same
result: wall-clock figures go to its timings.json, which no later stage (nor DVC dependency) reads."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import lmnas.data as data
from lmnas.retrain import retrain
from lmnas.training import TrainRecipe
from lmnas.transfer import transfer
from test_retrain_transfer import small_net

RECIPE = TrainRecipe(epochs=2, batch_size=64, lr=0.05, crop_padding=1, flip=False, schedule="cosine")


def tree(folder: Path, skip: tuple[str, ...] = ("timings.json",)) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip and "checkpoints" not in p.parts}


def test_retrain_and_transfer_rerun_to_identical_files(tmp_path):
    data.prepare_dataset(data.DatasetSpec(source="digits", classes=[0, 1, 2]), tmp_path / "source", seed=0)
    data.prepare_dataset(data.DatasetSpec(source="digits", classes=[5, 6]), tmp_path / "target", seed=0)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        metrics = retrain(small_net(3), tmp_path / "source", out / "retrain", RECIPE, seed=1, device="cpu",
                          progress=False)
        assert metrics["seconds"] > 0 and metrics["resumed_from_epoch"] == 0  # the caller still gets them
        transfer(small_net(3), out / "retrain/model.safetensors", tmp_path / "target", out / "transfer", RECIPE,
                 seed=1, device="cpu", baseline_from_scratch=True, progress=False)
        runs.append(out)
    for stage in ("retrain", "transfer"):
        first, second = tree(runs[0] / stage), tree(runs[1] / stage)
        assert {"metrics.json", "log.csv"} <= set(first)
        # metrics name their source weights' path: the same file for both runs' comparison
        strip = lambda files: {k: v.replace(b"/a/", b"/x/").replace(b"/b/", b"/x/") for k, v in files.items()}
        assert strip(first) == strip(second), stage
        metrics = json.loads((runs[0] / stage / "metrics.json").read_text())
        assert not {"seconds", "train_images_per_s", "resumed_from_epoch"} & set(metrics)
        timings = json.loads((runs[0] / stage / "timings.json").read_text())
        assert timings["seconds"] > 0 and [e["epoch"] for e in timings["epochs"]] == [1, 2]
        assert (runs[0] / stage / "log.csv").read_text().splitlines()[0] == "epoch,lr,train_loss,train_acc,val_loss,val_acc"


def test_corpus_and_architecture_gpt_rerun_to_identical_files(tmp_path):
    from lmnas.archgpt import ArchGPTConfig, train_archgpt
    from lmnas.corpus import encode_corpus

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("a", "b"):
            summary = encode_corpus(tmp_path / "missing.json", tmp_path / name / "corpus", generate_if_missing=20, seed=0)
            assert "seconds" in summary
            metrics = train_archgpt(tmp_path / name / "corpus", tmp_path / name / "gpt", cfg=ArchGPTConfig(n_embd=16),
                                    pretrain_epochs=1, finetune_epochs=1, batch_size=64, lr=1e-3, seed=0, progress=False)
            assert metrics["pretrain"]["tokens_per_s"] > 0
    finally:
        torch.set_num_threads(threads)
    for stage in ("corpus", "gpt"):  # the GPT's checkpoint folders (the search's input) included
        assert tree(tmp_path / "a" / stage) == tree(tmp_path / "b" / stage), stage
        assert (tmp_path / "a" / stage / "timings.json").is_file()
    assert "seconds" not in json.loads((tmp_path / "a/corpus/summary.json").read_text())
    gpt = json.loads((tmp_path / "a/gpt/metrics.json").read_text())
    assert not {"train_seconds", "tokens_per_s", "resumed"} & set(gpt["pretrain"])
    assert json.loads((tmp_path / "a/gpt/timings.json").read_text())["pretrain"]["train_seconds"] > 0
