"""Encoded-image shards: ImageFolder and Hugging Face sources → JPEG/PNG bytes in Parquet, shard by shard."""

from __future__ import annotations

import hashlib
import io
import shutil
from contextlib import contextmanager
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lmnas.data import (
    DatasetSpec,
    decode_image,
    load_split,
    open_encoded_split,
    prepare_dataset,
    read_encoded_shard,
    read_manifest,
)
from lmnas.data import prepare as prepare_module
from lmnas.errors import LmnasError

WNIDS = ["n01440764", "n01443537"]


def _jpeg(rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    """A small photo-like JPEG: a gradient plus noise (width, height = size)."""
    width, height = size
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    pixels = np.clip(ramp + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageNet-style tree of 40 tiny JPEGs: 2 classes x (14 train + 6 val), sizes 40..61 x 30."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for part, per_class in (("train", 14), ("val", 6)):
        for wnid in WNIDS:
            (root / part / wnid).mkdir(parents=True)
            for i in range(per_class):
                (root / part / wnid / f"{wnid}_{i}.JPEG").write_bytes(_jpeg(rng, (40 + i, 30)))
    return root


def _source_files(root: Path) -> dict[str, int]:
    """sha256 of every source file → its class index."""
    return {
        hashlib.sha256(path.read_bytes()).hexdigest(): WNIDS.index(path.parent.name)
        for path in root.rglob("*.JPEG")
    }


def _all_rows(out: Path) -> list[tuple[bytes, int]]:
    rows = []
    for split in ("train", "val", "test"):
        for shard in open_encoded_split(out, split, verify=True):
            images, labels = read_encoded_shard(shard.path)
            assert len(images) == shard.rows
            rows.extend(zip(images, labels.tolist()))
    return rows


def test_source_mode_stores_the_files_byte_for_byte(folder: Path, tmp_path: Path) -> None:
    manifest = prepare_dataset(DatasetSpec("imagenet", root=str(folder), image_size=16), tmp_path / "out", seed=0, shard_rows=7)
    assert manifest["storage"] == "encoded" and manifest["format"] == "jpeg"
    assert manifest["image_shape"] == [3, 16, 16] and manifest["spec"]["encode"]["format"] == "source"
    assert {s: manifest["splits"][s]["count"] for s in ("train", "val", "test")} == {"train": 25, "val": 3, "test": 12}
    assert len(manifest["splits"]["train"]["files"]) == 4  # 25 rows at 7 per shard
    rows = _all_rows(tmp_path / "out")
    expected = _source_files(folder)
    assert sorted(hashlib.sha256(b).hexdigest() for b, _ in rows) == sorted(expected)
    assert all(expected[hashlib.sha256(b).hexdigest()] == label for b, label in rows)  # labels stay with files
    for entry in manifest["splits"]["train"]["files"]:  # checksums as for raw shards
        assert hashlib.sha256((tmp_path / "out" / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    assert 0.0 < min(manifest["std"]) and 0.2 < manifest["mean"][0] < 0.8 and manifest["stats_sample"] == 25


def test_reencode_respects_the_shorter_side_and_workers_agree(folder: Path, tmp_path: Path) -> None:
    spec = DatasetSpec("imagenet", root=str(folder), image_size=16, encode={"format": "jpeg", "shorter_side": 20, "quality": 80})
    one = prepare_dataset(spec, tmp_path / "one", seed=0)
    two = prepare_dataset(spec, tmp_path / "two", seed=0, workers=2)
    for split in ("train", "val", "test"):  # the pool changes nothing but the speed
        assert [f["sha256"] for f in one["splits"][split]["files"]] == [f["sha256"] for f in two["splits"][split]["files"]]
    assert one["mean"] == two["mean"] and one["std"] == two["std"]
    for image, _label in _all_rows(tmp_path / "one"):
        picture = Image.open(io.BytesIO(image))
        assert picture.format == "JPEG" and min(picture.size) == 20 and picture.size[0] > picture.size[1]
    images, _labels = load_split(tmp_path / "one", "test")
    assert images.shape == (12, 3, 16, 16)


def test_source_mode_keeps_small_images_and_converts_other_formats(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for part in ("train", "val"):
        for k, wnid in enumerate(WNIDS):
            (root / part / wnid).mkdir(parents=True)
            Image.new("RGB", (12, 10), (200 * k, 50, 0)).save(root / part / wnid / "a.bmp")  # neither JPEG nor PNG
            Image.new("RGB", (12, 10), (200 * k, 50, 0)).save(root / part / wnid / "b.png")
    manifest = prepare_dataset(
        DatasetSpec("imagenet", root=str(root), image_size=8, val_fraction=0.5, encode={"shorter_side": 64}), tmp_path / "out", seed=0
    )
    kinds = sorted(Image.open(io.BytesIO(b)).format for b, _ in _all_rows(tmp_path / "out"))
    assert kinds == ["JPEG"] * 4 + ["PNG"] * 4 and manifest["format"] == "mixed"
    originals = {(root / p / w / "b.png").read_bytes() for p in ("train", "val") for w in WNIDS}
    assert originals <= {b for b, _ in _all_rows(tmp_path / "out")}  # below shorter_side: untouched


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_holds_at_most_two_row_groups(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Files are fetched a row group at a time, and written before more than two groups are held
    (one being written, one being encoded by the pool), whatever the shard or dataset size."""
    monkeypatch.setattr(prepare_module, "ENCODED_ROW_GROUP", 3)
    events: list[tuple[str, int]] = []
    real_writer = prepare_module._encoded_shard_writer

    @contextmanager
    def writer(path: Path):
        with real_writer(path) as write:

            def counted(images: list[bytes], labels: np.ndarray) -> None:
                events.append(("write", len(images)))
                write(images, labels)

            yield counted

    monkeypatch.setattr(prepare_module, "_encoded_shard_writer", writer)
    real_load = prepare_module.load_source

    def load(spec: DatasetSpec, seed: int):
        data = real_load(spec, seed)
        real_fetch = data.fetch

        def fetch(rows: np.ndarray) -> list[bytes]:
            events.append(("fetch", len(rows)))
            return real_fetch(rows)

        return data._replace(fetch=fetch)

    monkeypatch.setattr(prepare_module, "load_source", load)
    out = tmp_path / "out"
    manifest = prepare_dataset(DatasetSpec("imagenet", root=str(folder), image_size=16), out, seed=0, shard_rows=7, workers=workers)
    held, most = 0, 0
    for kind, rows in events:
        held += rows if kind == "fetch" else -rows
        most = max(most, held)
    assert all(rows <= 3 for _, rows in events) and held == 0
    assert most <= 3 * (2 if workers > 1 else 1)
    # 25 train rows at 7 per shard → shards of 7, 7, 7, 4 rows; row groups of 3 never span a shard
    groups = [pq.ParquetFile(out / f["name"]).metadata.num_row_groups for f in manifest["splits"]["train"]["files"]]
    assert groups == [3, 3, 3, 2] and [f["rows"] for f in manifest["splits"]["train"]["files"]] == [7, 7, 7, 4]
    assert sorted(hashlib.sha256(b).hexdigest() for b, _ in _all_rows(out)) == sorted(_source_files(folder))


def test_hf_source_copies_the_stored_bytes_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    files = [_jpeg(rng, (24 + i % 5, 20)) for i in range(30)]
    labels = [i % 3 for i in range(30)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    rows = {"image": [{"bytes": b, "path": None} for b in files], "label": labels}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(tmp_path / "hf"))

    def no_decode(*args, **kwargs):
        raise AssertionError("the hf source decoded an image")

    monkeypatch.setattr(datasets.Image, "decode_example", no_decode)
    spec = DatasetSpec("hf", root=str(tmp_path / "hf"), image_size=16, hf={"splits": {"train": "train"}})
    manifest = prepare_dataset(spec, tmp_path / "out", seed=0)
    assert manifest["storage"] == "encoded" and manifest["format"] == "jpeg"
    stored = _all_rows(tmp_path / "out")
    assert sorted(b for b, _ in stored) == sorted(files)
    by_bytes = dict(zip(files, labels))
    assert all(by_bytes[b] == label for b, label in stored)


def test_prepared_encoded_folder_is_a_plain_parquet_dataset(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    manifest = prepare_dataset(DatasetSpec("imagenet", root=str(folder), image_size=16), out, seed=0)
    loaded = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].num_rows == manifest["splits"]["train"]["count"]
    row = loaded["test"][0]
    assert decode_image(row["image"]).mode == "RGB" and row["label"] in (0, 1)
    first = pq.ParquetFile(out / manifest["splits"]["test"]["files"][0]["name"])
    assert str(first.schema_arrow.field("image").type) == "binary"


def test_encode_errors_name_the_field(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(LmnasError, match=r"dataset.encode.format must be one of \('source', 'jpeg'\)"):
        DatasetSpec("imagenet", root=str(folder), encode={"format": "webp"})
    with pytest.raises(LmnasError, match=r"dataset.encode: unknown field\(s\) \['side'\]"):
        DatasetSpec("imagenet", root=str(folder), encode={"side": 3})
    with pytest.raises(LmnasError, match=r"dataset.encode is only read by the encoded sources"):
        DatasetSpec("digits", encode={"format": "jpeg"})
    prepare_dataset(DatasetSpec("digits", max_per_split={"train": 20, "val": 5, "test": 5}), tmp_path / "raw", seed=0)
    assert read_manifest(tmp_path / "raw")["storage"] == "raw"
    with pytest.raises(LmnasError, match="stores raw pixels, not encoded images"):
        open_encoded_split(tmp_path / "raw", "train")


def test_compact_listing_matches_torchvision_imagefolder(folder: Path, tmp_path: Path) -> None:
    """Same classes, files, labels and order as ImageFolder (nested folders, other extensions, case)."""
    from torchvision.datasets import ImageFolder

    from lmnas.data.sources import list_image_folder

    root = tmp_path / "tree"
    shutil.copytree(folder, root)
    (root / "train" / WNIDS[1] / "deeper" / "z").mkdir(parents=True)
    (root / "train" / WNIDS[1] / "deeper" / "z" / "x.jpg").write_bytes(b"not decoded here")
    (root / "train" / WNIDS[1] / "deeper" / "A.PNG").write_bytes(b"nor here")
    (root / "train" / WNIDS[0] / "notes.txt").write_text("skipped: not an image extension")
    reference = ImageFolder(str(root / "train"))
    classes, paths, labels = list_image_folder(root, "train")
    assert classes == reference.classes
    assert [str(root / p.decode()) for p in paths] == [path for path, _ in reference.samples]
    assert labels.tolist() == reference.targets and paths.dtype.kind == "S"
    (root / "train" / "n09999999").mkdir()
    with pytest.raises(LmnasError, match="n09999999"):
        list_image_folder(root, "train")
