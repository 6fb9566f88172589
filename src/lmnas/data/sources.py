"""Image datasets → labels plus either pixels in memory or a way to fetch encoded files.

Small low-resolution sources (digits, CIFAR-10/100) return a `SourceData`: images uint8
[N, H, W, C] in memory, stored as raw-pixel shards. Large photo sources (ImageNet folders,
Hugging Face image datasets) return an `EncodedSource`: labels and a `fetch(rows)` that reads
the chosen rows' encoded JPEG/PNG bytes on demand, so prepare holds one shard, never the set.
Both carry class names and the official train/test split when the source has one. Splitting,
class filtering and writing happen in `lmnas.data.prepare`; loaders only read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np
import torch

from lmnas.data.spec import DatasetSpec
from lmnas.errors import LmnasError
from lmnas.registry import Registry


class SourceData(NamedTuple):
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int64 [N], 0..len(class_names)-1
    class_names: list[str]
    official_split: np.ndarray | None  # "train"/"test" per row, None if the source has no test split


class EncodedSource(NamedTuple):
    labels: np.ndarray  # int64 [N], 0..len(class_names)-1
    class_names: list[str]
    official_split: np.ndarray | None  # "train"/"test" per row, None if the source has no test split
    fetch: Callable[[np.ndarray], list[bytes]]  # row positions → their encoded files, in that order
    default_size: int | None = None  # network input side when the config gives no image_size

    def subset(self, rows: np.ndarray, labels: np.ndarray | None = None) -> EncodedSource:
        """The rows `rows` (positions into this source), optionally relabelled; fetch maps positions back."""
        parent = self.fetch
        return self._replace(
            labels=self.labels[rows] if labels is None else labels,
            official_split=None if self.official_split is None else self.official_split[rows],
            fetch=lambda wanted: parent(rows[wanted]),
        )


Source = Union[SourceData, EncodedSource]
DATASET_SOURCES: Registry[Source] = Registry("dataset source")

# ImageNet search resolution when the config gives none (GENIUS-style low-res search).
IMAGENET_DEFAULT_SIZE = 64


def load_source(spec: DatasetSpec, seed: int) -> Source:
    """The one entry point: read `spec.source` with the spec's options."""
    loader = DATASET_SOURCES.get(spec.source)
    # Source-specific settings go only to the source that reads them.
    extra = {"hf": spec.hf} if spec.source == "hf" else {}
    data = loader(
        root=Path(spec.root).expanduser() if spec.root is not None else None,
        download=spec.download,
        verify=spec.verify,
        image_size=spec.image_size,
        subset_fraction=spec.subset_fraction,
        max_classes=spec.max_classes,
        seed=seed,
        **extra,
    )
    _check_source_data(spec.source, data)
    return data


# --------------------------------------------------------------------------- digits


