"""lmnas.retrain / lmnas.transfer on tiny prepared digits datasets (8x8, 1 channel)."""

from __future__ import annotations

import csv
import hashlib

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import lmnas.data as data
import lmnas.retrain as retrain_module
from lmnas.errors import LmnasError
from lmnas.io import read_json
from lmnas.retrain import retrain
from lmnas.training import TrainRecipe, evaluate
from lmnas.transfer import find_classifier, transfer


RECIPE = TrainRecipe(epochs=3, batch_size=64, lr=0.05, crop_padding=1, flip=False, schedule="cosine")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Source: digits 0-4 (5 classes). Target: digits 5-7 (3 classes)."""
    root = tmp_path_factory.mktemp("prepared")
    data.prepare_dataset(data.DatasetSpec(source="digits", classes=[0, 1, 2, 3, 4]), root / "source", seed=0)
    data.prepare_dataset(data.DatasetSpec(source="digits", classes=[5, 6, 7]), root / "target", seed=0)
    return root / "source", root / "target"


@pytest.fixture(scope="module")
def source_weights(digits, tmp_path_factory):
    """Weights of small_net retrained on the source digits (the transfer tests' starting point)."""
    out = tmp_path_factory.mktemp("retrain")
    retrain(small_net(), digits[0], out, RECIPE, seed=0, device="cpu", progress=False)
    return out / "model.safetensors"


def small_net(num_classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def test_retrain_writes_artefacts_and_resumes(digits, tmp_path, monkeypatch):
    source, _ = digits
    straight = retrain(small_net(), source, tmp_path / "straight", RECIPE, seed=3, device="cpu", progress=False)
    assert straight["test_acc"] > 0.8 and straight["epochs"] == 3  # chance is 0.2
    assert straight["params"] == sum(p.numel() for p in small_net().parameters())
    assert straight["recipe"] == RECIPE.to_dict() and straight["seed"] == 3 and straight["device"] == "cpu"
    assert straight["dataset"]["num_classes"] == 5 and straight["torch"] == str(torch.__version__)
    with (tmp_path / "straight" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and float(rows[-1]["val_acc"]) == straight["val_acc"]

    # The saved weights are the final model: they reproduce the reported test accuracy.
    model = small_net(seed=99)
    model.load_state_dict(load_file(tmp_path / "straight" / "model.safetensors"))
    manifest = data.read_manifest(source)
    _, acc = evaluate(model, data.load_split(source, "test"), mean=manifest["mean"], std=manifest["std"],
                      device="cpu", batch_size=50)
    assert acc == straight["test_acc"]

    # Kill after the first epoch's checkpoint (the log write that follows it raises), then resume.
    real_write_log = retrain_module.write_log

    def killed(path, history):
        raise KeyboardInterrupt

    monkeypatch.setattr(retrain_module, "write_log", killed)
    with pytest.raises(KeyboardInterrupt):
        retrain(small_net(), source, tmp_path / "killed", RECIPE, seed=3, device="cpu", progress=False)
    assert not (tmp_path / "killed" / "model.safetensors").exists()  # only a finished run writes the model
    monkeypatch.setattr(retrain_module, "write_log", real_write_log)
    resumed = retrain(small_net(seed=5), source, tmp_path / "killed", RECIPE, seed=3, device="cpu", progress=False)
    assert resumed["test_acc"] == straight["test_acc"] and resumed["val_loss"] == straight["val_loss"]
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("straight", "killed"))
    assert all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_finished_retrain_is_returned_untouched(digits, tmp_path):
    source, _ = digits
    recipe = TrainRecipe(epochs=1, batch_size=128, lr=0.05)
    first = retrain(small_net(), source, tmp_path, recipe, seed=0, device="cpu", progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.is_file()}
    again = retrain(small_net(seed=1), source, tmp_path, recipe, seed=0, device="cpu", progress=False)
    assert again == first
    assert stamps == {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(LmnasError, match="another setting"):
        retrain(small_net(), source, tmp_path, recipe, seed=1, device="cpu", progress=False)


def test_retrain_rejects_a_head_of_the_wrong_size(digits, tmp_path):
    with pytest.raises(LmnasError, match="num_classes=5"):
        retrain(small_net(num_classes=7), digits[0], tmp_path, RECIPE, seed=0, device="cpu", progress=False)


def test_transfer_swaps_the_head_and_reports(digits, source_weights, tmp_path):
    target, weights = digits[1], source_weights
    model = small_net(seed=7)
    recipe = TrainRecipe(epochs=2, batch_size=64, lr=0.02, crop_padding=0, flip=False)
    metrics = transfer(model, weights, target, tmp_path / "transfer", recipe, seed=1, device="cpu",
                       input_size=12, baseline_from_scratch=True, progress=False)
    name, head = find_classifier(model)
    assert name == "5" and head.out_features == 3
    assert metrics["source_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert metrics["stage"] == "transfer" and metrics["input_size"] == 12 and metrics["classifier"] == "5"
    assert metrics["test_acc"] > 0.5 and metrics["dataset"]["num_classes"] == 3  # chance is 1/3
    # both reported test accuracies are those of the saved weights, evaluated here at the 12 px input size
    manifest = data.read_manifest(target)
    test_split = data.load_split(target, "test")
    for folder, key in (("transfer", "test_acc"), ("transfer/scratch", "scratch_test_acc")):
        saved = small_net(num_classes=3, seed=99)
        saved.load_state_dict(load_file(tmp_path / folder / "model.safetensors"))
        _, acc = evaluate(saved, test_split, mean=manifest["mean"], std=manifest["std"], device="cpu",
                          batch_size=50, input_size=12)
        assert metrics[key] == acc, folder
    assert metrics["gain_over_scratch"] == pytest.approx(metrics["test_acc"] - metrics["scratch_test_acc"])
    assert (tmp_path / "transfer" / "log.csv").read_text().count("\n") == 3  # header + 2 epochs
    assert data.read_manifest(target) and (tmp_path / "transfer" / "scratch" / "metrics.json").exists()
    on_disk = read_json(tmp_path / "transfer" / "metrics.json")
    assert on_disk["scratch_test_acc"] == metrics["scratch_test_acc"]


def test_transfer_starts_from_the_source_weights(digits, source_weights, tmp_path):
    target, weights = digits[1], source_weights
    # An lr so small that the body stays at the loaded weights (within float rounding).
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=1e-12, momentum=0.0, weight_decay=0.0, crop_padding=0, flip=False)
    model = small_net(seed=42)
    transfer(model, weights, target, tmp_path / "t", recipe, seed=0, device="cpu", progress=False)
    source_state = load_file(weights)
    assert torch.allclose(model[0].weight, source_state["0.weight"], atol=1e-9)


def test_transfer_names_weights_that_do_not_fit(digits, source_weights, tmp_path):
    target = digits[1]
    other = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(288, 5))
    with pytest.raises(LmnasError, match="model.safetensors does not fit"):
        transfer(other, source_weights, target, tmp_path / "t", RECIPE, seed=0, device="cpu", progress=False)
    wider = small_net()
    wider[0] = nn.Conv2d(1, 16, 5, padding=2, bias=False)  # same keys, other shape
    with pytest.raises(LmnasError, match="does not fit"):
        transfer(wider, source_weights, target, tmp_path / "t", RECIPE, seed=0, device="cpu", progress=False)
    with pytest.raises(LmnasError, match="not found"):
        transfer(small_net(), tmp_path / "nope.safetensors", target, tmp_path / "t", RECIPE, seed=0, device="cpu")


def test_checkpoints_of_another_genotype_are_set_aside_not_resumed(digits, tmp_path, monkeypatch):
    """A killed retraining of genotype A, then the search finds B (same seed and recipe): B must
    train from scratch, ending exactly as B trained alone; A's checkpoints are kept aside."""
    source, _ = digits
    out = tmp_path / "retrain"
    real_write_log = retrain_module.write_log
    monkeypatch.setattr(retrain_module, "write_log", lambda path, history: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        retrain_module.train_and_report(small_net(seed=1), source, out, RECIPE, seed=3, device="cpu", progress=False,
                                        identity={"stage": "retrain", "genotype": "A"})
    monkeypatch.setattr(retrain_module, "write_log", real_write_log)
    b = retrain_module.train_and_report(small_net(seed=2), source, out, RECIPE, seed=3, device="cpu", progress=False,
                                        identity={"stage": "retrain", "genotype": "B"})
    alone = retrain_module.train_and_report(small_net(seed=2), source, tmp_path / "alone", RECIPE, seed=3,
                                            device="cpu", progress=False,
                                            identity={"stage": "retrain", "genotype": "B"})
    assert b["genotype"] == "B" and b["test_acc"] == alone["test_acc"] and b["val_loss"] == alone["val_loss"]
    aside = list(tmp_path.glob("retrain/checkpoints.old-*"))
    assert len(aside) == 1 and any(aside[0].iterdir())


def wide_net(num_classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(96, num_classes))


def test_a_rerun_transfer_never_reports_another_runs_baseline(digits, source_weights, tmp_path):
    """The workflow reruns transfer after a new search result or a changed recipe (Snakemake removes
    metrics.json, not the baseline in scratch/): the old baseline is moved aside and trained anew,
    neither refused nor reported as this network's."""
    source, target = digits
    out = tmp_path / "transfer"
    short = TrainRecipe(epochs=1, batch_size=64, lr=0.02, crop_padding=0, flip=False)
    first = transfer(small_net(), source_weights, target, out, RECIPE, seed=1, device="cpu",
                     baseline_from_scratch=True, progress=False)
    (out / "metrics.json").unlink()
    changed = transfer(small_net(), source_weights, target, out, short, seed=1, device="cpu",
                       baseline_from_scratch=True, progress=False)  # another recipe: not refused
    assert read_json(out / "scratch/metrics.json")["epochs"] == 1 and changed["epochs"] == 1
    wide = tmp_path / "wide"
    retrain(wide_net(), source, wide, short, seed=0, device="cpu", progress=False)
    (out / "metrics.json").unlink()
    other = transfer(wide_net(), wide / "model.safetensors", target, out, short, seed=1, device="cpu",
                     baseline_from_scratch=True, progress=False)  # the search found another network
    scratch = wide_net(num_classes=3)
    scratch.load_state_dict(load_file(out / "scratch/model.safetensors"))  # the baseline is this network
    assert other["scratch_test_acc"] == read_json(out / "scratch/metrics.json")["test_acc"]
    assert len(list(tmp_path.glob("transfer/scratch.old-*"))) == 2 and first["scratch_test_acc"] is not None
