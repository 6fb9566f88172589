"""The tabular benchmark spaces: keys as the tables write them, and networks whose size is the benchmark's."""

import itertools
import json
import random
import sys
from pathlib import Path

import pytest

from lmnas.errors import LmnasError
from lmnas.models import measure
from lmnas.models.measure import count_params
from lmnas.spaces import create_space
from lmnas.spaces.nas_bench_201 import NB201_OPS

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import BENCH, needs  # noqa: E402

needs_tables = needs("nas-bench-macro_cifar10.json", "nasbench201_cifar10.json")


def read(name):
    return json.loads((BENCH / name).read_text())


# -- keys --------------------------------------------------------------------------------------
def test_macro_keys_round_trip_and_reject_bad_input():
    space = create_space("nas-bench-macro")
    assert space.parse("22212220") == (2, 2, 2, 1, 2, 2, 2, 0)
    assert space.key((0, 1, 2, 0, 1, 2, 0, 1)) == "01201201"
    assert space.validate([2, 2, 2, 1, 2, 2, 2, 0]) == space.validate("22212220")
    for bad in ("2221222", "22212223", "2221222x"):
        with pytest.raises(LmnasError, match="expected 8 digits"):
            space.parse(bad)
    with pytest.raises(LmnasError, match="expected 8 ints"):
        space.validate((0, 1, 2, 3, 0, 0, 0, 0))
    with pytest.raises(LmnasError, match="expected 8 ints"):
        space.validate((True,) * 8)


def test_macro_distinct_moves_identities_to_the_end_of_each_stage():
    space = create_space("nas-bench-macro")
    # stages [2, 3, 3]: a stage's first layer (the downsampling one) stays in place
    assert space.distinct_key(space.parse("02" "012" "002")) == "02" "012" "020"
    assert space.distinct_key(space.parse("10" "101" "020")) == "10" "110" "020"
    assert space.distinct_key(space.parse("22212220")) == "22212220"


def test_macro_operators_and_crossover_kinds():
    rng = random.Random(0)
    for kind in ("uniform", "one-point"):
        space = create_space("nas-bench-macro", crossover=kind)
        a, b = (0,) * 8, (2,) * 8
        for _ in range(20):
            c1, c2 = space.crossover(a, b, rng)
            assert all(x + y == 2 for x, y in zip(c1, c2))  # every position comes from one parent each
            if kind == "one-point":
                assert list(c1) == sorted(c1) and 0 < c1.count(0) < 8
        m = space.mutate(a, rng)
        assert sum(x != y for x, y in zip(a, m)) == 1
    with pytest.raises(LmnasError, match="crossover"):
        create_space("nas-bench-macro", crossover="two-point")


def test_channel_bench_keys_and_widths():
    res, mob = create_space("channel-bench-macro-resnet"), create_space("channel-bench-macro-mobilenet")
    assert res.parse("4432214") == (4, 4, 3, 2, 2, 1, 4)
    assert res.widths(res.parse("4432214")) == [256, 256, 192, 256, 256, 128, 512]
    assert mob.widths(mob.parse("1111111")) == [32, 192, 192, 192, 64, 384, 256]
    with pytest.raises(LmnasError, match="each one of 1234"):
        res.parse("0432214")
    # the table can be supplied (GENIUS's Results_*.json, see lmnas.nas_tables), so no "no table" claim
    assert "16,384 architectures." in res.describe() and "No result table" not in mob.describe()


def test_nb201_keys_round_trip_and_accept_indices():
    space = create_space("nas-bench-201")
    key = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    g = space.parse(key)
    assert g == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    assert space.key(g) == key
    assert space.validate([3, 3, 3, 1, 3, 2]) == g  # indices in the benchmark's op order
    with pytest.raises(LmnasError, match="expected 6 ops"):
        space.validate(("nor_conv_3x3",) * 5)
    with pytest.raises(LmnasError, match="expected 6 ops"):
        space.validate(("conv_5x5",) * 6)
    with pytest.raises(LmnasError, match=r"\|op~0\|"):
        space.parse(key.replace("~1|+", "~0|+"))


# -- coverage of the real tables -----------------------------------------------------------------
@needs_tables
def test_every_macro_table_key_parses_and_distinct_keys_share_results():
    space, table = create_space("nas-bench-macro"), read("nas-bench-macro_cifar10.json")
    assert len(table) == 3**8
    assert {space.key(space.parse(k)) for k in table} == set(table)
    groups = {}
    for k, record in table.items():
        groups.setdefault(space.distinct_key(space.parse(k)), []).append(record)
    assert len(groups) == 3969  # the README's count of distinct trained networks
    assert all(all(r == records[0] for r in records) for records in groups.values())
    rng = random.Random(0)
    assert all(space.key(space.sample(rng)) in table for _ in range(200))


