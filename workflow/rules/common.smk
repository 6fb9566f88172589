# Shared by every rule: the validated config, output roots and per-rule resources.
import sys
from pathlib import Path

from lmnas.config import resolve
from lmnas.errors import LmnasError

ROOT = Path(workflow.basedir)
try:
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
    spec = config.get("resources", {}).get(rule_name, {})
    resources = {"mem_mb": spec.get("mem_mb", 4000), "runtime": spec.get("runtime", 60)}
    if spec.get("gpus", 0) > 0:  # GPU settings only on rules that use GPUs (a gpu_model alone means 1 GPU)
        resources["gpu"] = spec["gpus"]
        if spec.get("gpu_model"):
            resources["gpu_model"] = spec["gpu_model"]
    return resources


def rule_threads(rule_name):
    return config.get("resources", {}).get(rule_name, {}).get("threads", 1)


def prepared(name):
    return f"{PREPARED}/{name}"



def uses_archgpt():
    return config["search"]["strategy"] == "ga-gpt"


def search_needs_data():
    # Table-lookup evaluators read benchmark tables, not a prepared dataset.
    return config["search"]["evaluator"] != "table"


def enabled(stage):
    return config[stage].get("enabled", True)
