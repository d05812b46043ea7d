"""The safetensors reader returns exactly what safetensors' own loader returns, and refuses anything else in one
line naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from qkv.data.registry import PretrainedError
from qkv.data.tensors import read_rows, read_tensors


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    path = tmp_path / "model.safetensors"
    save_file(
        {
            "table": torch.randn(7, 5, generator=generator),
            "bias": torch.randn(5, generator=generator, dtype=torch.float64),
            "half": torch.randn(3, 2, generator=generator).to(torch.bfloat16),
        },
        str(path),
    )
    return path


def test_every_tensor_or_a_few_are_read_as_stored(weights: Path) -> None:
    reference = load_file(str(weights))
    everything = read_tensors(weights)
    assert set(everything) == set(reference)
    for name, tensor in reference.items():
        assert everything[name].dtype == tensor.dtype and torch.equal(everything[name], tensor)
    few = read_tensors(weights, ["bias"])
    assert list(few) == ["bias"] and torch.equal(few["bias"], reference["bias"])


def test_rows_are_the_rows_of_the_stored_table_in_the_order_asked(weights: Path) -> None:
    table = load_file(str(weights))["table"]  # (7, 5)
    assert torch.equal(read_rows(weights, "table", [4, 0, 4]), table[[4, 0, 4]])
    assert read_rows(weights, "table", []).shape == (0, 5)


def test_a_tensor_or_row_the_file_lacks_is_one_error_naming_the_file(weights: Path) -> None:
    with pytest.raises(PretrainedError, match=r"model\.safetensors holds no tensor named 'missing'"):
        read_tensors(weights, ["bias", "missing"])
    with pytest.raises(PretrainedError, match=r"table has rows 0…6, not 7"):
        read_rows(weights, "table", [0, 7])


def test_a_missing_truncated_or_pickled_file_is_refused(tmp_path: Path, weights: Path) -> None:
    with pytest.raises(PretrainedError, match=r"nothing\.safetensors is missing"):
        read_tensors(tmp_path / "nothing.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(weights.read_bytes()[:-20])
    with pytest.raises(PretrainedError, match=r"cannot read .*truncated\.safetensors.*truncated or damaged"):
        read_tensors(truncated)
    pickled = tmp_path / "pytorch_model.bin"
    pickled.write_bytes(pickle.dumps({"table": [1.0, 2.0]}, protocol=2))
    with pytest.raises(PretrainedError, match=r"is a pickle .* never unpickles"):
        read_rows(pickled, "table", [0])