@needs_tables
def test_every_nb201_key_parses_and_sampling_stays_in_the_table():
    space, table = create_space("nas-bench-201"), read("nasbench201_cifar10.json")
    assert len(table) == 5**6
    assert {space.key(space.parse(k)) for k in table} == set(table)
    assert {space.key(g) for g in itertools.product(NB201_OPS, repeat=6)} == set(table)
    rng = random.Random(0)
    population = [space.sample(rng) for _ in range(100)]
    children = [space.mutate(g, rng) for g in population] + [c for a, b in zip(population, population[1:])
                                                              for c in space.crossover(a, b, rng)]
    assert all(space.key(g) in table for g in population + children)


# -- network sizes equal the benchmarks' ---------------------------------------------------------
@needs_tables
def test_macro_params_and_flops_equal_the_table():
    """Params = all parameters (BN and classifier bias included); flops = multiply-adds of convs and
    the linear layer (no bias, BN or pooling), as the benchmark's count_FLOPs counts them."""
    space, table = create_space("nas-bench-macro"), read("nas-bench-macro_cifar10.json")
    keys = random.Random(0).sample(sorted(table), 50) + ["00000000", "22222222", "22212220"]
    for key in keys:
        sizes = measure(space.build(space.parse(key)), space.input_shape)
        assert (sizes["params"], sizes["flops"]) == (table[key]["params"], table[key]["flops"]), key


# Published Channel-Bench-Macro sizes (xiusu/Channel-Bench-Macro Results_{ResNet,MobileNet}.json, as
# shipped in mingkai-zheng/GENIUS benchmark/ at 969d4f9e): key → (params, flops).
CHANNEL_BENCH_SIZES = {
    "channel-bench-macro-resnet": {
        "4432214": (6208394, 794495488), "2421221": (3106698, 368937472), "1441144": (3177802, 316589312),
        "4243332": (8422410, 879431424), "3142121": (2738250, 388252928), "4322341": (7389834, 756748032),
    },
    "channel-bench-macro-mobilenet": {
        "4432214": (716234, 122923008), "2421221": (446858, 60799488), "1441144": (434922, 49068032),
        "4243332": (1068490, 140592128), "3142121": (394410, 69077504), "4322341": (1053130, 125315584),
    },
}


@pytest.mark.parametrize("name", sorted(CHANNEL_BENCH_SIZES))
def test_channel_bench_sizes_equal_the_published_ones(name):
    space = create_space(name)
    for key, expected in CHANNEL_BENCH_SIZES[name].items():
        sizes = measure(space.build(space.parse(key)), space.input_shape)
        assert (sizes["params"], sizes["flops"]) == expected, key


