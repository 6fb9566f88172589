"""source: hf, offline, on tiny datasets written in the Hub's on-disk formats.

Two formats: a `save_to_disk` folder (Arrow + dataset_dict.json) and the Hub's Parquet
shards (`<config>/<split>-0000K-of-0000N.parquet`, image column a {bytes, path} struct).
"""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lmnas.data import DatasetSpec, decode_image, load_split, load_source, prepare_dataset, read_manifest
from lmnas.data.sources import EncodedSource
from lmnas.errors import LmnasError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = {"train": 12, "test": 4}  # 120 train + 40 test rows, CIFAR-10's class mix


def _images(split: str, size: tuple[int, int] = (32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, 3] images whose pixels are unique per row, labels in class order repeated."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = np.tile(np.arange(len(CLASSES)), PER_CLASS[split])
    images = rng.integers(0, 256, size=(len(labels), size[1], size[0], 3), dtype=np.uint8)
    return images, labels


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")  # lossless: decoded pixels equal the array
    return buffer.getvalue()


def _features() -> datasets.Features:
    return datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})


@pytest.fixture(scope="module")
def saved_to_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uoft-cs/cifar10's schema (img, label) saved with DatasetDict.save_to_disk."""
    splits = {}
    for split in PER_CLASS:
        images, labels = _images(split)
        rows = {"img": [Image.fromarray(a) for a in images], "label": labels.tolist()}
        splits[split] = datasets.Dataset.from_dict(rows, features=_features())
    root = tmp_path_factory.mktemp("hf") / "cifar-disk"
    datasets.DatasetDict(splits).save_to_disk(str(root))
    return root


@pytest.fixture(scope="module")
def hub_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hub's Parquet layout: plain_text/{train,test}-0000K-of-0000N.parquet with the Hub's metadata."""
    root = tmp_path_factory.mktemp("hf") / "cifar-parquet"
    (root / "plain_text").mkdir(parents=True)
    for split, shards in (("train", 2), ("test", 1)):
        images, labels = _images(split)
        rows = {"img": [{"bytes": _png(a), "path": None} for a in images], "label": labels.tolist()}
        ds = datasets.Dataset.from_dict(rows, features=_features())
        for k in range(shards):
            ds.shard(shards, k, contiguous=True).to_parquet(str(root / "plain_text" / f"{split}-{k:05d}-of-{shards:05d}.parquet"))
    return root


def _spec(root: Path, **fields) -> DatasetSpec:
    hf = {"image_column": "img", "cache_dir": str(root.parent / "cache"), **fields.pop("hf", {})}
    return DatasetSpec("hf", root=str(root), hf=hf, **fields)


def _decoded(data: EncodedSource) -> np.ndarray:
    """Every row's stored file, decoded: uint8 [N, H, W, 3] (the source itself never decodes)."""
    return np.stack([np.asarray(decode_image(b)) for b in data.fetch(np.arange(len(data.labels)))])


def _row_set(images: np.ndarray) -> list[bytes]:
    return sorted(np.ascontiguousarray(row).tobytes() for row in images)


@pytest.mark.parametrize("fixture", ["saved_to_disk", "hub_parquet"])
def test_hf_local_copy_reads_every_row_exactly(fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    data = load_source(_spec(root), seed=0)
    assert data.class_names == CLASSES
    decoded = _decoded(data)
    assert decoded.dtype == np.uint8 and decoded.shape == (160, 32, 32, 3)
    for split in PER_CLASS:
        images, labels = _images(split)
        rows = data.official_split == split
        assert _row_set(decoded[rows]) == _row_set(images)
        assert np.bincount(data.labels[rows]).tolist() == np.bincount(labels).tolist()
        # Each decoded image sits next to its own label.
        by_bytes = {a.tobytes(): int(lab) for a, lab in zip(images, labels)}
        assert all(by_bytes[a.tobytes()] == lab for a, lab in zip(decoded[rows], data.labels[rows]))


def test_hf_prepare_writes_the_usual_shards_and_manifest(hub_parquet: Path, tmp_path: Path) -> None:
    manifest = prepare_dataset(_spec(hub_parquet, val_fraction=0.25), tmp_path / "out", seed=0)
    splits = manifest["splits"]
    assert manifest["source"] == "hf" and manifest["spec"]["hf"]["image_column"] == "img"
    assert {s: splits[s]["count"] for s in splits} == {"train": 90, "val": 30, "test": 40}
    assert splits["val"]["class_counts"] == [3] * 10 and splits["test"]["class_counts"] == [4] * 10
    assert manifest["image_shape"] == [3, 32, 32] and manifest["class_names"] == CLASSES
    images, labels = load_split(tmp_path / "out", "test", verify=True)
    assert images.shape == (40, 3, 32, 32)
    assert _row_set(images.permute(0, 2, 3, 1).numpy()) == _row_set(_images("test")[0])


def test_hf_same_seed_same_bytes_from_both_formats(saved_to_disk: Path, hub_parquet: Path, tmp_path: Path) -> None:
    a = prepare_dataset(_spec(saved_to_disk), tmp_path / "a", seed=3)
    b = prepare_dataset(_spec(hub_parquet), tmp_path / "b", seed=3)
    for split in ("train", "val", "test"):
        assert [f["sha256"] for f in a["splits"][split]["files"]] == [f["sha256"] for f in b["splits"][split]["files"]]


def test_prepared_shards_load_with_datasets_parquet(hub_parquet: Path, tmp_path: Path) -> None:
    """README promise: the prepared folder is a plain `datasets` Parquet dataset."""
    out = tmp_path / "prepared"
    manifest = prepare_dataset(_spec(hub_parquet), out, seed=0, shard_rows=50)
    loaded = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["test", "train", "validation"]
    for ours, theirs in (("train", "train"), ("val", "validation"), ("test", "test")):
        assert loaded[theirs].num_rows == manifest["splits"][ours]["count"]
    channels, height, width = manifest["image_shape"]
    row = loaded["test"][0]
    assert manifest["storage"] == "encoded" and manifest["format"] == "png"
    image = np.asarray(decode_image(row["image"]))  # the image column holds the source's PNG files
    assert image.shape == (height, width, channels)
    tensors, labels = load_split(out, "test")
    assert np.array_equal(image, tensors[0].permute(1, 2, 0).numpy()) and row["label"] == int(labels[0])


def test_hf_plain_pyarrow_struct_images_and_integer_labels(tmp_path: Path) -> None:
    """Parquet without the Hub's feature metadata: image a bare {bytes, path} struct, label int64."""
    images, labels = _images("train", size=(40, 36))
    struct = pa.array([{"bytes": _png(a), "path": f"{i}.png"} for i, a in enumerate(images)],
                      type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"image": struct, "label": pa.array(labels, pa.int64())}),
                   tmp_path / "data" / "train-00000-of-00001.parquet")
    spec = DatasetSpec("hf", root=str(tmp_path), image_size=16, hf={"splits": {"train": "train"}, "cache_dir": str(tmp_path / "c")})
    data = load_source(spec, seed=0)
    assert data.class_names == [str(i) for i in range(10)] and data.official_split is None
    assert _decoded(data).shape == (120, 36, 40, 3)  # stored at the source's own size
    manifest = prepare_dataset(spec, tmp_path / "out", seed=0)
    images, _labels = load_split(tmp_path / "out", "train")
    assert manifest["image_shape"] == [3, 16, 16] and images.shape[1:] == (3, 16, 16)  # shorter side 36 → 16, crop


