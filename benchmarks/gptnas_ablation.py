"""GPT-NAS ablations on the proxy-training evaluator over digits 0–4 (CPU, about 15 minutes).

(a) GA vs GA+GPT at equal budgets and seeds, with and without weight inheritance (children
    train only their re-generated blocks + classifier, or BN only). Best proxy accuracy found,
    mean ± std over seeds; with inheritance also the best genotype's accuracy when trained
    from scratch with the same proxy (inherited accuracies are not from-scratch accuracies).
(b) Mask rates 0 / 0.2 / 0.4 / 0.6 / 0.8 (GPT-NAS Table 4), without inheritance. The same
    seed gives the same generation 0 for every rate (checked and reported).
(c) Short proxy vs longer training (GPT-NAS Table 5): N random candidates trained from scratch
    with the proxy recipe and with a longer one; Pearson r (p-value), Spearman and Kendall.
At the paper's own designs (benchmarks/_gptnas_paper.py): t4 = Table 4 (fixed initial
architectures reconstructed at mask rates 0-0.8 and trained N epochs), t6 = Table 6 (GA, GA+GPT,
Random+GPT at one budget), vocab = our size-free layer vocabulary vs the paper's sized one.
Small by default; paper scale with --paper-config config/paper/gptnas-cifar10.yaml --data <prepared
CIFAR-10> --archgpt <its trained GPT> --t4-epochs 90 --t4-archs 15.

(d) GA vs GA+GPT on the NAS-Bench-101 subset table (292 cells with measured CIFAR-10 validation
    accuracy; the space restricted to them), where the GPT-NAS layer encoding applies: the GPT
    re-generates masked cell vertices' ops. Best validation accuracy after 25/50/100 table
    queries, mean ± std over --table-seeds seeds (seconds: table lookups, no training).

"GA" is GA+GPT at mask rate 0, which draws exactly the plain GA's path (tests/test_ga_gpt.py::
test_mask_rate_zero_is_the_plain_ga) and also names each child's parent, so it can inherit too.
Each search keeps its journal under benchmarks/out/gptnas_ablation/runs/<settings hash>/, so a
killed benchmark resumes where it stopped. The architecture GPT: --archgpt DIR (its
`finetuned` folder or the folder above it), else a small one is trained into the out folder.

    python benchmarks/gptnas_ablation.py                      # defaults: 5 seeds, N = 16
    python benchmarks/gptnas_ablation.py --seeds 20 --candidates 100 --long-epochs 50   # paper-like
    python benchmarks/gptnas_ablation.py --parts d --table-seeds 20      # the table comparison only
    python benchmarks/gptnas_ablation.py --parts t4 t6 vocab             # the paper's designs, small
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import _gptnas_paper as paper
from _common import OUT_DIR, print_table, write_result

from lmnas.report.tables import mean_std as _mean_std

mean_std = partial(_mean_std, std_of_one=True)  # one seed still prints "v ± 0.00"
WORK = OUT_DIR / "gptnas_ablation"
# The embedded default's search settings (config/config.yaml), on 8x8 one-channel digits.
SPACE = {"name": "gptnas-blocks", "min_blocks": 4, "max_blocks": 8, "stage_widths": [16, 32, 64],
         "input_shape": [1, 8, 8], "num_classes": 5}
RECIPE = {"epochs": 3, "batch_size": 64, "lr": 0.05, "warmup_epochs": 0.5, "schedule": "cosine",
          "crop_padding": 1, "flip": False}
ARCHGPT = {"n_layer": 4, "n_head": 4, "n_embd": 64, "window": 10}
TABLE_CHECKPOINTS = (25, 50, 100)  # part (d): table queries at which the best so far is reported


def prepare_inputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The prepared digits and the architecture GPT's fine-tuned folder (made here if not given)."""
    from lmnas.archgpt import ArchGPTConfig, train_archgpt
    from lmnas.nas_tables import resolve_benchmarks_dir
    from lmnas.corpus import encode_corpus
    from lmnas.data import DatasetSpec, prepare_dataset

    data = Path(args.data) if args.data else WORK / "digits04"
    if not (data / "manifest.json").is_file():
        spec = DatasetSpec(source="digits", classes=[0, 1, 2, 3, 4], val_fraction=0.2, test_fraction=0.2)
        prepare_dataset(spec, data, seed=0)
    if args.archgpt:
        gpt = Path(args.archgpt)
        return data, gpt / "finetuned" if (gpt / "finetuned").is_dir() else gpt
    root = WORK / "archgpt"
    if not (root / "gpt" / "metrics.json").is_file():
        records = resolve_benchmarks_dir(args.benchmarks_dir) / "nas_bench_101_subset.json"
        encode_corpus(records, root / "corpus", min_val_accuracy=0.90, seed=0)
        print(f"training the architecture GPT into {root / 'gpt'} ...", flush=True)
        train_archgpt(root / "corpus", root / "gpt", cfg=ArchGPTConfig(**ARCHGPT), pretrain_epochs=2,
                      finetune_epochs=2, batch_size=64, lr=1e-3, seed=0, progress=False)
    return data, root / "gpt" / "finetuned"