# NAS-Bench-201 params (millions) on CIFAR-100 (100 classes), as NASLib stores them
# (automl/NASLib naslib/data/zc_nasbench201.json, commit 0b116007, "cifar100" → "params").
# Keys are NASLib op indices: ops (skip_connect, none, nor_conv_3x3, nor_conv_1x1, avg_pool_3x3),
# edges in NASLib order 0→1, 0→2, 0→3, 1→2, 1→3, 2→3.
NASLIB_CIFAR100_PARAMS_M = {
    (4, 3, 3, 3, 2, 3): 0.434196, (3, 3, 2, 1, 3, 2): 0.649236, (4, 1, 0, 0, 0, 3): 0.107156,
    (1, 4, 3, 4, 1, 1): 0.107156, (1, 4, 1, 3, 4, 4): 0.107156, (2, 2, 1, 3, 1, 4): 0.593236,
    (0, 0, 4, 1, 4, 4): 0.079156, (0, 3, 2, 3, 1, 1): 0.378196, (0, 3, 1, 2, 1, 0): 0.350196,
    (1, 1, 2, 4, 3, 2): 0.593236, (1, 2, 2, 0, 4, 4): 0.565236, (4, 0, 3, 2, 4, 3): 0.378196,
    (0, 1, 2, 4, 1, 3): 0.350196, (1, 2, 2, 0, 0, 1): 0.565236, (0, 4, 0, 3, 3, 3): 0.163156,
    (3, 4, 4, 4, 2, 1): 0.350196, (3, 2, 4, 2, 0, 3): 0.621236, (1, 0, 4, 2, 3, 3): 0.378196,
    (1, 0, 2, 2, 3, 4): 0.593236, (3, 1, 3, 1, 4, 1): 0.135156, (1, 4, 3, 3, 4, 4): 0.135156,
    (2, 0, 2, 2, 2, 0): 1.051316, (2, 2, 0, 4, 1, 3): 0.593236, (1, 2, 0, 0, 0, 1): 0.322196,
    (2, 2, 2, 3, 3, 1): 0.864276, (2, 1, 3, 0, 0, 1): 0.350196, (4, 4, 0, 1, 2, 0): 0.322196,
    (2, 0, 1, 1, 3, 1): 0.350196, (1, 3, 4, 0, 3, 4): 0.135156, (4, 2, 3, 2, 0, 1): 0.593236,
    (4, 3, 2, 1, 1, 2): 0.593236, (4, 1, 3, 0, 3, 3): 0.163156, (2, 0, 3, 0, 2, 3): 0.621236,
    (3, 0, 3, 1, 0, 0): 0.135156, (2, 1, 2, 1, 1, 4): 0.565236, (1, 2, 2, 4, 0, 4): 0.565236,
    (3, 4, 4, 4, 4, 4): 0.107156, (4, 0, 0, 2, 2, 3): 0.593236, (3, 0, 3, 4, 4, 2): 0.378196,
    (4, 2, 3, 2, 1, 0): 0.593236, (3, 3, 2, 3, 4, 4): 0.406196, (4, 1, 4, 0, 1, 2): 0.322196,
    (4, 4, 2, 2, 0, 4): 0.565236, (0, 1, 2, 0, 0, 0): 0.322196, (0, 4, 2, 4, 4, 3): 0.350196,
    (1, 2, 1, 4, 4, 0): 0.322196, (1, 4, 3, 3, 2, 3): 0.406196, (3, 1, 3, 1, 4, 4): 0.135156,
    (4, 0, 3, 0, 2, 0): 0.350196, (1, 0, 3, 1, 3, 2): 0.378196, (3, 3, 2, 0, 4, 2): 0.621236,
    (0, 3, 2, 1, 0, 4): 0.350196, (3, 0, 2, 1, 2, 2): 0.836276, (0, 4, 0, 1, 1, 2): 0.322196,
    (1, 0, 2, 2, 2, 1): 0.808276, (1, 3, 2, 3, 2, 2): 0.864276, (2, 1, 1, 0, 2, 4): 0.565236,
    (3, 2, 3, 3, 1, 1): 0.406196, (0, 0, 3, 3, 0, 4): 0.135156, (2, 3, 3, 3, 1, 2): 0.649236,
    (3, 2, 2, 3, 4, 3): 0.649236, (2, 0, 0, 2, 2, 3): 0.836276, (1, 2, 0, 2, 0, 2): 0.808276,
}
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")


def from_naslib(indices):
    """NASLib edge order (0→1, 0→2, 0→3, 1→2, 1→3, 2→3) → the architecture string's order."""
    return tuple(NASLIB_OPS[indices[i]] for i in (0, 1, 3, 2, 4, 5))


def test_nb201_params_equal_the_published_ones():
    assert len(NASLIB_CIFAR100_PARAMS_M) == 63
    space = create_space("nas-bench-201", num_classes=100)
    for indices, params_m in NASLIB_CIFAR100_PARAMS_M.items():
        assert count_params(space.build(from_naslib(indices))) == round(params_m * 1e6), indices


def test_nb201_size_range_matches_the_official_api():
    """The official CIFAR-10 ranges (NAS-Bench-201 API get_cost_info, as quoted in EvoXBench):
    params 0.073306..1.531546 M, FLOPs 7.78305..220.11969 M. The API's FLOPs add the classifier
    bias (10) to the multiply-adds counted here."""
    space = create_space("nas-bench-201")
    lo = measure(space.build(("none",) * 6), space.input_shape)
    hi = measure(space.build(("nor_conv_3x3",) * 6), space.input_shape)
    assert (lo["params"], hi["params"]) == (73_306, 1_531_546)
    assert (lo["flops"] + 10, hi["flops"] + 10) == (7_783_050, 220_119_690)


def test_nb201_builds_for_imagenet16():
    import torch

    space = create_space("nas-bench-201", num_classes=120, input_shape=[3, 16, 16])
    model = space.build(space.parse("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"))
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 120)
    assert space.settings()["input_shape"] == [3, 16, 16]
