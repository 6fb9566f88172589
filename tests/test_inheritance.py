"""Weight inheritance in proxy training (GPT-NAS): lineage, partial/BN-only training, store, resume."""

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.evaluation.inheritance import WeightStore, inherit_weights
from lmnas.evaluation.proxy import genotype_seed
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space

SPACE = {"min_blocks": 3, "max_blocks": 5, "stage_widths": [16, 32], "input_shape": [1, 8, 8], "num_classes": 3}
RECIPE = {"epochs": 1, "batch_size": 64, "lr": 0.05, "crop_padding": 1, "flip": False}
PARENT = ("conv", "basic", "conv", "basic")  # stages [0, 0, 1, 1]: block 2 halves the resolution

class UniformBlocks:
    """Stands in for the architecture GPT (trained and tested in test_ga_gpt.py): a masked block is
    re-generated uniformly from the allowed blocks, with the strategy's seeded generator."""

    encoding = "size-free"  # the layer encoding its contexts are in

    def predict_block(self, context, allowed, rng, temperature=1.0):
        return rng.choice(list(allowed))


# The same stand-in in the subprocess that is killed and resumed.
FAKE_GPT = inspect.getsource(UniformBlocks) + """
import lmnas.archgpt.predictor as predictor
predictor.ArchGPTPredictor.load = classmethod(lambda cls, folder, device="cpu": UniformBlocks())
"""


@pytest.fixture(autouse=True)
def fake_gpt(monkeypatch):
    from lmnas.archgpt.predictor import ArchGPTPredictor

    monkeypatch.setattr(ArchGPTPredictor, "load", classmethod(lambda cls, folder, device="cpu": UniformBlocks()))


