"""Lower precisions: the 4-bit blocks are the file's, in exactly PyTorch's layout; the 4-bit kernel and the
bfloat16 path compute what the dequantised weights give; a GGUF loaded as int4 holds its blocks and stays close
to float32; a dtype qkv does not have, or int4 without a GGUF, is one error before anything loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from qkv.errors import InputError
from qkv.generation.fast_decoder import FastDecoder
from qkv.pretrained import load
from qkv.pretrained.int8 import Int8Embedding, Int8Head
from qkv.pretrained.lowbit import MAX_INT4_ROWS, BF16Embedding, BF16Linear, Int4Linear, int4_blocks

from .conftest import transformers_or_skip
from .tiny import assert_decodes_like_the_transformer, gguf_tensors, tiny_llama, write_gguf

pytestmark = pytest.mark.slow  # parity with transformers

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize, quantize  # noqa: E402

SHAPES = [(64, 32), (128, 96), (192, 576)]


def quantised(shape: tuple[int, int], kind: str, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """A random weight stored as ``kind``: the file's bytes ``(N, bytes per row)`` and its exact float32 values."""
    weight = np.random.default_rng(seed).normal(0, 0.05, shape).astype(np.float32)
    raw = quantize(weight, gguf.GGMLQuantizationType[kind])
    exact = torch.from_numpy(np.asarray(dequantize(raw, gguf.GGMLQuantizationType[kind]), np.float32))
    return raw, exact


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1"])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_blocks_are_packed_exactly_as_pytorchs_own_converter_packs_them(kind: str, shape: tuple[int, int]) -> None:
    raw, _ = quantised(shape, kind)
    blocks = int4_blocks(raw, kind, shape)
    assert blocks is not None and blocks.shape == shape
    N, K = shape
    size, start = (18, 2) if kind == "Q4_0" else (20, 4)  # bytes per block; where its 16 bytes of values start
    nibbles = raw.reshape(N, K // 32, size)[..., start:]
    values = np.concatenate([nibbles & 15, nibbles >> 4], axis=-1).reshape(N, K)  # llama.cpp's order
    expected = torch.ops.aten._convert_weight_to_int4pack_for_cpu(torch.from_numpy(values.astype(np.int32)), 1)
    assert torch.equal(blocks.packed, expected)


def test_weights_the_kernel_cannot_hold_stay_out_of_int4() -> None:
    raw, _ = quantised((32, 64), "Q4_1")
    assert int4_blocks(raw, "Q4_1", (32, 64)) is None  # 32 output rows: not a multiple of 64
    raw, _ = quantised((64, 64), "Q8_0")
    assert int4_blocks(raw, "Q8_0", (64, 64)) is None


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1"])
@pytest.mark.parametrize("rows", [1, 3, MAX_INT4_ROWS, MAX_INT4_ROWS + 1, 40])
def test_int4_linear_multiplies_by_the_files_weights(kind: str, rows: int) -> None:
    raw, exact = quantised((192, 576), kind)
    blocks = int4_blocks(raw, kind, (192, 576))
    assert blocks is not None
    layer = Int4Linear(blocks)
    x = torch.randn(rows, 576)
    expected = x.double() @ exact.double().T  # (rows, N)
    got = layer(x)
    assert got.dtype == torch.float32 and got.shape == (rows, 192)
    # bfloat16 inputs, scales and outputs: 8 significant bits, so errors of a few parts in a thousand of the scale
    assert (got.double() - expected).abs().max() <= 1e-2 * expected.abs().max()
    assert (layer.weight.float() - exact).abs().max() <= 2**-7 * exact.abs().max()


def test_the_kernel_and_the_dequantised_path_agree() -> None:
    raw, _ = quantised((128, 96), "Q4_1")
    blocks = int4_blocks(raw, "Q4_1", (128, 96))
    assert blocks is not None
    layer = Int4Linear(blocks)
    x = torch.randn(MAX_INT4_ROWS + 4, 96)
    few = layer(x[:MAX_INT4_ROWS])  # the 4-bit kernel
    many = layer(x)[:MAX_INT4_ROWS]  # dequantised to bfloat16, then a bfloat16 product
    assert (few - many).abs().max() <= 1e-2 * many.abs().max()


def test_bf16_layers_compute_in_bfloat16_and_return_float32() -> None:
    weight = torch.randn(24, 16)
    layer = BF16Linear(weight.to(torch.bfloat16), torch.ones(24))
    x = torch.randn(3, 16)
    assert layer(x).dtype == torch.float32 and layer.weight.dtype == torch.bfloat16
    assert torch.allclose(layer(x), x @ weight.T + 1, atol=0.1)
    table = BF16Embedding(weight.to(torch.bfloat16))
    assert table(torch.tensor([[0, 5]])).dtype == torch.float32


# --------------------------------------------------------------------------------------------------------------
# A whole model from a quantised GGUF.


def q4_model(directory: Path, width: int) -> Path:
    """A tiny Llama (4 heads sharing 2 key/value heads, MLP width 128) stored as llama.cpp stores SmolLM2: Q4_1
    matrices, a Q8_0 embedding, float32 norms."""
    transformers_or_skip()
    source: Any = tiny_llama(hidden_size=width, intermediate_size=128)
    tensors = gguf_tensors(source)
    types = {name: "Q4_1" for name, array in tensors.items() if array.ndim == 2}
    types["token_embd.weight"] = "Q8_0"
    return write_gguf(directory / "q4.gguf", tensors, width=width, mlp_width=128, types=types)


@pytest.fixture(scope="module")
def q4_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Width 64: its key and value projections have 32 rows, fewer than the 4-bit kernel's tile."""
    return q4_model(tmp_path_factory.mktemp("q4"), width=64)


@pytest.fixture(scope="module")
def q4_wide_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Width 128: every projection a multiple of 64 rows, all of them 4-bit."""
    return q4_model(tmp_path_factory.mktemp("q4_wide"), width=128)


def test_int4_keeps_the_files_blocks_and_bfloat16_for_the_rest(q4_gguf: Path) -> None:
    model = load(q4_gguf, dtype="int4")
    block = model.model.blocks[0]
    for layer in (block.attention.to_q, block.attention.to_out, block.mlp.to_gate, block.mlp.to_out):
        assert isinstance(layer, Int4Linear)
    assert type(block.attention.to_k) is BF16Linear  # 32 output rows: the kernel's tiles are 64
    tokens, head = model.model.embedding.tokens, model.model.lm_head
    assert isinstance(tokens, Int8Embedding) and isinstance(head, Int8Head)  # the Q8_0 table, shared
    assert head.values is tokens.values and head.scales is tokens.scales
    assert model.precision == "int4" and "int4" in repr(model)
    low = load(q4_gguf, dtype="bfloat16").model
    assert isinstance(low.embedding.tokens, BF16Embedding) and isinstance(low.lm_head, BF16Linear)
    assert low.lm_head.weight is low.embedding.tokens.weight


def test_the_fast_decoder_runs_4bit_projections_side_by_side_and_computes_the_transformers_logits(
    q4_wide_gguf: Path,
) -> None:
    model = load(q4_wide_gguf, dtype="int4").model
    attention, mlp = model.blocks[0].attention, model.blocks[0].mlp
    assert all(isinstance(layer, Int4Linear) for layer in (attention.to_k, attention.to_v, mlp.to_hidden))
    decoder = FastDecoder(model, 16)
    assert all(layer.to_qkv is not None and layer.to_gate_hidden is not None for layer in decoder.layers)
    assert_decodes_like_the_transformer(model, torch.randint(3, 262, (12,)), prompt=8, capacity=16, atol=1e-4)


@pytest.mark.parametrize("dtype", ["bfloat16", "int4"])
def test_lower_precisions_stay_close_to_float32(q4_gguf: Path, dtype: str) -> None:
    reference, low = load(q4_gguf), load(q4_gguf, dtype=dtype)
    ids = torch.randint(3, 262, (2, 24))
    expected = reference.forward(ids)
    for got in (low.forward(ids), torch.stack([low.forward(row[None])[0] for row in ids])):
        assert (got - expected).abs().max() <= 0.02 * expected.abs().max()
    assert len(list(low.stream(ids[0, :6].tolist(), 4, stop_at_eos=False))) == 4  # decoding: the 4-bit kernel


def test_int4_needs_a_gguf_and_says_so(tmp_path: Path) -> None:
    transformers_or_skip()
    tiny_llama().save_pretrained(tmp_path / "llama")
    with pytest.raises(InputError, match=r"dtype 'int4' runs the 4-bit blocks a GGUF file stores.*bfloat16"):
        load(tmp_path / "llama", dtype="int4")
    assert load(tmp_path / "llama", dtype="bfloat16").precision == "bfloat16"


def test_an_unknown_dtype_is_refused_before_anything_is_read() -> None:
    with pytest.raises(InputError, match=r"dtype 'int8' is not one qkv loads.*float32, bfloat16, int4"):
        load("/no/such/file.gguf", dtype="int8")
