from pathlib import Path

from lmnas.data import DatasetSpec, prepare_dataset
from lmnas.stage import run_stage


def main(smk):
    spec = dict(smk.params.datasets)
    if spec["root"]:  # relative dataset roots start at the repo, like every config path
        root = Path(spec["root"]).expanduser()
        spec["root"] = str(root if root.is_absolute() else Path(smk.params.root) / root)
    prepare_dataset(DatasetSpec.from_dict(spec, where=f"datasets.{smk.wildcards.dataset}"), Path(smk.output[0]), seed=smk.params.seed)


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
