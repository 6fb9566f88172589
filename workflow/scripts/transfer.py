from pathlib import Path

from lmnas.stage import run_stage
from lmnas.transfer import transfer_best


def main(smk):
    settings = smk.params.transfer
    transfer_best(
        Path(smk.input.best),
        Path(smk.input.weights),
        Path(smk.input.data),
        Path(smk.output.metrics).parent,
        settings["recipe"],
        seed=smk.params.seed,
        device=smk.params.device,
        input_size=settings["input_size"],
        baseline_from_scratch=settings["baseline_from_scratch"],
        progress=smk.params.progress,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