def run_dir(job: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]
    return WORK / "runs" / digest


def search_job(job: dict[str, Any]) -> dict[str, Any]:
    """One search (in a worker process): GA+GPT at `mask_rate`, proxy evaluator, inheritance or not."""
    import torch

    from lmnas.evaluation import EVALUATORS
    from lmnas.search.runner import Budget, best_row, run_search
    from lmnas.spaces import create_space
    from lmnas.strategies import create_strategy

    torch.set_num_threads(1)
    out = run_dir(job)
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps(job, indent=2))
    space_settings = dict(job["space"])
    space = create_space(space_settings.pop("name"), **space_settings)
    strategy = create_strategy("ga-gpt", space=space, seed=job["seed"], archgpt_dir=job["archgpt"],
                               mask_rate=job["mask_rate"], population=job["population"],
                               generations=job["generations"], crossover_rate=0.7, mutation_rate=0.5)
    weights = out / "weights" if job["inherit"] else None
    evaluator = EVALUATORS.create("proxy", prepared_dir=job["data"], recipe=job["recipe"], device="cpu",
                                  inherit=job["inherit"], weights_dir=weights)
    outcome = run_search(space, strategy, evaluator, out / "journal.jsonl", Budget(job["budget"]),
                         seed=job["seed"], progress=False)
    rows = outcome.journal.rows
    best = best_row(rows)
    result = {
        **{k: job[k] for k in ("mask_rate", "inherit", "seed")},
        "evaluations": len(rows),
        "best_key": best["key"],
        "best_accuracy": best["metrics"]["accuracy"],
        "best_per_generation": [max(r["metrics"]["accuracy"] for r in rows if r["generation"] == g)
                                for g in sorted({r["generation"] for r in rows})],
        "generation0": sorted((r["key"], r["metrics"]["accuracy"]) for r in rows if r["generation"] == 0),
        "cost_s": sum(r["cost_s"] for r in rows),
        # From the journal, so a replayed run counts the same: blocks the GPT re-generated in evaluated children.
        "regenerated_blocks": sum(len(r.get("lineage", {}).get("masked", [])) for r in rows),
    }
    if job["inherit"]:
        offspring = [r["metrics"] | {"blocks": len(r["key"].split("-"))} for r in rows if r["generation"] > 0]
        n = max(len(offspring), 1)
        result["inherited_fraction"] = sum(bool(m["inherited"]) for m in offspring) / n
        result["trained_block_fraction"] = sum(m["trained_blocks"] / m["blocks"] for m in offspring) / n
        result["bn_only_fraction"] = sum(m["trained_blocks"] == 0 for m in offspring) / n
        # The search ranked partially trained children; what is the pick worth trained from scratch?
        scratch = EVALUATORS.create("proxy", prepared_dir=job["data"], recipe=job["recipe"], device="cpu")
        result["best_scratch_accuracy"] = scratch.evaluate(space, space.parse(best["key"]), seed=job["seed"]).accuracy
        shutil.rmtree(out / "weights", ignore_errors=True)  # a finished journal replays without them
    return result


