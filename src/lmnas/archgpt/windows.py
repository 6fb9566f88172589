"""Corpus rows → token ids → fixed-length training windows, and the held-out split.

An architecture is `<bos> t1 … tn <eos>`. The GPT sees window + 1 positions, so one
window of window + 1 tokens yields `window` next-token predictions, each with 1…window
tokens of context. Windows overlap by `window + 1 - stride` tokens.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch

from lmnas.encoding.vocab import Vocab
from lmnas.errors import LmnasError

IGNORE = -100  # label value ignored by the loss (torch / HF convention)


def load_vocab(path: Path) -> Vocab:
    """The corpus vocab.json (token id = position in specials + structures)."""
    if not Path(path).is_file():
        raise LmnasError(f"{path}: vocab file not found (expected the corpus vocab.json)")
    return Vocab.load(path)


@dataclass(frozen=True)
class Corpus:
    """The columns of a corpus parquet this package needs, one entry per architecture."""

    arch_ids: list[str]
    structures: list[list[str]]
    blocks: list[list[str]] | None  # enclosing block label per layer, "" if none

    def __len__(self) -> int:
        return len(self.arch_ids)


def read_corpus(path: Path, *, need_blocks: bool = False) -> Corpus:
    columns = ["arch_id", "structures"] + (["blocks"] if need_blocks else [])
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError as e:
        raise LmnasError(f"{path}: corpus parquet not found (run the encode_corpus stage)") from e
    except (KeyError, ValueError) as e:  # pyarrow raises these for a missing column
        raise LmnasError(f"{path}: expected columns {columns} ({e})") from e
    data = table.to_pydict()
    arch_ids = [str(a) for a in data["arch_id"]]
    structures = [list(s or []) for s in data["structures"]]
    blocks = [list(b or []) for b in data["blocks"]] if need_blocks else None
    for i, seq in enumerate(structures):
        if not seq:
            raise LmnasError(f"{path}: architecture {arch_ids[i]!r} has an empty 'structures' list")
        if blocks is not None and len(blocks[i]) != len(seq):
            raise LmnasError(
                f"{path}: architecture {arch_ids[i]!r} has {len(blocks[i])} 'blocks' for {len(seq)} 'structures'"
            )
    return Corpus(arch_ids, structures, blocks)


@dataclass(frozen=True)
class Windows:
    input_ids: torch.Tensor  # [N, window + 1] long, right-padded with <pad>
    labels: torch.Tensor  # [N, window + 1] long, HF convention (shifted inside the loss), IGNORE where unused

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def n_targets(self) -> int:
        return int((self.labels != IGNORE).sum())


def make_windows(
    sequences: Sequence[Sequence[int]],
    vocab: Vocab,
    window: int,
    stride: int,
    *,
    new_targets_only: bool = False,
) -> Windows:
    """Cut `<bos> seq <eos>` of every architecture into windows of window + 1 tokens.

    Training (new_targets_only=False): every target in a window is labelled, so a token in
    an overlap is learnt with several context lengths. Evaluation (True): a target is
    labelled only in the first window that predicts it after the first one, so each target
    counts once; with stride=1 every target gets min(position, window) tokens of context,
    exactly what the predictor sees at search time.
    """
    if not 1 <= stride <= window:
        raise LmnasError(f"windows: stride must be in [1, window={window}], got {stride}")
    length = window + 1
    rows: list[list[int]] = []
    labels: list[list[int]] = []
    for seq in sequences:
        s = [vocab.bos_id, *seq, vocab.eos_id]
        starts = list(range(0, max(len(s) - length, 0) + 1, stride))
        if starts[-1] + length < len(s):
            starts.append(len(s) - length)  # the tail the stride stepped over
        covered = 0  # absolute index of the last target already labelled
        for a in starts:
            chunk = s[a : a + length]
            lab = [IGNORE] + chunk[1:]  # position 0 is never a target after the shift
            if new_targets_only:
                lab = [IGNORE if a + j <= covered else t for j, t in enumerate(lab)]
            covered = a + len(chunk) - 1
            pad = length - len(chunk)
            rows.append(chunk + [vocab.pad_id] * pad)
            labels.append(lab + [IGNORE] * pad)
    if not rows:
        return Windows(torch.empty(0, length, dtype=torch.long), torch.empty(0, length, dtype=torch.long))
    return Windows(torch.tensor(rows, dtype=torch.long), torch.tensor(labels, dtype=torch.long))


def split_by_group(keys: Sequence[Hashable], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Row indices (train, val), held out by group so equal keys never straddle the split.

    Keys are the layer sequences: two rows with the same sequence are the same
    architecture to the GPT, so holding out by sequence is what keeps the held-out
    accuracy honest.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise LmnasError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups = list(dict.fromkeys(keys))  # unique, in first-seen order (deterministic)
    random.Random(seed).shuffle(groups)
    n_val = round(val_fraction * len(groups))
    if val_fraction > 0 and len(groups) >= 2:
        n_val = min(max(n_val, 1), len(groups) - 1)
    val_groups = set(groups[:n_val])
    train = [i for i, k in enumerate(keys) if k not in val_groups]
    val = [i for i, k in enumerate(keys) if k in val_groups]
    return train, val


def left_context(prefix: Sequence[int], k: int, pad_id: int) -> list[int]:
    """The last k ids of prefix, left-padded with <pad> to length k (the classifier input)."""
    tail = list(prefix[-k:]) if k else []
    return [pad_id] * (k - len(tail)) + tail
