"""The streamed input pipeline (lmnas.training.stream) over a small encoded-JPEG fixture, and retrain on it."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from lmnas.training import TrainRecipe, stream
from lmnas.training.stream import EncodedSplit, EpochSampler

SIZE = 16


def write_encoded(folder, counts, seed=0, group=8):
    """JPEGs of 20–40 px (bright left or right half: 2 classes) in Parquet shards, with an encoded manifest."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n in counts.items():
        images, labels = [], rng.integers(0, 2, n)
        for label in labels:
            h, w = rng.integers(20, 41, 2)
            pixels = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            pixels[:, : w // 2] += 150 if label == 0 else 0
            pixels[:, w // 2 :] += 150 if label == 1 else 0
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
            images.append(buffer.getvalue())
        name = f"{split}-00000-of-00001.parquet"
        table = pa.table({"image": pa.array(images, pa.binary()), "label": pa.array(labels, pa.int64())})
        pq.write_table(table, folder / name, row_group_size=group)
        splits[split] = {"count": n, "files": [{"name": name, "rows": n, "sha256": "-"}]}
    manifest = {"storage": "encoded", "format": "jpeg", "image_shape": [3, SIZE, SIZE], "num_classes": 2,
                "mean": [0.4] * 3, "std": [0.3] * 3, "splits": splits, "source": "test"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    return write_encoded(tmp_path_factory.mktemp("enc"), {"train": 64, "val": 24, "test": 24})


def sampler(split, world=1, rank=0, batch=8, seed=0):
    groups = [n for _, _, n in split.group_rows()]
    return EpochSampler(groups, batch_size=batch, seed=seed, world=world, rank=rank, window=16)


def test_rank_shares_are_disjoint_cover_the_split_and_repeat_per_epoch(encoded):
    split = EncodedSplit.open(encoded, "train")
    for world in (1, 2, 3):
        shares = [sampler(split, world, r).order(epoch=2) for r in range(world)]
        assert len({len(s) for s in shares}) == 1  # equal steps on every rank
        together = np.concatenate(shares)
        assert set(together.tolist()) == set(range(64))  # covering
        assert len(together) - len(set(together.tolist())) == len(together) - 64  # only the wrap-around repeats
    s = sampler(split, 2, 1)
    assert np.array_equal(s.order(3), sampler(split, 2, 1).order(3))  # a resumed run: the same order
    assert not np.array_equal(s.order(3), s.order(4))
    s.set_epoch(3)
    requests = list(s)
    assert len(requests) == len(s) and np.array_equal(np.concatenate([r.rows for r in requests]), s.order(3))


def test_batches_are_uint8_and_the_same_with_workers(encoded):
    split = EncodedSplit.open(encoded, "train")
    recipe = TrainRecipe(epochs=1, batch_size=8, lr=0.1, rand_augment="rand-m9-mstd0.5", random_resized_crop=True)
    out = []
    for workers in (0, 2):
        dataset = stream.StreamedImages(split, stream.train_transform(recipe, SIZE), cache_groups=4)
        s = sampler(split)
        s.set_epoch(1)
        out.append(list(stream.loader(dataset, s, workers, pin=False)))
    (images, labels), _ = out[0][0], None
    assert images.dtype == torch.uint8 and images.shape == (8, 3, SIZE, SIZE) and labels.dtype == torch.int64
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(*out))


def test_eval_crop_keeps_the_crop_fraction():
    # 64×32 image, crop 16 at 0.5: shorter side → 32, central 16×16 of a 64×32 → columns 24..40 of 64
    pixels = np.zeros((32, 64, 3), dtype=np.uint8)
    pixels[:, :, 0] = np.arange(64)[None, :] * 4
    out = stream.eval_transform(16, 0.5)(Image.fromarray(pixels))
    assert out.shape == (3, 16, 16) and out.dtype == torch.uint8
    assert abs(int(out[0, 8, 0]) - 24 * 4) <= 6 and abs(int(out[0, 8, 15]) - 39 * 4) <= 6


def test_the_dataset_holds_no_image_bytes(tmp_path):
    small = write_encoded(tmp_path / "small", {"train": 16})
    large = write_encoded(tmp_path / "large", {"train": 160})
    sizes = []
    for folder in (small, large):
        split = EncodedSplit.open(folder, "train")
        dataset = stream.StreamedImages(split, stream.eval_transform(SIZE, 0.875), cache_groups=2)
        dataset[stream.BatchRequest(np.arange(4), 0)]  # fills this process's cache
        sizes.append(len(pickle.dumps(dataset)))  # what a worker receives
    assert sizes[0] == sizes[1] or abs(sizes[0] - sizes[1]) < 16  # paths and counts, not pixels


def test_resident_rule_decodes_small_encoded_splits(encoded):
    small = stream.training_split(encoded, "val", TrainRecipe(epochs=1, batch_size=8, lr=0.1))
    assert isinstance(small, tuple) and small[0].shape == (24, 3, SIZE, SIZE) and small[0].dtype == torch.uint8
    streamed = stream.training_split(encoded, "val", TrainRecipe(epochs=1, batch_size=8, lr=0.1, resident_max_mb=0))
    assert isinstance(streamed, EncodedSplit) and len(streamed) == 24


def test_retrain_streams_encoded_data_and_resumes_exactly(encoded, tmp_path):
    from safetensors.torch import load_file

    from lmnas.retrain import retrain

    recipe = TrainRecipe(epochs=3, batch_size=16, lr=0.05, eval_batch_size=16, resident_max_mb=0, flip=True)

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))

    straight = retrain(model(), encoded, tmp_path / "a", recipe, seed=1, device="cpu", progress=False)
    assert straight["epochs"] == 3 and straight["images_seen"] == 3 * 64 and 0 <= straight["test_acc"] <= 1
    from lmnas.retrain import train_and_report

    partial = train_and_report(model(), encoded, tmp_path / "b", recipe, seed=1, device="cpu", progress=False,
                               identity={"stage": "retrain"}, stop_after_epoch=1)
    assert partial["complete"] is False
    resumed = retrain(model(), encoded, tmp_path / "b", recipe, seed=1, device="cpu", progress=False)
    assert resumed["resumed_from_epoch"] == 1 and resumed["test_acc"] == straight["test_acc"]
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_timm_recipe_streams_with_erasing_on_the_device_and_is_deterministic(encoded):
    from lmnas.training import train_model

    recipe = TrainRecipe(epochs=1, batch_size=16, lr=0.05, rand_augment="rand-m9-mstd0.5", random_resized_crop=True,
                         random_erasing=0.5, ema_decay=0.9, label_smoothing=0.1, eval_batch_size=16)
    split, val = EncodedSplit.open(encoded, "train"), EncodedSplit.open(encoded, "val")
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                    torch.nn.Linear(4, 2))
        result = train_model(model, split, val, recipe, mean=[0.4] * 3, std=[0.3] * 3, device="cpu", seed=2,
                             progress=False)
        assert result.images_seen == 64 and result.val_acc == result.history[-1]["val_acc_ema"]
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_proxy_evaluator_streams_encoded_data_above_the_budget(encoded):
    from lmnas.evaluation.proxy import ProxyTrainingEvaluator
    from lmnas.spaces import create_space

    recipe = {"epochs": 1, "batch_size": 16, "lr": 0.05, "resident_max_mb": 0, "eval_batch_size": 16}
    evaluator = ProxyTrainingEvaluator(encoded, recipe=recipe, train_subset=32)
    assert isinstance(evaluator.train, EncodedSplit) and len(evaluator.train) == 32
    space = create_space("gptnas-blocks", min_blocks=4, max_blocks=4, stage_widths=[16, 32], input_shape=[3, SIZE, SIZE],
                         num_classes=2)
    result = evaluator.evaluate(space, space.parse("basic-mbconv-conv-regnet"), seed=0)
    assert 0 <= result.metrics["accuracy"] <= 100
