"""The GENIUS ImageNet space against the facts of the GENIUS repo and its recorded transcripts."""

import json
import random
import re
import sys
from pathlib import Path

import pytest
import torch

from lmnas.errors import LmnasError
from lmnas.models import measure
from lmnas.spaces import create_space

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import BENCH, TRANSCRIPTS as TRANSCRIPTS_DIR, require  # noqa: E402

TRANSCRIPTS = BENCH / TRANSCRIPTS_DIR

# As trained in GENIUS imagenet/script/script.sh (--arch lists).
GENIUS_329 = (1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 4, 0, 4, 3, 0, 0, 4, 3, 0, 4, 4, 0, 5, 0, 5, 5, 5, 0)
GENIUS_401 = (1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 4, 4, 0, 4, 0, 4, 4, 5, 0, 5, 0, 5, 6, 5, 0, 6, 0, 5)

EXPERIMENT = re.compile(
    r"- Experiment\d+\n((?:Stage[^\n]*\n){5})This design satisfies the FLOPS constraint, achieving a total of "
    r"(\d+) FLOPS\. By using this model, we achieved an accuracy of ([\d.]+)%"
)


def transcript(name: str) -> list[dict]:
    require(f"{TRANSCRIPTS_DIR}/{name}")
    return json.loads((TRANSCRIPTS / name).read_text())


def best_experiment(messages: list[dict]) -> tuple[tuple[int, ...], int, float]:
    """(op ids, reported FLOPs, accuracy) of the most accurate experiment in the last user turn that lists them.

    The transcripts' final assistant answers are new, unevaluated proposals; the GENIUS-329/401
    networks are the best evaluated experiments (the ones script.sh trains).
    """
    listing = [m["content"] for m in messages if m["role"] == "user" and EXPERIMENT.search(m["content"])][-1]
    found = []
    for stages, flops, acc in EXPERIMENT.findall(listing):
        ops = tuple(int(x) for row in re.findall(r"\[([\d,\s]+)\]", stages) for x in row.split(","))
        found.append((ops, int(flops), float(acc)))
    return max(found, key=lambda e: e[2])


@pytest.fixture(scope="module")
def space():
    return create_space("genius-imagenet", flops_count="genius")


def test_key_round_trip_and_canonical_form(space):
    key = space.key(GENIUS_329)
    # Later skips of a stage move to its end; the first op of each stage stays put.
    assert key == "1,1,0,0,0,0,1,1,1,1,0,0,4,4,3,0,0,0,4,3,4,4,0,0,5,5,5,5,0,0"
    assert space.parse(key) == space.validate(GENIUS_329)
    assert space.parse(str(list(GENIUS_329))) == space.validate(GENIUS_329)  # GENIUS's "[1, 0, ...]" form
    first_skip = (0, 3, 0, 0, 0, 0) + GENIUS_329[6:]
    assert space.validate(first_skip)[:6] == (0, 3, 0, 0, 0, 0)
    # Same network whatever the positions of the later skips.
    a, b = space.build(GENIUS_329), space.build(space.validate(GENIUS_329))
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters()) == 6_967_464


def test_validation_names_what_is_wrong(space):
    with pytest.raises(LmnasError, match="29 layers, expected 30"):
        space.validate(GENIUS_329[:29])
    with pytest.raises(LmnasError, match=r"layer 5 \(stage 1, position 6\) has op 7, expected an int 0..6"):
        space.validate(GENIUS_329[:5] + (7,) + GENIUS_329[6:])
    with pytest.raises(LmnasError, match="has op '1'"):
        space.validate(("1",) * 30)
    with pytest.raises(LmnasError, match="not op ids"):
        space.parse("1,x," + ",".join(["0"] * 28))
    with pytest.raises(LmnasError, match="flops_limits"):
        create_space("genius-imagenet", flops_limits=(330, 270))
    with pytest.raises(LmnasError, match="flops_count"):
        create_space("genius-imagenet", flops_count="thop")


