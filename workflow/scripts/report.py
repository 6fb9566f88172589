from pathlib import Path

from lmnas.report import write_report
from lmnas.stage import run_stage


def main(smk):
    write_report(
        {name: Path(path) for name, path in smk.input.items()},
        Path(smk.output.report).parent,
        run_name=smk.params.run_name,
        config=smk.params.config,
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
