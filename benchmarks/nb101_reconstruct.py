"""Table-4-style reconstruction on NAS-Bench-101 by table lookup (issue 18).

Each search-split cell has every interior vertex masked with probability r and re-filled by a
policy. The in-table policies choose among the table's cells equal to the original outside the
masked vertices (original excluded unless alone, `slot_scoring.candidate_cells`): uniform (a
random candidate), fixed-op (the candidate with the most conv3x3 at the masked vertices, random
tie), op-slot GPT (whole-cell likelihood, greedy; pre-trained on split a with 4 quantile buckets of
split-a accuracy as prefix, generated in the top one). Quality by corpus filter instead of a prefix
(--corpus-quantile q): an op-slot GPT trained only on the top q of split a, no prefix. The paper's
GPT (--archgpt, the layer-token GPT of nb101_archgpt.py, as GA+GPT uses it): each masked op, first
to last, from the next-layer distribution after the vertex's left context, at T = 1 and greedily,
then the paper's repair: canonical, moved to a random nearest table cell (which may be the
original: Δ 0, counted in "same"). Reported: Δ mean / median accuracy (points) of the
reconstructed cells, fraction improved, fraction unchanged, on all cells and on the weak ones
(< 90 %); only cells with another table cell to go to count, the same cells for every policy.
Table: the joined 20k table with --cells (split b), else the 292-cell subset (split by the same
hash parity: a small smoke, not the issue's table).

    python benchmarks/nb101_reconstruct.py --cells data/nb101/cells.parquet \
        --archgpt benchmarks/out/nb101_archgpt/new/gpt-1ep/finetuned --corpus-quantile 0.1
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from _common import print_table, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", help="lmnas nb101 enumerate output (joined table); default: the subset table")
    parser.add_argument("--benchmarks-dir")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--save-opslot", help="folder to save the op-slot GPT in (for nb101_search.py --opslot)")
    parser.add_argument("--load-opslot", help="a folder saved by --save-opslot: use it instead of training one")
    parser.add_argument("--archgpt", help="the paper's layer GPT (finetuned/ of nb101_archgpt.py): adds its policies")
    parser.add_argument("--corpus-quantile", type=float, help="adds an op-slot GPT trained on this top fraction of "
                        "split a (e.g. 0.1), no bucket prefix")
    parser.add_argument("--limit", type=int, help="only this many split-b cells (a seeded random sample)")
    parser.add_argument("--policies", nargs="+", help="only these policies (names as in the table)")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    from lmnas.archgpt.model import ArchGPTConfig
    from lmnas.archgpt.slot_scoring import (DecodePolicy, candidate_cells, quantile_buckets, reconstruct_cell,
                                            train_opslot, with_ops)
    from lmnas.nas_tables import resolve_benchmarks_dir
    from lmnas.nasbench101.cell import AVAILABLE_OPS, CONV3X3, CellSpec
    from lmnas.nasbench101.join import split_of
    from lmnas.spaces.nas_bench_101 import NASBench101Space, canonical_cell, cell_key

    torch.set_num_threads(1)
    bench = resolve_benchmarks_dir(args.benchmarks_dir)
    if args.cells:
        from lmnas.nasbench101.join import load_joined

        rows = load_joined(args.cells, bench / "nas_bench_101_hash_curves_20k.json").to_pylist()
        data = [(r["split"], canonical_cell(CellSpec(r["matrix"], r["ops"])), 100 * r["val_acc_108"]) for r in rows]
        table_name = "joined 20k"
    else:
        from lmnas.nasbench101.records import load_records

        data = [(split_of(r.cell.hash()), canonical_cell(r.cell), 100 * r.val_accuracy)
                for r in load_records(bench / "nas_bench_101_subset.json") if r.val_accuracy is not None]
        table_name = "subset 292"
    acc_a = {c: a for s, c, a in data if s == "a"}
    acc_b = {c: a for s, c, a in data if s == "b"}
    t0 = time.perf_counter()
    buckets, edges = quantile_buckets(list(acc_a.values()), 4)
    if args.load_opslot:
        from transformers import GPT2LMHeadModel

        model = GPT2LMHeadModel.from_pretrained(args.load_opslot).eval()
    else:
        model = train_opslot(list(acc_a), ArchGPTConfig(n_layer=2, n_head=2, n_embd=64, window=16, dropout=0.0),
                             buckets=buckets, steps=args.steps)
    train_s = time.perf_counter() - t0
    if args.save_opslot:
        model.save_pretrained(args.save_opslot, safe_serialization=True)
    top_model = None
    if args.corpus_quantile is not None:
        if not 0 < args.corpus_quantile <= 1:
            raise SystemExit(f"--corpus-quantile {args.corpus_quantile}: expected a fraction in (0, 1]")
        ranked = sorted(acc_a, key=acc_a.__getitem__, reverse=True)
        top = ranked[: max(1, round(len(ranked) * args.corpus_quantile))]
        top_model = train_opslot(top, ArchGPTConfig(n_layer=2, n_head=2, n_embd=64, window=16, dropout=0.0),
                                 steps=args.steps)
        top_mean = statistics.mean(acc_a[c] for c in top)
    in_b = acc_b.__contains__
    space = NASBench101Space(candidates=[cell_key(c) for c in acc_b])

    cache: dict = {}  # the candidate set of the cell being reconstructed (canonicalising 3^k cells is the cost)

    def cands_of(cell, masked):
        key = (cell, tuple(masked))
        if key not in cache:
            cache.clear()
            cache[key] = candidate_cells(cell, masked, in_b)
        return cache[key]

    def fixed(cell, masked, rng):
        cands = cands_of(cell, masked)
        best = max(c.ops[1:-1].count(CONV3X3) for c in cands)
        return rng.choice([c for c in cands if c.ops[1:-1].count(CONV3X3) == best])

    def paper(temperature):
        from lmnas.strategies.ga_gpt import predict_op, vertex_context

        def policy(cell, masked, rng):
            ops = list(cell.ops)
            for v in masked:  # first to last: later vertices see the re-generated ops (as GA+GPT does)
                context = vertex_context(space, CellSpec(cell.matrix, tuple(ops)), v, predictor.encoding)
                ops[v] = predict_op(predictor.next_layer_probs(context), rng, temperature)
            return space.nearest(canonical_cell(CellSpec(cell.matrix, tuple(ops))), rng)
        return policy

    policies = {
        "uniform": lambda cell, masked, rng: rng.choice(cands_of(cell, masked)),
        "fixed conv3x3": fixed,
        "op-slot GPT (ours)": lambda cell, masked, rng: reconstruct_cell(model, cell, masked, rng, DecodePolicy(),
                                                                        3, in_b, cands_of(cell, masked)),
    }
    if top_model is not None:
        policies[f"op-slot GPT top {args.corpus_quantile:g}"] = (
            lambda cell, masked, rng: reconstruct_cell(top_model, cell, masked, rng, DecodePolicy(), None, in_b,
                                                       cands_of(cell, masked)))
    if args.archgpt:
        from lmnas.archgpt.predictor import ArchGPTPredictor

        predictor = ArchGPTPredictor.load(args.archgpt)
        policies["GPT paper T=1"] = paper(1.0)
        policies["GPT paper greedy"] = paper(0.0)
    if args.policies:
        unknown = set(args.policies) - set(policies)
        if unknown:
            raise SystemExit(f"--policies: unknown {sorted(unknown)}; these exist: {list(policies)}")
        policies = {k: v for k, v in policies.items() if k in args.policies}
    cells_b = sorted(acc_b.items(), key=lambda kv: cell_key(kv[0]))
    if args.limit:
        cells_b = sorted(random.Random(0).sample(cells_b, min(args.limit, len(cells_b))), key=lambda kv: cell_key(kv[0]))
    results, table = [], []
    for rate in args.rates:
        snap_back = snap_changed = 0
        deltas: dict[str, dict[str, list[float]]] = {p: {"all": [], "weak": []} for p in policies}
        same = dict.fromkeys(policies, 0)
        seconds = dict.fromkeys(policies, 0.0)
        for i, (cell, acc) in enumerate(cells_b):
            rng = random.Random(i)
            masked = [v for v in range(1, cell.num_vertices - 1) if rng.random() < rate]
            if not masked:
                continue
            redraw = canonical_cell(with_ops(cell, {v: rng.choice(AVAILABLE_OPS) for v in masked}))
            if redraw != cell:
                snap_changed += 1
                snap_back += space.nearest(redraw, rng) == cell
            cands = cands_of(cell, masked)
            if not cands or cands == [cell]:
                continue  # nothing else in the table: every policy keeps the cell
            for name, policy in policies.items():
                t = time.perf_counter()
                new = policy(cell, masked, random.Random(i))
                seconds[name] += time.perf_counter() - t
                same[name] += new == cell
                delta = acc_b[new] - acc
                deltas[name]["all"].append(delta)
                if acc < 90:
                    deltas[name]["weak"].append(delta)
        for name, d in deltas.items():
            entry = {"policy": name, "rate": rate}
            for subset, v in d.items():
                entry[subset] = {"n": len(v), "mean": statistics.mean(v) if v else None,
                                 "median": statistics.median(v) if v else None,
                                 "improved": sum(x > 0 for x in v) / len(v) if v else None}
            entry["old_snap_back"] = snap_back / max(snap_changed, 1)
            entry["same"] = same[name] / max(len(d["all"]), 1)
            entry["seconds"] = seconds[name]
            results.append(entry)
            f = lambda e: "-" if e["mean"] is None else f"{e['mean']:+.2f} / {e['median']:+.2f} / {e['improved']:.2f}"
            table.append([name, rate, entry["all"]["n"], f(entry["all"]), f"{entry['same']:.2f}", entry["weak"]["n"],
                          f(entry["weak"]), f"{entry['old_snap_back']:.2f}", f"{seconds[name]:.0f}"])
        print(f"rate {rate} done: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()), flush=True)
    print(f"table {table_name}: split a {len(acc_a)} cells (GPT corpus, buckets {edges}), split b {len(acc_b)}"
          + (f" ({len(cells_b)} sampled)" if args.limit else "") + "; "
          + (f"op-slot GPT loaded from {args.load_opslot}" if args.load_opslot else
             f"op-slot GPT 2x64, {args.steps} steps, {train_s:.0f} s")
          + (f"; top-{args.corpus_quantile:g} corpus {len(top)} cells, mean {top_mean:.2f}" if top_model else ""))
    print_table(["policy", "mask rate", "n", "Δ mean / median / frac improved", "same", "n weak", "weak (<90 %)",
                 "old snap → original", "policy s"], table)
    write_result("nb101_reconstruct", {"args": vars(args), "table": table_name, "train_s": train_s,
                                       "results": results}, args.out)


if __name__ == "__main__":
    main()
