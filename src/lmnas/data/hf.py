"""Hugging Face `datasets` as a prepare_data source (`source: hf`).

Where the rows come from, in order of preference on an offline compute node:
    root = a `save_to_disk` folder         (dataset_dict.json / state.json inside)
    root = a folder of the Hub's Parquet   (e.g. `huggingface-cli download uoft-cs/cifar10 --repo-type dataset`:
           shards                            plain_text/train-00000-of-00001.parquet, image struct {bytes, path})
    hf.path = a Hub id                     (uoft-cs/cifar10, ILSVRC/imagenet-1k; cache in hf.cache_dir;
                                             HF_HUB_OFFLINE=1 reuses a filled cache without network)
Class limiting and the class-balanced subset are chosen from the label column before any
image is decoded. `streaming: true` reads rows one by one (an ImageNet-1k subset without
downloading the 150 GB of shards first) and stops as soon as every class has its quota.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from lmnas.data.sources import DATASET_SOURCES, SourceData, _limit_classes, balanced_subset
from lmnas.errors import LmnasError

# Rows decoded per Arrow batch: bounds memory, keeps the per-batch overhead negligible.
_DECODE_BATCH = 512
OFFICIAL_SPLITS = ("train", "test")


@dataclass
class HfSpec:
    """`datasets.<name>.hf` in the config: which Hub dataset, which splits and columns."""

    path: str | None = None  # Hub id (uoft-cs/cifar10); unused when the dataset's root is a local copy
    name: str | None = None  # Hub config name (e.g. plain_text); with a local Parquet root, a subfolder
    revision: str | None = None  # Hub branch, tag or commit: pin it for reproducible runs
    # lmnas's official split → the dataset's split name; no test entry: test is carved from train.
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    image_column: str = "image"
    label_column: str = "label"
    cache_dir: str | None = None  # `datasets` cache; None: its default (~/.cache/huggingface/datasets)
    streaming: bool = False
    shuffle_buffer: int = 10_000  # streaming: rows in the shuffle buffer before the balanced subset is taken

    def __post_init__(self) -> None:
        unknown = sorted(set(self.splits) - set(OFFICIAL_SPLITS))
        if unknown or "train" not in self.splits:
            raise LmnasError(
                f"dataset.hf.splits must map 'train' (and optionally 'test') to split names, got {self.splits}"
            )
        self.splits = {k: str(v) for k, v in self.splits.items() if v is not None}
        if self.shuffle_buffer < 1:
            raise LmnasError(f"dataset.hf.shuffle_buffer must be >= 1, got {self.shuffle_buffer}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | HfSpec, where: str = "dataset.hf") -> HfSpec:
        if isinstance(data, HfSpec):
            return data
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LmnasError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


@DATASET_SOURCES.register("hf")
def load_hf_source(
    *,
    root: Path | None,
    download: bool,
    verify: bool,
    image_size: int | None,
    subset_fraction: float,
    max_classes: int | None,
    seed: int,
    hf: HfSpec | Mapping[str, Any] | None = None,
) -> SourceData:
    """A Hugging Face dataset (Hub id or a local copy); `download`/`verify` are unused."""
    spec = HfSpec.from_dict(hf or {})
    if root is None and spec.path is None:
        raise LmnasError("dataset source 'hf' needs hf.path (a Hub id such as uoft-cs/cifar10) or root (a local copy)")
    rng = np.random.default_rng(seed)
    images, labels, split, class_names = [], [], [], None
    for official, split_name in spec.splits.items():
        ds, rows = _open(spec, root, split_name)
        names = _class_names(ds, spec, split_name)
        if class_names is not None and names is not None and names != class_names:
            raise LmnasError(f"hf splits {list(spec.splits.values())} have different class names in {spec.label_column!r}")
        class_names = names if names is not None else class_names
        args = (ds, spec, split_name, class_names, image_size, subset_fraction, max_classes, rng)
        if spec.streaming:
            part_images, part_labels, names = _read_streaming(*args, total=rows)
        else:
            part_images, part_labels, names = _read_in_memory(*args)
        class_names = class_names or names
        images.append(part_images)
        labels.append(part_labels)
        split.append(np.full(len(part_labels), official))
    labels_all = np.concatenate(labels)
    num_classes = _limit_classes(len(class_names), max_classes)
    shapes = {im.shape[1:] for im in images if len(im)}
    if len(shapes) > 1:
        raise LmnasError(f"hf splits decode to different image shapes {sorted(shapes)}; set image_size")
    official = np.concatenate(split) if "test" in spec.splits else None
    return SourceData(np.concatenate(images), labels_all, class_names[:num_classes], official)


# --------------------------------------------------------------------------- opening


def _open(spec: HfSpec, root: Path | None, split: str) -> tuple[Any, int | None]:
    """One split as a `datasets.Dataset` (or IterableDataset when streaming) and its row count if known."""
    import datasets

    cache_dir = str(Path(spec.cache_dir).expanduser()) if spec.cache_dir else None
    if root is None:
        try:
            ds = datasets.load_dataset(
                spec.path, spec.name, split=split, revision=spec.revision, cache_dir=cache_dir, streaming=spec.streaming
            )
        except (ValueError, FileNotFoundError, ConnectionError) as err:
            raise LmnasError(f"hf dataset {spec.path!r} split {split!r} could not be loaded: {err}") from err
        return ds, _split_rows(ds, split)  # the Hub card's split sizes
    if not root.is_dir():
        raise LmnasError(f"hf dataset root not found: {root} (a save_to_disk folder or a folder of Parquet shards)")
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        return _from_disk(root, split, spec.streaming)
    files = _parquet_shards(root / spec.name if spec.name and (root / spec.name).is_dir() else root, split)
    ds = datasets.load_dataset(
        "parquet", data_files={split: [str(f) for f in files]}, split=split, cache_dir=cache_dir, streaming=spec.streaming
    )
    return ds, sum(pq.ParquetFile(f).metadata.num_rows for f in files)  # footers only: no rows read


def _from_disk(root: Path, split: str, streaming: bool) -> tuple[Any, int]:
    import datasets

    loaded = datasets.load_from_disk(str(root))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise LmnasError(f"hf split {split!r} not in {root}; it holds {sorted(loaded)} (set hf.splits)")
        loaded = loaded[split]
    elif split != "train":
        raise LmnasError(f"{root} holds a single Dataset, not a DatasetDict: it can only be hf.splits.train")
    return (loaded.to_iterable_dataset() if streaming else loaded), loaded.num_rows


def _parquet_shards(folder: Path, split: str) -> list[Path]:
    """The Hub's shard names: <split>-00000-of-00003.parquet, or <split>/0000.parquet (parquet-converter)."""
    shards = sorted(
        p for p in folder.rglob("*.parquet") if p.name.startswith(f"{split}-") or p.parent.name == split
    )
    if not shards:
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))[:6]
        raise LmnasError(
            f"no Parquet shards of split {split!r} under {folder} (expected {split}-*.parquet or {split}/*.parquet); "
            f"found {found or 'no .parquet files'}"
        )
    return shards


