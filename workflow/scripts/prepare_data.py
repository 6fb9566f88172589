from pathlib import Path

from lmnas.data import DatasetSpec, prepare_dataset
from lmnas.stage import run_stage


def main(smk):
    spec = dict(smk.params.datasets)

    def from_repo(path):  # relative dataset paths start at the repo, like every config path
        path = Path(path).expanduser()
        return str(path if path.is_absolute() else Path(smk.params.root) / path)

    if spec["root"]:
        spec["root"] = from_repo(spec["root"])
    if spec.get("hf") and spec["hf"].get("cache_dir"):
        spec["hf"] = {**spec["hf"], "cache_dir": from_repo(spec["hf"]["cache_dir"])}
    prepare_dataset(
        DatasetSpec.from_dict(spec, where=f"datasets.{smk.wildcards.dataset}"),
        Path(smk.output[0]),
        seed=smk.params.seed,
        workers=max(1, smk.threads),  # re-encoding and statistics run in a pool of this many processes
    )


run_stage(snakemake, main)  # noqa: F821 (injected by Snakemake)
