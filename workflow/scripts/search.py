from pathlib import Path

from lmnas.search.from_config import search_from_config
from lmnas.stage import run_stage


def main(smk):
    search_from_config(
        smk.params.search,
        data_dir=Path(smk.input.data) if "data" in smk.input.keys() else None,
        archgpt_dir=Path(smk.input.archgpt) if "archgpt" in smk.input.keys() else None,
        out_dir=Path(smk.output.best).parent,
        seed=smk.params.seed,
        device=smk.params.device,
        benchmarks_dir=Path(smk.params.benchmarks_dir),
        progress=smk.params.progress,
        policy="workflow",  # a changed setting or a forced rerun starts afresh; only a killed run resumes
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