# --------------------------------------------------------------------------- columns


def _check_columns(ds: Any, spec: HfSpec, split: str) -> None:
    columns = list(ds.features or {}) if ds.features is not None else None
    for option in ("image_column", "label_column"):
        column = getattr(spec, option)
        if columns is not None and column not in columns:
            raise LmnasError(f"hf.{option}: column {column!r} not in split {split!r}; columns: {columns}")


def _class_names(ds: Any, spec: HfSpec, split: str) -> list[str] | None:
    """Names from a ClassLabel label column; None when the column is a plain integer."""
    import datasets

    _check_columns(ds, spec, split)
    feature = (ds.features or {}).get(spec.label_column)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _with_image_feature(ds: Any, column: str) -> Any:
    """Parquet written without the Hub's metadata holds images as a plain {bytes, path} struct."""
    import datasets

    feature = (ds.features or {}).get(column)
    if isinstance(feature, dict) and set(feature) == {"bytes", "path"}:
        return ds.cast_column(column, datasets.Image())
    if feature is not None and not isinstance(feature, datasets.Image):
        raise LmnasError(f"hf.image_column: column {column!r} is {feature}, not an image")
    return ds


def _checked_labels(labels: np.ndarray, spec: HfSpec, split: str) -> np.ndarray:
    if labels.size and labels.min() < 0:
        raise LmnasError(
            f"hf split {split!r} has unlabelled rows (label {labels.min()}), as ImageNet-1k's test split; "
            f"map hf.splits.test to a labelled split such as validation"
        )
    return labels


# --------------------------------------------------------------------------- reading


