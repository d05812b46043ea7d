"""A GGUF's blocks run by PyTorch's weight-only kernels, checked against the file's own values (gguf's
dequantiser): 4-bit layers laid side by side compute, as one product, exactly what each computes alone; the 8-bit
(Q8_0) embedding returns the file's rows; the 8-bit output layer ranks its logits by the file's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qkv.pretrained.int8 import MAX_INT8_ROWS, RESCORED, Int8Embedding, Int8Head, coarse_blocks, int8_blocks
from qkv.pretrained.lowbit import MAX_INT4_ROWS, Int4Blocks, Int4Linear, SideBySide, int4_blocks
from qkv.shapes import ShapeError

from .tiny import assert_decodes_like_the_transformer

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize, quantize  # noqa: E402


def quantised(shape: tuple[int, int], kind: str, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """A random weight stored as ``kind``: the file's bytes ``(N, bytes per row)`` and its exact float32 values."""
    weight = np.random.default_rng(seed).normal(0, 0.05, shape).astype(np.float32)
    raw = quantize(weight, gguf.GGMLQuantizationType[kind])
    exact = torch.from_numpy(np.asarray(dequantize(raw, gguf.GGMLQuantizationType[kind]), np.float32))
    return raw, exact


def four_bit(rows: tuple[int, ...], K: int = 96) -> list[Int4Blocks]:
    found = [int4_blocks(quantised((N, K), "Q4_1", seed=i)[0], "Q4_1", (N, K)) for i, N in enumerate(rows)]
    assert all(blocks is not None for blocks in found)
    return [blocks for blocks in found if blocks is not None]


def side_by_side(parts: list[Int4Blocks]) -> list[Int4Blocks]:
    """The parts placed in one buffer, in reverse order (as a file may hold them)."""
    group = SideBySide([part.shape for part in parts])
    placed = {index: group.place(index, part) for index, part in reversed(list(enumerate(parts)))}
    return [placed[index] for index in range(len(parts))]


# --------------------------------------------------------------------------------------------------------------
# 4-bit layers side by side.