SEARCH_SCRIPT = FAKE_GPT + """
import sys
from pathlib import Path
import torch
from lmnas.evaluation import EVALUATORS
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy
torch.set_num_threads(1)
out = Path(sys.argv[1])
space = create_space("gptnas-blocks", **{space!r})
strategy = create_strategy("ga-gpt", space=space, seed=2, archgpt_dir="unused", mask_rate=0.5,
                           population=4, generations=3)
evaluator = EVALUATORS.create("proxy", prepared_dir={data!r}, recipe={recipe!r}, inherit=True,
                              weights_dir=out / "weights")
run_search(space, strategy, evaluator, out / "journal.jsonl", Budget({budget}), seed=2, progress=False)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from lmnas.data import DatasetSpec, prepare_dataset

    root = tmp_path_factory.mktemp("digits")
    prepare_dataset(DatasetSpec(source="digits", classes=[0, 1, 2], val_fraction=0.2, test_fraction=0.2), root, seed=0)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def space():
    return create_space("gptnas-blocks", **SPACE)


def evaluator(data, weights, inherit=True):
    return EVALUATORS.create("proxy", prepared_dir=data, recipe=RECIPE, inherit=inherit, weights_dir=weights)


def key(genotype):
    return "-".join(genotype)


def parameters(state, model):
    """Only the parameters of a state dict (BatchNorm running statistics update even when frozen)."""
    names = {n for n, _ in model.named_parameters()}
    return {n: t for n, t in state.items() if n in names}


def test_block_specs_see_widths_and_strides():
    s = space()
    assert [b.stride for b in s.block_specs(PARENT)] == [1, 1, 2, 1]
    assert s.new_blocks(PARENT[:3], PARENT) == []  # a prefix keeps every block's stage
    # Five blocks move the stage boundary: block 2 stays at 16 channels, block 3 now downsamples.
    assert s.new_blocks(("conv",) * 5, ("conv",) * 4) == [2, 3, 4]
    assert s.new_blocks(("conv", "mbconv", "conv", "conv"), PARENT) == [1, 3]


def test_inherited_blocks_start_from_the_parent_and_frozen_ones_stay_identical(data, tmp_path):
    s, ev = space(), evaluator(data, tmp_path / "weights")
    ev.evaluate(s, PARENT, seed=0)
    parent = WeightStore(tmp_path / "weights").load(key(PARENT))
    child = ("conv", "mbconv", "conv", "basic")
    lineage = {"parent": key(PARENT), "regenerated": [1]}

    torch.manual_seed(genotype_seed(0, key(child)))
    fresh = s.build(child)
    torch.manual_seed(genotype_seed(0, key(child)))
    model = s.build(child)
    plan = inherit_weights(model, s, child, lineage, WeightStore(tmp_path / "weights"))
    assert plan.inherited and plan.train_blocks == [1] and not plan.bn_only
    start = model.state_dict()
    for name, tensor in start.items():  # parent's weights everywhere but the re-generated block
        reference = fresh.state_dict()[name] if name.startswith("blocks.1.") else parent[name]
        assert torch.equal(tensor, reference), name

    result = ev.evaluate(s, child, seed=0, lineage=lineage)
    assert result.metrics["inherited"] is True and result.metrics["trained_blocks"] == 1
    trained = parameters(load_file(WeightStore(tmp_path / "weights").path(key(child))), model)
    for name, tensor in trained.items():
        if name.startswith(("blocks.1.", "classifier.")):
            assert not torch.equal(tensor, start[name]), f"{name} did not train"
        else:
            assert torch.equal(tensor, parent[name]), f"{name} is frozen but changed"


def test_bn_only_when_nothing_was_regenerated(data, tmp_path):
    s, ev = space(), evaluator(data, tmp_path / "weights")
    ev.evaluate(s, PARENT, seed=0)
    parent = WeightStore(tmp_path / "weights").load(key(PARENT))
    child = PARENT[:3]
    result = ev.evaluate(s, child, seed=0, lineage={"parent": key(PARENT), "regenerated": []})
    assert result.metrics["inherited"] is True and result.metrics["trained_blocks"] == 0
    model = s.build(child)
    bn = {f"{name}.{p}" for name, module in model.named_modules()
          if isinstance(module, torch.nn.BatchNorm2d) for p in ("weight", "bias")}
    trained = parameters(load_file(WeightStore(tmp_path / "weights").path(key(child))), model)
    changed = {n for n, t in trained.items() if not torch.equal(t, parent[n])}
    assert changed == bn  # every BatchNorm affine parameter trained, nothing else


def test_missing_parent_trains_from_scratch(data, tmp_path):
    s = space()
    lineage = {"parent": "conv-conv-conv-conv", "regenerated": [0]}
    result = evaluator(data, tmp_path / "a").evaluate(s, PARENT, seed=0, lineage=lineage)
    assert result.metrics["inherited"] is False and result.metrics["trained_blocks"] == 4
    plain = evaluator(data, tmp_path / "b", inherit=False).evaluate(s, PARENT, seed=0)
    assert "inherited" not in plain.metrics
    assert result.metrics["accuracy"] == plain.metrics["accuracy"]  # the same full training
    a, b = (load_file(WeightStore(tmp_path / d).path(key(PARENT))) for d in "ab")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_inherit_needs_a_store_and_a_fitting_parent(data, tmp_path):
    with pytest.raises(LmnasError, match="weights_dir"):
        evaluator(data, None)
    s, ev = space(), evaluator(data, tmp_path / "weights")
    other = create_space("gptnas-blocks", **{**SPACE, "stage_widths": [16, 48]})
    evaluator(data, tmp_path / "weights").evaluate(other, PARENT, seed=0)  # same key, other widths
    with pytest.raises(LmnasError, match="another space configuration"):
        ev.evaluate(s, PARENT[:3], seed=0, lineage={"parent": key(PARENT), "regenerated": []})


def search(data, out, budget):
    """The search of SEARCH_SCRIPT, in this process."""
    from lmnas.strategies import create_strategy

    s = space()
    strategy = create_strategy("ga-gpt", space=s, seed=2, archgpt_dir="unused", mask_rate=0.5, population=4,
                               generations=3)
    ev = evaluator(data, out / "weights")
    return run_search(s, strategy, ev, out / "journal.jsonl", Budget(budget), seed=2, progress=False)


def test_lineage_is_recorded_and_offspring_inherit(data, tmp_path):
    rows = search(data, tmp_path, 12).journal.rows
    s, step_of = space(), {r["key"]: r["step"] for r in rows}
    first = [r for r in rows if r["generation"] == 0]
    assert len(first) == 4 and all("lineage" not in r and r["metrics"]["inherited"] is False for r in first)
    offspring = [r for r in rows if r["generation"] > 0]
    assert len(offspring) == 12 - 4 and all("lineage" in r for r in offspring)
    for row in offspring:
        lineage, child = row["lineage"], s.parse(row["key"])
        assert step_of[lineage["parent"]] < row["step"]  # an evaluated parent: its weights are on disk
        expected = set(lineage["masked"]) | set(s.new_blocks(child, s.parse(lineage["parent"])))
        assert lineage["regenerated"] == sorted(expected)
        assert row["metrics"]["inherited"] is True
        assert row["metrics"]["trained_blocks"] == len(lineage["regenerated"])
    assert any(r["lineage"]["masked"] for r in offspring)
    assert all(WeightStore(tmp_path / "weights").path(r["key"]).is_file() for r in rows)


def comparable(path):
    drop = {"finished_at", "cost_s"}  # wall-clock values
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


def test_resume_after_kill_gives_the_same_journal(data, tmp_path):
    """Killed (SIGKILL) mid-search in a subprocess, resumed here: the journal of an unbroken run."""
    budget = 14
    script = SEARCH_SCRIPT.format(space=SPACE, data=str(data), recipe=RECIPE, budget=budget)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = tmp_path / "killed"
    journal = killed / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", script, str(killed)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 6):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 6 <= len(journal.read_text().splitlines()) < budget
    resumed = search(data, killed, budget)
    assert 6 <= resumed.resumed_from < budget
    search(data, tmp_path / "reference", budget)
    assert comparable(journal) == comparable(tmp_path / "reference" / "journal.jsonl")
    assert any(row.get("lineage") for row in comparable(journal))


@pytest.mark.slow
def test_worker_processes_inherit_like_serial(data, tmp_path):
    from lmnas.strategies import create_strategy

    journals = []
    for workers in (1, 2):
        s, out = space(), tmp_path / f"w{workers}"
        strategy = create_strategy("ga-gpt", space=s, seed=2, archgpt_dir="unused", mask_rate=0.0, population=4,
                                   generations=2)
        run_search(s, strategy, evaluator(data, out / "weights"), out / "journal.jsonl", Budget(12), seed=2,
                   workers=workers, progress=False)
        journals.append(sorted(comparable(out / "journal.jsonl"), key=lambda r: r["key"]))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "step"} for r in rows]  # finish order differs
    assert strip(journals[0]) == strip(journals[1])
