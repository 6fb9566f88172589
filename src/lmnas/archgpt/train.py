"""Pre-train the architecture GPT on NAS-Bench-101, fine-tune it on torchvision models.

Reads `corpus_dir/{pretrain,finetune}.parquet` + `vocab.json`; writes
`out_dir/pretrained/`, `out_dir/finetuned/` (HF save_pretrained, safetensors, the vocab
beside the weights, and the block classifier in finetuned/), `metrics.json` and
`loss_curves.png`. Each phase folder appears in one rename, so a folder that exists is
complete and a rerun skips that phase.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import transformers
from matplotlib.figure import Figure
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import GPT2LMHeadModel

from lmnas.archgpt.classifier import ClassifierConfig, train_block_classifier
from lmnas.archgpt.model import ArchGPTConfig, build_model, config_of
from lmnas.archgpt.windows import IGNORE, Corpus, Windows, load_vocab, make_windows, read_corpus, split_by_group
from lmnas.encoding.vocab import Vocab
from lmnas.errors import LmnasError
from lmnas.io import publish_mode, read_json, write_json, write_with

PHASE_METRICS = "phase_metrics.json"
# How a phase ran, not what it learnt: in timings.json only, never in the checkpoint folders or
# metrics.json that later stages hash (a rerun to the same weights then reruns nothing after it).
PHASE_TIMINGS = ("train_seconds", "tokens_per_s", "resumed")


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy; logits [B, L, V], labels [B, L] unshifted (HF convention)."""
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE, reduction=reduction
    )


