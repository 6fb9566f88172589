"""Architecture-GPT pre-training throughput (tokens/s) on the real NAS-Bench-101 corpus.

Encodes the corpus once (../shared/benchmarks/nas_bench_101_subset.json, or generated cells
when absent), then runs `train_archgpt` for one pre-training epoch per model width at the
paper's batch 128 / Adam lr 1e-4 and reads the throughput the trainer itself measured.

    python benchmarks/archgpt_throughput.py                 # CPU
    python benchmarks/archgpt_throughput.py --device cuda --widths 128 256 512
"""

from __future__ import annotations

import argparse
import shutil

import torch

from _common import OUT_DIR, print_table, write_result
from lmnas.archgpt import ArchGPTConfig, train_archgpt
from lmnas.nas_tables import resolve_benchmarks_dir
from lmnas.corpus import encode_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256], help="n_embd values")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = OUT_DIR / "archgpt_throughput"
    corpus = work / "corpus"
    if not (corpus / "summary.json").exists():
        encode_corpus(resolve_benchmarks_dir() / "nas_bench_101_subset.json", corpus, generate_if_missing=200, seed=0)
    rows, results = [], []
    for width in args.widths:
        out = work / f"gpt-{width}"
        shutil.rmtree(out, ignore_errors=True)
        metrics = train_archgpt(corpus, out, cfg=ArchGPTConfig(n_embd=width), pretrain_epochs=1, finetune_epochs=1,
                                batch_size=args.batch_size, lr=1e-4, seed=0, device=args.device, progress=False)
        pre = metrics["pretrain"]
        results.append({"n_embd": width, "params": metrics["n_params"], "pretrain_tokens_per_s": pre["tokens_per_s"],
                        "pretrain_seconds": pre["train_seconds"], "train_targets": pre["n_train_targets"]})
        rows.append([width, metrics["n_params"], pre["tokens_per_s"], pre["train_seconds"]])
    print(f"architecture GPT (4 layers, 4 heads, window 10), batch {args.batch_size}, device {args.device}, "
          f"{args.threads} threads")
    print_table(["n_embd", "params", "tokens/s", "s / epoch"], rows)
    write_result("archgpt_throughput", {"args": vars(args), "results": results}, args.out)


if __name__ == "__main__":
    main()
