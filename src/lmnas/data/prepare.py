"""prepare_data stage: a source → fixed stratified splits → Parquet shards + manifest.json.

Layout of `out_dir`:
    {train,val,test}-00000-of-0000K.parquet   columns image (binary: raw HWC uint8 bytes), label (int64)
    manifest.json                             written last: its presence marks a complete run
Same spec + seed → byte-identical shards and manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmnas.data.sources import SourceData, class_groups, load_source
from lmnas.data.shards import MANIFEST_NAME
from lmnas.identity import sha256_file
from lmnas.errors import LmnasError
from lmnas.io import write_json, write_with

SPLITS = ("train", "val", "test")
MANIFEST_FORMAT = "lmnas-prepared/1"
# Parquet binary columns use int32 offsets (2 GiB per chunk); 1 GiB shards stay well inside.
MAX_SHARD_BYTES = 1 << 30
# Rows per chunk when summing channel statistics, sized to ~4M values of float64 (32 MB).
_STATS_VALUES = 1 << 22


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
    hf: dict[str, Any] | None = None  # source hf only: Hub id, splits, columns (lmnas.data.hf.HfSpec)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise LmnasError(f"dataset.source must be a source name, got {self.source!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise LmnasError(f"dataset.{name} must be in [0, 1), got {value}")
        if not 0.0 < self.subset_fraction <= 1.0:
            raise LmnasError(f"dataset.subset_fraction must be in (0, 1], got {self.subset_fraction}")
        if self.image_size is not None and self.image_size < 1:
            raise LmnasError(f"dataset.image_size must be a positive pixel count, got {self.image_size}")
        if self.classes is not None:
            self.classes = [int(c) for c in self.classes]
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise LmnasError(
                    f"dataset.classes must be a non-empty list of distinct labels, got {self.classes}"
                )
        if self.hf is not None and self.source != "hf":
            raise LmnasError(f"dataset.hf is only read by source: hf, not {self.source!r}")
        if self.source == "hf":  # validate now, keep the plain mapping for the manifest
            from lmnas.data.hf import HfSpec

            self.hf = dataclasses.asdict(HfSpec.from_dict(self.hf or {}))
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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LmnasError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        if "source" not in data:
            raise LmnasError(f"{where}: missing field 'source' (one of the registered dataset sources)")
        return cls(**data)


def prepare_dataset(spec: DatasetSpec, out_dir: Path, *, seed: int, shard_rows: int = 50_000) -> dict:
    """Load `spec.source`, split it, write the shards and the manifest; return the manifest."""
    if shard_rows < 1:
        raise LmnasError(f"shard_rows must be >= 1, got {shard_rows}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # no stale completion marker while rewriting

    data = select_classes(load_source(spec, seed), spec.classes)
    images, labels, class_names, official_split = data
    rng = np.random.default_rng(seed)
    splits = split_indices(labels, official_split, spec, rng)
    if len(splits["train"]) == 0:
        raise LmnasError(f"dataset {spec.source!r}: the train split is empty; lower val/test fractions")

    row_bytes = int(np.prod(images.shape[1:]))
    rows_per_shard = min(shard_rows, max(1, MAX_SHARD_BYTES // row_bytes))
    split_entries = {}
    for split, rows in splits.items():
        files = _write_split(out_dir, split, images, labels, rows, rows_per_shard)
        split_entries[split] = {
            "count": len(rows),
            "class_counts": np.bincount(labels[rows], minlength=len(class_names)).tolist(),
            "files": files,
        }
    _remove_stale_shards(out_dir, {f["name"] for e in split_entries.values() for f in e["files"]})

    mean, std = channel_stats(images, splits["train"])
    height, width, channels = images.shape[1:]
    manifest = {
        "format": MANIFEST_FORMAT,
        "source": spec.source,
        "spec": dataclasses.asdict(spec),
        "seed": seed,
        "num_classes": len(class_names),
        "class_names": class_names,
        "image_shape": [channels, height, width],  # tensors come back as [N, C, H, W]
        "image_layout": "HWC uint8 bytes per row",
        "mean": mean,  # per channel, pixel values scaled to 0..1, train split
        "std": std,
        "splits": split_entries,
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def select_classes(data: SourceData, classes: list[int] | None) -> SourceData:
    """Keep only `classes` and relabel them 0..k-1 in the given order (e.g. digits 5–9 → 0–4)."""
    if classes is None:
        return data
    images, labels, class_names, official_split = data
    bad = [c for c in classes if not 0 <= c < len(class_names)]
    if bad:
        raise LmnasError(f"dataset.classes {bad} are not labels of this source (0..{len(class_names) - 1})")
    remap = np.full(len(class_names), -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    new_labels = remap[labels]
    keep = new_labels >= 0
    return SourceData(
        images[keep],
        new_labels[keep],
        [class_names[c] for c in classes],
        None if official_split is None else official_split[keep],
    )


def split_indices(
    labels: np.ndarray, official_split: np.ndarray | None, spec: DatasetSpec, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Row indices of train/val/test: stratified, seeded, each split in a seeded shuffled order.

    test = the official test split, or a stratified `test_fraction` of all rows;
    val  = a stratified `val_fraction` of the remaining train pool; train = the rest.
    """
    everything = np.arange(len(labels))
    if official_split is not None:
        test = everything[official_split == "test"]
        pool = everything[official_split == "train"]
    else:
        test = stratified_take(labels, round(spec.test_fraction * len(labels)), rng)
        pool = np.setdiff1d(everything, test)
    val = pool[stratified_take(labels[pool], round(spec.val_fraction * len(pool)), rng)]
    splits = {"train": np.setdiff1d(pool, val), "val": val, "test": test}
    caps = spec.max_per_split or {}
    for name, rows in splits.items():
        if name in caps and len(rows) > caps[name]:
            rows = rows[stratified_take(labels[rows], caps[name], rng)]
        splits[name] = rng.permutation(rows)  # shuffled, so any prefix of a shard is mixed
    return splits