def test_layers_side_by_side_share_one_buffer_packed_as_pytorch_packs_the_stacked_weights() -> None:
    parts = four_bit((128, 64, 64))
    placed = side_by_side(parts)
    assert len({part.packed.untyped_storage().data_ptr() for part in placed}) == 1  # one buffer
    for part, alone in zip(placed, parts, strict=True):
        assert torch.equal(part.packed, alone.packed) and part.scales_and_zeros is alone.scales_and_zeros
    joint = Int4Linear.side_by_side([Int4Linear(part) for part in placed])
    assert joint is not None and joint.packed.data_ptr() == placed[0].packed.data_ptr()  # no copy
    # The kernel's packing of the stacked 4-bit values is the buffer: its tiles of 64 rows are packed one by one.
    values = torch.cat([Int4Linear(part).dequantised().T for part in parts])  # (ΣN, K) bfloat16
    assert torch.equal(joint.dequantised().T, values) and joint.packed.shape == (256, 96 // 2)


@pytest.mark.parametrize(("kind", "shape"), [("Q4_1", (128, 96)), ("Q4_0", (64, 160))])
def test_the_dequantised_weights_are_the_files_values_rounded_once_to_bfloat16(
    kind: str, shape: tuple[int, int]
) -> None:
    raw, _ = quantised(shape, kind, seed=5)
    blocks = int4_blocks(raw, kind, shape)
    assert blocks is not None
    N, K = shape
    size, start = (18, 2) if kind == "Q4_0" else (20, 4)
    nibbles = torch.from_numpy(raw.reshape(N, K // 32, size)[..., start:].copy())  # (N, K/32, 16)
    q = torch.cat([nibbles & 15, nibbles >> 4], dim=-1).view(N, K // 32, 32).float()
    scale, zero = (blocks.scales_and_zeros[..., i].T.float().unsqueeze(-1) for i in (0, 1))  # (N, K/32, 1)
    expected = ((q - 8) * scale + zero).view(N, K).to(torch.bfloat16)  # as the kernel computes each weight
    assert torch.equal(Int4Linear(blocks).dequantised().T, expected)


@pytest.mark.parametrize("rows", [1, MAX_INT4_ROWS, MAX_INT4_ROWS + 5])
def test_one_product_side_by_side_computes_exactly_what_each_layer_computes_alone(rows: int) -> None:
    layers = [Int4Linear(part, torch.randn(part.shape[0])) for part in side_by_side(four_bit((128, 64, 64)))]
    joint = Int4Linear.side_by_side(layers)
    assert joint is not None and joint.out_features == 256
    x = torch.randn(rows, 96)
    assert torch.equal(joint(x), torch.cat([layer(x) for layer in layers], dim=-1))
    assert torch.equal(joint.functional()(x), joint(x))


def test_layers_packed_apart_or_of_another_kind_have_no_joint_product() -> None:
    parts = four_bit((64, 64))
    assert Int4Linear.side_by_side([Int4Linear(part) for part in parts]) is None  # two buffers
    together = [Int4Linear(part) for part in side_by_side(parts)]
    assert Int4Linear.side_by_side(together[::-1]) is None  # out of order
    assert Int4Linear.side_by_side(together[:1]) is None
    assert Int4Linear.side_by_side([together[0], torch.nn.Linear(96, 64)]) is None
    placed = [Int4Blocks(layer.packed, layer.scales_and_zeros) for layer in together]
    biased = [Int4Linear(blocks, torch.ones(64)) for blocks in placed]
    assert Int4Linear.side_by_side(biased) is not None  # both with a bias
    assert Int4Linear.side_by_side([biased[0], together[1]]) is None  # one with a bias, one without
    with pytest.raises(ShapeError, match="one K and multiples of 64 rows"):
        SideBySide([(64, 96), (64, 64)])
    with pytest.raises(ShapeError, match="layer 1 side by side is"):
        SideBySide([(64, 96), (128, 96)]).place(1, parts[1])


# --------------------------------------------------------------------------------------------------------------
# 8-bit embedding and output layer.

V, D = 300, 96  # a vocabulary that is not a multiple of the 4-bit kernel's 64 rows


@pytest.fixture(scope="module")
def q8() -> tuple[np.ndarray, torch.Tensor]:
    return quantised((V, D), "Q8_0", seed=3)


def test_the_8bit_blocks_are_the_files_values(q8: tuple[np.ndarray, torch.Tensor]) -> None:
    raw, exact = q8
    blocks = int8_blocks(raw, "Q8_0", (V, D))
    assert blocks is not None and blocks.values.dtype == torch.int8
    assert torch.equal(blocks.dequantised(), exact)
    assert int8_blocks(raw, "Q4_1", (V, D)) is None
    table = Int8Embedding(blocks)
    ids = torch.tensor([[0, 5, V - 1], [7, 7, 2]])
    assert torch.equal(table(ids), exact[ids])  # (2, 3, D), float32, exact


def test_the_coarse_copy_is_within_half_a_step_of_the_files_weights(q8: tuple[np.ndarray, torch.Tensor]) -> None:
    raw, exact = q8
    blocks = int8_blocks(raw, "Q8_0", (V, D))
    assert blocks is not None
    coarse = coarse_blocks(blocks)
    assert coarse.shape == (320, D)  # up to a multiple of 64 rows
    weights = Int4Linear(coarse).dequantised().T.float()  # (320, D), as the kernel computes them, in bfloat16
    assert torch.equal(weights[V:], torch.zeros(320 - V, D))
    step = (exact.view(V, -1, 32).amax(-1) - exact.view(V, -1, 32).amin(-1)) / 15  # (V, D/32)
    bound = step.repeat_interleave(32, dim=-1) * 0.51 + exact.abs() * 2**-7 + 1e-6  # half a step, bfloat16 scales
    assert ((weights[:V] - exact).abs() <= bound).all()


@pytest.mark.parametrize("rows", [1, 3, MAX_INT8_ROWS])
def test_the_8bit_output_layer_computes_its_largest_logits_from_the_files_weights(
    q8: tuple[np.ndarray, torch.Tensor], rows: int
) -> None:
    raw, exact = q8
    blocks = int8_blocks(raw, "Q8_0", (V, D))
    assert blocks is not None
    head = Int8Head(blocks)
    x = torch.randn(rows, D)
    expected = (x.double() @ exact.double().T).float()  # (rows, V)
    got = head(x)
    assert got.dtype == torch.float32 and got.shape == (rows, V)
    top = expected.topk(RESCORED // 4, dim=-1).indices  # well inside the coarse pass's top RESCORED
    torch.testing.assert_close(got.gather(-1, top), expected.gather(-1, top), rtol=1e-5, atol=1e-6)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    # the rest: the coarse pass, bfloat16 inputs on a grid of 1/15 of each block's span
    assert (got - expected).abs().max() <= 0.1 * expected.abs().max()


def test_many_rows_run_the_dequantised_blocks_in_bfloat16(q8: tuple[np.ndarray, torch.Tensor]) -> None:
    raw, exact = q8
    blocks = int8_blocks(raw, "Q8_0", (V, D))
    assert blocks is not None
    head = Int8Head(blocks)
    x = torch.randn(2, MAX_INT8_ROWS + 3, D)
    expected = x @ exact.T  # (2, T, V)
    got = head(x)
    assert got.shape == (2, MAX_INT8_ROWS + 3, V)
    assert (got - expected).abs().max() <= 0.01 * expected.abs().max()
    assert torch.equal(head.weight, exact.to(torch.bfloat16))


# --------------------------------------------------------------------------------------------------------------
# The fast decoder on 4-bit layers side by side, without RoPE (GPT-2's conventions; Llama's: test_lowbit.py).


def test_the_fast_decoder_reads_a_joint_product_without_rope_as_the_transformer_reads_three() -> None:
    from qkv.generation.fast_decoder import FastDecoder
    from qkv.model import Transformer, preset

    torch.manual_seed(0)
    model = Transformer(preset("small", vocab_size=40, positions="learned")).eval()  # width 128, 4 heads
    D = model.config.width
    for block in model.blocks:
        attention = block.attention
        weights = [layer.weight.detach().numpy() for layer in (attention.to_q, attention.to_k, attention.to_v)]
        parts = [int4_blocks(quantize(w, gguf.GGMLQuantizationType.Q4_0), "Q4_0", (D, D)) for w in weights]
        placed = side_by_side([part for part in parts if part is not None])
        attention.to_q, attention.to_k, attention.to_v = (Int4Linear(part) for part in placed)
    assert all(layer.to_qkv is not None for layer in FastDecoder(model, 12).layers)
    assert_decodes_like_the_transformer(model, torch.randint(0, 40, (12,)), prompt=6, capacity=12, atol=1e-5)
