from pathlib import Path

from lmnas.archgpt import ArchGPTConfig, train_archgpt
from lmnas.device import resolve_device
from lmnas.stage import run_stage

MODEL_KEYS = ("n_layer", "n_head", "n_embd", "window")


def main(smk):
    s = smk.params.archgpt  # complete: the schema's defaults are filled in when the config is resolved
    train_archgpt(
        Path(smk.input.pretrain).parent,
        Path(smk.output.metrics).parent,
        cfg=ArchGPTConfig(**{k: s[k] for k in MODEL_KEYS}),
        pretrain_epochs=s["pretrain_epochs"],
        finetune_epochs=s["finetune_epochs"],
        batch_size=s["batch_size"],
        lr=s["lr"],
        val_fraction=s["val_fraction"],
        stride=s["stride"],  # None: window // 2
        seed=smk.params.seed,
        device=resolve_device(smk.params.device),
        progress=smk.params.progress,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
