from pathlib import Path

from lmnas.device import resolve_device
from lmnas.retrain import retrain_best
from lmnas.stage import run_stage
from lmnas.training.distributed import topology_for


def main(smk):
    device = resolve_device(smk.params.device)
    # resources.retrain: nodes x gpus_per_node -> one torchrun rank per GPU on every node (srun
    # across nodes inside the SLURM job); fewer GPUs or nodes than asked is an error, never 1 rank.
    topology = topology_for(int(smk.resources["nodes"]), int(smk.resources["gpus_per_node"]), device)
    retrain_best(
        Path(smk.input.best),
        Path(smk.input.data),
        Path(smk.output.metrics).parent,
        smk.params.retrain["recipe"],
        seed=smk.params.seed,
        device=device,
        progress=smk.params.progress,
        sync_bn=smk.params.retrain["sync_bn"],
        nproc=topology,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
