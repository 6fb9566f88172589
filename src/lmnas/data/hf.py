"""Hugging Face `datasets` as a prepare_data source (`source: hf`).

Where the rows come from, in order of preference on an offline compute node:
    root = a `save_to_disk` folder         (dataset_dict.json / state.json inside)
    root = a folder of the Hub's Parquet   (e.g. `huggingface-cli download uoft-cs/cifar10 --repo-type dataset`:
           shards                            plain_text/train-00000-of-00001.parquet, image struct {bytes, path})
    hf.path = a Hub id                     (uoft-cs/cifar10, ILSVRC/imagenet-1k; cache in hf.cache_dir;
                                             HF_HUB_OFFLINE=1 reuses a filled cache without network)
Images are never decoded here: the Hub's shards already hold JPEG/PNG files, so the image
column is read with `Image(decode=False)` and prepare copies those bytes into its shards.
Class limiting and the class-balanced subset are chosen from the label column first, and
rows are fetched a shard at a time. `streaming: true` reads rows one by one (an ImageNet-1k
subset without downloading the 150 GB of shards first), stops as soon as every class has its
quota, and spools the kept rows' bytes to a memory-mapped Arrow file, not to RAM.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from lmnas.data.sources import EncodedSource, _limit_classes, balanced_subset
from lmnas.data.spec import HfSpec
from lmnas.errors import LmnasError

# Rows per batch written to the streaming spool: bounds memory, keeps the per-batch overhead negligible.
_SPOOL_BATCH = 512


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
) -> EncodedSource:
    """A Hugging Face dataset (Hub id or a local copy); `download`/`verify`/`image_size` are unused here."""
    spec = HfSpec.from_dict(hf or {})
    if root is None and spec.path is None:
        raise LmnasError("dataset source 'hf' needs hf.path (a Hub id such as uoft-cs/cifar10) or root (a local copy)")
    rng = np.random.default_rng(seed)
    parts, labels, split, class_names = [], [], [], None
    for official, split_name in spec.splits.items():
        ds, rows = _open(spec, root, split_name)
        names = _class_names(ds, spec, split_name)
        if class_names is not None and names is not None and names != class_names:
            raise LmnasError(f"hf splits {list(spec.splits.values())} have different class names in {spec.label_column!r}")
        class_names = names if names is not None else class_names
        args = (ds, spec, split_name, class_names, subset_fraction, max_classes, rng)
        if spec.streaming:
            fetch, part_labels, names = _read_streaming(*args, total=rows)
        else:
            fetch, part_labels, names = _read_in_memory(*args)
        if not len(part_labels):
            raise LmnasError(f"no images selected from hf split {split_name!r}; raise subset_fraction or max_classes")
        class_names = class_names or names
        parts.append(fetch)
        labels.append(part_labels)
        split.append(np.full(len(part_labels), official))
    num_classes = _limit_classes(len(class_names), max_classes)
    official = np.concatenate(split) if "test" in spec.splits else None
    return EncodedSource(
        np.concatenate(labels), class_names[:num_classes], official, _concatenated(parts, [len(x) for x in labels])
    )


def _concatenated(parts: list[Any], sizes: list[int]) -> Any:
    """One fetch over several splits' fetches: global row → (split, row within it), order kept."""
    starts = np.concatenate([[0], np.cumsum(sizes)])

    def fetch(rows: np.ndarray) -> list[bytes]:
        rows = np.asarray(rows, dtype=np.int64)
        part_of = np.searchsorted(starts, rows, side="right") - 1
        out: list[bytes] = [b""] * len(rows)
        for k, part in enumerate(parts):
            where = np.flatnonzero(part_of == k)
            for position, data in zip(where, part(rows[where] - starts[k])):
                out[position] = data
        return out

    return fetch


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


def _undecoded_images(ds: Any, column: str) -> Any:
    """The image column as {bytes, path} dicts, never decoded (Image(decode=False)).

    Parquet written without the Hub's metadata holds images as that plain struct already."""
    import datasets

    feature = (ds.features or {}).get(column)
    if feature is not None and not (
        isinstance(feature, datasets.Image) or (isinstance(feature, dict) and set(feature) == {"bytes", "path"})
    ):
        raise LmnasError(f"hf.image_column: column {column!r} is {feature}, not an image")
    return ds.cast_column(column, datasets.Image(decode=False))


