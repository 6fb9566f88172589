"""Search-time use of the fine-tuned GPT + block classifier: context layers → next block class.

GA+GPT masks a block of a candidate and asks: given the layers before it, which block
class goes here? The GPT predicts the next layer from the last `window` layers, the FCN
maps (context + that layer) to a block class, optionally restricted to the classes the
search space allows.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel

from lmnas.archgpt.classifier import BlockClassifier, load_block_classifier
from lmnas.archgpt.windows import left_context, load_vocab
from lmnas.encoding.vocab import Vocab
from lmnas.errors import LmnasError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockPrediction:
    block: str
    next_layer: str  # the layer structure the GPT predicted
    probability: float  # of `block` under the distribution it was drawn from
    reason: str  # "classifier", "classifier restricted to allowed", or "fallback: …"


class ArchGPTPredictor:
    def __init__(
        self,
        model: GPT2LMHeadModel,
        vocab: Vocab,
        classifier: BlockClassifier,
        labels: list[str],
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classifier = classifier.to(self.device).eval()
        self.vocab = vocab
        self.labels = labels
        self.window = model.config.n_positions - 1
        self._warned: set[tuple[str, ...]] = set()

    @property
    def encoding(self) -> str:
        """The layer-structure encoding (`Layer.structure`) the contexts must be given in."""
        return self.vocab.encoding

    @classmethod
    def load(cls, finetuned_dir: Path, device: str | torch.device = "cpu") -> ArchGPTPredictor:
        finetuned_dir = Path(finetuned_dir)
        if not (finetuned_dir / "model.safetensors").is_file():
            raise LmnasError(f"{finetuned_dir}: no model.safetensors; expected the finetuned/ folder of train_archgpt")
        model = GPT2LMHeadModel.from_pretrained(finetuned_dir)
        vocab = load_vocab(finetuned_dir / "vocab.json")
        if model.config.vocab_size != len(vocab):
            raise LmnasError(f"{finetuned_dir}: model has {model.config.vocab_size} tokens, vocab.json {len(vocab)}")
        classifier, labels = load_block_classifier(finetuned_dir, model.get_input_embeddings().weight)
        return cls(model, vocab, classifier, labels, device)

    def _prefix(self, context: Sequence[str]) -> list[int]:
        # `<bos>` + layers, as in training; unknown structures become <unk>.
        return [self.vocab.bos_id, *self.vocab.encode_structures(context, add_bos_eos=False)]

    @torch.inference_mode()
    def next_layer_logits(self, context: Sequence[str]) -> torch.Tensor:
        """Logits [vocab] for the layer after `context` (all preceding layers, or at least the last window)."""
        ids = self._prefix(context)[-self.window :]  # at most `window` tokens of context, as trained
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        logits = self.model(input_ids=x).logits[0, -1].float().cpu()
        logits[: len(self.vocab.specials)] = -math.inf  # a masked slot holds a layer, never <eos>/<pad>/<unk>
        return logits

    def next_layer_probs(self, context: Sequence[str]) -> dict[str, float]:
        """Probability of each layer structure (specials excluded) following `context`."""
        probs = self.next_layer_logits(context).softmax(-1)
        n = len(self.vocab.specials)
        return dict(zip(self.vocab.structures, probs[n:].tolist()))

    @torch.inference_mode()
    def block_logits(self, context: Sequence[str], next_layer: str) -> torch.Tensor:
        """Classifier logits [n_labels] for the block that `next_layer` (after `context`) belongs to."""
        prefix = self._prefix(context)
        tokens = left_context(prefix, self.classifier.context, self.vocab.pad_id) + [self.vocab.id_of(next_layer)]
        return self.classifier(torch.tensor([tokens], dtype=torch.long, device=self.device))[0].float().cpu()

    def predict_block_detailed(
        self, context: Sequence[str], allowed: Sequence[str] | None, rng: random.Random, temperature: float = 1.0
    ) -> BlockPrediction:
        """GPT → next layer, FCN → block class; sampled at `temperature`, argmax at 0."""
        if temperature < 0:
            raise LmnasError(f"predict_block: temperature must be >= 0, got {temperature}")
        if allowed is not None and not allowed:
            raise LmnasError("predict_block: 'allowed' is empty; pass None to allow every block class")
        layer_logits = self.next_layer_logits(context)
        layer_id, _ = _choose(layer_logits, temperature, rng)
        next_layer = self.vocab.tokens[layer_id]

        block_logits = self.block_logits(context, next_layer)
        if allowed is None:
            i, p = _choose(block_logits, temperature, rng)
            return BlockPrediction(self.labels[i], next_layer, p, "classifier")
        allowed = list(dict.fromkeys(allowed))
        probs = block_logits.softmax(-1)
        # Allowed labels the classifier never saw get no mass; the rest are renormalised.
        known = [self.labels.index(a) if a in self.labels else -1 for a in allowed]
        mass = torch.tensor([float(probs[k]) if k >= 0 else 0.0 for k in known])
        if float(mass.sum()) <= 0.0:
            reason = (
                f"fallback: no allowed block {allowed} has classifier mass "
                f"(classifier knows {self.labels}); drew uniformly"
            )
            if tuple(allowed) not in self._warned:
                self._warned.add(tuple(allowed))
                log.warning(reason)
            return BlockPrediction(rng.choice(allowed), next_layer, 1.0 / len(allowed), reason)
        i, p = _choose(mass.log(), temperature, rng)
        return BlockPrediction(allowed[i], next_layer, p, "classifier restricted to allowed")

    def predict_block(
        self, context: Sequence[str], allowed: Sequence[str] | None, rng: random.Random, temperature: float = 1.0
    ) -> str:
        return self.predict_block_detailed(context, allowed, rng, temperature).block


def _choose(logits: torch.Tensor, temperature: float, rng: random.Random) -> tuple[int, float]:
    """Index drawn from softmax(logits / T) with `rng` (argmax at T = 0) and its probability."""
    if temperature == 0:
        i = int(logits.argmax())
        return i, float(logits.softmax(-1)[i])
    probs = (logits / temperature).softmax(-1).tolist()
    i = rng.choices(range(len(probs)), weights=probs)[0]
    return i, probs[i]
