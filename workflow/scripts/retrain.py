from pathlib import Path

from lmnas.device import resolve_device
from lmnas.retrain import retrain_best
from lmnas.stage import run_stage
from lmnas.training.distributed import ranks_for


def main(smk):
    device = resolve_device(smk.params.device)
    retrain_best(
        Path(smk.input.best),
        Path(smk.input.data),
        Path(smk.output.metrics).parent,
        smk.params.retrain["recipe"],
        seed=smk.params.seed,
        device=device,
        progress=smk.params.progress,
        sync_bn=smk.params.retrain["sync_bn"],
        # resources.gpu > 1 and that many CUDA devices: one torchrun rank per GPU; else in-process.
        # (rules without GPUs carry no `gpu` resource: common.smk sets GPU settings on GPU rules only)
        nproc=ranks_for(int(smk.resources["gpu"]) if "gpu" in smk.resources.keys() else 0, device),
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
