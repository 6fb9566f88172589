from pathlib import Path

from lmnas.stage import run_stage
from lmnas.transfer import transfer_best


def main(smk):
    transfer_best(
        Path(smk.input.best),
        Path(smk.input.weights),
        Path(smk.input.data),
        Path(smk.output.metrics).parent,
        smk.params.recipe,
        seed=smk.params.seed,
        device=smk.params.device,
        input_size=smk.params.input_size,
        baseline_from_scratch=smk.params.baseline,
        progress=smk.params.progress,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
