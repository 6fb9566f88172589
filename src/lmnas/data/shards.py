"""Reading prepared shards: the contract between prepare_data and every reader (training, proxy, users).

Contract (issue 17; `lmnas.data.prepare` writes it, training input pipelines read it):
    manifest.json
        storage      "raw" | "encoded"   (a manifest without the key is "raw": written before encoded storage)
        format       encoded only: "jpeg" | "png" | "mixed" — what the image bytes are
        image_shape  [C, H, W] the network's input: raw = the stored pixels; encoded = the resolution
                     the config asks for (images are stored at their own size, decode and crop to this)
        splits.<split>.files  [{name, rows, sha256}], in row order
    shards  {split}-{k:05d}-of-{n:05d}.parquet, columns
        image  binary: raw = H*W*C uint8 bytes (HWC); encoded = one whole JPEG/PNG file per row
        label  int64, 0..num_classes-1
    Rows of a split are in a seeded shuffled order, so any prefix or shard is class-mixed.

Functions a reader needs, and nothing else:
    read_manifest(folder)                      -> the manifest dict (clear error when prepare has not run)
    storage(manifest)                          -> "raw" | "encoded"
    open_encoded_split(folder, split, verify)  -> [ShardInfo(path, rows)] (checks names, counts, digests)
    read_encoded_shard(path)                   -> (list of encoded bytes, labels int64 [n])
    decode_image(data)                         -> PIL.Image in RGB (grayscale/CMYK/palette converted)
    resize_center_crop(picture, size)          -> shorter side → size, central size×size (the resident path)
The prepared folder is also a plain Parquet dataset: `datasets.load_dataset("parquet", data_files=...)`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow.parquet as pq

from lmnas.errors import LmnasError
from lmnas.identity import sha256_file
from lmnas.io import read_json

if TYPE_CHECKING:
    from PIL import Image

MANIFEST_NAME = "manifest.json"
STORAGES = ("raw", "encoded")


class ShardInfo(NamedTuple):
    path: Path
    rows: int


def prepare_command(prepared_dir: str | Path) -> str:
    """The command that makes a prepared dataset: the workflow's prepare_data rule has a wildcard
    output, so it is asked for by its folder (`snakemake prepare_data` is refused by Snakemake)."""
    return f"snakemake --cores 1 data/prepared/{Path(prepared_dir).name}"


def read_manifest(prepared_dir: str | Path) -> dict:
    path = Path(prepared_dir) / MANIFEST_NAME
    name = Path(prepared_dir).name
    if not path.is_file():
        raise LmnasError(
            f"{path} not found: {Path(prepared_dir)} is no prepared dataset; make it with `{prepare_command(prepared_dir)}` "
            f"(for a dataset {name!r} under `datasets:` in config/config.yaml; it writes data/prepared/{name}) "
            f"or lmnas.data.prepare_dataset"
        )
    try:
        return read_json(path)
    except json.JSONDecodeError as err:
        raise LmnasError(f"{path} is not valid JSON ({err}); remake it with `{prepare_command(prepared_dir)}`") from err


def storage(manifest: dict) -> str:
    """How a prepared folder stores its images; manifests older than the key are raw."""
    kind = manifest.get("storage", "raw")
    if kind not in STORAGES:
        raise LmnasError(f"manifest storage {kind!r} is not one of {STORAGES}; rerun prepare_data")
    return kind


def split_shards(folder: str | Path, manifest: dict, split: str, *, verify: bool = False) -> list[ShardInfo]:
    """The shards of one split, in order, checked to exist (and, with verify, against their sha256)."""
    folder = Path(folder)
    if split not in manifest["splits"]:
        raise LmnasError(f"split {split!r} not in {folder / MANIFEST_NAME}; known: {sorted(manifest['splits'])}")
    shards = []
    for entry in manifest["splits"][split]["files"]:
        path = folder / entry["name"]
        if not path.is_file():
            raise LmnasError(f"shard {path} listed in the manifest is missing; rerun prepare_data")
        if verify and (digest := sha256_file(path)) != entry["sha256"]:
            raise LmnasError(
                f"shard {path} is corrupted: sha256 {digest[:12]}… != manifest {entry['sha256'][:12]}…; "
                f"rerun prepare_data"
            )
        shards.append(ShardInfo(path, int(entry["rows"])))
    return shards


def open_encoded_split(folder: str | Path, split: str, *, verify: bool = False) -> list[ShardInfo]:
    """The shards of an encoded split with their row counts (footers are not read: the manifest says)."""
    manifest = read_manifest(folder)
    if storage(manifest) != "encoded":
        raise LmnasError(
            f"{Path(folder) / MANIFEST_NAME} stores raw pixels, not encoded images; read it with lmnas.data.load_split"
        )
    return split_shards(folder, manifest, split, verify=verify)


def read_encoded_shard(path: str | Path) -> tuple[list[bytes], np.ndarray]:
    """One encoded shard → (encoded image bytes per row, labels int64 [n]); holds one shard in memory."""
    table = pq.read_table(path, columns=["image", "label"])
    if table.column("image").null_count:
        raise LmnasError(f"shard {path} has null images; rerun prepare_data")
    return table.column("image").to_pylist(), table.column("label").to_numpy().astype(np.int64, copy=False)


def decode_image(data: bytes) -> Image.Image:
    """Encoded JPEG/PNG bytes → an RGB PIL image (decoded now, not lazily)."""
    from PIL import Image, UnidentifiedImageError

    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
    except (UnidentifiedImageError, OSError) as err:
        raise LmnasError(f"an image of {len(data)} bytes could not be decoded ({err})") from err
    return picture if picture.mode == "RGB" else picture.convert("RGB")


def resize_center_crop(picture: Image.Image, size: int) -> Image.Image:
    """Shorter side → `size` (bilinear, antialiased as torchvision's Resize), then the central size×size crop."""
    from PIL import Image

    width, height = picture.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        picture = picture.resize((new_w, new_h), Image.BILINEAR, reducing_gap=None)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return picture.crop((left, top, left + size, top + size))
