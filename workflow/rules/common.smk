# Shared by every rule: the validated config (schema defaults filled in), output roots,
# per-rule resources and the code-version param.
#
# Param convention (lmnas.dvcgen reads it): a param named after a top-level config key holds
# that key's value (or, for a wildcard rule, config[key][wildcard]) and becomes a DVC param;
# `code` is the rule's code version. Files a rule keeps across a killed run are no Snakemake
# outputs (Snakemake would delete them before a rerun): `replay` lists those DVC caches as outs
# (search journal, LLM transcripts), `resume_state` those it only removes before its own runs
# (checkpoints: uncached outs), so a DVC run never resumes another setting's state.
import sys
from pathlib import Path

from lmnas.codedeps import code_packages
from lmnas.config import resolve
from lmnas.errors import LmnasError
from lmnas.headline import headline_path
from lmnas.identity import code_version
from lmnas.search import wiring

ROOT = Path(workflow.basedir)
try:
    # Fills every unset key with the schema's default, in place: rules and scripts hold none.
    CFG = resolve(config, ROOT, source="config")
except LmnasError as error:
    # One clear line, before any job starts or any artefact is marked complete.
    sys.exit(f"lmnas: invalid configuration: {error}")

RUN = str(CFG.results_dir)
PREPARED = "data/prepared"
LOGS = f"{RUN}/logs"

wildcard_constraints:
    dataset=r"[A-Za-z0-9_-]+",


def rule_resources(rule_name):
    spec = config["resources"][rule_name]
    resources = {"mem_mb": spec["mem_mb"], "runtime": spec["runtime"]}
    if "nodes" in spec:  # a data-parallel rule (retrain): nodes x GPUs per node
        return {**resources, **multinode_resources(spec)}
    if spec["gpus"] > 0:  # GPU settings only on rules that use GPUs
        resources["gpu"] = spec["gpus"]
        if spec.get("gpu_model"):
            resources["gpu_model"] = spec["gpu_model"]
    return resources


def multinode_resources(spec):
    """SLURM resources of nodes x gpus_per_node (snakemake-executor-plugin-slurm): --nodes, the GPUs
    as per-node GRES (--gres=gpu[:model]:N, not --gpus=total, which SLURM may spread over nodes
    at will), one task per node (threads and mem_mb are then per node). `nodes` and
    `gpus_per_node` also tell the script how many ranks to start."""
    resources = {"nodes": spec["nodes"], "gpus_per_node": spec["gpus_per_node"]}
    if spec["gpus_per_node"] > 0:
        model = f"{spec['gpu_model']}:" if spec.get("gpu_model") else ""
        resources["gres"] = f"gpu:{model}{spec['gpus_per_node']}"
    else:
        resources["tasks"] = spec["nodes"]  # the plugin's --ntasks for CPU jobs (GPU jobs get none)
    if spec["nodes"] > 1:
        resources["slurm_extra"] = "--ntasks-per-node=1"  # one torchrun agent per node
    return resources


def rule_threads(rule_name):
    return config["resources"][rule_name]["threads"]


def code(rule_name):
    """A hash of the lmnas code the rule's script imports, transitively: changed library code
    changes this param, and Snakemake reruns the rule (params are a rerun trigger)."""
    return code_version(*code_packages(ROOT / "workflow" / "scripts" / f"{rule_name}.py"))


def headline(stage):
    """The stage's few headline figures, tracked by git for `dvc metrics diff` (lmnas.headline)."""
    return headline_path(CFG.run_name, stage)


def prepared(name):
    return f"{PREPARED}/{name}"


# What the chosen strategy and evaluator need: asked of their registered factories (lmnas.search.wiring).
def uses_archgpt():
    return wiring.needs_archgpt(config["search"]["strategy"])


def writes_transcript():
    return wiring.writes_transcript(config["search"]["strategy"])


def search_needs_data():
    return wiring.reads_data(config["search"]["evaluator"])


def retrain_dataset():
    # Retraining may read another dataset than the search (GENIUS: full ImageNet at 224 px, not the
    # 10 % search subset); the search dataset by default.
    return config["retrain"].get("dataset") or config["search"]["dataset"]


def transfer_datasets():
    # transfer.dataset: one name, or a list (GENIUS: CIFAR-10 and CIFAR-100). The first writes
    # transfer/metrics.json as always; each further one transfer/<name>/metrics.json.
    names = config["transfer"]["dataset"]
    return [names] if isinstance(names, str) else list(names)
def benchmark_tables():
    """The table files a table search reads (inputs, so a changed table reruns the search)."""
    files = wiring.evaluator_input_files(config["search"], CFG.benchmarks_dir)
    # A table that is not there (Channel-Bench-Macro is not shipped) is no input: the search stage
    # then stops with the evaluator's error naming where to get it, instead of a bare missing-file.
    return [str(f) for f in files if f.exists()]


def enabled(stage):
    return config[stage]["enabled"]
