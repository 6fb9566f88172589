"""The FCN block classifier: (k context layers + next layer) → the block class of that layer.

GPT-NAS rebuilds a masked block from the layer the GPT predicts; this small fully connected
net names which block class (BasicBlock, Bottleneck, …) that layer belongs to.

Input: the GPT's input-embedding rows (frozen) of the k context tokens and the next token,
concatenated in order → [(k + 1) * n_embd]. We flatten instead of pooling (mean + last)
because a block's class depends on *where* a layer sits in it (1x1 → 3x3 → 1x1 is a
Bottleneck only in that order) and pooled embeddings lose the order; with k = 10 and
n_embd = 128 the input is only 1408 wide. Short contexts are left-padded with <pad>.
Only the MLP is saved: the embedding is the GPT's, loaded from the same folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from lmnas.archgpt.windows import Corpus, left_context
from lmnas.encoding.vocab import Vocab
from lmnas.errors import LmnasError
from lmnas.io import read_json, write_json, write_with

WEIGHTS_FILE = "block_classifier.safetensors"
LABELS_FILE = "block_labels.json"


@dataclass(frozen=True)
class ClassifierConfig:
    hidden: int = 256
    dropout: float = 0.1
    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 256


class BlockClassifier(nn.Module):
    """Two hidden layers over the flattened frozen embeddings of k + 1 tokens."""

    def __init__(self, embedding: torch.Tensor, context: int, hidden: int, n_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.context = context
        self.embed = nn.Embedding.from_pretrained(embedding.detach().clone().float(), freeze=True)
        width = (context + 1) * embedding.shape[1]
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_labels),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, k + 1] (context then next layer) → logits [B, n_labels]."""
        return self.mlp(self.embed(tokens).flatten(1))


def block_examples(
    corpus: Corpus, rows: Sequence[int], vocab: Vocab, context: int
) -> tuple[list[list[int]], list[str]]:
    """(k previous tokens of `<bos>` + layers, this layer) → this layer's block, for labelled layers."""
    if corpus.blocks is None:
        raise LmnasError("block classifier: the corpus was read without its 'blocks' column")
    inputs: list[list[int]] = []
    labels: list[str] = []
    for r in rows:
        prefix = [vocab.bos_id, *vocab.encode_structures(corpus.structures[r], add_bos_eos=False)]
        for j, block in enumerate(corpus.blocks[r]):
            if block:
                inputs.append(left_context(prefix[: j + 1], context, vocab.pad_id) + [prefix[j + 1]])
                labels.append(block)
    return inputs, labels


def train_block_classifier(
    embedding: torch.Tensor,
    vocab: Vocab,
    corpus: Corpus,
    train_rows: Sequence[int],
    val_rows: Sequence[int],
    out_dir: Path,
    *,
    context: int,
    cfg: ClassifierConfig = ClassifierConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Train on the fine-tune corpus rows, write the weights + labels into out_dir, return metrics.

    embedding: [vocab, n_embd], the GPT's input embedding table (kept frozen).
    """
    x_train, y_train = block_examples(corpus, train_rows, vocab, context)
    x_val, y_val = block_examples(corpus, val_rows, vocab, context)
    if not y_train:
        raise LmnasError("block classifier: no layer with a non-empty 'blocks' label in the fine-tune training rows")
    labels = sorted(set(y_train) | set(y_val))  # every label seen in the fine-tune corpus
    label_id = {b: i for i, b in enumerate(labels)}
    dev = torch.device(device)

    torch.manual_seed(seed)
    net = BlockClassifier(embedding, context, cfg.hidden, len(labels), cfg.dropout).to(dev)
    xt = torch.tensor(x_train, dtype=torch.long, device=dev)
    yt = torch.tensor([label_id[b] for b in y_train], dtype=torch.long, device=dev)
    opt = torch.optim.Adam(net.mlp.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(cfg.epochs), desc="block classifier", disable=not progress):
        net.train()
        for idx in torch.randperm(len(yt), generator=gen).to(dev).split(cfg.batch_size):
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    net.eval()
    metrics: dict = {
        "labels": labels,
        "n_train": len(y_train),
        "n_val": len(y_val),
        "train_accuracy": _accuracy(net, xt, yt),
        "val_accuracy": None,
        "val_majority_accuracy": None,
        "config": asdict(cfg),
    }
    if y_val:
        xv = torch.tensor(x_val, dtype=torch.long, device=dev)
        yv = torch.tensor([label_id[b] for b in y_val], dtype=torch.long, device=dev)
        metrics["val_accuracy"] = _accuracy(net, xv, yv)
        majority = Counter(y_train).most_common(1)[0][0]  # the chance level a constant guess gets
        metrics["val_majority_accuracy"] = sum(b == majority for b in y_val) / len(y_val)

    weights = {k: v.detach().cpu().contiguous() for k, v in net.mlp.state_dict().items()}
    write_with(out_dir / WEIGHTS_FILE, lambda p: save_file(weights, str(p)))
    write_json(out_dir / LABELS_FILE, {"labels": labels, "context": context, "hidden": cfg.hidden})
    return metrics


def load_block_classifier(directory: Path, embedding: torch.Tensor) -> tuple[BlockClassifier, list[str]]:
    """Rebuild the classifier saved in `directory` around the GPT's embedding table."""
    try:
        meta = read_json(directory / LABELS_FILE)
        weights = load_file(str(directory / WEIGHTS_FILE))
    except FileNotFoundError as e:
        raise LmnasError(f"{directory}: block classifier files missing ({e.filename}); rerun train_archgpt") from e
    labels = list(meta["labels"])
    net = BlockClassifier(embedding, int(meta["context"]), int(meta["hidden"]), len(labels))
    net.mlp.load_state_dict(weights)
    return net.eval(), labels


@torch.inference_mode()
def _accuracy(net: BlockClassifier, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    hits = sum(int((net(xb).argmax(-1) == yb).sum()) for xb, yb in zip(x.split(batch), y.split(batch)))
    return hits / len(y)
