"""prepare_data: sources (digits, CIFAR-10/100 pickles, ImageNet folders) → shards → tensors."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from lmnas.data import DATASET_SOURCES, DatasetSpec, load_source, load_split, prepare_dataset, read_manifest
from lmnas.data.prepare import stratified_take
from lmnas.data.sources import balanced_subset
from lmnas.errors import LmnasError

DIGIT_COUNTS = np.bincount(load_digits().target)  # 1797 images, ~180 per class


def _all_rows(prepared: Path) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [load_split(prepared, split) for split in ("train", "val", "test")]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _row_set(images: torch.Tensor) -> list[bytes]:
    return sorted(bytes(row.numpy().tobytes()) for row in images)


# --------------------------------------------------------------------------- digits end to end


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    prepare_dataset(DatasetSpec("digits"), out, seed=0, shard_rows=400)
    return out


def test_digits_counts_add_up_and_are_stratified(digits_dir: Path) -> None:
    manifest = read_manifest(digits_dir)
    splits = manifest["splits"]
    assert sum(s["count"] for s in splits.values()) == 1797
    assert splits["test"]["count"] == round(0.2 * 1797)  # 359
    assert splits["val"]["count"] == round(0.1 * (1797 - 359))  # 144, a tenth of the train pool
    for name, split in splits.items():
        assert sum(split["class_counts"]) == split["count"]
        share = split["count"] / 1797
        # Largest-remainder stratification: every class within one row of its exact share.
        assert np.all(np.abs(np.array(split["class_counts"]) - DIGIT_COUNTS * share) < 1.0), name
    total = np.sum([s["class_counts"] for s in splits.values()], axis=0)
    assert total.tolist() == DIGIT_COUNTS.tolist()
    assert manifest["num_classes"] == 10 and manifest["class_names"] == [str(i) for i in range(10)]
    assert manifest["image_shape"] == [1, 8, 8]


def test_digits_splits_partition_the_source(digits_dir: Path) -> None:
    images, labels = _all_rows(digits_dir)
    digits = load_digits()
    expected = np.rint(digits.images * 255 / 16).astype(np.uint8)[:, None]  # [N, 1, 8, 8]
    assert _row_set(images) == _row_set(torch.from_numpy(expected))
    assert torch.bincount(labels).tolist() == DIGIT_COUNTS.tolist()
    assert images.max().item() == 255 and images.min().item() == 0


def test_load_split_shapes_dtypes_and_sharding(digits_dir: Path) -> None:
    manifest = read_manifest(digits_dir)
    train = manifest["splits"]["train"]
    names = [f["name"] for f in train["files"]]
    assert names == ["train-00000-of-00004.parquet", "train-00001-of-00004.parquet",
                     "train-00002-of-00004.parquet", "train-00003-of-00004.parquet"]  # 1294 rows / 400
    assert [f["rows"] for f in train["files"]] == [400, 400, 400, 94]
    images, labels = load_split(digits_dir, "train", verify=True)
    assert images.shape == (1294, 1, 8, 8) and images.dtype == torch.uint8 and images.is_contiguous()
    assert labels.shape == (1294,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == train["class_counts"]
    # Splits are shuffled: the first 50 rows already hold most classes.
    assert len(set(labels[:50].tolist())) >= 8
    pixels = images.double() / 255
    assert manifest["mean"] == pytest.approx([pixels.mean().item()], abs=1e-6)
    assert manifest["std"] == pytest.approx([pixels.std(correction=0).item()], abs=1e-6)


def test_manifest_checksums_match_the_shards(digits_dir: Path) -> None:
    manifest = read_manifest(digits_dir)
    for split in manifest["splits"].values():
        for shard in split["files"]:
            assert hashlib.sha256((digits_dir / shard["name"]).read_bytes()).hexdigest() == shard["sha256"]
    assert manifest["spec"]["source"] == "digits" and manifest["seed"] == 0


def test_class_filter_remaps_in_the_given_order(tmp_path: Path) -> None:
    spec = DatasetSpec("digits", classes=[9, 5, 7], max_per_split={"train": 60})
    manifest = prepare_dataset(spec, tmp_path, seed=3)
    assert manifest["class_names"] == ["9", "5", "7"] and manifest["num_classes"] == 3
    assert manifest["splits"]["train"]["count"] == 60
    assert manifest["splits"]["train"]["class_counts"] == [20, 20, 20]
    images, labels = _all_rows(tmp_path)
    assert set(labels.tolist()) == {0, 1, 2}
    # Label 0 rows are exactly sklearn's 9s (those that survived the train cap).
    digits = load_digits()
    nines = {np.rint(img * 255 / 16).astype(np.uint8).tobytes() for img in digits.images[digits.target == 9]}
    assert all(row.numpy().tobytes() in nines for row in images[labels == 0])
    # the cap dropped train rows only: 20 nines in train, val and test keep their stratified shares
    kept = sum(manifest["splits"][s]["class_counts"][0] for s in ("train", "val", "test"))
    assert (labels == 0).sum().item() == kept == 20 + sum(manifest["splits"][s]["class_counts"][0] for s in ("val", "test"))
    assert kept < DIGIT_COUNTS[9]


def test_same_seed_gives_byte_identical_output(tmp_path: Path) -> None:
    spec = DatasetSpec("digits", classes=[0, 1, 2, 3, 4])
    runs = {name: tmp_path / name for name in ("a", "b", "other_seed")}
    prepare_dataset(spec, runs["a"], seed=7)
    prepare_dataset(spec, runs["b"], seed=7)
    prepare_dataset(spec, runs["other_seed"], seed=8)
    files = sorted(p.name for p in runs["a"].iterdir())
    assert files == sorted(p.name for p in runs["b"].iterdir())
    for name in files:
        assert (runs["a"] / name).read_bytes() == (runs["b"] / name).read_bytes(), name
    assert (runs["a"] / "test-00000-of-00001.parquet").read_bytes() != (
        runs["other_seed"] / "test-00000-of-00001.parquet"
    ).read_bytes()


def test_rerun_with_fewer_shards_removes_stale_ones(tmp_path: Path) -> None:
    spec = DatasetSpec("digits", classes=[0, 1])
    manifest = prepare_dataset(spec, tmp_path, seed=0, shard_rows=50)
    train_shards = -(-manifest["splits"]["train"]["count"] // 50)  # ceil: 50 rows a shard
    assert sorted(p.name for p in tmp_path.glob("train-*.parquet")) == [
        f"train-{i:05d}-of-{train_shards:05d}.parquet" for i in range(train_shards)] and train_shards > 1
    prepare_dataset(spec, tmp_path, seed=0)
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "val-00000-of-00001.parquet"
    ]


def test_verify_catches_a_corrupted_shard(tmp_path: Path) -> None:
    prepare_dataset(DatasetSpec("digits", classes=[0, 1]), tmp_path, seed=0)
    shard = tmp_path / "val-00000-of-00001.parquet"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(LmnasError, match="val-00000-of-00001.parquet is corrupted"):
        load_split(tmp_path, "val", verify=True)
    images, labels = load_split(tmp_path, "train", verify=True)  # untouched shards still pass
    assert torch.bincount(labels).tolist() == read_manifest(tmp_path)["splits"]["train"]["class_counts"]
    assert images.shape == (len(labels), 1, 8, 8)


def test_missing_manifest_and_unknown_split(tmp_path: Path, digits_dir: Path) -> None:
    with pytest.raises(LmnasError, match=f"make it with `snakemake --cores 1 data/prepared/{tmp_path.name}`"):
        load_split(tmp_path, "train")  # the command that works (`snakemake prepare_data` has a wildcard output)
    with pytest.raises(LmnasError, match="split 'dev' not in .*known: \\['test', 'train', 'val'\\]"):
        load_split(digits_dir, "dev")


def test_spec_validation_names_the_field() -> None:
    with pytest.raises(LmnasError, match="dataset.val_fraction"):
        DatasetSpec("digits", val_fraction=1.5)
    with pytest.raises(LmnasError, match="dataset.max_per_split"):
        DatasetSpec("digits", max_per_split={"dev": 10})
    with pytest.raises(LmnasError, match="unknown field\\(s\\) \\['clases'\\]"):
        DatasetSpec.from_dict({"source": "digits", "clases": [0, 1]})
    with pytest.raises(LmnasError, match="dataset.classes \\[10\\]"):
        prepare_dataset(DatasetSpec("digits", classes=[0, 10]), Path("/nonexistent-never-written"), seed=0)
    assert DatasetSpec.from_dict({"source": "digits", "classes": [5, 6]}).classes == [5, 6]


def test_registry_lists_the_sources() -> None:
    assert DATASET_SOURCES.names() == ["cifar10", "cifar100", "digits", "hf", "imagenet"]
    with pytest.raises(LmnasError, match="unknown dataset source 'mnist'"):
        load_source(DatasetSpec("mnist"), seed=0)


# --------------------------------------------------------------------------- sampling helpers


def test_stratified_take_and_balanced_subset() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 3 + [3] * 1)
    rng = np.random.default_rng(0)
    picked = stratified_take(labels, 21, rng)
    assert len(picked) == 21 and len(set(picked.tolist())) == 21
    counts = np.bincount(labels[picked], minlength=4)
    assert np.all(np.abs(counts - np.bincount(labels) * 21 / len(labels)) < 1.0)
    subset = balanced_subset(labels, 0.25, rng)  # round(0.25 * 84 / 4) = 5 per class, capped at what a class has
    assert np.bincount(labels[subset]).tolist() == [5, 5, 3, 1]
    assert len(balanced_subset(labels, 1.0, rng)) == len(labels)


# --------------------------------------------------------------------------- CIFAR from native pickles


def _cifar_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _write_batch(path: Path, images: np.ndarray, **label_lists: list[int]) -> None:
    """One batch in CIFAR's pickle format: data rows are CHW bytes (3072 per image) + label lists."""
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"data": data, **label_lists}))


