"""Datasets → fixed-split Parquet shards with a manifest → uint8 tensors."""

from lmnas.data.prepare import SPLITS, DatasetSpec, prepare_dataset
from lmnas.data.sources import DATASET_SOURCES, SourceData, load_source
from lmnas.data import hf as _hf  # noqa: F401  registers the 'hf' source
from lmnas.data.tensors import load_split, read_manifest

__all__ = [
    "DATASET_SOURCES",
    "SPLITS",
    "DatasetSpec",
    "SourceData",
    "load_source",
    "load_split",
    "prepare_dataset",
    "read_manifest",
]
