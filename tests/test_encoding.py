"""GPT-NAS layer records, text round trip, meta-device tracing, torchvision families, vocab."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
import torchvision
from torch import nn

from lmnas.encoding import FAMILIES, VARIANTS, Layer, Vocab, encode_text, get_variant, parse_text, trace_layers
from lmnas.errors import LmnasError
from lmnas.nasbench101 import CellSpec, build_network

I, C3, C1, MP, O = "input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output"
CELL = CellSpec(
    ((0, 1, 1, 0, 0), (0, 0, 0, 1, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0)),
    (I, C3, MP, C1, O),
)


def _conv(in_c: int, out_c: int, size: int, groups: int = 1, bias: bool = False) -> Layer:
    return Layer(
        id=1,
        type="Conv2d",
        name="conv",
        in_size=(size, size, in_c),
        out_size=(size, size, out_c),
        kernel=(3, 3),
        stride=(1, 1),
        padding=(1, 1),
        dilation=(1, 1),
        groups=groups,
        bias_used=bias,
    )


def test_text_is_the_paper_form() -> None:
    assert _conv(3, 3, 32).text() == (
        "id:1;type:Conv2d;name:conv;in_size:32-32-3;out_size:32-32-3;kernel:3-3;stride:1-1;"
        "padding:1-1;dilation:1-1;groups:1;value:0.0;bias_used:false"
    )
    drop = Layer(7, "Dropout", "classifier.0", (1280,), (1280,), value=0.2, block="Head")
    assert drop.text().endswith("kernel:none;stride:none;padding:none;dilation:none;groups:1;value:0.2;bias_used:false;block:Head")


def test_structure_ignores_sizes_but_not_shape_of_the_op() -> None:
    assert _conv(128, 128, 32).structure() == _conv(16, 16, 224).structure() == "Conv2d|k3-3|s1-1|p1-1|d1-1|g1|same|bias0"
    assert _conv(16, 32, 8).structure().endswith("|g1|up|bias0")
    assert _conv(32, 16, 8, bias=True).structure().endswith("|g1|down|bias1")
    assert "|dw|" in _conv(32, 32, 8, groups=32).structure()
    assert "|grp|" in _conv(64, 64, 8, groups=4).structure()


def test_parse_text_round_trip_and_errors() -> None:
    layers = trace_layers(lambda: build_network(CELL), (3, 32, 32))
    assert parse_text(encode_text(layers)) == layers
    assert [Layer.from_dict(layer.to_dict()) for layer in layers] == layers
    with pytest.raises(LmnasError, match="line 2: missing attributes"):
        parse_text(layers[0].text() + "\nid:2;type:ReLU")
    with pytest.raises(LmnasError, match="line 1: bias_used must be true or false"):
        parse_text(layers[0].text().replace("bias_used:false", "bias_used:0"))


def test_trace_resnet18() -> None:
    layers = trace_layers(lambda: torchvision.models.resnet18(weights=None), (3, 224, 224))
    # stem 4 + 8 BasicBlocks x (conv, bn, relu, conv, bn, relu) + 3 downsamples x 2 + pool + fc
    assert len(layers) == 4 + 8 * 6 + 3 * 2 + 2 == 60
    assert [layer.id for layer in layers] == list(range(1, 61))
    first = layers[0]
    assert (first.type, first.name, first.in_size, first.out_size) == ("Conv2d", "conv1", (224, 224, 3), (112, 112, 64))
    assert (first.kernel, first.stride, first.padding, first.groups, first.bias_used) == ((7, 7), (2, 2), (3, 3), 1, False)
    assert layers[3].type == "MaxPool2d" and layers[3].out_size == (56, 56, 64)
    assert layers[-1].type == "Linear" and (layers[-1].in_size, layers[-1].out_size, layers[-1].bias_used) == ((512,), (1000,), True)
    # BasicBlock calls its one ReLU twice: two layers with the same module name.
    block0 = [layer for layer in layers if layer.name.startswith("layer1.0.")]
    assert [layer.name for layer in block0].count("layer1.0.relu") == 2
    assert {layer.block for layer in block0} == {"BasicBlock"}
    assert layers[0].block == "" and layers[-1].block == ""
    assert layers[-1].structure() == "Linear|knone|snone|pnone|dnone|g1|up|bias1"


def test_trace_nb101_network() -> None:
    net = build_network(CELL)
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    layers = trace_layers(net, (3, 32, 32))
    assert next(net.parameters()).is_meta  # the module form moves the model to meta
    assert "forward" not in vars(bn)  # the trace-time passthrough is removed again
    convs = [layer for layer in layers if layer.type == "Conv2d"]
    # stem + per cell: projections input->v1 and input->v2, conv3x3 (v1), conv1x1 (v3)
    assert len(convs) == 1 + 9 * 4
    pools = [layer for layer in layers if layer.type == "MaxPool2d" and layer.kernel == (2, 2)]
    assert {layer.block for layer in layers[3:-2] if layer not in pools} == {"NB101Cell"}
    assert {pool.block for pool in pools} == {""}
    assert [p.out_size for p in pools] == [(16, 16, 128), (8, 8, 256)]
    assert layers[-1].in_size == (512,) and layers[-1].out_size == (10,)
    # v2 and v3 feed the output: 128 channels split 64 + 64; v1 takes v3's 64.
    assert [(c.in_size[-1], c.out_size[-1], c.kernel) for c in convs[1:5]] == [
        (128, 64, (1, 1)), (64, 64, (3, 3)), (128, 64, (1, 1)), (64, 64, (1, 1)),
    ]  # fmt: skip


def test_trace_records_value_and_custom_blocks() -> None:
    layers = trace_layers(get_variant("efficientnet_b0").build, (3, 64, 64))
    depth = [layer.value for layer in layers if layer.type == "StochasticDepth"]
    # p = 0.2 * block / 16, recorded only for the blocks that run it (residual ones: 2..14)
    assert depth == sorted(depth) and depth[0] == pytest.approx(0.2 * 2 / 16) and depth[-1] == pytest.approx(0.2 * 14 / 16)
    assert [layer.value for layer in layers if layer.type == "Dropout"] == [0.2]
    blocks = Counter(layer.block for layer in layers)
    assert blocks == {"MBConv": 214, "Conv2dNormActivation": 6, "": 3}  # stem + head convs, pool/dropout/fc
    # one squeeze-excitation Sigmoid per MBConv module of torchvision's network: 16
    mbconvs = sum(type(m).__name__ == "MBConv" for m in torchvision.models.efficientnet_b0().modules())
    assert mbconvs == 16 == sum(layer.type == "Sigmoid" and layer.block == "MBConv" for layer in layers)

    class Block(nn.Sequential):
        pass

    net = nn.Sequential(Block(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.1)), nn.Flatten())
    layers = trace_layers(net, (3, 8, 8), block_types=(Block,))
    assert [(layer.type, layer.block, layer.value) for layer in layers] == [
        ("Conv2d", "Block", 0.0),
        ("LeakyReLU", "Block", pytest.approx(0.1)),
        ("Flatten", "", 0.0),
    ]
    assert layers[0].bias_used and layers[0].padding == (0, 0) and layers[2].out_size == (144,)


def test_families_are_the_papers_36() -> None:
    assert len(VARIANTS) == 36 and len({v.name for v in VARIANTS}) == 36
    counts = Counter(v.family for v in VARIANTS)
    assert counts == {
        "EfficientNet": 8, "GoogLeNet": 1, "RegNet": 14, "ResNet": 5,
        "ResNeXt": 2, "ShuffleNet": 4, "Wide-ResNet": 2,
    }  # fmt: skip
    assert FAMILIES[0] == "EfficientNet"
    for variant in VARIANTS:
        assert callable(getattr(torchvision.models, variant.name))
    for i in range(8):
        weights = getattr(torchvision.models, f"EfficientNet_B{i}_Weights").IMAGENET1K_V1
        assert get_variant(f"efficientnet_b{i}").input_size == weights.transforms.keywords["crop_size"]
    with pytest.raises(LmnasError, match="unknown torchvision variant 'vgg16'"):
        get_variant("vgg16")


def test_meta_build_matches_real_parameter_count() -> None:
    variant = get_variant("regnet_y_400mf")  # RegNet widths need the CPU even on meta
    meta = variant.build()
    assert next(meta.parameters()).is_meta
    real = variant.build(device="cpu")
    expected = torchvision.models.RegNet_Y_400MF_Weights.IMAGENET1K_V1.meta["num_params"]
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in real.parameters()) == expected


def test_vocab_build_encode_save_load(tmp_path: Path) -> None:
    seqs = [["a", "b", "b"], ["c", "b", "a"]]
    vocab = Vocab.build(seqs)
    assert vocab.tokens == ("<pad>", "<bos>", "<eos>", "<unk>", "b", "a", "c")
    assert vocab.encode_structures(["a", "zzz"]) == [1, 5, 3, 2]
    assert vocab.encode_structures(["c"], add_bos_eos=False) == [6]
    assert vocab.decode([1, 4, 99]) == ["<bos>", "b", "<unk>"]
    layers = trace_layers(lambda: build_network(CELL), (3, 32, 32))
    vocab = Vocab.build([[layer.structure() for layer in layers]])
    ids = vocab.encode(layers)
    assert len(ids) == len(layers) + 2 and vocab.unk_id not in ids
    path = tmp_path / "vocab.json"
    vocab.save(path)
    data = json.loads(path.read_text())
    assert set(data) == {"specials", "structures", "counts", "encoding"} and data["specials"][0] == "<pad>"
    assert data["encoding"] == "size-free"
    loaded = Vocab.load(path)
    assert loaded == vocab and loaded.counts == vocab.counts and loaded.encode(layers) == ids
    path.write_text(json.dumps({"structures": []}))
    with pytest.raises(LmnasError, match="vocab.json"):
        Vocab.load(path)


def test_sized_encoding_keeps_sizes_and_round_trips(tmp_path: Path) -> None:
    # GPT-NAS's own encoding: the same 3x3 conv at two widths is two tokens (size-free: one).
    small, large = _conv(16, 16, 8), _conv(128, 128, 32)
    assert small.structure() == large.structure()
    assert small.structure("sized") == small.structure() + "|i8-8-16|o8-8-16"
    assert small.structure("sized") != large.structure("sized")
    with pytest.raises(LmnasError, match="encoding 'sizes'"):
        small.structure("sizes")
    layers = trace_layers(lambda: build_network(CELL), (3, 32, 32))
    vocab = Vocab.build([[layer.structure("sized") for layer in layers]], encoding="sized")
    assert len(vocab.structures) > len({layer.structure() for layer in layers})
    assert vocab.unk_id not in vocab.encode(layers)  # encode() uses the vocab's own encoding
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json").encoding == "sized"


def test_all_36_trace() -> None:
    """Layer counts of all 36 (time printed, not asserted: speed belongs to benchmarks/)."""
    start = time.perf_counter()
    counts = {v.name: len(trace_layers(v.build, v.input_shape)) for v in VARIANTS}
    print(f"\ntraced the 36 variants in {time.perf_counter() - start:.1f} s")
    # ResNets by hand: stem (conv, bn, relu, pool) + per block conv-bn-relu x2 (Basic) or x3 (Bottleneck),
    # its ReLU counted once per call, + conv-bn per downsample + pool + fc.
    for name, blocks, per_block, downsamples in (("resnet18", 8, 6, 3), ("resnet34", 16, 6, 3),
                                                 ("resnet50", 16, 9, 4), ("resnet101", 33, 9, 4),
                                                 ("resnet152", 50, 9, 4)):
        assert counts[name] == 4 + blocks * per_block + 2 * downsamples + 2, name
    assert counts["wide_resnet50_2"] == counts["resnext50_32x4d"] == counts["resnet50"]  # same topology
    assert sum(counts.values()) == 9743
