"""GPT-NAS layer records (the attributes of the paper's Table 1) and their text form.

A network is the sequence of its layers in execution order; each layer is written as
`id:1;type:Conv2d;name:stem.0;in_size:32-32-3;out_size:32-32-128;kernel:3-3;stride:1-1;
padding:1-1;dilation:1-1;groups:1;value:0.0;bias_used:false` (one line per layer), with
sizes as H-W-C for feature maps and C for vectors. Attributes a layer does not have are
written `none` (kernel/stride/padding/dilation), 1 (groups) or 0.0 (value). `value` is
the layer's one scalar hyper-parameter: dropout / stochastic-depth probability, the
negative slope of LeakyReLU, ELU's alpha; 0.0 otherwise (the paper names the attribute
but no source found defines it further). `block:<class>` is appended when the layer sits
in a known block (not a paper attribute; it lets the text round-trip).

**Layer-structure key** (`Layer.structure()`, the token the architecture GPT sees): the
layer's type, kernel, stride, padding, dilation, a groups class (1 / depthwise /
grouped), the channel change (same / up / down, from in vs out channels) and bias — and
deliberately *not* absolute sizes. The same 3x3 conv then gets the same token in a
32 px NAS-Bench-101 net with 128 channels, a 224 px torchvision net with 256 and a small
search network with 16, so what the GPT learns in pre-training transfers to fine-tuning
and to the search spaces, and the vocabulary stays small (hundreds, not tens of
thousands, of tokens). Sizes stay in the text form and the Parquet corpus.

**Sized encoding** (`structure("sized")`, an option): the key plus the layer's in and out
sizes (H-W-C), as GPT-NAS's own encoding does (its 168 layer structures include sizes). The
same 3x3 conv at another width or resolution is then another token: measured on the NAS-Bench-101
subset + torchvision corpus, 31 size-free structures become about 1,800 sized ones, and a
search space's layers at its own widths are mostly tokens the GPT never saw (<unk>).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from lmnas.errors import LmnasError

Size = tuple[int, ...]

PAPER_FIELDS = (
    "id", "type", "name", "in_size", "out_size", "kernel", "stride",
    "padding", "dilation", "groups", "value", "bias_used",
)  # fmt: skip
ENCODINGS = ("size-free", "sized")  # the layer-structure key: without (default) or with in/out sizes
_SIZE_FIELDS = ("in_size", "out_size", "kernel", "stride", "padding", "dilation")


@dataclass(frozen=True)
class Layer:
    id: int
    type: str  # module class name: Conv2d, BatchNorm2d, ReLU, MaxPool2d, Linear, ...
    name: str  # module path inside the network, e.g. "layer1.0.conv1"
    in_size: Size  # (H, W, C) for feature maps, (C,) for vectors
    out_size: Size
    kernel: Size = ()
    stride: Size = ()
    padding: Size = ()
    dilation: Size = ()
    groups: int = 1
    value: float = 0.0
    bias_used: bool = False
    block: str = ""  # outermost enclosing block class (Bottleneck, MBConv, NB101Cell...), "" if none

    @property
    def in_channels(self) -> int:
        return self.in_size[-1] if self.in_size else 0

    @property
    def out_channels(self) -> int:
        return self.out_size[-1] if self.out_size else 0

    def text(self) -> str:
        parts = [f"{name}:{_format(getattr(self, name))}" for name in PAPER_FIELDS]
        if self.block:
            parts.append(f"block:{self.block}")
        return ";".join(parts)

    def structure(self, encoding: str = "size-free") -> str:
        """Size-free layer-structure key, e.g. `Conv2d|k3-3|s1-1|p1-1|d1-1|g1|same|bias0`;
        `encoding="sized"` appends the in/out sizes: `...|bias0|i32-32-16|o32-32-16`."""
        if encoding not in ENCODINGS:
            raise LmnasError(f"layer encoding {encoding!r} is not known; known: {list(ENCODINGS)}")
        if self.groups == 1:
            groups = "g1"
        elif self.groups == self.in_channels:
            groups = "dw"
        else:
            groups = "grp"
        if self.out_channels == self.in_channels:
            change = "same"
        else:
            change = "up" if self.out_channels > self.in_channels else "down"
        parts = [
            self.type,
            "k" + _format(self.kernel),
            "s" + _format(self.stride),
            "p" + _format(self.padding),
            "d" + _format(self.dilation),
            groups,
            change,
            f"bias{int(self.bias_used)}",
        ]
        if encoding == "sized":
            parts += ["i" + _format(self.in_size), "o" + _format(self.out_size)]
        return "|".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists for sizes) for Parquet structs / JSON."""
        # Not dataclasses.asdict: its deep copy is the corpus builder's hot spot.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layer:
        kwargs = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name in _SIZE_FIELDS:
            if name in kwargs:
                kwargs[name] = tuple(int(v) for v in kwargs[name])
        return cls(**kwargs)


def encode_text(layers: list[Layer]) -> str:
    """One layer per line, in execution order."""
    return "\n".join(layer.text() for layer in layers)


def parse_text(text: str) -> list[Layer]:
    """Inverse of `encode_text`; LmnasError naming the line at fault."""
    return [_parse_line(line, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _parse_line(line: str, lineno: int) -> Layer:
    values: dict[str, str] = {}
    for part in line.strip().split(";"):
        key, sep, value = part.partition(":")
        if not sep:
            raise LmnasError(f"layer line {lineno}: {part!r} is not key:value")
        values[key] = value
    missing = [name for name in PAPER_FIELDS if name not in values]
    if missing:
        raise LmnasError(f"layer line {lineno}: missing attributes {missing}")
    try:
        return Layer(
            id=int(values["id"]),
            type=values["type"],
            name=values["name"],
            **{name: _parse_size(values[name]) for name in _SIZE_FIELDS},
            groups=int(values["groups"]),
            value=float(values["value"]),
            bias_used=_parse_bool(values["bias_used"]),
            block=values.get("block", ""),
        )
    except ValueError as exc:
        raise LmnasError(f"layer line {lineno}: {exc}") from None


def _format(value: object) -> str:
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _parse_size(text: str) -> Size:
    return () if text == "none" else tuple(int(v) for v in text.split("-"))


def _parse_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"bias_used must be true or false, got {text!r}")
    return text == "true"