def _file_bytes(value: Any, column: str) -> bytes:
    """One undecoded image cell → its encoded file: the embedded bytes, or the file its path names."""
    if isinstance(value, dict) and value.get("bytes") is not None:
        return bytes(value["bytes"])
    if isinstance(value, dict) and value.get("path"):
        return Path(value["path"]).read_bytes()  # a local dataset that stores paths to image files
    raise LmnasError(f"hf.image_column {column!r}: a row holds neither image bytes nor a path ({type(value).__name__})")


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
    subset_fraction: float,
    max_classes: int | None,
    rng: np.random.Generator,
) -> tuple[Any, np.ndarray, list[str]]:
    """Labels first (one Arrow column); the kept rows' bytes are fetched later, a shard at a time."""
    labels = _checked_labels(np.asarray(ds.with_format("numpy")[spec.label_column], dtype=np.int64), spec, split)
    if class_names is None:  # plain integer labels: names are the label values
        class_names = [str(i) for i in range(int(labels.max()) + 1 if labels.size else 0)]
    num_classes = _limit_classes(len(class_names), max_classes)
    keep = np.flatnonzero(labels < num_classes)
    keep = keep[balanced_subset(labels[keep], subset_fraction, rng)]
    images = _undecoded_images(ds.select_columns([spec.image_column]), spec.image_column)

    def fetch(rows: np.ndarray) -> list[bytes]:  # Arrow memory-maps the dataset: only these rows are read
        chosen = images.select(keep[np.asarray(rows, dtype=np.int64)])
        return [_file_bytes(value, spec.image_column) for value in chosen[spec.image_column]]

    return fetch, labels[keep], class_names


def _read_streaming(
    ds: Any,
    spec: HfSpec,
    split: str,
    class_names: list[str] | None,
    subset_fraction: float,
    max_classes: int | None,
    rng: np.random.Generator,
    *,
    total: int | None,
) -> tuple[Any, np.ndarray, list[str]]:
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
    ds = _undecoded_images(ds, spec.image_column).shuffle(seed=int(rng.integers(2**31)), buffer_size=spec.shuffle_buffer)
    taken = np.zeros(num_classes, dtype=np.int64)
    spool = _Spool()
    labels, pending = [], []
    wanted = None if quota is None else quota * num_classes
    with tqdm(total=wanted, desc=f"hf {split}", unit="img") as bar:
        for row in ds:
            label = int(row[spec.label_column])
            if label < 0:
                _checked_labels(np.array([label]), spec, split)
            if label >= num_classes or (quota is not None and taken[label] >= quota):
                continue
            taken[label] += 1
            pending.append(_file_bytes(row[spec.image_column], spec.image_column))
            labels.append(label)
            if len(pending) == _SPOOL_BATCH:
                spool.write(pending)
                pending = []
            bar.update()
            if quota is not None and taken.min() >= quota:
                break  # every class full: stop reading the stream
    spool.write(pending)
    return spool.fetch, np.asarray(labels, dtype=np.int64), class_names


class _Spool:
    """Encoded images kept by a stream, appended to a temporary Arrow IPC file and memory-mapped back.

    The file is removed when the spool is garbage-collected (after prepare has copied the rows)."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="lmnas-hf-spool-")
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._path = Path(self._dir) / "images.arrow"
        self._schema = pa.schema([("image", pa.binary())])
        self._writer: Any = pa.ipc.new_file(str(self._path), self._schema)
        self._table: pa.Table | None = None

    def write(self, images: list[bytes]) -> None:
        if images:
            self._writer.write_batch(pa.record_batch([pa.array(images, pa.binary())], schema=self._schema))

    def fetch(self, rows: np.ndarray) -> list[bytes]:
        if self._table is None:
            self._writer.close()
            self._table = pa.ipc.open_file(pa.memory_map(str(self._path))).read_all()  # zero-copy view
        return self._table.column("image").take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()


def _split_rows(ds: Any, split: str) -> int | None:
    info = getattr(ds, "info", None)
    splits = getattr(info, "splits", None) or {}
    if split in splits and splits[split].num_examples:
        return int(splits[split].num_examples)
    return None
