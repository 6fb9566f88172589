"""lmnas.training: schedules, augmentation, the loop (learning, freezing, determinism) and exact resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmnas.errors import LmnasError
from lmnas.training import (
    PRESETS,
    TrainRecipe,
    augment_batch,
    evaluate,
    load_latest,
    lr_at,
    normalize,
    train_model,
)

MEAN, STD = [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]


def quadrant_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 RGB noise with one bright 4x4 quadrant; the label is which quadrant (4 classes)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.randint(0, 60, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        r, c = divmod(label, 2)
        images[i, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 150
    return images, labels


def tiny_cnn(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(32, 4),
    )


def recipe(**overrides) -> TrainRecipe:
    base = dict(epochs=3, batch_size=64, lr=0.05, crop_padding=1, flip=False, warmup_epochs=0.5, schedule="cosine")
    return TrainRecipe(**{**base, **overrides})


def fit(model, train, val, rec, seed=0, **kw):
    return train_model(model, train, val, rec, mean=MEAN, std=STD, device="cpu", seed=seed, progress=False, **kw)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---- recipe and schedule -------------------------------------------------------------


def test_lr_warmup_then_step_decay():
    r = TrainRecipe(epochs=10, batch_size=8, lr=0.1, warmup_epochs=1, schedule="step", step_size=3, gamma=0.1)
    assert lr_at(r, 0, 4) == pytest.approx(0.025)
    assert lr_at(r, 3, 4) == pytest.approx(0.1)  # last warm-up step reaches the peak
    assert lr_at(r, 4, 4) == pytest.approx(0.1)
    assert lr_at(r, 11, 4) == pytest.approx(0.1)  # epoch 2
    assert lr_at(r, 12, 4) == pytest.approx(0.01)  # epoch 3
    assert lr_at(r, 24, 4) == pytest.approx(0.001)  # epoch 6
    assert lr_at(r, 39, 4) == pytest.approx(0.0001)  # epoch 9


def test_lr_cosine_and_constant():
    r = TrainRecipe(epochs=5, batch_size=8, lr=0.2, warmup_epochs=1, schedule="cosine")
    assert lr_at(r, 9, 10) == pytest.approx(0.2)
    assert lr_at(r, 10, 10) == pytest.approx(0.2)  # cosine starts where warm-up ends
    assert lr_at(r, 30, 10) == pytest.approx(0.1)  # half-way through the 40 cosine steps
    assert lr_at(r, 49, 10) == pytest.approx(3.082666e-4, rel=1e-6)  # the last step: 0.2 · (1 + cos(39π/40)) / 2
    c = TrainRecipe(epochs=5, batch_size=8, lr=0.3, schedule="constant")
    assert {lr_at(c, s, 7) for s in range(35)} == {0.3}


def test_linear_warmup_rises_over_the_whole_run():
    r = TrainRecipe(epochs=3, batch_size=8, lr=0.3, schedule="linear-warmup")
    lrs = [lr_at(r, s, 4) for s in range(12)]
    assert lrs == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3])
    assert all(a < b for a, b in zip(lrs, lrs[1:])) and lr_at(r, 50, 4) == pytest.approx(0.3)
    assert TrainRecipe(epochs=3, batch_size=8, lr=0.3, warmup_epochs=3, schedule="linear-warmup")
    with pytest.raises(LmnasError, match="linear-warmup"):
        TrainRecipe(epochs=3, batch_size=8, lr=0.3, warmup_epochs=1, schedule="linear-warmup")


def test_presets_follow_the_papers():
    proxy, retrain, imagenet = PRESETS["gptnas-proxy"], PRESETS["gptnas-retrain"], PRESETS["imagenet"]
    assert (proxy.epochs, proxy.batch_size, proxy.lr) == (6, 512, 0.01)
    # "linearly incremented to 0.01" over the 6 epochs: 60 steps here, lr/60 ... lr
    assert [lr_at(proxy, s, 10) for s in (0, 29, 59)] == pytest.approx([1.666667e-4, 0.005, 0.01], rel=1e-6)
    assert lr_at(retrain, 99 * 10, 10) == pytest.approx(0.01)
    assert lr_at(retrain, 100 * 10, 10) == pytest.approx(0.001)
    assert lr_at(imagenet, 30 * 5, 5) == pytest.approx(0.01) and imagenet.epochs == 120


@pytest.mark.parametrize(
    "bad",
    [dict(epochs=0), dict(lr=0.0), dict(schedule="linear"), dict(warmup_epochs=9), dict(momentum=0, nesterov=True)],
)
def test_invalid_recipe_is_rejected(bad):
    with pytest.raises(LmnasError):
        TrainRecipe(**{**dict(epochs=3, batch_size=8, lr=0.1), **bad})


def test_recipe_from_dict_names_unknown_fields():
    assert TrainRecipe.from_dict({"epochs": 2, "batch_size": 4, "lr": 0.1}).epochs == 2
    with pytest.raises(LmnasError, match="retrain.recipe.*'lrr'"):
        TrainRecipe.from_dict({"epochs": 2, "batch_size": 4, "lrr": 0.1}, where="retrain.recipe")


# ---- augmentation --------------------------------------------------------------------


def test_augment_is_deterministic_and_keeps_shape():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    a = augment_batch(x, torch.Generator().manual_seed(1), padding=2, flip=True)
    b = augment_batch(x, torch.Generator().manual_seed(1), padding=2, flip=True)
    c = augment_batch(x, torch.Generator().manual_seed(2), padding=2, flip=True)
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(augment_batch(x, torch.Generator(), padding=0, flip=False), x)


def test_crop_is_a_window_of_the_zero_padded_image():
    x = torch.randint(1, 256, (32, 2, 5, 6), dtype=torch.uint8)  # no zeros, so padding is visible
    out = augment_batch(x, torch.Generator().manual_seed(0), padding=2, flip=False)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(32):
        windows = {(dy, dx): padded[i, :, dy : dy + 5, dx : dx + 6] for dy in range(5) for dx in range(5)}
        hits = [offset for offset, window in windows.items() if torch.equal(out[i], window)]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 5  # offsets actually vary


def test_flip_mirrors_about_half_the_images():
    x = torch.randint(0, 256, (200, 3, 4, 4), dtype=torch.uint8)
    out = augment_batch(x, torch.Generator().manual_seed(0), padding=0, flip=True)
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    assert bool((same | mirrored).all())
    assert 60 < int(mirrored.sum()) < 140


def test_normalize():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    out = normalize(x, [0.0, 0.2, 0.5], [1.0, 0.5, 0.25])
    assert out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx([0.0, 0.0, 2.0])


# ---- the loop ------------------------------------------------------------------------


def test_tiny_cnn_learns_a_separable_task():
    train, val = quadrant_task(512, 0), quadrant_task(256, 1)
    seen = []
    result = fit(tiny_cnn(), train, val, recipe(epochs=4), on_epoch=seen.append)
    assert result.val_acc > 0.9  # chance is 0.25
    assert [e["epoch"] for e in seen] == [1, 2, 3, 4] and seen == result.history
    assert set(seen[0]) == {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s"}
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.images_seen == 4 * 512 and result.peak_memory_bytes is None


def test_evaluate_matches_a_manual_count():
    model = tiny_cnn(3)
    images, labels = quadrant_task(50, 2)
    loss, acc = evaluate(model, (images, labels), mean=MEAN, std=STD, device="cpu", batch_size=16)
    model.eval()
    with torch.no_grad():
        logits = model(normalize(images, MEAN, STD))
    assert acc == int((logits.argmax(1) == labels).sum()) / 50
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert model.training is False  # evaluate restores the mode it found


def test_training_is_deterministic_per_seed():
    train, val = quadrant_task(128, 0), quadrant_task(64, 1)
    runs = []
    for global_seed, seed in ((1, 5), (2, 5), (1, 6)):
        model = tiny_cnn(dropout=0.3)
        torch.manual_seed(global_seed)  # the global generator differs between the two seed-5 runs: only `seed` may decide
        runs.append(fit(model, train, val, recipe(flip=True), seed=seed))
    a, b, c = (r.history for r in runs)
    assert [e["train_loss"] for e in a] == [e["train_loss"] for e in b]
    assert [e["train_loss"] for e in a] != [e["train_loss"] for e in c]


def test_trainable_filter_freezes_the_rest_bit_for_bit():
    model = tiny_cnn()
    before = snapshot(model)
    fit(model, quadrant_task(128, 0), None, recipe(epochs=1), trainable=lambda name, p: name.startswith("6."))
    after = model.state_dict()
    assert torch.equal(after["0.weight"], before["0.weight"])
    assert torch.equal(after["1.weight"], before["1.weight"]) and torch.equal(after["1.bias"], before["1.bias"])
    assert not torch.equal(after["6.weight"], before["6.weight"])
    assert all(p.requires_grad for p in model.parameters())  # flags restored after training


def test_bn_only_trains_only_batchnorm_affine():
    model = tiny_cnn()
    before = snapshot(model)
    result = fit(model, quadrant_task(128, 0), None, recipe(epochs=1), bn_only=True)
    after = model.state_dict()
    assert torch.equal(after["0.weight"], before["0.weight"])
    assert torch.equal(after["6.weight"], before["6.weight"]) and torch.equal(after["6.bias"], before["6.bias"])
    assert not torch.equal(after["1.weight"], before["1.weight"])
    assert result.val_acc is None
    with pytest.raises(LmnasError, match="no parameter left"):
        fit(model, quadrant_task(16, 0), None, recipe(epochs=1), bn_only=True, trainable=lambda n, p: False)


def test_bad_data_is_rejected():
    images, labels = quadrant_task(16, 0)
    with pytest.raises(LmnasError, match="train images"):
        fit(tiny_cnn(), (images.float(), labels), None, recipe(epochs=1))


# ---- checkpoints and exact resume -----------------------------------------------------


def test_resume_after_kill_is_bit_identical(tmp_path):
    train, val = quadrant_task(160, 0), quadrant_task(64, 1)
    rec = recipe(epochs=3, flip=True, schedule="step", step_size=1, gamma=0.5, weight_decay=1e-3)

    straight = tiny_cnn(dropout=0.2)
    full = fit(straight, train, val, rec, seed=7)

    killed = tiny_cnn(dropout=0.2)
    # "Kill" after epoch 1: stop the run by raising from the epoch callback.
    def stop(entry):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(killed, train, val, rec, seed=7, checkpoint_dir=tmp_path, on_epoch=stop)
    latest = load_latest(tmp_path)
    assert latest is not None and latest.epoch == 1 and len(latest.state["history"]) == 1

    resumed_model = tiny_cnn(seed=123, dropout=0.2)  # a fresh process would start from another init
    resumed = fit(resumed_model, train, val, rec, seed=7, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_epoch == 1
    want, got = straight.state_dict(), resumed_model.state_dict()
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("seconds", "images_per_s")} for e in h]
    assert strip(resumed.history) == strip(full.history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003.pt", "epoch-0003.safetensors"]

    # A finished run resumes to "nothing left to do"; a different recipe is refused.
    again = fit(tiny_cnn(dropout=0.2), train, val, rec, seed=7, checkpoint_dir=tmp_path)
    assert again.resumed_from_epoch == 3 and strip(again.history) == strip(full.history)
    with pytest.raises(LmnasError, match="delete the folder"):
        fit(tiny_cnn(dropout=0.2), train, val, rec, seed=8, checkpoint_dir=tmp_path)


def test_resume_refuses_a_checkpoint_of_another_world_size(tmp_path):
    """A 2-rank checkpoint resumed by one process (seeds and batch shares differ per world) is refused,
    naming the checkpoint file and both world sizes; the same checkpoint at its own world size resumes."""
    train, val = quadrant_task(64, 0), quadrant_task(32, 1)
    rec = recipe(epochs=2)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_cnn(), train, val, rec, seed=3, checkpoint_dir=tmp_path,
            on_epoch=lambda entry: (_ for _ in ()).throw(KeyboardInterrupt))
    saved = tmp_path / "epoch-0001.pt"
    state = torch.load(saved, weights_only=True)
    assert state["world_size"] == 1
    assert fit(tiny_cnn(), train, val, rec, seed=3, checkpoint_dir=tmp_path, stop_after_epoch=1).resumed_from_epoch == 1
    torch.save({**state, "world_size": 2}, saved)  # as a 2-rank launch writes it
    with pytest.raises(LmnasError, match=rf"{saved}: checkpoint was made by 2 data-parallel rank\(s\), this run has 1"):
        fit(tiny_cnn(), train, val, rec, seed=3, checkpoint_dir=tmp_path)


def test_load_latest_on_empty_folder(tmp_path):
    assert load_latest(tmp_path) is None
    assert load_latest(tmp_path / "missing") is None


def test_input_size_resizes_on_the_device():
    # A linear head on a flattened 12x12 input only works if batches are resized to 12x12.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 4))
    train, val = quadrant_task(64, 0), quadrant_task(32, 1)
    result = fit(model, train, val, recipe(epochs=1, crop_padding=0), input_size=12)
    loss, acc = evaluate(model, val, mean=MEAN, std=STD, device="cpu", batch_size=32, input_size=12)
    assert (result.val_loss, result.val_acc) == (pytest.approx(loss, rel=1e-6), acc)  # the final model, at 12 px
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):  # the unresized input
        fit(model, train, val, recipe(epochs=1, crop_padding=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_learns_and_reports_memory():
    train, val = quadrant_task(512, 0), quadrant_task(256, 1)
    model = tiny_cnn()
    rec = recipe(epochs=4)
    result = train_model(model, train, val, rec, mean=MEAN, std=STD, device="cuda", seed=0, progress=False)
    assert next(model.parameters()).device.type == "cuda"
    _, acc = evaluate(model, val, mean=MEAN, std=STD, device="cuda", batch_size=rec.eval_batch_size)
    assert result.val_acc == acc > 0.9  # chance is 0.25
    # the peak of this call holds at least the parameters and one training batch of float inputs
    floor = sum(p.numel() * p.element_size() for p in model.parameters()) + rec.batch_size * 3 * 8 * 8 * 4
    assert floor <= result.peak_memory_bytes <= torch.cuda.max_memory_allocated()
