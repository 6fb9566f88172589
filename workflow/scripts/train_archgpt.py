from pathlib import Path

from lmnas.archgpt import ArchGPTConfig, train_archgpt
from lmnas.config import resolve_device
from lmnas.stage import run_stage

MODEL_KEYS = ("n_layer", "n_head", "n_embd", "window")


def main(smk):
    s = dict(smk.params.settings)
    train_archgpt(
        Path(smk.input.pretrain).parent,
        Path(smk.output.metrics).parent,
        cfg=ArchGPTConfig(**{k: s[k] for k in MODEL_KEYS if k in s}),
        pretrain_epochs=s.get("pretrain_epochs", 2),
        finetune_epochs=s.get("finetune_epochs", 2),
        batch_size=s.get("batch_size", 128),
        lr=s.get("lr", 1e-4),
        val_fraction=s.get("val_fraction", 0.1),
        stride=s.get("stride"),  # None: window // 2
        seed=smk.params.seed,
        device=resolve_device(smk.params.device),
        progress=smk.params.progress,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