def table_job(job: dict[str, Any]) -> dict[str, Any]:
    """One part-(d) search (in a worker process): GA or GA+GPT over the NAS-Bench-101 subset table."""
    import torch

    from lmnas.evaluation import EVALUATORS
    from lmnas.search.runner import Budget, run_search
    from lmnas.spaces import create_space
    from lmnas.strategies import create_strategy

    torch.set_num_threads(1)
    out = run_dir(job)
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps(job, indent=2))
    # Always searched afresh (seconds): a replayed journal would not count the GPT's re-generated ops.
    (out / "journal.jsonl").unlink(missing_ok=True)
    evaluator = EVALUATORS.create("table", benchmarks_dir=job["benchmarks_dir"], table="subset")
    space = create_space("nas-bench-101", candidates=evaluator.keys(create_space("nas-bench-101")))
    ga = {"population": job["population"], "generations": job["generations"], "crossover_rate": 0.7,
          "mutation_rate": 0.5}
    gpt = {"archgpt_dir": job["archgpt"], "mask_rate": job["mask_rate"]} if job["strategy"] == "ga-gpt" else {}
    strategy = create_strategy(job["strategy"], space=space, seed=job["seed"], **ga, **gpt)
    start = time.perf_counter()
    outcome = run_search(space, strategy, evaluator, out / "journal.jsonl", Budget(job["budget"]),
                         seed=job["seed"], progress=False)
    accuracies = [r["metrics"]["accuracy"] for r in outcome.journal.rows]  # in evaluation order
    return {
        **{k: job[k] for k in ("strategy", "mask_rate", "seed")},
        "evaluations": len(accuracies),  # < budget when the GA ran out of generations or of new cells
        "stopped_because": outcome.stopped_because,
        "best_at": {str(n): max(accuracies[:n]) for n in TABLE_CHECKPOINTS},  # all of them if fewer than n
        "regenerated_ops": getattr(strategy, "regenerated", 0),  # cell vertices the GPT re-generated
        "optimum": evaluator.optimum(space).best_metric,
        "wall_s": time.perf_counter() - start,
    }


def correlation_job(job: dict[str, Any]) -> dict[str, Any]:
    """One candidate trained from scratch with the short proxy and with the longer recipe."""
    import torch

    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import create_space

    torch.set_num_threads(1)
    space_settings = dict(job["space"])
    space = create_space(space_settings.pop("name"), **space_settings)
    genotype = space.parse(job["key"])
    out = {"key": job["key"]}
    for name, recipe in (("short", job["recipe"]), ("long", {**job["recipe"], "epochs": job["long_epochs"]})):
        evaluator = EVALUATORS.create("proxy", prepared_dir=job["data"], recipe=recipe)
        result = evaluator.evaluate(space, genotype, seed=job["seed"])
        out[name], out[f"{name}_s"] = result.accuracy, result.cost_s
    return out


def summarise(runs: list[dict[str, Any]], mask_rate: float, inherit: bool, key: str = "best_accuracy") -> list[float]:
    return [r[key] for r in runs if r["mask_rate"] == mask_rate and r["inherit"] == inherit]


