"""GPT-NAS ablations at the paper's own designs (used by gptnas_ablation.py, parts t4, t6, vocab).

t4    Table 4: a fixed set of initial architectures (15 in the paper), each reconstructed by the
      architecture GPT at mask rates 0 / 0.2 / 0.4 / 0.6 / 0.8 (`GAWithGPT.reconstruct`: every
      block masked with that probability and re-generated, left to right) and trained from scratch
      for N epochs (90 in the paper). Accuracy per rate, and the paired gain over rate 0.
t6    Table 6: GA, GA+GPT (paper settings: mask 0.4 decaying, initial population reconstructed)
      and Random+GPT (`random-gpt`) at the same evaluation budget and seeds (a --t6-strategies name
      that is not registered is skipped with a note). Best proxy accuracy, mean ± std.
vocab Our size-free layer vocabulary vs the paper's sized encoding (`corpus.encoding: sized`): two
      GPTs trained alike on the same corpus; vocabulary size, held-out next-layer top-1/top-5,
      the share of <unk> tokens in the search space's block contexts, and the Table-4 gain at one
      mask rate with each GPT.

Scale comes from `settings`: the small default (digits 0–4, the embedded config's space and proxy),
or a paper config (`--paper-config config/paper/gptnas-cifar10.yaml --data <prepared CIFAR-10>`):
its space, proxy recipe, GA settings and budget; Table 4 then trains with its retraining recipe
for --t4-epochs epochs (the paper: 90).
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

RATES = (0.0, 0.2, 0.4, 0.6, 0.8)


def settings_from_paper_config(path: str, data: Path) -> dict[str, Any]:
    """Space, proxy recipe, GA(+GPT) settings, budget and full-training recipe of a GPT-NAS paper
    config (merged over config/config.yaml), the space shaped for the prepared `data`."""
    from lmnas.config import load_yaml, merge
    from lmnas.data import read_manifest

    root = Path(__file__).resolve().parents[1]
    config = merge(load_yaml(root / "config/config.yaml"), load_yaml(path))
    search, manifest = config["search"], read_manifest(data)
    ga_gpt = dict(search["options"]["ga-gpt"])
    return {
        "space": {"name": "gptnas-blocks", **search["options"]["gptnas-blocks"],
                  "input_shape": manifest["image_shape"], "num_classes": manifest["num_classes"]},
        "recipe": search["options"]["proxy"]["recipe"],
        "full_recipe": config["retrain"]["recipe"],
        "ga": {k: ga_gpt[k] for k in ("population", "generations", "crossover_rate", "mutation_rate",
                                      "tournament_size")},
        "mask_rate": ga_gpt["mask_rate"],
        "budget": search["budget"]["evaluations"],
    }


def fixed_architectures(space_settings: dict[str, Any], count: int, seed: int = 2023) -> list[str]:
    """`count` distinct random architectures, the same for every rate and every run."""
    from lmnas.spaces import create_space

    settings = dict(space_settings)
    space = create_space(settings.pop("name"), **settings)
    rng, keys = random.Random(seed), []
    while len(keys) < count:
        key = space.key(space.sample(rng))
        keys += [key] if key not in keys else []
    return keys


def table4_job(job: dict[str, Any]) -> dict[str, Any]:
    """One architecture reconstructed at one mask rate and trained from scratch (a worker process)."""
    import torch

    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import create_space
    from lmnas.strategies import create_strategy

    torch.set_num_threads(1)
    settings = dict(job["space"])
    space = create_space(settings.pop("name"), **settings)
    # The draws depend on (architecture, rate) only, so a rerun rebuilds the same network.
    seed = job["index"] * 100 + round(job["rate"] * 10)
    strategy = create_strategy("ga-gpt", space=space, seed=seed, archgpt_dir=job["archgpt"],
                               mask_rate=job["rate"], population=2, generations=1)
    genotype = strategy.reconstruct(space.parse(job["key"]), job["rate"])
    evaluator = EVALUATORS.create("proxy", prepared_dir=job["data"], recipe=job["recipe"], device=job["device"])
    result = evaluator.evaluate(space, genotype, seed=0)
    return {"index": job["index"], "rate": job["rate"], "gpt": job.get("gpt", "size-free"), "key": job["key"],
            "rebuilt": space.key(genotype), "regenerated": strategy.regenerated,
            "accuracy": result.accuracy, "cost_s": result.cost_s}


def table4_jobs(keys: list[str], rates: tuple[float, ...], common: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**common, "index": i, "key": key, "rate": rate} for rate in rates for i, key in enumerate(keys)]


def table4_rows(results: list[dict[str, Any]], rates: tuple[float, ...], gpt: str = "size-free") -> list[dict]:
    base = {r["index"]: r["accuracy"] for r in results if r["rate"] == 0.0 and r["gpt"] == gpt}
    rows = []
    for rate in rates:
        runs = sorted((r for r in results if r["rate"] == rate and r["gpt"] == gpt), key=lambda r: r["index"])
        acc = [r["accuracy"] for r in runs]
        gain = [r["accuracy"] - base[r["index"]] for r in runs if r["index"] in base]
        rows.append({"rate": rate, "gpt": gpt, "accuracy": acc, "mean": statistics.mean(acc),
                     "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                     "gain": statistics.mean(gain) if gain else None, "improved": sum(g > 0 for g in gain),
                     "changed": sum(r["rebuilt"] != r["key"] for r in runs),
                     "regenerated": statistics.mean(r["regenerated"] for r in runs)})
    return rows


def search_run_dir(work: Path, job: dict[str, Any]) -> Path:
    return work / "runs" / hashlib.sha1(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]


def table6_job(job: dict[str, Any]) -> dict[str, Any]:
    """One Table-6 search (a worker process): GA, GA+GPT or Random+GPT with the proxy evaluator."""
    import torch

    from lmnas.evaluation import EVALUATORS
    from lmnas.search.runner import Budget, best_row, run_search
    from lmnas.spaces import create_space
    from lmnas.strategies import create_strategy

    torch.set_num_threads(1)
    out = search_run_dir(Path(job["work"]), {k: v for k, v in job.items() if k != "work"})
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(job["space"])
    space = create_space(settings.pop("name"), **settings)
    name, gpt = job["strategy"], {"archgpt_dir": job["archgpt"], "mask_rate": job["mask_rate"]}
    if name == "ga":
        strategy = create_strategy("ga", space=space, seed=job["seed"], **job["ga"])
    elif name == "ga-gpt":
        strategy = create_strategy("ga-gpt", space=space, seed=job["seed"], reconstruct_initial=True,
                                   **job["ga"], **gpt)
    else:  # random-gpt proposes one reconstructed random architecture at a time
        strategy = create_strategy(name, space=space, seed=job["seed"], **gpt)
    evaluator = EVALUATORS.create("proxy", prepared_dir=job["data"], recipe=job["recipe"], device=job["device"])
    start = time.perf_counter()
    outcome = run_search(space, strategy, evaluator, out / "journal.jsonl", Budget(job["budget"]),
                         seed=job["seed"], progress=False)
    rows = outcome.journal.rows
    return {"strategy": name, "seed": job["seed"], "evaluations": len(rows),
            "best_accuracy": best_row(rows)["metrics"]["accuracy"],
            "mean_accuracy": statistics.mean(r["metrics"]["accuracy"] for r in rows),
            "regenerated": getattr(strategy, "regenerated", 0), "wall_s": time.perf_counter() - start}


def unk_share(archgpt_dir: Path, space_settings: dict[str, Any], count: int = 20) -> float:
    """Share of <unk> among the layer tokens of `count` random networks of the space, in the
    encoding the GPT was trained with: what the GPT cannot read at search time."""
    from lmnas.archgpt.windows import load_vocab
    from lmnas.encoding.trace import trace_layers
    from lmnas.spaces import create_space

    vocab = load_vocab(archgpt_dir / "vocab.json")
    settings = dict(space_settings)
    space = create_space(settings.pop("name"), **settings)
    rng, unk, total = random.Random(7), 0, 0
    for _ in range(count):
        genotype = space.sample(rng)
        ids = vocab.encode(trace_layers(space.build(genotype), space.input_shape), add_bos_eos=False)
        unk, total = unk + sum(i == vocab.unk_id for i in ids), total + len(ids)
    return unk / max(total, 1)


def train_sized_gpt(work: Path, records: Path, archgpt: dict[str, Any], training: dict[str, Any]) -> Path:
    """The paper-encoding GPT, trained as the size-free one (same corpus, settings and seed)."""
    from lmnas.archgpt import ArchGPTConfig, train_archgpt
    from lmnas.corpus import encode_corpus

    root = work / "archgpt-sized"
    if not (root / "gpt" / "metrics.json").is_file():
        encode_corpus(records, root / "corpus", min_val_accuracy=0.90, seed=0, encoding="sized")
        print(f"training the sized-encoding architecture GPT into {root / 'gpt'} ...", flush=True)
        train_archgpt(root / "corpus", root / "gpt", cfg=ArchGPTConfig(**archgpt), seed=0, progress=False,
                      **training)
    return root / "gpt" / "finetuned"


def gpt_summary(finetuned: Path) -> dict[str, Any]:
    metrics = json.loads((finetuned.parent / "metrics.json").read_text())
    pre, fine = metrics["pretrain"]["final"] or {}, metrics["finetune"]["final"] or {}
    return {"vocab_size": metrics["vocab_size"] - 4, "n_params": metrics["n_params"],
            "pretrain_top1": pre.get("val_top1"), "finetune_top1": fine.get("val_top1"),
            "finetune_top5": fine.get("val_top5"), "finetune_loss": fine.get("val_loss")}