def test_hf_balanced_subset_and_max_classes(saved_to_disk: Path) -> None:
    data = load_source(_spec(saved_to_disk, subset_fraction=0.5, max_classes=4), seed=0)
    assert data.class_names == CLASSES[:4]
    train, test = data.official_split == "train", data.official_split == "test"
    # round(0.5 * 120 / 10) = 6 per class in train, round(0.5 * 40 / 10) = 2 in test.
    assert np.bincount(data.labels[train]).tolist() == [6] * 4
    assert np.bincount(data.labels[test]).tolist() == [2] * 4


@pytest.mark.parametrize("fixture", ["saved_to_disk", "hub_parquet"])
def test_hf_streaming_takes_a_balanced_subset(fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    spec = _spec(root, subset_fraction=0.5, max_classes=5, hf={"streaming": True, "shuffle_buffer": 16})
    data = load_source(spec, seed=0)
    train = data.official_split == "train"
    assert np.bincount(data.labels[train]).tolist() == [6] * 5
    assert np.bincount(data.labels[~train]).tolist() == [2] * 5
    all_train = _row_set(_images("train")[0])
    decoded = _decoded(data)
    assert set(_row_set(decoded[train])) <= set(all_train)  # real rows, copied exactly
    again = load_source(spec, seed=0)
    assert np.array_equal(_decoded(again), decoded)  # the seeded shuffle is reproducible


def test_hf_errors_name_the_field(saved_to_disk: Path, tmp_path: Path) -> None:
    with pytest.raises(LmnasError, match=r"hf.image_column: column 'image' not in split 'train'; columns: \['img', 'label'\]"):
        load_source(DatasetSpec("hf", root=str(saved_to_disk)), seed=0)
    with pytest.raises(LmnasError, match=r"hf split 'validation' not in .*; it holds \['test', 'train'\]"):
        load_source(_spec(saved_to_disk, hf={"splits": {"train": "train", "test": "validation"}}), seed=0)
    with pytest.raises(LmnasError, match="hf dataset root not found"):
        load_source(_spec(tmp_path / "nowhere"), seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LmnasError, match=r"no Parquet shards of split 'train'"):
        load_source(_spec(tmp_path / "empty"), seed=0)
    with pytest.raises(LmnasError, match="needs hf.path"):
        load_source(DatasetSpec("hf"), seed=0)
    with pytest.raises(LmnasError, match=r"unknown field\(s\) \['colum'\]"):
        DatasetSpec("hf", hf={"colum": "x"})
    with pytest.raises(LmnasError, match="dataset.hf is only read by source: hf"):
        DatasetSpec("digits", hf={"path": "x"})


def test_hf_unlabelled_split_is_refused(tmp_path: Path) -> None:
    """ImageNet-1k's Hub test split has label -1 everywhere."""
    images, _labels = _images("test")
    ds = datasets.Dataset.from_dict(
        {"img": [Image.fromarray(a) for a in images], "label": [-1] * len(images)}, features=_features()
    )
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "unlabelled"))
    with pytest.raises(LmnasError, match="unlabelled rows .* map hf.splits.test to a labelled split such as validation"):
        load_source(_spec(tmp_path / "unlabelled"), seed=0)
