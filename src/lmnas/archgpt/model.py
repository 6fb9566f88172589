"""The architecture GPT: a small GPT-2 over layer-structure tokens (GPT-NAS, sec. 3.2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from transformers import GPT2Config, GPT2LMHeadModel

from lmnas.errors import LmnasError


@dataclass(frozen=True)
class ArchGPTConfig:
    """Model shape. Paper: 4 decoder layers, 4 heads, a context of 10 layers."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    window: int = 10  # layers of context; the model sees window + 1 positions (one for <bos>)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if min(self.n_layer, self.n_head, self.n_embd, self.window) < 1:
            raise LmnasError(f"ArchGPTConfig: n_layer, n_head, n_embd and window must be >= 1, got {self}")
        if self.n_embd % self.n_head:
            raise LmnasError(f"ArchGPTConfig: n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise LmnasError(f"ArchGPTConfig: dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(
    vocab_size: int, cfg: ArchGPTConfig, *, pad_id: int = 0, bos_id: int = 1, eos_id: int = 2
) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 LM; ids default to the corpus vocab's specials order."""
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=cfg.window + 1,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_cache=False,  # windows are short and re-run whole; no KV cache needed
    )
    return GPT2LMHeadModel(config)


def config_of(model: GPT2LMHeadModel) -> ArchGPTConfig:
    """Recover the ArchGPTConfig of a built or loaded model (to check a resumed phase matches)."""
    c = model.config
    return ArchGPTConfig(
        n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, window=c.n_positions - 1, dropout=c.resid_pdrop
    )