def paper_parts(args: argparse.Namespace, pool: ProcessPoolExecutor, data: Path, archgpt: Path) -> dict[str, Any]:
    """Parts t4, t6 and vocab (the paper's designs): run, print their tables, return their report."""
    from lmnas.nas_tables import resolve_benchmarks_dir
    from lmnas.strategies import STRATEGIES

    parts = [p for p in ("t4", "t6", "vocab") if p in args.parts]
    if not parts:
        return {}
    if args.paper_config:
        s = paper.settings_from_paper_config(args.paper_config, data)
        t4_recipe = {**s["full_recipe"], "epochs": args.t4_epochs}
    else:
        s = {"space": SPACE, "recipe": {**RECIPE, "epochs": args.proxy_epochs}, "mask_rate": args.gpt_mask_rate,
             "ga": {"population": args.population, "generations": args.generations, "crossover_rate": 0.7,
                    "mutation_rate": 0.5, "tournament_size": 2}, "budget": args.budget}
        t4_recipe = {**RECIPE, "epochs": args.t4_epochs}
    rates = tuple(args.t4_rates)
    keys = paper.fixed_architectures(s["space"], args.t4_archs)
    common = {"space": s["space"], "data": str(data), "device": args.device}
    t4 = {**common, "recipe": t4_recipe, "archgpt": str(archgpt)}
    futures: dict[str, list] = {}
    if "t4" in parts:
        futures["t4"] = [pool.submit(paper.table4_job, j) for j in paper.table4_jobs(keys, rates, t4)]
    strategies = [n for n in args.t6_strategies if n in STRATEGIES]
    skipped = [n for n in args.t6_strategies if n not in STRATEGIES]
    if "t6" in parts:
        jobs = [{**common, "work": str(WORK), "recipe": s["recipe"], "archgpt": str(archgpt), "ga": s["ga"],
                 "mask_rate": s["mask_rate"], "budget": s["budget"], "strategy": name, "seed": seed}
                for name in strategies for seed in range(args.seeds)]
        futures["t6"] = [pool.submit(paper.table6_job, j) for j in jobs]
    if "vocab" in parts:
        records = resolve_benchmarks_dir(args.benchmarks_dir) / "nas_bench_101_subset.json"
        sized = paper.train_sized_gpt(WORK, records, ARCHGPT, {"pretrain_epochs": 2, "finetune_epochs": 2,
                                                               "batch_size": 64, "lr": 1e-3})
        vocab_rates = tuple(dict.fromkeys((0.0, args.vocab_rate)))
        jobs = paper.table4_jobs(keys, vocab_rates, {**t4, "archgpt": str(sized), "gpt": "sized"})
        if "t4" not in parts:
            jobs += paper.table4_jobs(keys, vocab_rates, t4)
        futures["vocab"] = [pool.submit(paper.table4_job, j) for j in jobs]

    out: dict[str, Any] = {"paper_settings": s, "t4_recipe": t4_recipe, "t4_architectures": keys}
    t4_results = [f.result() for f in futures.get("t4", [])]
    if "t4" in parts:
        rows = paper.table4_rows(t4_results, rates)
        print(f"\n(t4) GPT-NAS Table 4 design: {len(keys)} fixed initial architectures reconstructed by the GPT "
              f"at each mask rate, trained {args.t4_epochs} epochs from scratch; accuracy (%), mean ± std")
        print_table(["mask rate", "accuracy", "gain over rate 0", "improved", "changed", "blocks re-generated/arch"],
                    [[r["rate"], mean_std(r["accuracy"]), f"{r['gain']:+.2f}", f"{r['improved']}/{len(keys)}",
                      f"{r['changed']}/{len(keys)}", f"{r['regenerated']:.1f}"] for r in rows])
        out["t4"] = {"rows": rows, "runs": t4_results}
    if "t6" in parts:
        runs = [f.result() for f in futures["t6"]]
        rows = []
        for name in strategies:
            best = [r["best_accuracy"] for r in runs if r["strategy"] == name]
            rows.append({"strategy": name, "best": best, "mean": statistics.mean(best),
                         "std": statistics.stdev(best) if len(best) > 1 else 0.0,
                         "evaluations": statistics.mean(r["evaluations"] for r in runs if r["strategy"] == name),
                         "wall_s": statistics.mean(r["wall_s"] for r in runs if r["strategy"] == name)})
        print(f"\n(t6) GPT-NAS Table 6 design: best proxy accuracy (%) in {s['budget']} evaluations, "
              f"mean ± std over {args.seeds} seeds")
        print_table(["strategy", "best", "evaluations/search", "s/search"],
                    [[r["strategy"], mean_std(r["best"]), f"{r['evaluations']:.1f}", f"{r['wall_s']:.0f}"]
                     for r in rows])
        note = f"skipped, not registered: {skipped}" if skipped else None
        if note:
            print(note)
        out["t6"] = {"rows": rows, "runs": runs, "skipped": skipped, "note": note}
    if "vocab" in parts:
        results = [f.result() for f in futures["vocab"]] + t4_results
        rows = []
        for label, gpt_dir in (("size-free", archgpt), ("sized", sized)):
            t4_rows = {r["rate"]: r for r in paper.table4_rows(results, vocab_rates, label)}
            rows.append({"encoding": label, **paper.gpt_summary(gpt_dir),
                         "unk_share": paper.unk_share(gpt_dir, s["space"]),
                         "t4": {str(k): v for k, v in t4_rows.items()}})
        print(f"\n(vocab) layer vocabulary: ours (size-free) vs the paper's (sized); the same corpus and "
              f"training; Table-4 design at mask rate {args.vocab_rate}")
        print_table(["encoding", "structures", "pretrain top-1", "finetune top-1", "finetune top-5",
                     "<unk> in search nets", f"acc @ {args.vocab_rate}", "gain over 0"],
                    [[r["encoding"], r["vocab_size"], r["pretrain_top1"], r["finetune_top1"], r["finetune_top5"],
                      f"{100 * r['unk_share']:.1f} %", mean_std(r["t4"][str(args.vocab_rate)]["accuracy"]),
                      f"{r['t4'][str(args.vocab_rate)]['gain']:+.2f}"] for r in rows])
        out["vocab"] = {"rows": rows}
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--budget", type=int, default=40, help="evaluations per search")
    parser.add_argument("--gpt-mask-rate", type=float, default=0.4, help="GA+GPT's rate in part (a)")
    parser.add_argument("--mask-rates", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8])
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--long-epochs", type=int, default=15)
    parser.add_argument("--candidates", type=int, default=16, help="N of part (c)")
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c", "d", "t4", "t6", "vocab"],
                        choices=["a", "b", "c", "d", "t4", "t6", "vocab"])
    parser.add_argument("--t4-archs", type=int, default=15, help="Table 4: fixed initial architectures")
    parser.add_argument("--t4-epochs", type=int, default=3, help="Table 4: training epochs (the paper: 90)")
    parser.add_argument("--t4-rates", type=float, nargs="+", default=list(paper.RATES))
    parser.add_argument("--t6-strategies", nargs="+", default=["ga", "ga-gpt", "random-gpt"])
    parser.add_argument("--vocab-rate", type=float, default=0.4, help="vocab: the Table-4 mask rate compared")
    parser.add_argument("--paper-config", help="take space, proxy, GA settings and budget of t4/t6/vocab from a "
                                               "GPT-NAS paper config (with --data: that dataset, prepared)")
    parser.add_argument("--device", default="cpu", help="device of parts t4, t6 and vocab")
    parser.add_argument("--table-seeds", type=int, default=20, help="seeds of part (d)")
    parser.add_argument("--table-population", type=int, default=20)
    parser.add_argument("--table-generations", type=int, default=10)
    parser.add_argument("--table-budget", type=int, default=100, help="table queries per search of part (d)")
    parser.add_argument("--archgpt", help="a trained architecture GPT (default: train a small one)")
    parser.add_argument("--data", help="prepared digits 0-4 (default: prepared into the out folder)")
    parser.add_argument("--benchmarks-dir", help="default: ../shared/benchmarks or $LMNAS_BENCHMARKS_DIR")
    parser.add_argument("--jobs", type=int, default=2, help="searches run at once (one torch thread each)")
    parser.add_argument("--fresh", action="store_true", help="forget the searches journaled by earlier runs")
    parser.add_argument("--out")
    return parser.parse_args()


