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
    if "nodes" in spec:  # data-parallel (retrain): nodes x GPUs per node
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
    try:
        files = wiring.evaluator_input_files(config["search"], CFG.benchmarks_dir)
    except LmnasError as error:
        # A missing table (Channel-Bench-Macro is not shipped) stops the DAG, dry runs too, with the
        # line saying how to get it; only when a stage that reads it is asked for (an input function).
        sys.exit(f"lmnas: {error}")
    return [str(f) for f in files]  # as configured, so dvc.yaml holds a relative path


def enabled(stage):
    return config[stage]["enabled"]


# Input functions (unpack): what a rule reads depends on the configured strategy and stages.
def search_inputs(wildcards):
    inputs = {"data": prepared(config["search"]["dataset"])} if search_needs_data() else {}
    if uses_archgpt():
        inputs["archgpt"] = rules.train_archgpt.output.finetuned
    inputs["tables"] = benchmark_tables()
    return inputs


def report_inputs(wildcards):
    inputs = {
        "search_best": rules.search.output.best,
        "search_journal": rules.search.output.journal,
        "search_curve": rules.search.output.curve,
    }
    if search_needs_data() or enabled("retrain"):
        inputs["data_search"] = prepared(config["search"]["dataset"])
    if enabled("retrain") and retrain_dataset() != config["search"]["dataset"]:
        inputs["data_retrain"] = prepared(retrain_dataset())
    if enabled("retrain"):
        inputs["retrain"] = rules.retrain.output.metrics
        inputs["retrain_log"] = rules.retrain.output.log_csv
        if enabled("transfer"):
            inputs["data_transfer"] = prepared(transfer_datasets()[0])
            inputs["transfer"] = rules.transfer.output.metrics
            for name in transfer_datasets()[1:]:
                inputs[f"transfer_{name}"] = f"{RUN}/transfer/{name}/metrics.json"
    if config["trials"]["enabled"]:
        inputs["trials"] = rules.trials.output.summary
    if uses_archgpt():
        inputs["corpus"] = rules.encode_corpus.output.summary
        inputs["archgpt"] = rules.train_archgpt.output.metrics
        inputs["archgpt_curves"] = rules.train_archgpt.output.curves
    return inputs


def chain_outputs(wildcards):
    """Every output of the chain's jobs, for the default target. Snakemake reruns a job whose
    outputs are missing only when a target asks for them; once any downstream result exists it does
    not. A job killed after Snakemake removed its outputs (e.g. `-R search`, killed mid-search) left
    no file to mark incomplete, and the plain rerun said "Nothing to be done" beside the old
    downstream results. Named here, a missing output reruns its job (a search resumes from its
    journal) and everything after it."""
    outputs = [*rules.report.output, *report_inputs(wildcards).values(), *rules.search.output]
    if uses_archgpt():
        outputs += [*rules.encode_corpus.output, *rules.train_archgpt.output]
    if config["trials"]["enabled"]:
        outputs += [*rules.trials.output]
    if enabled("retrain"):
        outputs += [*rules.retrain.output]
        if enabled("transfer"):
            outputs += [*rules.transfer.output]
            outputs += [
                f"{RUN}/transfer/{name}/{file}"
                for name in transfer_datasets()[1:]
                for file in ("metrics.json", "log.csv", "timings.json")
            ]
    return list(dict.fromkeys(str(o) for o in outputs))
