from pathlib import Path

from lmnas.stage import run_stage
from lmnas.trials import TrialsSettings, run_trials


def main(smk):
    run_trials(
        smk.params.search,
        TrialsSettings.from_config(smk.params.trials, smk.params.search["strategy"]),
        out_dir=Path(smk.output.summary).parent,
        data_dir=Path(smk.input.data) if "data" in smk.input.keys() else None,
        archgpt_dir=Path(smk.input.archgpt) if "archgpt" in smk.input.keys() else None,
        device=smk.params.device,
        progress=smk.params.progress,
        search_run=(smk.params.seed, Path(smk.input.search_best).parent),
        policy="workflow",  # as the search stage: changed settings or a forced rerun recompute
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