def _write_tiny_cifar10(root: Path, per_batch: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    train = []
    for b in range(1, 6):
        images = _cifar_images(rng, per_batch)
        labels = [(b * per_batch + i) % 10 for i in range(per_batch)]
        _write_batch(folder / f"data_batch_{b}", images, labels=labels)
        train.append(images)
    test = _cifar_images(rng, 10)
    _write_batch(folder / "test_batch", test, labels=list(range(10)))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return np.concatenate(train), test


def test_cifar10_reads_native_batches(tmp_path: Path) -> None:
    train, test = _write_tiny_cifar10(tmp_path)
    data = load_source(DatasetSpec("cifar10", root=str(tmp_path), verify=False), seed=0)
    assert data.images.shape == (40, 32, 32, 3) and data.images.dtype == np.uint8
    assert np.array_equal(data.images[:30], train) and np.array_equal(data.images[30:], test)
    assert data.labels.dtype == np.int64 and data.labels[30:].tolist() == list(range(10))
    assert data.official_split.tolist() == ["train"] * 30 + ["test"] * 10
    assert data.class_names[0] == "airplane" and len(data.class_names) == 10
    # Pointing root at the extracted folder itself works too.
    again = load_source(DatasetSpec("cifar10", root=str(tmp_path / "cifar-10-batches-py"), verify=False), seed=0)
    assert np.array_equal(again.images, data.images)


def test_cifar10_prepare_keeps_the_official_test_split(tmp_path: Path) -> None:
    _, test = _write_tiny_cifar10(tmp_path / "raw")
    spec = DatasetSpec("cifar10", root=str(tmp_path / "raw"), verify=False, val_fraction=0.2, image_size=16)
    manifest = prepare_dataset(spec, tmp_path / "prepared", seed=1)
    counts = {name: split["count"] for name, split in manifest["splits"].items()}
    assert counts == {"train": 24, "val": 6, "test": 10}
    assert manifest["image_shape"] == [3, 16, 16]
    images, labels = load_split(tmp_path / "prepared", "test")
    assert images.shape == (10, 3, 16, 16)
    assert sorted(labels.tolist()) == list(range(10))


def test_cifar10_md5_check_and_missing_root(tmp_path: Path) -> None:
    _write_tiny_cifar10(tmp_path)
    with pytest.raises(LmnasError, match="md5 check.*verify: false"):
        load_source(DatasetSpec("cifar10", root=str(tmp_path), verify=True), seed=0)
    missing = tmp_path / "nowhere"
    with pytest.raises(LmnasError, match=f"not found under {missing}.*download: true.*point root at"):
        load_source(DatasetSpec("cifar10", root=str(missing)), seed=0)
    with pytest.raises(LmnasError, match="needs `root`"):
        load_source(DatasetSpec("cifar100"), seed=0)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train, test = _cifar_images(rng, 8), _cifar_images(rng, 4)
    _write_batch(folder / "train", train, fine_labels=[99, 0, 5, 7, 99, 0, 5, 7], coarse_labels=[1] * 8)
    _write_batch(folder / "test", test, fine_labels=[0, 5, 7, 99], coarse_labels=[2] * 4)
    fine_names = [f"class{i:02d}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": fine_names, "coarse_label_names": ["x"] * 20}))
    data = load_source(DatasetSpec("cifar100", root=str(tmp_path), verify=False), seed=0)
    assert data.labels.tolist() == [99, 0, 5, 7, 99, 0, 5, 7, 0, 5, 7, 99]
    assert data.class_names == fine_names
    assert np.array_equal(data.images[8:], test)
    manifest = prepare_dataset(
        DatasetSpec("cifar100", root=str(tmp_path), verify=False, classes=[99, 7], val_fraction=0.5),
        tmp_path / "prepared",
        seed=0,
    )
    assert manifest["class_names"] == ["class99", "class07"]
    assert {k: s["class_counts"] for k, s in manifest["splits"].items()} == {
        "train": [1, 1], "val": [1, 1], "test": [1, 1]
    }


