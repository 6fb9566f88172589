"""prepare_data stage: a source → fixed stratified splits → Parquet shards + manifest.json.

Layout of `out_dir` (the contract is in lmnas.data.shards):
    {train,val,test}-00000-of-0000K.parquet   columns image (binary), label (int64)
        storage raw      (digits, CIFAR): image = H*W*C uint8 bytes after the source's resize
        storage encoded  (ImageNet folders, Hugging Face): image = one JPEG/PNG file (lmnas.data.encode)
    manifest.json                             written last: its presence marks a complete run
Encoded splits are written row group by row group (fetch 256 files, encode them in a process pool
while the previous group is written, append it to the shard, forget), so prepare holds two row
groups (~2 x 28 MB of ImageNet JPEGs) whatever the shard's or the dataset's size.
Same spec + seed → byte-identical shards and manifest.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from itertools import repeat
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmnas.data import encode as enc
from lmnas.data.shards import MANIFEST_NAME
from lmnas.data.sources import EncodedSource, Source, SourceData, class_groups, load_source
from lmnas.data.spec import ENCODED_SOURCES, SPLITS, DatasetSpec
from lmnas.identity import sha256_file
from lmnas.errors import LmnasError
from lmnas.io import atomic_path, write_json, write_with

MANIFEST_FORMAT = "lmnas-prepared/1"
# Parquet binary columns use int32 offsets (2 GiB per chunk); 1 GiB shards stay well inside.
MAX_SHARD_BYTES = 1 << 30
# Rows per chunk when summing channel statistics, sized to ~4M values of float64 (32 MB).
_STATS_VALUES = 1 << 22
# Rows per shard of raw pixels, and of encoded images: 1,000 ImageNet JPEGs (~110 kB) are ~110 MB
# (ImageNet-1k: ~1,280 train shards, as tfds/webdataset shard it). Prepare works a row group at a
# time: before, holding a whole shard (source bytes, worker copies, Arrow table, writer pages) let the
# allocator's heap creep from shard to shard (peak RSS 1.09 GB at 1k images, 1.33 GB at 8k).
# A loader worker reads one 256-row group (~28 MB) at a time and caches the groups a shuffle window
# spans (training/stream.py): 4,096 rows → ~17 groups, ~0.5 GB per worker at ImageNet size.
RAW_SHARD_ROWS = 50_000
ENCODED_SHARD_ROWS = 1_000
ENCODED_ROW_GROUP = 256


def prepare_dataset(
    spec: DatasetSpec, out_dir: Path, *, seed: int, shard_rows: int | None = None, workers: int = 1
) -> dict:
    """Load `spec.source`, split it, write the shards and the manifest; return the manifest.

    shard_rows: rows per shard (None: RAW_SHARD_ROWS or ENCODED_SHARD_ROWS); workers: processes that
    re-encode images and compute channel statistics (encoded storage only; 1 = in this process).
    """
    if shard_rows is not None and shard_rows < 1:
        raise LmnasError(f"shard_rows must be >= 1, got {shard_rows}")
    if workers < 1:
        raise LmnasError(f"workers must be >= 1, got {workers}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # no stale completion marker while rewriting

    data = select_classes(load_source(spec, seed), spec.classes)
    rng = np.random.default_rng(seed)
    splits = split_indices(data.labels, data.official_split, spec, rng)
    if len(splits["train"]) == 0:
        raise LmnasError(f"dataset {spec.source!r}: the train split is empty; lower val/test fractions")
    if isinstance(data, EncodedSource):
        files, fields = _write_encoded(out_dir, spec, data, splits, shard_rows or ENCODED_SHARD_ROWS, workers, seed)
    else:
        files, fields = _write_raw(out_dir, data, splits, shard_rows or RAW_SHARD_ROWS)
    split_entries = {
        split: {
            "count": len(rows),
            "class_counts": np.bincount(data.labels[rows], minlength=len(data.class_names)).tolist(),
            "files": files[split],
        }
        for split, rows in splits.items()
    }
    _remove_stale_shards(out_dir, {f["name"] for e in split_entries.values() for f in e["files"]})
    manifest = {
        "format": MANIFEST_FORMAT,
        "source": spec.source,
        "spec": dataclasses.asdict(spec),
        "seed": seed,
        "num_classes": len(data.class_names),
        "class_names": data.class_names,
        **fields,  # storage, image_shape, image_layout, mean, std (and format for encoded)
        "splits": split_entries,
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def _write_raw(
    out_dir: Path, data: SourceData, splits: dict[str, np.ndarray], shard_rows: int
) -> tuple[dict[str, list[dict]], dict]:
    images, labels = data.images, data.labels
    row_bytes = int(np.prod(images.shape[1:]))
    rows_per_shard = min(shard_rows, max(1, MAX_SHARD_BYTES // row_bytes))
    files = {split: _write_split(out_dir, split, images, labels, rows, rows_per_shard) for split, rows in splits.items()}
    mean, std = channel_stats(images, splits["train"])
    height, width, channels = images.shape[1:]
    return files, {
        "storage": "raw",
        "image_shape": [channels, height, width],  # tensors come back as [N, C, H, W]
        "image_layout": "HWC uint8 bytes per row",
        "mean": mean,  # per channel, pixel values scaled to 0..1, train split
        "std": std,
    }


def _write_encoded(
    out_dir: Path,
    spec: DatasetSpec,
    data: EncodedSource,
    splits: dict[str, np.ndarray],
    shard_rows: int,
    workers: int,
    seed: int,
) -> tuple[dict[str, list[dict]], dict]:
    """Every split row group by row group; channel statistics from a fixed seeded sample of the train split."""
    encode = enc.EncodeSpec.from_dict(spec.encode)
    train = splits["train"]
    # Its own generator: the sample does not move the split's random stream.
    sample = np.zeros(len(train), dtype=bool)
    sample[np.random.default_rng([seed, 1]).permutation(len(train))[: enc.STATS_SAMPLE]] = True
    sums = [np.zeros(3), np.zeros(3), 0]
    sizes: set[tuple[int, int]] = set()
    kinds: set[str] = set()
    files = {}
    with _pool(workers) as pool:
        for split, rows in splits.items():
            in_sample = sample if split == "train" else np.zeros(len(rows), dtype=bool)
            files[split] = []
            per_shard = _block_slices(len(rows), shard_rows)
            blocks = _encoded_blocks(data, rows, in_sample, [b for bs in per_shard for b in bs], encode, pool, workers)
            for shard, shard_blocks in enumerate(per_shard):
                path = out_dir / f"{split}-{shard:05d}-of-{len(per_shard):05d}.parquet"
                with _encoded_shard_writer(path) as write:
                    for _ in shard_blocks:
                        block, stored, stats = next(blocks)
                        for total, total_sq, height_width in stats:
                            sums[0] += total
                            sums[1] += total_sq
                            sums[2] += enc.STATS_SIZE * enc.STATS_SIZE
                            sizes.add(height_width)
                        kinds.update(enc.sniff_format(b) for b in stored)
                        write(stored, data.labels[rows[block]])
                        del stored  # this block's bytes go before the next block is taken
                count = sum(b.stop - b.start for b in shard_blocks)
                files[split].append({"name": path.name, "rows": count, "sha256": sha256_file(path)})
    mean = sums[0] / sums[2]
    std = np.sqrt(np.maximum(sums[1] / sums[2] - mean**2, 0.0))
    size = spec.image_size or data.default_size or _common_square_side(sizes, spec.source)
    return files, {
        "storage": "encoded",
        "format": kinds.pop() if len(kinds) == 1 else "mixed",
        "image_shape": [3, size, size],  # the network's input; decode, resize and crop to it
        "image_layout": "one encoded image file (JPEG/PNG) per row, RGB after decoding",
        # per channel, 0..1 scale: a fixed sample of <= STATS_SAMPLE train images at STATS_SIZE px
        "mean": [round(float(m), 6) for m in mean],
        "std": [round(float(s), 6) for s in std],
        "stats_sample": int(sample.sum()),
    }


def _block_slices(rows: int, shard_rows: int) -> list[list[slice]]:
    """Per shard, the positions of its row groups (ENCODED_ROW_GROUP rows); an empty split has one empty shard."""
    return [
        [slice(start, min(start + ENCODED_ROW_GROUP, shard_start + shard_rows, rows))
         for start in range(shard_start, min(shard_start + shard_rows, rows), ENCODED_ROW_GROUP)]
        for shard_start in range(0, max(rows, 1), shard_rows)
    ]


def _encoded_blocks(
    data: EncodedSource,
    rows: np.ndarray,
    in_sample: np.ndarray,
    blocks: list[slice],
    encode: enc.EncodeSpec,
    pool: Executor | None,
    workers: int,
) -> Iterator[tuple[slice, list[bytes], list]]:
    """(positions, stored bytes, statistics) of each block in order, fetched one block at a time.

    With a pool, the next block is fetched and handed to the workers before this one is yielded,
    so the workers never wait on the writer: at most two blocks (~2 x 28 MB of JPEGs) are held."""
    pending: list[tuple[slice, Callable[[], tuple[list[bytes], list]]]] = []
    for block in blocks:
        pending.append((block, _start_block(data.fetch(rows[block]), in_sample[block], encode, pool, workers)))
        if len(pending) == 2 or pool is None:
            yield _finish_first(pending)  # no local keeps a yielded block alive here
    while pending:
        yield _finish_first(pending)


def _finish_first(pending: list) -> tuple[slice, list[bytes], list]:
    block, finish = pending.pop(0)
    return block, *finish()


def _start_block(
    source_bytes: list[bytes], in_sample: np.ndarray, encode: enc.EncodeSpec, pool: Executor | None, workers: int
) -> Callable[[], tuple[list[bytes], list]]:
    """Start one block's work; returns a call that gives its stored bytes and its statistics-sample sums.

    Rows that neither change (default `source` format on a JPEG/PNG) nor feed the statistics never
    leave this process, and workers send back only bytes they changed: unchanged rows are not copied."""
    busy = enc.needs_work(encode)
    todo = [i for i, data in enumerate(source_bytes) if busy or in_sample[i] or enc.sniff_format(data) == "other"]
    tasks = ([source_bytes[i] for i in todo], repeat(encode), [bool(in_sample[i]) for i in todo])
    chunk = max(1, ceil(len(todo) / (4 * workers)))  # ~4 chunks per worker: balanced, few messages
    results = pool.map(enc.encode_with_sums, *tasks, chunksize=chunk) if pool else map(enc.encode_with_sums, *tasks)

    def finish() -> tuple[list[bytes], list]:
        stats = []
        for i, (changed, sums) in zip(todo, results):
            if changed is not None:
                source_bytes[i] = changed
            if sums is not None:
                stats.append(sums)
        return source_bytes, stats

    return finish


_ENCODED_SCHEMA = pa.schema([("image", pa.binary()), ("label", pa.int64())])


@contextmanager
def _encoded_shard_writer(path: Path) -> Iterator[Callable[[list[bytes], np.ndarray], None]]:
    """A call that appends one row group to the shard at `path` (temp file, renamed when the block ends)."""
    # JPEG/PNG bytes do not compress further: store them plain, no dictionary, no min/max statistics.
    with atomic_path(path) as tmp, pq.ParquetWriter(
        tmp, _ENCODED_SCHEMA, compression={"image": "NONE", "label": "ZSTD"}, use_dictionary=["label"],
        write_statistics=["label"],
    ) as writer:

        def write(images: list[bytes], labels: np.ndarray) -> None:
            # One row group (<= ENCODED_ROW_GROUP rows) per call: a reader holds a part of a shard.
            columns = [pa.array(images, type=pa.binary()), pa.array(labels, type=pa.int64())]
            writer.write_table(pa.Table.from_arrays(columns, schema=_ENCODED_SCHEMA), row_group_size=ENCODED_ROW_GROUP)

        yield write


@contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    """A process pool for decoding/encoding (fork: the parent holds only file lists and labels here)."""
    if workers == 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool


def _common_square_side(sizes: set[tuple[int, int]], source: str) -> int:
    """Without image_size, the network input is the images' own size: only when they share one square size."""
    if len(sizes) == 1 and (side := next(iter(sizes)))[0] == side[1]:
        return side[0]
    raise LmnasError(
        f"dataset {source!r}: images have sizes {sorted(sizes)[:4]} (H, W), not one square size; "
        f"set image_size (the network's input side in pixels)"
    )


def select_classes(data: Source, classes: list[int] | None) -> Source:
    """Keep only `classes` and relabel them 0..k-1 in the given order (e.g. digits 5–9 → 0–4)."""
    if classes is None:
        return data
    bad = [c for c in classes if not 0 <= c < len(data.class_names)]
    if bad:
        raise LmnasError(f"dataset.classes {bad} are not labels of this source (0..{len(data.class_names) - 1})")
    remap = np.full(len(data.class_names), -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    new_labels = remap[data.labels]
    keep = np.flatnonzero(new_labels >= 0)
    names = [data.class_names[c] for c in classes]
    if isinstance(data, EncodedSource):
        return data.subset(keep, new_labels[keep])._replace(class_names=names)
    return SourceData(
        data.images[keep],
        new_labels[keep],
        names,
        None if data.official_split is None else data.official_split[keep],
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
