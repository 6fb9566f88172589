"""Prepared Parquet shards → torch tensors (uint8 images [N, C, H, W], int64 labels [N])."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lmnas.errors import LmnasError
from lmnas.identity import sha256_file
from lmnas.io import read_json

MANIFEST_NAME = "manifest.json"


def read_manifest(prepared_dir: str | Path) -> dict:
    path = Path(prepared_dir) / MANIFEST_NAME
    if not path.is_file():
        raise LmnasError(
            f"{path} not found: run prepare_data first (snakemake prepare_data, or "
            f"lmnas.data.prepare_dataset) for {Path(prepared_dir)}"
        )
    try:
        return read_json(path)
    except json.JSONDecodeError as err:
        raise LmnasError(f"{path} is not valid JSON ({err}); rerun prepare_data") from err


def load_split(prepared_dir: str | Path, split: str, *, verify: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split: images uint8 [N, C, H, W] (contiguous), labels int64 [N].

    verify=True recomputes each shard's sha256 and compares it with the manifest first.
    """
    prepared_dir = Path(prepared_dir)
    manifest = read_manifest(prepared_dir)
    if split not in manifest["splits"]:
        raise LmnasError(
            f"split {split!r} not in {prepared_dir / MANIFEST_NAME}; known: {sorted(manifest['splits'])}"
        )
    entry = manifest["splits"][split]
    channels, height, width = manifest["image_shape"]
    images = np.empty((entry["count"], channels, height, width), dtype=np.uint8)
    labels = np.empty(entry["count"], dtype=np.int64)
    start = 0
    for shard in entry["files"]:
        path = prepared_dir / shard["name"]
        if not path.is_file():
            raise LmnasError(f"shard {path} listed in the manifest is missing; rerun prepare_data")
        if verify and (digest := sha256_file(path)) != shard["sha256"]:
            raise LmnasError(
                f"shard {path} is corrupted: sha256 {digest[:12]}… != manifest {shard['sha256'][:12]}…; "
                f"rerun prepare_data"
            )
        table = pq.read_table(path, columns=["image", "label"])
        rows = table.num_rows
        if rows != shard["rows"] or start + rows > len(labels):
            raise LmnasError(f"shard {path} has {rows} rows, manifest says {shard['rows']}; rerun prepare_data")
        hwc = _image_bytes(table.column("image"), height * width * channels, path)
        # One copy: HWC bytes from the Parquet buffer straight into the CHW output.
        images[start : start + rows] = hwc.reshape(rows, height, width, channels).transpose(0, 3, 1, 2)
        labels[start : start + rows] = table.column("label").to_numpy()
        start += rows
    if start != len(labels):
        raise LmnasError(f"split {split!r} in {prepared_dir} has {start} rows, manifest says {len(labels)}")
    return torch.from_numpy(images), torch.from_numpy(labels)


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