def search_jobs(args: argparse.Namespace, common: dict[str, Any]) -> list[dict[str, Any]]:
    """The proxy searches of parts (a) and (b): one per (mask rate, inheritance) and seed, shared by both."""
    configs = set()
    if "a" in args.parts:
        configs |= {(rate, inherit) for rate in (0.0, args.gpt_mask_rate) for inherit in (False, True)}
    if "b" in args.parts:
        configs |= {(rate, False) for rate in args.mask_rates}
    # Longest first (no inheritance trains every block) so the pool ends evenly.
    return [{**common, "mask_rate": rate, "inherit": inherit, "seed": seed}
            for rate, inherit in sorted(configs, key=lambda c: (c[1], c[0])) for seed in range(args.seeds)]


def table_jobs(args: argparse.Namespace, archgpt: Path) -> list[dict[str, Any]]:
    """Part (d): GA and GA+GPT over the NAS-Bench-101 subset table, --table-seeds each."""
    from lmnas.nas_tables import resolve_benchmarks_dir

    if "d" not in args.parts:
        return []
    return [{"benchmarks_dir": str(resolve_benchmarks_dir(args.benchmarks_dir)), "archgpt": str(archgpt),
             "population": args.table_population, "generations": args.table_generations,
             "budget": args.table_budget, "strategy": strategy, "mask_rate": rate, "seed": seed}
            for strategy, rate in (("ga", 0.0), ("ga-gpt", args.gpt_mask_rate)) for seed in range(args.table_seeds)]


def correlation_jobs(args: argparse.Namespace, recipe: dict[str, Any], data: Path) -> list[dict[str, Any]]:
    """Part (c): --candidates distinct random architectures (a fixed draw), each trained short and long."""
    import random

    from lmnas.spaces import create_space

    if "c" not in args.parts:
        return []
    settings = dict(SPACE)
    space = create_space(settings.pop("name"), **settings)
    rng, keys = random.Random(12345), []
    while len(keys) < args.candidates:
        key = space.key(space.sample(rng))
        keys += [key] if key not in keys else []
    return [{"space": SPACE, "recipe": recipe, "data": str(data), "key": key, "long_epochs": args.long_epochs,
             "seed": 0} for key in keys]