@DATASET_SOURCES.register("digits")
def load_digits_source(
    *,
    root: Path | None,
    download: bool,
    verify: bool,
    image_size: int | None,
    subset_fraction: float,
    max_classes: int | None,
    seed: int,
) -> SourceData:
    """scikit-learn's bundled 8x8 digits (1797 images, offline); root/download/verify are unused."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are counts 0..16 (on-pixels per 4x4 block of a 32x32 bitmap); rescale to the usual 0..255.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    class_names = [str(name) for name in bunch.target_names]
    return _restrict(
        SourceData(images, labels, class_names, None),
        image_size=image_size,
        subset_fraction=subset_fraction,
        max_classes=max_classes,
        seed=seed,
    )


# --------------------------------------------------------------------------- CIFAR


def _cifar_source(name: str, class_name: str, folder: str) -> None:
    """Register one torchvision CIFAR dataset as a source (CIFAR-10 and CIFAR-100 differ only in class)."""

    @DATASET_SOURCES.register(name)
    def load(
        *,
        root: Path | None,
        download: bool,
        verify: bool,
        image_size: int | None,
        subset_fraction: float,
        max_classes: int | None,
        seed: int,
    ) -> SourceData:
        import torchvision.datasets

        data = _load_cifar(getattr(torchvision.datasets, class_name), name, root, download=download, verify=verify)
        return _restrict(
            data, image_size=image_size, subset_fraction=subset_fraction, max_classes=max_classes, seed=seed
        )

    load.__doc__ = f"torchvision {class_name} under `root` (the folder holding {folder})."


_cifar_source("cifar10", "CIFAR10", "cifar-10-batches-py")
_cifar_source("cifar100", "CIFAR100", "cifar-100-python")  # fine labels


def _load_cifar(cls: type, name: str, root: Path | None, *, download: bool, verify: bool) -> SourceData:
    if root is None:
        raise LmnasError(
            f"dataset {name!r} needs `root`: the folder that holds {cls.base_folder}/ "
            f"(or where it should be downloaded to with download: true)"
        )
    if root.name == cls.base_folder:  # the user pointed at the extracted folder itself
        root = root.parent
    expected = [name_ for name_, _md5 in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in expected if not (root / cls.base_folder / f).is_file()]
    if missing and not download:
        raise LmnasError(
            f"{name} not found under {root}: missing {cls.base_folder}/{{{', '.join(missing)}}}; "
            f"set download: true in the dataset config, or point root at the extracted "
            f"{cls.base_folder} folder (or its parent)"
        )
    dataset_cls = cls if verify else _without_md5(cls)
    try:
        train = dataset_cls(str(root), train=True, download=download)
        test = dataset_cls(str(root), train=False, download=False)
    except RuntimeError as err:  # torchvision's "not found or corrupted" (md5 mismatch)
        raise LmnasError(
            f"{name} under {root / cls.base_folder} failed torchvision's md5 check ({err}); "
            f"re-download it, or set verify: false to accept these files"
        ) from err
    images = np.concatenate([np.asarray(train.data), np.asarray(test.data)]).astype(np.uint8, copy=False)
    labels = np.asarray(list(train.targets) + list(test.targets), dtype=np.int64)
    split = np.array(["train"] * len(train.targets) + ["test"] * len(test.targets))
    return SourceData(images, labels, list(train.classes), split)


def _without_md5(cls: type) -> type:
    """A subclass of a torchvision CIFAR class that only checks the batch files exist."""

    class Unverified(cls):  # type: ignore[misc, valid-type]
        meta = {**cls.meta, "md5": None}  # check_integrity(path, None) only tests existence

        def _check_integrity(self) -> bool:
            folder = os.path.join(self.root, self.base_folder)
            return all(os.path.isfile(os.path.join(folder, f)) for f, _ in self.train_list + self.test_list)

    Unverified.__name__ = f"Unverified{cls.__name__}"
    return Unverified


# --------------------------------------------------------------------------- ImageNet


@DATASET_SOURCES.register("imagenet")
def load_imagenet_source(
    *,
    root: Path | None,
    download: bool,
    verify: bool,
    image_size: int | None,
    subset_fraction: float,
    max_classes: int | None,
    seed: int,
) -> EncodedSource:
    """ImageFolder over root/train/<wnid>/* and root/val/<wnid>/*: file lists only, nothing decoded.

    Class limiting and the class-balanced subset are applied to the file lists (GPT-NAS/GENIUS
    search on a 10 % subset); prepare reads the kept files shard by shard.
    """
    if root is None:
        raise LmnasError("dataset 'imagenet' needs `root`: the folder holding train/<wnid>/ and val/<wnid>/")
    if download:
        raise LmnasError("imagenet cannot be downloaded automatically; set download: false and point root at it")
    missing = [str(root / part) for part in ("train", "val") if not (root / part).is_dir()]
    if missing:
        raise LmnasError(
            f"ImageNet folders not found: {', '.join(missing)}; expected root/train/<wnid>/*.JPEG and "
            f"root/val/<wnid>/*.JPEG (val sorted into class folders)"
        )
    listed = {part: list_image_folder(root, part) for part in ("train", "val")}
    train_classes, val_classes = listed["train"][0], listed["val"][0]
    if train_classes != val_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise LmnasError(
            f"ImageNet class folders differ under {root}: only in train/: {only_train[:5]}, "
            f"only in val/: {only_val[:5]}; train/ and val/ need the same <wnid> folders"
        )
    class_names = list(train_classes)
    num_classes = _limit_classes(len(class_names), max_classes)
    rng = np.random.default_rng(seed)
    paths, labels, split = [], [], []
    for part, split_name in (("train", "train"), ("val", "test")):
        _classes, part_paths, targets = listed[part]
        keep = np.flatnonzero(targets < num_classes)
        keep = keep[balanced_subset(targets[keep], subset_fraction, rng)]
        paths.append(part_paths[keep])
        labels.append(targets[keep])
        split.append(np.full(len(keep), split_name))
    del listed
    files = np.concatenate(paths)
    if not len(files):
        raise LmnasError(f"no images selected from {root}; raise subset_fraction or max_classes")
    base = os.fsencode(root)

    def fetch(rows: np.ndarray) -> list[bytes]:
        out = []
        for rel in files[rows]:
            with open(os.path.join(base, rel), "rb") as f:
                out.append(f.read())
        return out

    return EncodedSource(
        np.concatenate(labels),
        class_names[:num_classes],
        np.concatenate(split),
        fetch=fetch,
        default_size=IMAGENET_DEFAULT_SIZE,
    )


def list_image_folder(root: Path, part: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """torchvision ImageFolder's listing of root/part (same classes, files, order), held compactly.

    Returns (class names, paths relative to root as one fixed-width bytes array, labels int64).
    ImageFolder keeps a list of (str, int) tuples, ~210 B an image (ImageNet-1k's 1.33M files:
    ~270 MB, which freeing does not give back); the bytes array is ~40 B an image (~53 MB), and
    only one class folder's names exist as Python objects at a time."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, has_file_allowed_extension

    folder = root / part
    try:
        classes, _ = find_classes(folder)
    except FileNotFoundError as err:
        raise LmnasError(f"ImageNet folder {folder} has no usable class folders: {err}") from err
    names, counts, empty = [], [], []
    for name in classes:
        found = [
            os.fsencode(os.path.relpath(os.path.join(walked, fname), root))
            for walked, _, fnames in sorted(os.walk(folder / name, followlinks=True))
            for fname in sorted(fnames)
            if has_file_allowed_extension(fname, IMG_EXTENSIONS)
        ]
        if not found:
            empty.append(name)
        names.append(np.array(found, dtype=bytes))
        counts.append(len(found))
    if empty:
        raise LmnasError(
            f"ImageNet folder {folder} has no image files ({', '.join(IMG_EXTENSIONS)}) in the class "
            f"folders {', '.join(empty[:5])}"
        )
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), counts)
    return classes, np.concatenate(names), labels


# --------------------------------------------------------------------------- shared helpers


def balanced_subset(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-balanced subset: the same number of rows from every class.

    Each class keeps round(fraction * N / C) rows (at least 1, at most what it has), drawn
    with `rng`, so rare classes are not swamped the way a uniform sample would swamp them.
    """
    if not 0.0 < fraction <= 1.0:
        raise LmnasError(f"subset_fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0 or len(labels) == 0:
        return np.arange(len(labels))
    groups = class_groups(labels)
    per_class = max(1, round(fraction * len(labels) / len(groups)))
    return np.sort(np.concatenate([rng.permutation(rows)[:per_class] for rows in groups.values()]))


def class_groups(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices of each class, ascending class and row order (one sort, not a scan per class)."""
    order = np.argsort(labels, kind="stable")
    classes, starts = np.unique(labels[order], return_index=True)
    return {int(c): rows for c, rows in zip(classes, np.split(order, starts[1:]))}


def _restrict(
    data: SourceData,
    *,
    image_size: int | None,
    subset_fraction: float,
    max_classes: int | None,
    seed: int,
) -> SourceData:
    """Apply max_classes, the balanced subset (within each official split) and resizing in memory."""
    images, labels, class_names, split = data
    num_classes = _limit_classes(len(class_names), max_classes)
    keep = np.flatnonzero(labels < num_classes)
    rng = np.random.default_rng(seed)
    groups = [keep] if split is None else [keep[split[keep] == s] for s in ("train", "test")]
    keep = np.sort(np.concatenate([g[balanced_subset(labels[g], subset_fraction, rng)] for g in groups]))
    images, labels = images[keep], labels[keep]
    split = None if split is None else split[keep]
    if image_size is not None and images.shape[1:3] != (image_size, image_size):
        images = _resize_center_crop(images, image_size)
    return SourceData(images, labels, class_names[:num_classes], split)


def _resize_center_crop(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """Shorter side → `size`, then the central crop: uint8 [N, H, W, C] → [N, size, size, C]."""
    from torchvision.transforms import functional as F

    out = []
    for start in range(0, len(images), chunk):  # chunks bound the float intermediate's memory
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk])).permute(0, 3, 1, 2)
        batch = F.center_crop(F.resize(batch, [size], antialias=True), [size, size])
        out.append(batch.permute(0, 2, 3, 1).contiguous().numpy())
    return np.concatenate(out)


def _limit_classes(available: int, max_classes: int | None) -> int:
    if max_classes is None:
        return available
    if not 1 <= max_classes <= available:
        raise LmnasError(f"max_classes must be in 1..{available} for this source, got {max_classes}")
    return max_classes


def _check_source_data(name: str, data: Source) -> None:
    """Loaders are pluggable: catch a malformed one here rather than in a shard later."""
    labels, class_names, split = data.labels, data.class_names, data.official_split
    if isinstance(data, SourceData):
        images = data.images
        if images.dtype != np.uint8 or images.ndim != 4:
            raise LmnasError(
                f"source {name!r} returned images {images.dtype}{list(images.shape)}, expected uint8 [N,H,W,C]"
            )
        rows = len(images)
    elif isinstance(data, EncodedSource):
        rows = len(labels)
    else:
        raise LmnasError(f"source {name!r} returned {type(data).__name__}, expected SourceData or EncodedSource")
    if labels.dtype != np.int64 or labels.shape != (rows,):
        raise LmnasError(f"source {name!r} returned labels {labels.dtype}{list(labels.shape)}, expected int64 [N]")
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(class_names):
        raise LmnasError(f"source {name!r} returned labels outside 0..{len(class_names) - 1}")
    if split is not None and (split.shape != labels.shape or not np.isin(split, ["train", "test"]).all()):
        raise LmnasError(f"source {name!r} returned an official split that is not 'train'/'test' per row")
