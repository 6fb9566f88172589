"""What the config asks prepare_data for: `DatasetSpec` (a `datasets.<name>` entry) and `HfSpec`
(its `hf` mapping, source hf).

Their own module, below everything else in lmnas.data: the sources read a spec, prepare writes one
into the manifest, and the hf source reads its HfSpec, so none of them imports another for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lmnas.data import encode as enc
from lmnas.errors import LmnasError
from lmnas.fields import from_mapping

SPLITS = ("train", "val", "test")
# Sources whose images are stored encoded (photos of any size); the rest store raw pixels.
ENCODED_SOURCES = ("hf", "imagenet")
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
        return from_mapping(cls, data, where)


@dataclass
class DatasetSpec:
    """What to prepare. Fractions are of the pool they are carved from (see split_indices)."""

    source: str
    root: str | None = None
    download: bool = False
    verify: bool = True  # torchvision md5 checks of the CIFAR archives
    classes: list[int] | None = None  # keep these labels, remapped to 0..k-1 in this order
    val_fraction: float = 0.1  # of the train pool
    test_fraction: float = 0.2  # of everything; only for sources without an official test split
    image_size: int | None = None  # square side in pixels; None keeps the source's (ImageNet: 64)
    subset_fraction: float = 1.0  # class-balanced subset of each official split
    max_classes: int | None = None  # keep the first k classes of the source
    max_per_split: dict[str, int] | None = None  # stratified cap on rows per split
    hf: dict[str, Any] | None = None  # source hf only: Hub id, splits, columns (HfSpec)
    # Encoded sources (imagenet, hf) only: which bytes to store (lmnas.data.encode.EncodeSpec)
    encode: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise LmnasError(f"dataset.source must be a source name, got {self.source!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise LmnasError(f"dataset.{name} must be in (0, 1), got {value}")
        if not 0.0 < self.subset_fraction <= 1.0:
            raise LmnasError(f"dataset.subset_fraction must be in (0, 1], got {self.subset_fraction}")
        if self.image_size is not None and self.image_size < 8:
            raise LmnasError(f"dataset.image_size must be a pixel count >= 8, got {self.image_size}")
        if self.max_classes is not None and self.max_classes < 2:
            raise LmnasError(f"dataset.max_classes must be >= 2, got {self.max_classes}")
        if self.classes is not None:
            self.classes = [int(c) for c in self.classes]
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise LmnasError(
                    f"dataset.classes must be a non-empty list of distinct labels, got {self.classes}"
                )
        if self.hf is not None and self.source != "hf":
            raise LmnasError(f"dataset.hf is only read by source: hf, not {self.source!r}")
        if self.source == "hf":  # validate now, keep the plain mapping for the manifest
            self.hf = dataclasses.asdict(HfSpec.from_dict(self.hf or {}))
        if self.encode is not None and self.source not in ENCODED_SOURCES:
            raise LmnasError(
                f"dataset.encode is only read by the encoded sources {ENCODED_SOURCES}, not {self.source!r}"
            )
        if self.source in ENCODED_SOURCES:
            self.encode = dataclasses.asdict(enc.EncodeSpec.from_dict(self.encode))
        if self.max_per_split is not None:
            unknown = sorted(set(self.max_per_split) - set(SPLITS))
            if unknown or any(int(v) < 1 for v in self.max_per_split.values()):
                raise LmnasError(
                    f"dataset.max_per_split must map {'/'.join(SPLITS)} to positive row counts, "
                    f"got {self.max_per_split}"
                )
            self.max_per_split = {k: int(v) for k, v in self.max_per_split.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "dataset") -> DatasetSpec:
        """Build from a config mapping, naming `where` and the known fields on a typo."""
        return from_mapping(cls, data, where, required=("source",))
