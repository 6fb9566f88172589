"""The timm path of the training loop (GENIUS's ImageNet recipe, lmnas.training.timm_path) on tiny data."""

from __future__ import annotations

import pytest
import torch
from test_training import MEAN, STD, quadrant_task, snapshot, tiny_cnn

from lmnas.errors import LmnasError
from lmnas.training import TrainRecipe, train_model

TIMM = dict(rand_augment="rand-m9-mstd0.5", random_erasing=0.2, label_smoothing=0.1, ema_decay=0.9,
            norm_weight_decay=0.0)


def recipe(**overrides) -> TrainRecipe:
    base = dict(epochs=2, batch_size=32, lr=0.05, crop_padding=1, flip=True, warmup_epochs=0.5, schedule="cosine",
                weight_decay=4e-5, **TIMM)
    return TrainRecipe(**{**base, **overrides})


def fit(model, rec, tmp=None, **kw):
    train, val = quadrant_task(96, 0), quadrant_task(64, 1)
    return train_model(model, train, val, rec, mean=MEAN, std=STD, device="cpu", seed=3, progress=False,
                       checkpoint_dir=tmp, **kw)


def test_timm_keys_choose_the_timm_path_and_plain_recipes_do_not():
    assert recipe().uses_timm and TrainRecipe(epochs=1, batch_size=8, lr=0.1, ema_decay=0.99).uses_timm
    assert not TrainRecipe(epochs=1, batch_size=8, lr=0.1, label_smoothing=0.1).uses_timm
    with pytest.raises(LmnasError, match="rand_augment"):
        TrainRecipe(epochs=1, batch_size=8, lr=0.1, rand_augment="m9")
    with pytest.raises(LmnasError, match="ema_decay"):
        TrainRecipe(epochs=1, batch_size=8, lr=0.1, ema_decay=1.5)


def test_timm_path_learns_keeps_the_ema_and_resumes_exactly(tmp_path):
    whole = tiny_cnn()
    result = fit(whole, recipe(), tmp_path / "a")
    assert {"val_acc_ema", "val_loss_ema"} <= set(result.history[0])
    assert result.val_acc == result.history[-1]["val_acc_ema"]  # the EMA is the trained network
    assert result.history[-1]["train_acc"] > 0.3
    # killed after epoch 1, resumed: the same weights (augmentation, EMA and all) bit for bit
    part = tiny_cnn()
    fit(part, recipe(), tmp_path / "b", stop_after_epoch=1)
    resumed = tiny_cnn()
    again = fit(resumed, recipe(), tmp_path / "b")
    assert again.resumed_from_epoch == 1
    for key, value in snapshot(whole).items():
        assert torch.equal(value, snapshot(resumed)[key]), key


def test_timm_path_differs_from_the_plain_path_and_seeds_matter():
    plain, timm_a, timm_b = tiny_cnn(), tiny_cnn(), tiny_cnn()
    fit(plain, recipe(epochs=1, rand_augment=None, random_erasing=0.0, ema_decay=None, norm_weight_decay=None))
    fit(timm_a, recipe(epochs=1))
    fit(timm_b, recipe(epochs=1))
    a, b, p = snapshot(timm_a), snapshot(timm_b), snapshot(plain)
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic for a seed
    assert not all(torch.equal(a[k], p[k]) for k in a)


def test_augmentation_workers_give_the_same_training():
    inline, workers = tiny_cnn(), tiny_cnn()
    fit(inline, recipe(epochs=1))
    fit(workers, recipe(epochs=1, augment_workers=2))
    a, b = snapshot(inline), snapshot(workers)
    assert all(torch.equal(a[k], b[k]) for k in a)
