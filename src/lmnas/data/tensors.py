"""Prepared Parquet shards → torch tensors (uint8 images [N, C, H, W], int64 labels [N])."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lmnas.errors import LmnasError
from lmnas.data.shards import decode_image, read_manifest, resize_center_crop, split_shards, storage

def load_split(prepared_dir: str | Path, split: str, *, verify: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one whole split into memory: images uint8 [N, C, H, W] (contiguous), labels int64 [N].

    Raw storage returns the stored pixels. Encoded storage decodes every image to the manifest's
    image_shape (shorter side → H, central crop, as raw storage was made), for a split that fits
    where it is kept (the proxy's 10 % subset); large splits stream through lmnas.data.shards instead.
    verify=True recomputes each shard's sha256 and compares it with the manifest first.
    """
    prepared_dir = Path(prepared_dir)
    manifest = read_manifest(prepared_dir)
    shards = split_shards(prepared_dir, manifest, split, verify=verify)
    count = manifest["splits"][split]["count"]
    channels, height, width = manifest["image_shape"]
    images = np.empty((count, channels, height, width), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    encoded = storage(manifest) == "encoded"
    start = 0
    for path, expected_rows in shards:
        table = pq.read_table(path, columns=["image", "label"])
        rows = table.num_rows
        if rows != expected_rows or start + rows > len(labels):
            raise LmnasError(f"shard {path} has {rows} rows, manifest says {expected_rows}; rerun prepare_data")
        if encoded:
            _decode_into(images[start : start + rows], table.column("image").to_pylist(), height, path)
        else:
            hwc = _image_bytes(table.column("image"), height * width * channels, path)
            # One copy: HWC bytes from the Parquet buffer straight into the CHW output.
            images[start : start + rows] = hwc.reshape(rows, height, width, channels).transpose(0, 3, 1, 2)
        labels[start : start + rows] = table.column("label").to_numpy()
        start += rows
    if start != len(labels):
        raise LmnasError(f"split {split!r} in {prepared_dir} has {start} rows, manifest says {len(labels)}")
    return torch.from_numpy(images), torch.from_numpy(labels)


def _decode_into(out: np.ndarray, encoded: list[bytes], size: int, path: Path) -> None:
    """Decode one shard's images into out (uint8 [n, C, size, size]); PIL releases the GIL, so threads scale."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> None:
        picture = resize_center_crop(decode_image(encoded[i]), size)
        array = np.asarray(picture, dtype=np.uint8)
        if array.ndim == 2 or array.shape[2] != out.shape[1]:
            raise LmnasError(f"shard {path} row {i}: decoded to {array.shape}, manifest image_shape says {out.shape[1:]}")
        out[i] = array.transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(len(encoded))))


def _image_bytes(column: pa.ChunkedArray, row_bytes: int, path: Path) -> np.ndarray:
    """The concatenated row bytes of a binary column, viewed in place (no per-row Python objects)."""
    offset_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    parts = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        if chunk.null_count:
            raise LmnasError(f"shard {path} has null images")
        _validity, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        if not np.all(np.diff(offsets) == row_bytes):
            raise LmnasError(
                f"shard {path} has images that are not {row_bytes} bytes (the manifest's image_shape)"
            )
        parts.append(np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]])
    if not parts:
        return np.empty(0, dtype=np.uint8)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
