"""Fill masked NAS-Bench-101 vertices with an op-slot GPT, scoring whole cells.

A masked vertex is one choice among the three ops (`encoding.nb101_opslot`), so the GPT never has to
guess which of its layer tokens is "the op". Each candidate cell (the original with the masked
vertices set to some legal ops) is scored by the GPT's total log-likelihood of its full sequence,
so the choice sees both sides of the slot (the ops after it and the adjacency rows), not only
the left context. On a table space the candidates are only the table's cells that equal the
original outside the masked slots (never a random snap to a nearest cell); the original is a
candidate only when no other exists. Decoding policy: greedy at temperature 0, else sampled from
softmax(loglik / T), optionally among the top-k only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

import torch
from torch.nn import functional as F
from transformers import GPT2LMHeadModel

from lmnas.archgpt.model import ArchGPTConfig, build_model
from lmnas.errors import LmnasError
from lmnas.nasbench101.cell import AVAILABLE_OPS, CellSpec
from lmnas.encoding.nb101_opslot import BOS_ID, EOS_ID, MAX_LENGTH, PAD_ID, TOKENS, encode_cell, to_ids
from lmnas.nasbench101.canonical import canonical_cell


@dataclass(frozen=True)
class DecodePolicy:
    temperature: float = 0.0  # 0: greedy (the most likely candidate)
    top_k: int = 0  # 0: all candidates

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0:
            raise LmnasError(f"DecodePolicy: temperature and top_k must be >= 0, got {self}")


def build_opslot_model(cfg: ArchGPTConfig) -> GPT2LMHeadModel:
    """A GPT-2 over the fixed op-slot vocabulary whose window holds a whole cell."""
    cfg = ArchGPTConfig(cfg.n_layer, cfg.n_head, cfg.n_embd, max(cfg.window, MAX_LENGTH - 1), cfg.dropout)
    return build_model(len(TOKENS), cfg, pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID)


def _batch(sequences: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [to_ids(list(s)) for s in sequences]
    width = max(map(len, ids))
    x = torch.full((len(ids), width), PAD_ID, dtype=torch.long)
    for i, seq in enumerate(ids):
        x[i, : len(seq)] = torch.tensor(seq)
    return x, (x != PAD_ID).long()


def sequence_log_likelihood(model: GPT2LMHeadModel, sequences: Sequence[Sequence[str]]) -> list[float]:
    """Sum over tokens after <bos> (to <eos>) of log p(token | tokens before), per sequence."""
    x, mask = _batch(sequences)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        logits = model(input_ids=x, attention_mask=mask).logits.float()
    model.train(was_training)
    logp = F.log_softmax(logits[:, :-1], -1).gather(-1, x[:, 1:, None])[..., 0]
    return (logp * mask[:, 1:]).sum(-1).tolist()


def train_opslot(
    cells: Sequence[CellSpec],
    cfg: ArchGPTConfig,
    *,
    buckets: Sequence[int] | None = None,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> GPT2LMHeadModel:
    """Pre-train an op-slot GPT on `cells` (with their quality-bucket prefixes if given)."""
    if not cells:
        raise LmnasError("train_opslot: no cells to train on")
    if buckets is not None and len(buckets) != len(cells):
        raise LmnasError(f"train_opslot: {len(buckets)} buckets for {len(cells)} cells")
    torch.manual_seed(seed)
    model = build_opslot_model(cfg)
    return fit_opslot(model, cells, buckets, steps=steps, batch_size=batch_size, lr=lr, seed=seed)


def fit_opslot(
    model: GPT2LMHeadModel,
    cells: Sequence[CellSpec],
    buckets: Sequence[int] | None = None,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> GPT2LMHeadModel:
    """`steps` Adam steps of next-token loss on `cells` (batches drawn with replacement), in place.
    Deterministic for a seed: batches from their own generator, dropout under a forked global RNG."""
    x, mask = _batch([encode_cell(c, None if buckets is None else buckets[i]) for i, c in enumerate(cells)])
    labels = x.masked_fill(mask == 0, -100)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
            loss = model(input_ids=x[idx], attention_mask=mask[idx], labels=labels[idx]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def quantile_buckets(accuracies: Sequence[float], count: int = 4) -> tuple[list[int], list[float]]:
    """Bucket of each accuracy by the `count` quantiles of `accuracies` (count-1 = the top), and the edges."""
    ranked = sorted(accuracies)
    edges = [ranked[min(len(ranked) - 1, math.floor(len(ranked) * q / count))] for q in range(1, count)]
    return [sum(a >= e for e in edges) for a in accuracies], edges


def with_ops(cell: CellSpec, assignment: dict[int, str]) -> CellSpec:
    ops = list(cell.ops)
    for vertex, op in assignment.items():
        ops[vertex] = op
    return CellSpec(cell.matrix, tuple(ops))


def candidate_cells(
    cell: CellSpec, masked: Sequence[int], in_space: Callable[[CellSpec], bool] | None = None
) -> list[CellSpec]:
    """Every distinct canonical cell equal to `cell` outside the masked interior vertices with a legal
    op in each; with `in_space` (a table), only those it accepts, the original excluded unless it
    is the only one."""
    if any(not 0 < v < cell.num_vertices - 1 for v in masked):
        raise LmnasError(f"masked vertices {list(masked)}: only interior vertices 1..{cell.num_vertices - 2}")
    original = canonical_cell(cell)
    seen: dict[CellSpec, None] = {}
    for ops in product(AVAILABLE_OPS, repeat=len(masked)):
        c = canonical_cell(with_ops(cell, dict(zip(masked, ops))))
        if in_space is None or in_space(c):
            seen.setdefault(c)
    others = [c for c in seen if c != original]
    if in_space is None:
        return list(seen)
    return others or ([original] if original in seen or in_space(original) else [])


def choose(scores: Sequence[float], rng: random.Random, policy: DecodePolicy) -> int:
    """Index of the chosen candidate: argmax at T = 0, else drawn from softmax(scores / T) (top-k)."""
    if not scores:
        raise LmnasError("choose: no candidates")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if policy.temperature == 0:
        return order[0]
    kept = order[: policy.top_k] if policy.top_k else order
    top = max(scores[i] for i in kept)
    weights = [math.exp((scores[i] - top) / policy.temperature) for i in kept]
    return rng.choices(kept, weights=weights)[0]


def reconstruct_cell(
    model: GPT2LMHeadModel,
    cell: CellSpec,
    masked: Sequence[int],
    rng: random.Random,
    policy: DecodePolicy = DecodePolicy(),
    bucket: int | None = None,
    in_space: Callable[[CellSpec], bool] | None = None,
    candidates: Sequence[CellSpec] | None = None,
) -> CellSpec:
    """`cell` with its masked vertices re-chosen jointly by full-sequence likelihood (see module doc).
    `candidates`: `candidate_cells(cell, masked, in_space)` when the caller has it already."""
    if not masked:
        return canonical_cell(cell)
    if candidates is None:
        candidates = candidate_cells(cell, masked, in_space)
    if not candidates:
        raise LmnasError(f"cell {cell.as_dict()}: no candidate in the space for masked vertices {list(masked)}")
    scores = sequence_log_likelihood(model, [encode_cell(c, bucket) for c in candidates])
    return candidates[choose(scores, rng, policy)]
