"""Vocabulary of layer-structure tokens for the architecture GPT, built from the corpora.

Ids: the specials `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3, then the layer-structure keys
(`Layer.structure()`) by descending frequency (ties alphabetical), so the ids are a pure
function of the data. Stored as `vocab.json`:
`{"specials": [...], "structures": [...], "counts": {structure: count}, "encoding": "size-free"}`;
`encoding` says which `Layer.structure` key the tokens are (size-free or sized), so search-time
contexts are encoded as the GPT was trained (a file without it is size-free).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lmnas.encoding.layers import ENCODINGS, Layer
from lmnas.errors import LmnasError
from lmnas.io import read_json, write_json

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)


@dataclass(frozen=True)
class Vocab:
    structures: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict, compare=False)
    specials: tuple[str, ...] = SPECIALS
    encoding: str = "size-free"  # the Layer.structure key the tokens are

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise LmnasError(f"vocabulary encoding {self.encoding!r} is not known; known: {list(ENCODINGS)}")
        tokens = self.tokens
        if len(set(tokens)) != len(tokens):
            raise LmnasError("vocabulary has duplicate tokens")
        missing = [s for s in SPECIALS if s not in self.specials]
        if missing:
            raise LmnasError(f"vocabulary lacks the special tokens {missing}")
        object.__setattr__(self, "_index", {token: i for i, token in enumerate(tokens)})

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_count: int = 1, encoding: str = "size-free") -> Vocab:
        """From structure-key sequences (one per architecture); keys rarer than `min_count` map to <unk>."""
        counts = Counter(key for seq in sequences for key in seq)
        kept = sorted((k for k, c in counts.items() if c >= min_count), key=lambda k: (-counts[k], k))
        return cls(tuple(kept), {k: counts[k] for k in kept}, encoding=encoding)

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.specials + self.structures

    def __len__(self) -> int:
        return len(self.specials) + len(self.structures)

    def id_of(self, token: str) -> int:
        return self._index.get(token, self._index[UNK])  # type: ignore[attr-defined]

    @property
    def pad_id(self) -> int:
        return self.id_of(PAD)

    @property
    def bos_id(self) -> int:
        return self.id_of(BOS)

    @property
    def eos_id(self) -> int:
        return self.id_of(EOS)

    @property
    def unk_id(self) -> int:
        return self.id_of(UNK)

    def encode_structures(self, structures: Sequence[str], *, add_bos_eos: bool = True) -> list[int]:
        ids = [self.id_of(s) for s in structures]
        return [self.bos_id, *ids, self.eos_id] if add_bos_eos else ids

    def encode(self, layers: Sequence[Layer], *, add_bos_eos: bool = True) -> list[int]:
        """Token ids of a layer sequence, framed by <bos> ... <eos> unless told otherwise."""
        return self.encode_structures([layer.structure(self.encoding) for layer in layers], add_bos_eos=add_bos_eos)

    def decode(self, ids: Iterable[int]) -> list[str]:
        tokens = self.tokens
        return [tokens[i] if 0 <= i < len(tokens) else UNK for i in ids]

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, {"specials": list(self.specials), "structures": list(self.structures), "counts": self.counts,
                          "encoding": self.encoding})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        data = read_json(path)
        try:
            return cls(tuple(data["structures"]), dict(data.get("counts", {})), tuple(data["specials"]),
                       data.get("encoding", "size-free"))
        except (KeyError, TypeError) as exc:
            raise LmnasError(f"{path}: not a vocab.json (needs 'specials' and 'structures'): {exc}") from None
