"""GA+GPT with a real (tiny) architecture GPT trained on a real corpus."""

import json
import sys
from pathlib import Path


from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import SyntheticEvaluator, reseed_globals  # noqa: E402

SPACE = {"min_blocks": 3, "max_blocks": 6, "stage_widths": [16, 32, 64], "input_shape": [1, 8, 8], "num_classes": 5}


def asks(archgpt_dir, seed, mask_rate, tmp_path):
    space = create_space("gptnas-blocks", **SPACE)
    strategy = create_strategy("ga-gpt", space=space, seed=seed, archgpt_dir=archgpt_dir, mask_rate=mask_rate,
                               population=6, generations=3)
    outcome = run_search(space, strategy, SyntheticEvaluator(), tmp_path / "journal.jsonl", Budget(100),
                         seed=seed, progress=False)
    return [r["key"] for r in outcome.journal.rows], strategy


def test_masked_blocks_are_regenerated_deterministically(archgpt_dir, tmp_path):
    reseed_globals(1)
    keys_a, strategy = asks(archgpt_dir, 0, 0.4, tmp_path / "a")
    reseed_globals(2)  # other global RNG states: only the seed may decide
    keys_b, _ = asks(archgpt_dir, 0, 0.4, tmp_path / "b")
    assert keys_a == keys_b
    # evaluated children record the blocks the GPT re-generated; the strategy's count also holds those
    # of children dropped as duplicates, so it bounds the journal's from above
    rows = [json.loads(line) for line in (tmp_path / "a" / "journal.jsonl").read_text().splitlines()]
    masked = [i for r in rows if "lineage" in r for i in r["lineage"]["masked"]]
    assert 0 < len(masked) <= strategy.regenerated
    assert all(0 <= i < len(r["key"].split("-")) for r in rows if "lineage" in r for i in r["lineage"]["masked"])


def test_mask_rate_zero_is_the_plain_ga(archgpt_dir, tmp_path):
    keys_gpt, strategy = asks(archgpt_dir, 0, 0.0, tmp_path / "gpt")
    assert strategy.regenerated == 0
    space = create_space("gptnas-blocks", **SPACE)
    ga = create_strategy("ga", space=space, seed=0, population=6, generations=3)
    outcome = run_search(space, ga, SyntheticEvaluator(), tmp_path / "ga.jsonl", Budget(100), seed=0, progress=False)
    assert keys_gpt == [r["key"] for r in outcome.journal.rows]


def test_block_contexts_follow_the_network():
    from lmnas.strategies.ga_gpt import block_contexts

    space = create_space("gptnas-blocks", **SPACE)
    contexts = block_contexts(space, ("conv", "basic", "mbconv"))
    # The stem (conv, BN, ReLU) precedes block 0; every later block sees strictly more layers.
    assert len(contexts[0]) == 3 and contexts[0][0].startswith("Conv2d")
    assert len(contexts[0]) < len(contexts[1]) < len(contexts[2])


def test_reconstruct_initial_masks_generation_zero(archgpt_dir):
    # GPT-NAS reconstructs the initial architectures too: same random draws, then masked blocks
    # re-generated; off, generation 0 is the plain GA's.
    space = create_space("gptnas-blocks", **SPACE)

    def generation0(reconstruct, rate=0.8):
        strategy = create_strategy("ga-gpt", space=space, seed=3, archgpt_dir=archgpt_dir, mask_rate=rate,
                                   population=8, generations=3, reconstruct_initial=reconstruct)
        return [space.key(g) for g in strategy.ask()], strategy

    plain, off = generation0(False)
    ga = create_strategy("ga", space=space, seed=3, population=8, generations=3)
    assert plain == [space.key(g) for g in ga.ask()] and off.reconstructed == 0
    rebuilt, on = generation0(True)
    assert on.reconstructed > 0 and on.settings()["reconstruct_initial"] is True
    assert rebuilt != plain and [len(k.split("-")) for k in rebuilt] == [len(k.split("-")) for k in plain]
    assert all(on.lineage(space.parse(k)) is None for k in rebuilt)  # no parent: trained from scratch
    assert generation0(True)[0] == rebuilt  # deterministic for a seed
    assert generation0(True, rate=0.0)[0] == plain  # rate 0 re-generates nothing
