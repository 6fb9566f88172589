from pathlib import Path

from lmnas.retrain import retrain_best
from lmnas.stage import run_stage


def main(smk):
    retrain_best(
        Path(smk.input.best),
        Path(smk.input.data),
        Path(smk.output.metrics).parent,
        smk.params.recipe,
        seed=smk.params.seed,
        device=smk.params.device,
        progress=smk.params.progress,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
