from pathlib import Path

from lmnas.corpus import encode_corpus
from lmnas.stage import run_stage


def main(smk):
    settings = smk.params.settings
    encode_corpus(
        Path(smk.params.records) if smk.params.records else None,
        Path(smk.output.pretrain).parent,
        min_val_accuracy=settings.get("min_val_accuracy", 0.90),
        max_archs=settings.get("max_archs"),
        generate_if_missing=settings.get("generate_if_missing", 0),
        seed=smk.params.seed,
        encoding=smk.params.encoding,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
