"""Direct layer sequences of NAS-Bench-101 networks equal the traced ones."""

import random

from lmnas.encoding.trace import trace_layers
from lmnas.nasbench101 import CellSpec, build_network, random_cell
from lmnas.encoding.nb101_layers import cell_layers, cell_structures


def test_direct_layers_equal_traced_on_a_sample():
    rng = random.Random(7)
    cells = [random_cell(rng) for _ in range(12)] + [CellSpec([[0, 1], [0, 0]], ["input", "output"])]
    for cell in cells:
        traced = trace_layers(lambda: build_network(cell), (3, 32, 32))
        assert cell_layers(cell) == traced
        assert cell_structures(cell) == [layer.structure() for layer in traced]


def test_direct_layers_follow_network_settings():
    cell = random_cell(random.Random(2))
    settings = {"num_classes": 5, "stem_channels": 16, "num_stacks": 2, "cells_per_stack": 1}
    traced = trace_layers(lambda: build_network(cell, in_channels=1, **settings), (1, 7, 7))
    assert cell_layers(cell, input_shape=(1, 7, 7), **settings) == traced