def test_flops_table_equals_the_genius_prompt(space):
    prompt = transcript("329M.json")[1]["content"]
    theirs = {k: json.loads(v) for k, v in re.findall(r"(flops_stage\d_(?:first|rest))\s*=\s*(\[[^\]]*\])", prompt)}
    assert len(theirs) == 10
    ours = space.flops_table()  # GENIUS counts with thop: MACs + 4 per batch-norm output
    for name, values in theirs.items():
        assert ours[name] == pytest.approx(values, abs=1e-4), name


@pytest.mark.parametrize(
    "name, expected, reported, params_m, params",  # params_m: GENIUS README; params: the exact count
    [("329M.json", GENIUS_329, 329, 7.0, 6_967_464), ("401M.json", GENIUS_401, 401, 7.5, 7_452_328)],
)
def test_genius_networks_from_the_transcripts(space, name, expected, reported, params_m, params):
    ops, flops, _ = best_experiment(transcript(name))
    assert ops == expected and flops == reported
    model = space.build(ops)
    counted = measure(model, space.input_shape)
    # Our counter (conv/linear MACs) equals the analytic count; GENIUS's count adds batch norm.
    assert counted["flops"] == space.macs(ops)
    assert space.flops(ops) / 1e6 == pytest.approx(reported, abs=0.5)
    assert counted["params"] / 1e6 == pytest.approx(params_m, abs=0.05) and counted["params"] == params
    assert counted["flops"] == {329: 306_968_192, 401: 372_264_320}[reported]


def test_analytic_macs_equal_flop_counter_at_odd_sizes():
    space = create_space("genius-imagenet", input_shape=(1, 45, 38), num_classes=7)
    rng = random.Random(3)
    genotypes = [space.sample(rng), space.sample(rng), (0,) * 30, (6,) * 30]
    for g in genotypes:
        assert measure(space.build(g), space.input_shape)["flops"] == space.macs(g), space.key(g)


def test_constraint_messages_follow_genius(space):
    limited = create_space("genius-imagenet", flops_limits=(270, 330), flops_count="genius")
    assert limited.check_constraints(GENIUS_329) is None
    high = limited.check_constraints(GENIUS_401)
    assert "resulting 401.5 FLOPS, which is 71.5 FLOPS higher the upper bound of 330." in high
    low = limited.check_constraints((1,) + (0,) * 29)
    assert re.search(r"resulting [\d.]+ FLOPS, which is [\d.]+ FLOPS below the lower bound of 270\.", low)
    # Same words as GENIUS's feedback, numbers aside.
    theirs = {m["content"] for m in transcript("329M.json") if m["content"].startswith("The design fails")}
    template = {re.sub(r"\d+(\.\d+)?", "N", t) for t in theirs}
    assert re.sub(r"\d+(\.\d+)?", "N", high) in template
    assert create_space("genius-imagenet").check_constraints(GENIUS_401) is None  # no limits set


def test_operators_respect_flops_limits():
    limited = create_space("genius-imagenet", flops_limits=(370, 430), flops_count="genius")
    rng = random.Random(0)
    population = [limited.sample(rng) for _ in range(30)]
    assert all(limited.check_constraints(g) is None for g in population)
    assert len(set(population)) == 30
    children = [limited.mutate(g, rng) for g in population]
    assert sum(limited.check_constraints(c) is None for c in children) == 30  # seed 0: every child fits
    assert all(c != g for c, g in zip(children, population))


def test_describe_states_the_space_and_budget():
    text = create_space("genius-imagenet", flops_limits=(270, 330)).describe()
    assert "3: InvertedResidual(in_channels, out_channels, stride, kernel_size=7, expansion=4)" in text
    assert "widths 24, 40, 80, 96, 192" in text and "Stage 5: Layer 26 to Layer 31" in text
    assert "layer20: undefined, downsample: False, in_channels: 80, out_channels: 96, stride: 1" in text
    assert "must remain in [270, 330]" in text
    assert "must remain" not in create_space("genius-imagenet").describe()


def test_forward_backward_small_input():
    space = create_space("genius-imagenet", input_shape=(3, 64, 64), num_classes=10)
    model = space.build(space.sample(random.Random(5)))
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
