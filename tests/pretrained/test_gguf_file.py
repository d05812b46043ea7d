"""The lean GGUF reader reads what the ``gguf`` package reads: every metadata value, the tensor table, each
tensor's bytes, and the same dequantised values; a short or foreign file is one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qkv.errors import InputError
from qkv.pretrained.gguf_file import GGUFFile, dequantise

from .conftest import packaged_or_skip
from .tiny import write_gguf

gguf = pytest.importorskip("gguf")

KINDS = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_1"]  # Q5_1: through gguf's own dequantiser


def same_value(ours: Any, field: Any) -> bool:
    theirs = field.contents()
    if isinstance(ours, np.ndarray):
        return bool(np.array_equal(ours, np.asarray(theirs)))
    return bool(ours == theirs)


def assert_reads_as_gguf_reads(path: Path, tensors: int | None = None) -> None:
    ours, reference = GGUFFile(path), gguf.GGUFReader(path, "r")
    keys = [key for key in reference.fields if not key.startswith("GGUF.")]
    assert list(ours.metadata) == keys
    for key in keys:
        assert same_value(ours.metadata[key], reference.fields[key]), key
    assert list(ours.tensors) == [t.name for t in reference.tensors]
    for tensor in reference.tensors[:tensors]:
        info = ours.tensors[tensor.name]
        assert info.shape == tuple(int(n) for n in reversed(tensor.shape.tolist()))
        assert info.type_name == tensor.tensor_type.name and info.nbytes == tensor.n_bytes
        raw = ours.read(info)
        assert np.array_equal(raw.reshape(-1), np.asarray(tensor.data).reshape(-1).view(np.uint8))
        expected = np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), np.float32).reshape(info.shape)
        assert np.array_equal(dequantise(raw, info).numpy(), expected), tensor.name


def test_every_kind_of_tensor_reads_and_dequantises_as_gguf_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {f"t.{kind}": rng.normal(0, 1, (4, 256)).astype(np.float32) for kind in KINDS}
    path = write_gguf(tmp_path / "kinds.gguf", tensors, types={f"t.{k}": k for k in KINDS if k != "F32"})
    assert_reads_as_gguf_reads(path)


@pytest.mark.slow
def test_smollm2s_file_reads_as_gguf_reads_it() -> None:
    assert_reads_as_gguf_reads(packaged_or_skip("smollm2"), tensors=12)


def test_bfloat16_results_are_rounded_once_from_the_exact_values(tmp_path: Path) -> None:
    import torch

    from qkv.pretrained import gguf_file

    array = np.random.default_rng(1).normal(0, 1, (300, 64)).astype(np.float32)
    path = write_gguf(tmp_path / "q8.gguf", {"w": array}, types={"w": "Q8_0"})
    reader = GGUFFile(path)
    info = reader.tensors["w"]
    exact = dequantise(reader.read(info), info)
    chunked = gguf_file._CHUNK_VALUES
    try:
        gguf_file._CHUNK_VALUES = 64 * 7  # 7 rows at a time: many slices, a short last one
        assert torch.equal(dequantise(reader.read(info), info, torch.bfloat16), exact.to(torch.bfloat16))
    finally:
        gguf_file._CHUNK_VALUES = chunked


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GGML" + bytes(40), r"is not a GGUF file"),
        (b"GGUF" + (9).to_bytes(4, "little") + bytes(32), r"GGUF version 9; qkv reads versions 2, 3"),
        (b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (5).to_bytes(8, "little"), r"truncated"),
    ],
)
def test_foreign_and_short_files_are_one_error(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message):
        GGUFFile(path)


def nested_arrays_gguf(depth: int) -> bytes:
    """A GGUF header with one metadata value: an array of an array of … ``depth`` deep, around one uint8."""
    key = b"general.nested"
    value = (9).to_bytes(4, "little")  # the value's type: array
    for _ in range(depth - 1):
        value += (9).to_bytes(4, "little") + (1).to_bytes(8, "little")  # an array holding one array
    value += (0).to_bytes(4, "little") + (1).to_bytes(8, "little") + b"\x07"  # … holding one uint8
    header = b"GGUF" + (3).to_bytes(4, "little") + (0).to_bytes(8, "little") + (1).to_bytes(8, "little")
    return header + len(key).to_bytes(8, "little") + key + value


def test_nested_metadata_arrays_read_up_to_the_limit(tmp_path: Path) -> None:
    from qkv.pretrained.gguf_file import MAX_NESTING

    path = tmp_path / "nested.gguf"
    path.write_bytes(nested_arrays_gguf(MAX_NESTING))
    value = GGUFFile(path).metadata["general.nested"]
    for _ in range(MAX_NESTING - 1):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value.tolist() == [7]


@pytest.mark.parametrize("depth", [9, 5000])
def test_metadata_nesting_past_the_limit_is_one_error_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.gguf"
    path.write_bytes(nested_arrays_gguf(depth))
    with pytest.raises(InputError, match=r"^cannot read GGUF file .*deep.gguf: its metadata nests arrays more than 8"):
        GGUFFile(path)