def stratified_take(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of `n` rows whose class mix matches `labels` as closely as integers allow.

    Each class gets floor(share) rows and the leftover rows go to the largest remainders
    (ties: lower class). Unlike sklearn's StratifiedShuffleSplit this accepts classes with a
    single row and n below the class count, which tiny configs and caps produce.
    """
    if n <= 0 or len(labels) == 0:
        return np.empty(0, dtype=np.int64)
    groups = class_groups(labels)
    counts = np.array([len(rows) for rows in groups.values()])
    quota = counts * (n / len(labels))
    take = np.floor(quota).astype(np.int64)
    leftover = n - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    chosen = [rng.permutation(rows)[:k] for rows, k in zip(groups.values(), take)]
    return np.sort(np.concatenate(chosen))


def channel_stats(images: np.ndarray, rows: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images[rows] (uint8 [N, H, W, C]) on the 0..1 scale."""
    channels = images.shape[-1]
    chunk = max(1, _STATS_VALUES // int(np.prod(images.shape[1:])))
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(rows), chunk):
        pixels = images[rows[start : start + chunk]].reshape(-1, channels).astype(np.float64) / 255.0
        total += pixels.sum(axis=0)
        total_sq += np.square(pixels).sum(axis=0)
    count = len(rows) * images.shape[1] * images.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def _write_split(
    out_dir: Path, split: str, images: np.ndarray, labels: np.ndarray, rows: np.ndarray, rows_per_shard: int
) -> list[dict]:
    num_shards = max(1, ceil(len(rows) / rows_per_shard))  # an empty split still gets one (empty) shard
    files = []
    for shard in range(num_shards):
        picked = rows[shard * rows_per_shard : (shard + 1) * rows_per_shard]
        table = _to_table(images[picked], labels[picked])
        path = out_dir / f"{split}-{shard:05d}-of-{num_shards:05d}.parquet"
        write_with(path, lambda tmp, table=table: pq.write_table(table, tmp, compression="zstd"))
        files.append({"name": path.name, "rows": len(picked), "sha256": sha256_file(path)})
    return files


def _to_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    """uint8 [n, H, W, C] + int64 [n] → table; the image column wraps the array's bytes, no copy per row."""
    n = len(images)
    row_bytes = int(np.prod(images.shape[1:]))
    offsets = np.arange(n + 1, dtype=np.int32) * row_bytes
    flat = np.ascontiguousarray(images).reshape(-1)
    image_col = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(flat)])
    return pa.table({"image": image_col, "label": pa.array(labels, type=pa.int64())})


def _remove_stale_shards(out_dir: Path, keep: set[str]) -> None:
    """Shards of an earlier run with another shard count would sit beside ours; drop them."""
    for split in SPLITS:
        for path in out_dir.glob(f"{split}-*-of-*.parquet"):
            if path.name not in keep:
                path.unlink()
