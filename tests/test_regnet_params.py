"""The RegNet table in encoding/families.py matches torchvision's constructors."""

import ast
import inspect

import pytest
import torch
import torchvision.models
import torchvision.models.regnet

from lmnas.encoding.families import _REGNET_PARAMS, get_variant


def _constructor_params(name: str) -> dict:
    """The keyword arguments torchvision's `name` passes to BlockParams.from_init_params."""
    tree = ast.parse(inspect.getsource(getattr(torchvision.models.regnet, name)).strip())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_init_params":
            return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
    raise AssertionError(f"no from_init_params call in torchvision's {name}")


@pytest.mark.parametrize("name", sorted(_REGNET_PARAMS))
def test_regnet_params_match_torchvision(name):
    assert _REGNET_PARAMS[name] == _constructor_params(name)


@pytest.mark.parametrize("name", ["regnet_x_400mf", "regnet_y_400mf"])
def test_regnet_build_equals_torchvision_constructor(name):
    ours = get_variant(name).build("cpu")
    theirs = getattr(torchvision.models, name)(weights=None)
    assert repr(ours) == repr(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert ours(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
