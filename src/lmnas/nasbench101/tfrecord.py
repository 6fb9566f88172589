"""Read (and write) the official NAS-Bench-101 tfrecord files without TensorFlow.

Framing (TFRecord): per record `uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)`, little endian. Each record's data is the JSON list
`[module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]` (nasbench `api.py`):
adjacency a row-major 0/1 string, operations comma-separated, metrics a base64
`nasbench.ModelMetrics` protobuf (`model_metrics.proto`, proto2):

    ModelMetrics   { repeated EvaluationData evaluation_data = 1;
                     optional int32 trainable_parameters = 2; optional double total_time = 3; }
    EvaluationData { optional double current_epoch = 1; training_time = 2; train_accuracy = 3;
                     validation_accuracy = 4; test_accuracy = 5; optional string checkpoint_path = 6; }

evaluation_data holds the evaluations at step 0, half way and at the end; the API reports
the last one as "final". CRC-32C uses `google_crc32c` / `crc32c` when already installed,
else a table-driven pure-Python loop (about 0.15 s per MB here: `verify_crc=False` reads
the 500 MB official files faster; the length CRC is always checked).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from lmnas.errors import LmnasError
from lmnas.io import atomic_path
from lmnas.nasbench101.cell import CellSpec

# ---- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78 -------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def _crc32c_python(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _fast_crc32c():  # type: ignore[no-untyped-def]
    try:
        import google_crc32c  # type: ignore[import-not-found]

        return google_crc32c.value
    except ImportError:
        pass
    try:
        import crc32c  # type: ignore[import-not-found]

        return crc32c.crc32c
    except ImportError:
        return _crc32c_python


crc32c = _fast_crc32c()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant (mod 2**32)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ---- TFRecord framing ----------------------------------------------------------------------


def iter_tfrecord(path: str | os.PathLike[str], *, verify_crc: bool = True) -> Iterator[bytes]:
    """Yield the payload of each record; LmnasError on truncation or a bad checksum."""
    path = Path(path)
    with path.open("rb") as handle:
        index = 0
        while header := handle.read(12):
            if len(header) < 12:
                raise LmnasError(f"{path}: record {index} header is truncated")
            length_bytes = header[:8]
            (length,) = struct.unpack("<Q", length_bytes)
            (length_crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(length_bytes) != length_crc:
                raise LmnasError(f"{path}: record {index} length checksum mismatch (not a TFRecord file?)")
            data = handle.read(length)
            footer = handle.read(4)
            if len(data) < length or len(footer) < 4:
                raise LmnasError(f"{path}: record {index} is truncated")
            if verify_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise LmnasError(f"{path}: record {index} data checksum mismatch")
            yield data
            index += 1


def write_tfrecord_payloads(path: str | os.PathLike[str], payloads: Iterable[bytes]) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        for data in payloads:
            length = struct.pack("<Q", len(data))
            handle.write(length + struct.pack("<I", masked_crc32c(length)))
            handle.write(data + struct.pack("<I", masked_crc32c(data)))


# ---- protobuf wire format (only what model_metrics.proto uses) ---------------------------


@dataclass(frozen=True)
class EvaluationData:
    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    checkpoint_path: str = ""


@dataclass(frozen=True)
class ModelMetrics:
    evaluation_data: tuple[EvaluationData, ...] = ()
    trainable_parameters: int = 0
    total_time: float = 0.0


_EVAL_FIELDS = {1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy", 5: "test_accuracy"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | float | bytes]]:
    """(field number, value): varints as int, fixed64 as double, length-delimited as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 1:
            yield number, struct.unpack_from("<d", buf, pos)[0]
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield number, buf[pos : pos + size]
            pos += size
        elif wire == 5:
            yield number, struct.unpack_from("<f", buf, pos)[0]
            pos += 4
        else:
            raise LmnasError(f"unsupported protobuf wire type {wire} in ModelMetrics")


def decode_metrics(buf: bytes) -> ModelMetrics:
    evaluations: list[EvaluationData] = []
    params, total_time = 0, 0.0
    for number, value in _fields(buf):
        if number == 1:
            evaluations.append(_decode_evaluation(value))  # type: ignore[arg-type]
        elif number == 2:
            params = int(value)  # type: ignore[arg-type]
        elif number == 3:
            total_time = float(value)  # type: ignore[arg-type]
    return ModelMetrics(tuple(evaluations), params, total_time)