# --------------------------------------------------------------------------- ImageNet folders

WNIDS = ["n01440764", "n01443537", "n01484850"]
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def _write_imagenet(root: Path, train_per_class: int = 4, val_per_class: int = 2) -> None:
    for part, per_class in (("train", train_per_class), ("val", val_per_class)):
        for wnid, colour in zip(WNIDS, COLOURS):
            for i in range(per_class):
                path = root / part / wnid / f"{wnid}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20 + 4 * i, 12), colour).save(path)  # various sizes, one colour per class


def test_imagenet_folders_resize_and_split(tmp_path: Path) -> None:
    _write_imagenet(tmp_path)
    data = load_source(DatasetSpec("imagenet", root=str(tmp_path), image_size=8), seed=0)
    assert len(data.labels) == 18 and data.class_names == WNIDS
    assert data.official_split.tolist() == ["train"] * 12 + ["test"] * 6
    manifest = prepare_dataset(DatasetSpec("imagenet", root=str(tmp_path), image_size=8), tmp_path / "out", seed=0)
    assert manifest["storage"] == "encoded" and manifest["format"] == "png" and manifest["image_shape"] == [3, 8, 8]
    assert manifest["splits"]["test"]["class_counts"] == [2, 2, 2]
    # The resident path decodes at image_shape (shorter side → 8, central crop): solid colours survive.
    images, labels = load_split(tmp_path / "out", "train", verify=True)
    assert images.shape == (manifest["splits"]["train"]["count"], 3, 8, 8)
    for image, label in zip(images, labels):
        assert np.all(image.permute(1, 2, 0).numpy() == np.array(COLOURS[label], dtype=np.uint8))
    # Pure red/green/blue images: channel c's train mean is the share of class c in train.
    train = manifest["splits"]["train"]
    assert manifest["mean"] == pytest.approx([n / train["count"] for n in train["class_counts"]], abs=1e-6)


def test_imagenet_balanced_subset_and_max_classes(tmp_path: Path) -> None:
    _write_imagenet(tmp_path, train_per_class=6, val_per_class=4)
    spec = DatasetSpec("imagenet", root=str(tmp_path), image_size=8, subset_fraction=0.5, max_classes=2)
    data = load_source(spec, seed=0)
    train = data.official_split == "train"
    assert np.bincount(data.labels[train]).tolist() == [3, 3]
    assert np.bincount(data.labels[~train]).tolist() == [2, 2]
    assert data.class_names == WNIDS[:2]
    other = load_source(spec, seed=1)
    assert np.array_equal(np.bincount(other.labels), np.bincount(data.labels))


def test_imagenet_missing_folders_are_named(tmp_path: Path) -> None:
    _write_imagenet(tmp_path)
    for wnid in WNIDS:
        for path in (tmp_path / "val" / wnid).iterdir():
            path.unlink()
        (tmp_path / "val" / wnid).rmdir()
    (tmp_path / "val").rmdir()
    with pytest.raises(LmnasError, match=f"ImageNet folders not found: {tmp_path / 'val'}"):
        load_source(DatasetSpec("imagenet", root=str(tmp_path)), seed=0)