@torch.inference_mode()
def evaluate(model: GPT2LMHeadModel, windows: Windows, vocab: Vocab, *, batch_size: int, device: torch.device) -> dict:
    """Held-out loss over all targets; top-1/top-5 over layer targets only (not <eos>/specials)."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    hits1 = torch.zeros((), device=device, dtype=torch.long)
    hits5 = torch.zeros((), device=device, dtype=torch.long)
    n_scored = torch.zeros((), device=device, dtype=torch.long)
    for x, y in zip(windows.input_ids.split(batch_size), windows.labels.split(batch_size)):
        x, y = x.to(device), y.to(device)
        with _autocast(device):
            logits = model(input_ids=x, attention_mask=(x != vocab.pad_id).long()).logits
        loss_sum += lm_loss(logits, y, reduction="sum")
        target = y[:, 1:]
        scored = target >= len(vocab.specials)  # IGNORE (-100) and specials both fall below
        top5 = logits[:, :-1].topk(min(5, logits.shape[-1]), dim=-1).indices  # [B, L-1, 5]
        hits1 += (top5[..., 0] == target)[scored].sum()
        hits5 += (top5 == target.unsqueeze(-1)).any(-1)[scored].sum()
        n_scored += scored.sum()
    n_targets, n_scored = windows.n_targets, int(n_scored)
    return {
        "loss": float(loss_sum) / max(n_targets, 1),
        "top1": int(hits1) / max(n_scored, 1),
        "top5": int(hits5) / max(n_scored, 1),
        "n_targets": n_targets,
        "n_scored": n_scored,
    }


def train_phase(
    name: str,
    model: GPT2LMHeadModel,
    corpus: Corpus,
    vocab: Vocab,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    val_fraction: float,
    stride: int,
    progress: bool,
) -> tuple[dict, tuple[list[int], list[int]]]:
    """Train `model` in place on one corpus; return per-epoch metrics and the (train, val) rows."""
    window = config_of(model).window
    ids = [vocab.encode_structures(s, add_bos_eos=False) for s in corpus.structures]
    train_rows, val_rows = split_by_group([tuple(s) for s in corpus.structures], val_fraction, seed)
    train_w = make_windows([ids[i] for i in train_rows], vocab, window, stride)
    val_w = make_windows([ids[i] for i in val_rows], vocab, window, 1, new_targets_only=True)
    if len(train_w) == 0:
        raise LmnasError(f"{name}: no training architectures left after holding out val_fraction={val_fraction}")
    x_all, y_all = train_w.input_ids.to(device), train_w.labels.to(device)
    tokens_per_epoch = int((train_w.input_ids != vocab.pad_id).sum())

    torch.manual_seed(seed)  # dropout masks
    gen = torch.Generator().manual_seed(seed)  # batch order
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict] = []
    train_seconds = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)  # summed on device: no host sync per step
        batches = torch.randperm(len(train_w), generator=gen).to(device).split(batch_size)
        for idx in tqdm(batches, desc=f"{name} {epoch}/{epochs}", disable=not progress, leave=False):
            x, y = x_all[idx], y_all[idx]
            with _autocast(device):
                # Pads are only at the right end, so causal attention alone keeps them out of real
                # positions; the mask just states it (and keeps HF from warning).
                logits = model(input_ids=x, attention_mask=(x != vocab.pad_id).long()).logits
            loss = lm_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss_sum += loss.detach() * (y[:, 1:] != IGNORE).sum()
        train_loss = float(loss_sum) / train_w.n_targets  # float() syncs, so the timing is honest
        train_seconds += time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": train_loss}
        if len(val_w):
            val = evaluate(model, val_w, vocab, batch_size=max(batch_size, 512), device=device)
            row.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
        history.append(row)
        if progress:
            tqdm.write(f"{name} epoch {epoch}: " + ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))

    # The top-1 a constant guess of the most frequent training layer gets: the chance line.
    train_targets = _layer_targets(train_w, vocab)
    val_targets = _layer_targets(val_w, vocab)
    majority = int(torch.bincount(train_targets, minlength=len(vocab)).argmax()) if len(train_targets) else -1
    metrics = {
        "phase": name,
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "n_arch": len(corpus),
        "n_arch_train": len(train_rows),
        "n_arch_val": len(val_rows),
        "n_train_windows": len(train_w),
        "n_train_targets": train_w.n_targets,
        "n_val_targets": val_w.n_targets,
        "n_unk_tokens": sum(t == vocab.unk_id for seq in ids for t in seq),
        "stride": stride,
        "epochs": history,
        "final": history[-1] if history else None,
        "val_majority_top1": float((val_targets == majority).float().mean()) if len(val_targets) else None,
        "train_seconds": train_seconds,
        "tokens_per_s": tokens_per_epoch * epochs / train_seconds if train_seconds > 0 else None,
    }
    return metrics, (train_rows, val_rows)


def train_archgpt(
    corpus_dir: Path,
    out_dir: Path,
    *,
    cfg: ArchGPTConfig = ArchGPTConfig(),
    pretrain_epochs: int = 10,
    finetune_epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
    val_fraction: float = 0.1,
    progress: bool = True,
    stride: int | None = None,
    classifier: ClassifierConfig = ClassifierConfig(),
) -> dict:
    """Pre-train, fine-tune, train the block classifier; return (and write) the metrics.

    stride: step between training windows (default window // 2, so every layer is seen
    with both short and long contexts). Phases already on disk are reused, not retrained.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    dev = torch.device(device)
    vocab = load_vocab(corpus_dir / "vocab.json")
    stride = stride or max(cfg.window // 2, 1)
    common = dict(batch_size=batch_size, lr=lr, device=dev, val_fraction=val_fraction, stride=stride, progress=progress)
    pre_dir, fine_dir = out_dir / "pretrained", out_dir / "finetuned"

    if _phase_done(pre_dir):
        model = _load_phase(pre_dir, cfg, vocab)
        pre_metrics = read_json(pre_dir / PHASE_METRICS) | {"resumed": True}
    else:
        torch.manual_seed(seed)  # weight init
        model = build_model(len(vocab), cfg, pad_id=vocab.pad_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id)
        pretrain = read_corpus(corpus_dir / "pretrain.parquet")
        pre_metrics, _ = train_phase(
            "pretrain", model.to(dev), pretrain, vocab, epochs=pretrain_epochs, seed=seed, **common
        )
        _save_phase(pre_dir, model, corpus_dir, pre_metrics)

    if _phase_done(fine_dir):
        model = _load_phase(fine_dir, cfg, vocab)
        fine_metrics = read_json(fine_dir / PHASE_METRICS) | {"resumed": True}
    else:
        model = model.to(dev)
        finetune = read_corpus(corpus_dir / "finetune.parquet", need_blocks=True)
        fine_metrics, (train_rows, val_rows) = train_phase(
            "finetune", model, finetune, vocab, epochs=finetune_epochs, seed=seed + 1, **common
        )

        def add_classifier(folder: Path) -> None:
            fine_metrics["block_classifier"] = train_block_classifier(
                model.get_input_embeddings().weight,
                vocab,
                finetune,
                train_rows,
                val_rows,
                folder,
                context=cfg.window,
                cfg=classifier,
                seed=seed + 2,
                device=dev,
                progress=progress,
            )

        _save_phase(fine_dir, model, corpus_dir, fine_metrics, extra=add_classifier)

    metrics = {
        "config": cfg.to_dict(),
        "training": {
            "pretrain_epochs": pretrain_epochs,
            "finetune_epochs": finetune_epochs,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "val_fraction": val_fraction,
            "stride": stride,
            "classifier": asdict(classifier),
        },
        "vocab_size": len(vocab),
        "n_params": sum(p.numel() for p in model.parameters()),
        "pretrain": pre_metrics,
        "finetune": {k: v for k, v in fine_metrics.items() if k != "block_classifier"},
        "block_classifier": fine_metrics.get("block_classifier"),
        "environment": _environment(dev),
    }
    timings = {phase: {k: metrics[phase].pop(k) for k in PHASE_TIMINGS if k in metrics[phase]}
               for phase in ("pretrain", "finetune")}
    write_json(out_dir / "timings.json", timings)
    write_json(out_dir / "metrics.json", metrics)
    write_with(out_dir / "loss_curves.png", lambda p: _plot_curves(metrics, p))
    for phase, values in timings.items():  # the caller gets both
        metrics[phase].update(values)
    return metrics


def _layer_targets(windows: Windows, vocab: Vocab) -> torch.Tensor:
    """Every labelled target that is a layer (not <eos> or another special), flat [n]."""
    targets = windows.labels[:, 1:].flatten()
    return targets[targets >= len(vocab.specials)]


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 on CUDA only: CPU autocast is slower than fp32 at these sizes and breaks bitwise determinism.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _phase_done(folder: Path) -> bool:
    return (folder / PHASE_METRICS).is_file() and (folder / "model.safetensors").is_file()


def _load_phase(folder: Path, cfg: ArchGPTConfig, vocab: Vocab) -> GPT2LMHeadModel:
    model = GPT2LMHeadModel.from_pretrained(folder)
    if config_of(model) != cfg:
        raise LmnasError(
            f"{folder}: saved model has {config_of(model)}, but this run asks for {cfg}; "
            "delete the folder or use the saved config"
        )
    if load_vocab(folder / "vocab.json").tokens != vocab.tokens:
        raise LmnasError(f"{folder}/vocab.json differs from the corpus vocab.json; delete {folder} to retrain")
    return model


def _save_phase(
    folder: Path, model: GPT2LMHeadModel, corpus_dir: Path, metrics: dict, extra: Callable[[Path], None] | None = None
) -> None:
    """Write weights, vocab, (extra files) and metrics into a temp folder, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(corpus_dir / "vocab.json", tmp / "vocab.json")
        if extra is not None:
            extra(tmp)
        write_json(tmp / PHASE_METRICS, {k: v for k, v in metrics.items() if k not in PHASE_TIMINGS})
        publish_mode(tmp)  # mkdtemp is 0700
        if folder.exists():  # an incomplete folder from a killed run
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _environment(device: torch.device) -> dict:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _plot_curves(metrics: dict, path: Path) -> None:
    """Train/held-out loss per epoch (left axis) and held-out top-1 (right axis), one panel per phase."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, phase in zip(fig.subplots(1, 2), ("pretrain", "finetune")):
        rows = metrics[phase]["epochs"]
        epochs = [r["epoch"] for r in rows]
        lines = ax.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train loss")
        if rows and "val_loss" in rows[0]:
            lines += ax.plot(epochs, [r["val_loss"] for r in rows], marker="o", label="held-out loss")
            acc = ax.twinx()
            lines += acc.plot(epochs, [r["val_top1"] for r in rows], "g--", label="held-out top-1")
            acc.set_ylim(0, 1)
            acc.set_ylabel("top-1 accuracy")
        ax.legend(handles=lines, loc="center right")
        ax.set_title(f"{phase}{' (resumed)' if metrics[phase].get('resumed') else ''}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy (nats/token)")
    fig.savefig(path, dpi=120)