def _read_in_memory(
    ds: Any,
    spec: HfSpec,
    split: str,
    class_names: list[str] | None,
    image_size: int | None,
    subset_fraction: float,
    max_classes: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels first (one Arrow column), then decode only the chosen rows."""
    labels = _checked_labels(np.asarray(ds.with_format("numpy")[spec.label_column], dtype=np.int64), spec, split)
    if class_names is None:  # plain integer labels: names are the label values
        class_names = [str(i) for i in range(int(labels.max()) + 1 if labels.size else 0)]
    num_classes = _limit_classes(len(class_names), max_classes)
    keep = np.flatnonzero(labels < num_classes)
    keep = keep[balanced_subset(labels[keep], subset_fraction, rng)]
    chosen = _with_image_feature(ds, spec.image_column).select_columns([spec.image_column]).select(keep)
    batches = chosen.iter(batch_size=_DECODE_BATCH)
    pictures = (picture for batch in batches for picture in batch[spec.image_column])
    return _stack(pictures, len(keep), image_size, split), labels[keep], class_names


def _read_streaming(
    ds: Any,
    spec: HfSpec,
    split: str,
    class_names: list[str] | None,
    image_size: int | None,
    subset_fraction: float,
    max_classes: int | None,
    rng: np.random.Generator,
    *,
    total: int | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows in a seeded shuffled order; keep each until its class has round(fraction * N / C) rows."""
    if class_names is None:
        raise LmnasError(
            f"hf streaming needs a ClassLabel {spec.label_column!r} column (the class count must be known "
            f"before reading); set streaming: false"
        )
    num_classes = _limit_classes(len(class_names), max_classes)
    quota = None  # rows per class; None: every row of the kept classes
    if subset_fraction < 1.0:
        if total is None:
            raise LmnasError(f"hf split {split!r} does not state its row count; streaming needs it for subset_fraction")
        quota = max(1, round(subset_fraction * total / len(class_names)))
    ds = _with_image_feature(ds, spec.image_column).shuffle(
        seed=int(rng.integers(2**31)), buffer_size=spec.shuffle_buffer
    )
    taken = np.zeros(num_classes, dtype=np.int64)
    pictures, labels = [], []
    wanted = None if quota is None else quota * num_classes
    with tqdm(total=wanted, desc=f"hf {split}", unit="img") as bar:
        for row in ds:
            label = int(row[spec.label_column])
            if label < 0:
                _checked_labels(np.array([label]), spec, split)
            if label >= num_classes or (quota is not None and taken[label] >= quota):
                continue
            taken[label] += 1
            pictures.append(_to_array(row[spec.image_column], image_size))
            labels.append(label)
            bar.update()
            if quota is not None and taken.min() >= quota:
                break  # every class full: stop reading the stream
    return _stack(pictures, len(labels), image_size, split), np.asarray(labels, dtype=np.int64), class_names


def _split_rows(ds: Any, split: str) -> int | None:
    info = getattr(ds, "info", None)
    splits = getattr(info, "splits", None) or {}
    if split in splits and splits[split].num_examples:
        return int(splits[split].num_examples)
    return None


# --------------------------------------------------------------------------- decoding


def _stack(pictures: Iterable[Any], count: int, image_size: int | None, split: str) -> np.ndarray:
    """PIL images (or already-decoded arrays) → uint8 [N, H, W, C]."""
    arrays = []
    for picture in tqdm(pictures, total=count, desc=f"decode {split}", unit="img", leave=False):
        arrays.append(picture if isinstance(picture, np.ndarray) else _to_array(picture, image_size))
    if not arrays:
        raise LmnasError(f"no images selected from hf split {split!r}; raise subset_fraction or max_classes")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise LmnasError(f"hf split {split!r} has images of several sizes {sorted(shapes)[:3]}; set image_size")
    return np.stack(arrays)


def _to_array(picture: Any, image_size: int | None) -> np.ndarray:
    """One PIL image → uint8 [H, W, C]: grayscale stays 1 channel, everything else RGB.

    With image_size: shorter side → image_size, then the central crop (as the ImageFolder path)."""
    picture = picture.convert("L" if picture.mode in ("1", "L", "I;16", "I", "F") else "RGB")
    if image_size is not None and picture.size != (image_size, image_size):
        from torchvision.transforms import functional as F  # only when resizing: a slow import

        picture = F.center_crop(F.resize(picture, [image_size], antialias=True), [image_size, image_size])
    array = np.asarray(picture, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array

