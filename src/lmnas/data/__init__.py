"""Datasets → fixed-split Parquet shards with a manifest → uint8 tensors or streamed encoded images."""

from lmnas.data.prepare import SPLITS, DatasetSpec, prepare_dataset
from lmnas.data.sources import DATASET_SOURCES, SourceData, load_source
from lmnas.data import hf as _hf  # noqa: F401  registers the 'hf' source
from lmnas.data.shards import (
    ShardInfo,
    decode_image,
    open_encoded_split,
    read_encoded_shard,
    read_manifest,
    resize_center_crop,
    storage,
)
from lmnas.data.tensors import load_split

__all__ = [
    "DATASET_SOURCES",
    "SPLITS",
    "DatasetSpec",
    "ShardInfo",
    "SourceData",
    "decode_image",
    "load_source",
    "load_split",
    "open_encoded_split",
    "prepare_dataset",
    "read_encoded_shard",
    "read_manifest",
    "resize_center_crop",
    "storage",
]