def part_a(args: argparse.Namespace, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(a) GA vs GA+GPT, each with and without weight inheritance (and the pick retrained from scratch)."""
    rows, table = [], []
    for rate, label in ((0.0, "GA"), (args.gpt_mask_rate, f"GA+GPT (mask {args.gpt_mask_rate})")):
        for inherit in (False, True):
            best = summarise(runs, rate, inherit)
            cost = summarise(runs, rate, inherit, "cost_s")
            entry = {"strategy": label, "mask_rate": rate, "inherit": inherit, "best": best,
                     "mean": statistics.mean(best), "std": statistics.stdev(best) if len(best) > 1 else 0.0,
                     "search_cost_s": statistics.mean(cost)}
            scratch = "="  # without inheritance the search's accuracy already is from scratch
            if inherit:
                fresh = summarise(runs, rate, inherit, "best_scratch_accuracy")
                entry |= {"best_scratch": fresh, "scratch_mean": statistics.mean(fresh)}
                entry |= {k: statistics.mean(summarise(runs, rate, inherit, k))
                          for k in ("trained_block_fraction", "bn_only_fraction", "inherited_fraction")}
                scratch = mean_std(fresh)
            rows.append(entry)
            table.append([label, "yes" if inherit else "no", mean_std(best), scratch,
                          f"{entry['search_cost_s']:.0f}",
                          f"{entry.get('trained_block_fraction', 1.0):.2f}"])
    print(f"\n(a) best proxy accuracy found (%), mean ± std over {args.seeds} seeds, "
          f"{args.budget} evaluations of {args.proxy_epochs}-epoch proxies")
    print_table(["strategy", "inherit", "best (search)", "best, retrained from scratch",
                 "training s/search", "blocks trained/child"], table)
    return rows


def part_b(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """(b) GA+GPT at every mask rate, without inheritance."""
    rows, table = [], []
    same0 = all(len({json.dumps(r["generation0"]) for r in runs if r["seed"] == seed}) == 1
                for seed in range(args.seeds))
    for rate in args.mask_rates:
        best = summarise(runs, rate, False)
        entry = {"mask_rate": rate, "best": best, "mean": statistics.mean(best),
                 "std": statistics.stdev(best) if len(best) > 1 else 0.0,
                 "regenerated_blocks": statistics.mean(summarise(runs, rate, False, "regenerated_blocks"))}
        rows.append(entry)
        table.append([rate, mean_std(best), f"{entry['regenerated_blocks']:.1f}"])
    print(f"\n(b) mask rate (decaying linearly to 0): best proxy accuracy (%), "
          f"mean ± std over {args.seeds} seeds; "
          f"same generation 0 for every rate: {same0}")
    print_table(["mask rate", "best", "GPT-regenerated blocks in evaluated children/search"], table)
    return {"rows": rows, "same_generation0": same0}


def part_c(args: argparse.Namespace, correlation: list[dict[str, Any]]) -> dict[str, Any]:
    """(c) How well the short proxy ranks candidates against the longer training."""
    from scipy import stats

    short = [c["short"] for c in correlation]
    long = [c["long"] for c in correlation]
    pearson, spearman = stats.pearsonr(short, long), stats.spearmanr(short, long)
    kendall = stats.kendalltau(short, long)
    c = {"candidates": correlation, "pearson_r": float(pearson[0]), "pearson_p": float(pearson[1]),
         "spearman_rho": float(spearman[0]), "spearman_p": float(spearman[1]),
         "kendall_tau": float(kendall[0]), "kendall_p": float(kendall[1]),
         "short_s": statistics.mean(c["short_s"] for c in correlation),
         "long_s": statistics.mean(c["long_s"] for c in correlation)}
    print(f"\n(c) {args.proxy_epochs}-epoch proxy vs {args.long_epochs}-epoch training, "
          f"{len(correlation)} random candidates")
    print_table(["pearson r", "p", "spearman rho", "kendall tau", "short acc", "long acc", "short s", "long s"],
                [[c["pearson_r"], f"{c['pearson_p']:.2g}", c["spearman_rho"], c["kendall_tau"], mean_std(short),
                  mean_std(long), c["short_s"], c["long_s"]]])
    return c


def part_d(args: argparse.Namespace, table_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """(d) GA vs GA+GPT on the NAS-Bench-101 subset table: best after N queries."""
    rows, table = [], []
    for strategy, rate, label in (("ga", 0.0, "GA"), ("ga-gpt", args.gpt_mask_rate,
                                                      f"GA+GPT (mask {args.gpt_mask_rate})")):
        runs_d = [r for r in table_runs if r["strategy"] == strategy]
        best_at = {n: [r["best_at"][str(n)] for r in runs_d] for n in TABLE_CHECKPOINTS}
        entry = {"strategy": label, "mask_rate": rate, "best_at": best_at,
                 "mean_at": {n: statistics.mean(v) for n, v in best_at.items()},
                 "std_at": {n: statistics.stdev(v) if len(v) > 1 else 0.0 for n, v in best_at.items()},
                 "regenerated_ops": statistics.mean(r["regenerated_ops"] for r in runs_d),
                 "evaluations": statistics.mean(r["evaluations"] for r in runs_d),
                 "found_optimum": sum(r["best_at"][str(TABLE_CHECKPOINTS[-1])] >= r["optimum"] for r in runs_d),
                 "wall_s": statistics.mean(r["wall_s"] for r in runs_d)}
        rows.append(entry)
        table.append([label, *(mean_std(best_at[n]) for n in TABLE_CHECKPOINTS),
                      f"{entry['found_optimum']}/{len(runs_d)}", f"{entry['evaluations']:.1f}",
                      f"{entry['regenerated_ops']:.1f}", f"{entry['wall_s']:.1f}"])
    optimum = table_runs[0]["optimum"] if table_runs else None
    # The whole heading depends on the optimum: with no table run (--table-seeds 0) it is an empty line.
    print(f"\n(d) NAS-Bench-101 subset table ({args.table_population} x {args.table_generations} generations): "
          f"best validation accuracy (%) after N queries, mean ± std over {args.table_seeds} seeds; "
          f"table optimum {optimum:.2f}" if optimum is not None else "")
    print_table(["strategy", *(f"best@{n}" for n in TABLE_CHECKPOINTS), "optimum found",
                 "evaluations/search", "GPT-regenerated ops/search", "s/search"], table)
    return {"rows": rows, "runs": table_runs, "optimum": optimum}


def main() -> None:
    args = parse_args()
    if args.fresh:
        shutil.rmtree(WORK / "runs", ignore_errors=True)

    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    data, archgpt = prepare_inputs(args)
    recipe = {**RECIPE, "epochs": args.proxy_epochs}
    common = {"space": SPACE, "recipe": recipe, "data": str(data), "archgpt": str(archgpt),
              "population": args.population, "generations": args.generations, "budget": args.budget}

    # Submit every part's jobs to one pool, then collect them in the same order.
    jobs = search_jobs(args, common)
    pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn"))
    futures = [pool.submit(search_job, job) for job in jobs]
    table_futures = [pool.submit(table_job, job) for job in table_jobs(args, archgpt)]
    corr_futures = [pool.submit(correlation_job, job) for job in correlation_jobs(args, recipe, data)]
    runs = []
    for job, future in zip(jobs, futures):
        runs.append(future.result())
        print(f"[{time.perf_counter() - start:6.0f}s] mask {job['mask_rate']} inherit {job['inherit']} "
              f"seed {job['seed']}: best {runs[-1]['best_accuracy']:.2f}", flush=True)
    correlation = [f.result() for f in corr_futures]
    table_runs = [f.result() for f in table_futures]
    paper_results = paper_parts(args, pool, data, archgpt)  # t4, t6, vocab: print their own tables
    pool.shutdown()

    # Each part's table, printed, and its rows into the report.
    report: dict[str, Any] = {"args": vars(args), "space": SPACE, "recipe": recipe, "archgpt": str(archgpt),
                              "runs": runs}
    if "a" in args.parts:
        report["a"] = part_a(args, runs)
    if "b" in args.parts:
        report["b"] = part_b(args, runs)
    if "c" in args.parts:
        report["c"] = part_c(args, correlation)
    if "d" in args.parts:
        report["d"] = part_d(args, table_runs)
    report.update(paper_results)
    report["wall_s"] = time.perf_counter() - start
    print(f"\nwall time {report['wall_s']:.0f} s")
    write_result("gptnas_ablation", report, args.out)


if __name__ == "__main__":
    main()