def _decode_evaluation(buf: bytes) -> EvaluationData:
    values: dict[str, float | str] = {}
    for number, value in _fields(buf):
        if number in _EVAL_FIELDS:
            values[_EVAL_FIELDS[number]] = float(value)  # type: ignore[arg-type]
        elif number == 6:
            values["checkpoint_path"] = value.decode("utf-8")  # type: ignore[union-attr]
    return EvaluationData(**values)  # type: ignore[arg-type]


def _put_varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int32 are sign-extended to 10 bytes, as protobuf does
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _put_double(number: int, value: float) -> bytes:
    return _put_varint(number << 3 | 1) + struct.pack("<d", value)


def _put_bytes(number: int, value: bytes) -> bytes:
    return _put_varint(number << 3 | 2) + _put_varint(len(value)) + value


def encode_metrics(metrics: ModelMetrics) -> bytes:
    out = bytearray()
    for ev in metrics.evaluation_data:
        body = b"".join(_put_double(n, getattr(ev, name)) for n, name in _EVAL_FIELDS.items())
        if ev.checkpoint_path:
            body += _put_bytes(6, ev.checkpoint_path.encode("utf-8"))
        out += _put_bytes(1, body)
    out += _put_varint(2 << 3 | 0) + _put_varint(metrics.trainable_parameters)
    out += _put_double(3, metrics.total_time)
    return bytes(out)


# ---- NAS-Bench-101 rows -----------------------------------------------------------------


@dataclass(frozen=True)
class NasbenchRun:
    """One tfrecord row: one training run of one cell for `epochs` epochs."""

    module_hash: str
    epochs: int
    cell: CellSpec
    metrics: ModelMetrics = field(default_factory=ModelMetrics)

    @property
    def final(self) -> EvaluationData:
        if not self.metrics.evaluation_data:
            raise LmnasError(f"run of {self.module_hash} at {self.epochs} epochs has no evaluation data")
        return self.metrics.evaluation_data[-1]


def read_runs(path: str | os.PathLike[str], *, verify_crc: bool = True) -> Iterator[NasbenchRun]:
    for index, payload in enumerate(iter_tfrecord(path, verify_crc=verify_crc)):
        try:
            module_hash, epochs, adjacency, operations, raw_metrics = json.loads(payload.decode("utf-8"))
            cell = CellSpec.from_flat(adjacency, operations)
            metrics = decode_metrics(base64.b64decode(raw_metrics))
        except (ValueError, TypeError, IndexError) as exc:
            raise LmnasError(f"{path}: record {index} is not a NAS-Bench-101 row: {exc}") from exc
        yield NasbenchRun(str(module_hash), int(epochs), cell, metrics)


def write_tfrecord(path: str | os.PathLike[str], runs: Iterable[NasbenchRun]) -> None:
    """Write rows in the official layout (correct CRCs), e.g. a tiny fixture for tests."""

    def payload(run: NasbenchRun) -> bytes:
        adjacency, operations = run.cell.to_flat()
        metrics = base64.b64encode(encode_metrics(run.metrics)).decode("ascii")
        return json.dumps([run.module_hash, run.epochs, adjacency, operations, metrics]).encode("utf-8")

    write_tfrecord_payloads(path, (payload(run) for run in runs))


@dataclass(frozen=True)
class CellSummary:
    """All runs of one cell at one epoch budget, final accuracies averaged (fractions)."""

    module_hash: str
    cell: CellSpec
    val_accuracy: float
    test_accuracy: float
    trainable_parameters: int
    num_runs: int


def summarise_runs(runs: Iterable[NasbenchRun], epochs: int = 108) -> list[CellSummary]:
    """Group runs by module hash at `epochs` and average the final validation/test accuracy
    over the repeats (3 per cell in the official files), in first-seen order."""
    grouped: dict[str, list[NasbenchRun]] = defaultdict(list)
    for run in runs:
        if run.epochs == epochs:
            grouped[run.module_hash].append(run)
    return [
        CellSummary(
            module_hash=h,
            cell=group[0].cell,
            val_accuracy=fmean(r.final.validation_accuracy for r in group),
            test_accuracy=fmean(r.final.test_accuracy for r in group),
            trainable_parameters=group[0].metrics.trainable_parameters,
            num_runs=len(group),
        )
        for h, group in grouped.items()
    ]
