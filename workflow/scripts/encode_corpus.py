from pathlib import Path

from lmnas.corpus import encode_corpus
from lmnas.stage import run_stage


def main(smk):
    settings = smk.params.corpus["nasbench101"]
    encode_corpus(
        Path(smk.input.records[0]) if smk.input.records else None,  # none: generate_if_missing cells
        Path(smk.output.pretrain).parent,
        min_val_accuracy=settings["min_val_accuracy"],
        max_archs=settings["max_archs"],
        generate_if_missing=settings["generate_if_missing"],
        seed=smk.params.seed,
        encoding=smk.params.corpus["encoding"],
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
