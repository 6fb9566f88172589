"""Architecture ↔ GPT-NAS layer records ↔ text ↔ layer-structure tokens."""

from lmnas.encoding.families import FAMILIES, VARIANTS, Variant, get_variant
from lmnas.encoding.layers import Layer, encode_text, parse_text
from lmnas.encoding.trace import DEFAULT_BLOCK_TYPES, on_meta, trace_layers
from lmnas.encoding.vocab import SPECIALS, Vocab

__all__ = [
    "DEFAULT_BLOCK_TYPES",
    "FAMILIES",
    "Layer",
    "SPECIALS",
    "VARIANTS",
    "Variant",
    "Vocab",
    "encode_text",
    "get_variant",
    "on_meta",
    "parse_text",
    "trace_layers",
]
