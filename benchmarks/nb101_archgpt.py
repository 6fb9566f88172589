"""The architecture GPT pre-trained on the joined NAS-Bench-101 table vs on today's 199-cell corpus.

new: the corpus of split "a" of the joined table (the 20k hash-keyed cells with structure,
     `lmnas.nasbench101.join`), cells with validation accuracy >= 0.90 (GPT-NAS), encoded directly.
old: the corpus of ../shared/benchmarks/nas_bench_101_subset.json (292 cells, 199 pass 0.90),
     trained for the same epochs, and for about the same number of optimiser steps as "new"
     (every model: the pre-training, then 1 epoch of fine-tuning on the torchvision corpus).
Held out: cells of split "b" with accuracy >= 0.90 (disjoint from both training sets: split a
and b share no hash; the subset's cells are checked against it), every next layer scored with
its full left context up to the window (stride 1), top-1 / top-5 over layer targets. Model:
the embedded default's (config/config.yaml archgpt: 4 layers, 4 heads, 64 wide, window 10).

    python benchmarks/nb101_archgpt.py --cells data/nb101/cells.parquet
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from _common import OUT_DIR, print_table, write_result

WORK = OUT_DIR / "nb101_archgpt"
ARCHGPT = {"n_layer": 4, "n_head": 4, "n_embd": 64, "window": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="data/nb101/cells.parquet", help="lmnas nb101 enumerate output")
    parser.add_argument("--benchmarks-dir", help="default: ../shared/benchmarks or $LMNAS_BENCHMARKS_DIR")
    parser.add_argument("--epochs", type=int, default=1, help="pre-training epochs of the new corpus")
    parser.add_argument("--held-out", type=int, default=500, help="held-out split-b cells scored")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--stride", type=int, default=10, help="step between training windows (train_archgpt "
                        "default: window // 2; a full window halves the CPU time on the 1.3 M-layer corpus)")
    parser.add_argument("--corpora", nargs="+", choices=["new", "old"], default=["new", "old"],
                        help="which GPTs to train (new alone: the GPT nb101_search.py / nb101_reconstruct.py use)")
    parser.add_argument("--out")
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from transformers import GPT2LMHeadModel

    from lmnas.archgpt import ArchGPTConfig, train_archgpt
    from lmnas.archgpt.train import evaluate
    from lmnas.archgpt.windows import load_vocab, make_windows, read_corpus
    from lmnas.nas_tables import resolve_benchmarks_dir
    from lmnas.corpus import encode_corpus
    from lmnas.io import read_json
    from lmnas.nasbench101 import CellSpec
    from lmnas.nasbench101.join import load_joined
    from lmnas.encoding.nb101_layers import cell_structures
    from lmnas.nasbench101.records import load_records

    torch.set_num_threads(1)
    bench = resolve_benchmarks_dir(args.benchmarks_dir)
    joined = load_joined(args.cells, bench / "nas_bench_101_hash_curves_20k.json").to_pylist()
    split_a = [r for r in joined if r["split"] == "a"]
    records = WORK / "split_a_records.parquet"
    records.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{"id": r["hash"], "matrix": r["matrix"], "ops": r["ops"],
                                          "val_acc": r["val_acc_108"], "params": r["params"]} for r in split_a]), records)
    subset = bench / "nas_bench_101_subset.json"
    subset_hashes = {r.hash for r in load_records(subset)}
    held = [r for r in joined if r["split"] == "b" and r["val_acc_108"] >= 0.90 and r["hash"] not in subset_hashes]
    held = random.Random(0).sample(held, min(args.held_out, len(held)))
    held_structures = [cell_structures(CellSpec(r["matrix"], r["ops"])) for r in held]

    corpora = {}
    for name, source in (("new", records), ("old", subset)):
        if name not in args.corpora:
            continue
        start = time.perf_counter()
        corpus = WORK / name / "corpus"
        if (corpus / "summary.json").is_file():  # encoded by an earlier run of this script
            summary = read_json(corpus / "summary.json")
        else:
            summary = encode_corpus(source, corpus, min_val_accuracy=0.90, seed=0)
        corpora[name] = {"summary": summary, "encode_s": sum(summary["seconds"].values())}
    windows_per_epoch = {n: sum(len(s) + 1 for s in read_corpus(WORK / n / "corpus" / "pretrain.parquet").structures)
                         for n in corpora}  # targets per epoch, proportional to optimiser steps
    runs = [(name, args.epochs) for name in corpora]
    if len(corpora) == 2:  # the old corpus also for about the new one's optimiser steps
        runs.append(("old", max(1, round(args.epochs * windows_per_epoch["new"] / windows_per_epoch["old"]))))
    results, rows = [], []
    for name, epochs in runs:
        out = WORK / name / f"gpt-{epochs}ep"
        start = time.perf_counter()
        metrics = train_archgpt(WORK / name / "corpus", out, cfg=ArchGPTConfig(**ARCHGPT), pretrain_epochs=epochs,
                                finetune_epochs=1, batch_size=args.batch_size, lr=args.lr, seed=0, progress=False,
                                stride=args.stride)
        train_s = time.perf_counter() - start
        vocab = load_vocab(out / "pretrained" / "vocab.json")
        model = GPT2LMHeadModel.from_pretrained(out / "pretrained")
        ids = [vocab.encode_structures(s, add_bos_eos=False) for s in held_structures]
        windows = make_windows(ids, vocab, ARCHGPT["window"], 1, new_targets_only=True)
        scores = evaluate(model, windows, vocab, batch_size=1024, device=torch.device("cpu"))
        entry = {"corpus": name, "pretrain_archs": corpora[name]["summary"]["pretrain_archs"], "epochs": epochs,
                 "held_out_top1": scores["top1"], "held_out_top5": scores["top5"], "held_out_loss": scores["loss"],
                 "held_out_targets": scores["n_scored"], "train_s": train_s,
                 "in_corpus_val_top1": (metrics["pretrain"].get("final") or {}).get("val_top1")}
        results.append(entry)
        rows.append([name, entry["pretrain_archs"], epochs, f"{scores['top1']:.4f}", f"{scores['top5']:.4f}",
                     f"{scores['loss']:.4f}", f"{train_s:.0f}"])
    print(f"held-out next-layer accuracy on {len(held)} split-b cells (acc >= 0.90), "
          f"{results[0]['held_out_targets']} layer targets")
    print_table(["corpus", "pretrain cells", "epochs", "top-1", "top-5", "loss", "train s"], rows)
    write_result("nb101_archgpt", {"args": vars(args), "held_out_cells": len(held), "corpora": corpora,
                                   "results": results, "archgpt_new": str(WORK / "new" / f"gpt-{args.epochs}ep" / "finetuned")},
                 args.out)


if __name__ == "__main__":
    main()
