"""Encoded-image shards: how each image's bytes are chosen, and the per-image work of the prepare pool.

Default `encode: {format: source, shorter_side: null}` copies the source's JPEG/PNG files byte for
byte. Why: it loses nothing (training crops, RandAugment and the eval resize 256 → crop 224 all see
the original; a stored 224 px centre crop loses the quarter outside the central square and makes a
0.08-scale RandomResizedCrop upsample 63 px instead of ~122), adds no second JPEG generation, needs
no decode at prepare time (ImageNet-1k: minutes of copying, not hours of decoding) and is smaller on
disk than raw 224 px pixels (~110 kB vs 150 kB an image). `shorter_side: 256`-style re-encoding
(FFCV-like) trades that fidelity for ~2-3x less disk and decode time per training image.

Workers (a process pool in `lmnas.data.prepare`) call the module-level functions below, so they pickle.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmnas.errors import LmnasError
from lmnas.fields import from_mapping

ENCODE_FORMATS = ("source", "jpeg")
# Channel statistics: a fixed seeded sample of train images, each decoded at STATS_SIZE x STATS_SIZE.
STATS_SAMPLE = 2_000
STATS_SIZE = 64


@dataclass
class EncodeSpec:
    """`datasets.<name>.encode`: what bytes an encoded shard stores per image."""

    format: str = "source"  # source: the file as it is (JPEG/PNG; others become JPEG); jpeg: always re-encode
    shorter_side: int | None = None  # re-encode images whose shorter side is larger, down to this many px
    quality: int = 90  # JPEG quality of re-encoded images (timm/FFCV use 90-95)

    def __post_init__(self) -> None:
        if self.format not in ENCODE_FORMATS:
            raise LmnasError(f"dataset.encode.format must be one of {ENCODE_FORMATS}, got {self.format!r}")
        if self.shorter_side is not None and int(self.shorter_side) < 1:
            raise LmnasError(f"dataset.encode.shorter_side must be a positive pixel count or null, got {self.shorter_side}")
        if not 1 <= int(self.quality) <= 100:
            raise LmnasError(f"dataset.encode.quality must be in 1..100, got {self.quality}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "dataset.encode") -> EncodeSpec:
        return from_mapping(cls, dict(data or {}), where)


def sniff_format(data: bytes) -> str:
    """"jpeg", "png" or "other" from the file's magic bytes (no decode)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return "other"


def needs_work(spec: EncodeSpec) -> bool:
    """Whether any image may need decoding; with the default, bytes go straight from source to shard."""
    return spec.format != "source" or spec.shorter_side is not None


def encode_image(data: bytes, spec: EncodeSpec) -> bytes:
    """The bytes to store for one source file (runs in a pool worker)."""
    from PIL import Image

    kind = sniff_format(data)
    if spec.format == "source" and spec.shorter_side is None and kind != "other":
        return data
    picture = Image.open(io.BytesIO(data))
    width, height = picture.size
    too_big = spec.shorter_side is not None and min(width, height) > spec.shorter_side
    if spec.format == "source" and not too_big and kind != "other":
        return data  # already small enough: keep the original bytes, no second JPEG generation
    if too_big:
        scale = spec.shorter_side / min(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture.draft("RGB", size)  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that is still >= size
        picture = picture.convert("RGB").resize(size, Image.BICUBIC, reducing_gap=3.0)
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="JPEG", quality=spec.quality)
    return out.getvalue()


def pixel_sums(data: bytes) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Per-channel sum and sum of squares (0..1 scale) of one image at STATS_SIZE², and its (H, W)."""
    from lmnas.data.shards import decode_image, resize_center_crop

    picture = decode_image(data)
    height_width = (picture.size[1], picture.size[0])
    pixels = np.asarray(resize_center_crop(picture, STATS_SIZE), dtype=np.float64).reshape(-1, 3) / 255.0
    return pixels.sum(axis=0), np.square(pixels).sum(axis=0), height_width


def encode_with_sums(data: bytes, spec: EncodeSpec, with_sums: bool) -> tuple[bytes | None, Any]:
    """One pool task: the stored bytes (None: the source bytes unchanged, so a worker does not send
    a copy back) and, for a statistics-sample row, its pixel sums."""
    stored = encode_image(data, spec) if needs_work(spec) or sniff_format(data) == "other" else data
    return (None if stored is data else stored), pixel_sums(stored) if with_sums else None
