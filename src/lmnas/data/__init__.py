"""Datasets → fixed-split Parquet shards with a manifest → uint8 tensors or streamed encoded images."""

from lmnas.data.hf import load_hf_source
from lmnas.data.prepare import prepare_dataset
from lmnas.data.sources import DATASET_SOURCES, SourceData, load_source
from lmnas.data.spec import SPLITS, DatasetSpec
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

# Registered here, not by its own module: hf.py builds on sources.py (where the built-in sources
# register), so sources.py cannot import it, and nothing should depend on an import's side effect.
DATASET_SOURCES.register("hf")(load_hf_source)

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
