"""The Transformer: both kernel paths agree through it, cached decoding changes nothing, positions break
permutation symmetry where they act, blocks are wired as documented, and a tiny model learns a tiny text."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qkv.attention import IMPLEMENTATIONS, implementation
from qkv.attention.positions import POSITION_SCHEMES
from qkv.errors import ShapeError
from qkv.model import MLP, Block, Transformer, TransformerConfig, preset

Tensor = torch.Tensor
KernelCalls = Callable[[], AbstractContextManager[Counter[str]]]  # the conftest's kernel_calls
VOCAB = 13


def small(positions: str = "learned", **fields: object) -> Transformer:
    defaults: dict[str, object] = {"vocab_size": VOCAB, "context": 16, "width": 16, "layers": 2, "heads": 4}
    config = TransformerConfig(positions=positions, **{**defaults, **fields})  # type: ignore[arg-type]
    model = Transformer(config)
    for parameter in model.parameters():  # larger than GPT-2's init, so that attention is far from uniform
        nn.init.normal_(parameter, std=0.3)
    return model.eval()


def left_padded(B: int, S: int) -> Tensor:
    keep = torch.ones(B, S, dtype=torch.bool)
    keep[-1, :2] = False
    return keep


@pytest.mark.parametrize("positions", POSITION_SCHEMES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_exact_and_fused_paths_agree_through_the_transformer(
    positions: str, causal: bool, kv_heads: int, kernel_calls: KernelCalls
) -> None:
    model = small(positions, causal=causal, kv_heads=kv_heads)
    ids, keep = torch.randint(0, VOCAB, (2, 9)), left_padded(2, 9)
    upstream = torch.randn(2, 9, VOCAB)
    results = {}
    for name in IMPLEMENTATIONS:
        with implementation(name), kernel_calls() as calls:
            output = model(ids, keep=keep)
            results[name] = output, torch.autograd.grad(output, list(model.parameters()), upstream)
        assert calls == {name: 2}  # both layers took the chosen path
    (fused, fused_grads), (exact, exact_grads) = results["fused"], results["exact"]
    torch.testing.assert_close(fused, exact, atol=1e-5, rtol=1e-5)
    for g_fused, g_exact in zip(fused_grads, exact_grads, strict=True):
        torch.testing.assert_close(g_fused, g_exact, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_without_positions_a_bidirectional_transformer_is_permutation_equivariant() -> None:
    model = small("none", causal=False)
    ids, order = torch.randint(0, VOCAB, (2, 10)), torch.randperm(10)
    torch.testing.assert_close(model(ids[:, order]), model(ids)[:, order], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "alibi"])
@torch.no_grad()
def test_every_positional_scheme_breaks_permutation_equivariance(positions: str) -> None:
    model = small(positions, causal=False)
    ids, order = torch.arange(10).remainder(VOCAB)[None], torch.tensor([9, 3, 0, 7, 1, 8, 2, 6, 4, 5])
    assert (model(ids[:, order]) - model(ids)[:, order]).abs().max() > 1e-3


def decode_in_pieces(model: Transformer, ids: Tensor, pieces: list[int], keep: Tensor | None = None) -> Tensor:
    cache = model.new_cache(ids.shape[0])
    logits, start = [], 0
    for size in pieces:
        end = start + size
        logits.append(model(ids[:, start:end], cache=cache, keep=None if keep is None else keep[:, :end]))
        start = end
    assert start == ids.shape[1]
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("positions", POSITION_SCHEMES)
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@torch.no_grad()
def test_cached_decoding_gives_the_logits_of_recomputing_the_whole_sequence(positions: str, kv_heads: int) -> None:
    model = small(positions, kv_heads=kv_heads)
    ids = torch.randint(0, VOCAB, (2, 12))
    pieces = [5, 1, 1, 3, 1, 1]  # a prefill, one-token steps, a multi-token chunk, more steps
    torch.testing.assert_close(decode_in_pieces(model, ids, pieces), model(ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "rope", "alibi"])
@torch.no_grad()
def test_cached_decoding_with_padding_gives_the_logits_of_recomputing(positions: str) -> None:
    model = small(positions, kv_heads=2, norm="rmsnorm", activation="swiglu")
    ids, keep = torch.randint(0, VOCAB, (2, 8)), left_padded(2, 8)
    cached = decode_in_pieces(model, ids, [3, 1, 2, 1, 1], keep)
    torch.testing.assert_close(cached, model(ids, keep=keep), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@torch.no_grad()
def test_padding_tokens_are_invisible_to_the_real_ones(causal: bool) -> None:
    model = small("rope", causal=causal, kv_heads=2)
    ids = torch.randint(0, VOCAB, (2, 8))
    real = slice(3, 8) if causal else slice(0, 5)  # causal models pad on the left, encoders on the right
    keep = torch.zeros(2, 8, dtype=torch.bool)
    keep[:, real] = True
    other = ids.clone()
    other[~keep] = (ids[~keep] + 1) % VOCAB  # change only the padding tokens
    torch.testing.assert_close(model(other, keep=keep)[:, real], model(ids, keep=keep)[:, real])
    assert not torch.allclose(model(other)[:, real], model(ids)[:, real])  # unmasked, they would be seen


@pytest.mark.parametrize("positions", POSITION_SCHEMES)
def test_input_longer_than_the_context_raises_a_shape_error(positions: str) -> None:
    model = small(positions)
    with pytest.raises(ShapeError, match=r"context of 16 positions"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("positions", POSITION_SCHEMES)
@torch.no_grad()
def test_decoding_past_the_context_raises_a_shape_error(positions: str) -> None:
    model = small(positions)
    cache = model.new_cache(1)
    model(torch.zeros(1, 16, dtype=torch.long), cache=cache)
    with pytest.raises(ShapeError, match=r"context of 16 positions|holds 16 positions"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_the_transformer_refuses_malformed_ids_keep_and_caches() -> None:
    model = small()
    with pytest.raises(ShapeError, match=r"token ids must have 2 dimensions \(B, T\), got 1: \(5,\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"keep must be \(B, S\) = \(2, 5\).*got \(2, 4\)"):
        model(torch.zeros(2, 5, dtype=torch.long), keep=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"one cache per block \(2\), got 1"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=model.new_cache(1)[:1])


@pytest.mark.parametrize("placement", ["pre", "post"])
@torch.no_grad()
def test_a_block_is_wired_as_documented(placement: str) -> None:
    config = TransformerConfig(width=16, heads=4, norm_placement=placement, positions="none")  # type: ignore[arg-type]
    block = Block(config).eval()
    for parameter in block.parameters():
        nn.init.normal_(parameter, std=0.3)
    x = torch.randn(2, 5, 16)
    attention, mlp = block.attention, block.mlp
    if placement == "pre":  # x + attention(norm(x)), then x + mlp(norm(x))
        x1 = x + attention(block.attention_norm(x))
        expected = x1 + mlp(block.mlp_norm(x1))
    else:  # norm(x + attention(x)), then norm(x + mlp(x))
        x1 = block.attention_norm(x + attention(x))
        expected = block.mlp_norm(x1 + mlp(x1))
    torch.testing.assert_close(block(x), expected)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": lambda h: 0.5 * h * (1 + torch.erf(h / math.sqrt(2))),
    "gelu_tanh": lambda h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3))),
    "relu": lambda h: h.clamp(min=0),
}


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu", "swiglu"])
@torch.no_grad()
def test_the_mlp_applies_its_activation_to_every_token_alone(activation: str) -> None:
    mlp = MLP(TransformerConfig(width=8, heads=2, mlp_width=12, activation=activation))  # type: ignore[arg-type]
    x = torch.randn(2, 3, 8)
    hidden = x @ mlp.to_hidden.weight.T + mlp.to_hidden.bias
    if activation == "swiglu":
        assert mlp.to_gate is not None
        gate = x @ mlp.to_gate.weight.T + mlp.to_gate.bias
        hidden = gate * torch.sigmoid(gate) * hidden
    else:
        hidden = ACTIVATIONS[activation](hidden)
    torch.testing.assert_close(mlp(x), hidden @ mlp.to_out.weight.T + mlp.to_out.bias, atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_token_types_change_a_bert_encoding() -> None:
    model = Transformer(preset("bert", vocab_size=VOCAB, layers=1, width=16, heads=2, context=8)).eval()
    ids = torch.randint(0, VOCAB, (1, 6))
    types = torch.tensor([[0, 0, 0, 1, 1, 1]])
    torch.testing.assert_close(model(ids), model(ids, token_types=torch.zeros_like(ids)))
    assert not torch.allclose(model(ids), model(ids, token_types=types))


def test_dropout_acts_in_training_only() -> None:
    model = Transformer(TransformerConfig(vocab_size=VOCAB, context=8, width=16, layers=1, heads=2, dropout=0.5))
    ids = torch.randint(0, VOCAB, (2, 8))
    assert not torch.equal(model.train()(ids), model(ids))
    torch.testing.assert_close(model.eval()(ids), model(ids))


def test_residual_projections_start_smaller_as_in_gpt2() -> None:
    model = Transformer(preset("small", vocab_size=VOCAB))  # 4 layers: residual std 0.02 / √8
    block = model.blocks[0]
    assert abs(float(block.attention.to_q.weight.detach().std()) - 0.02) < 0.002
    assert abs(float(block.attention.to_out.weight.detach().std()) - 0.02 / math.sqrt(8)) < 0.001
    assert not block.attention.to_q.bias.any()


TEXT = "the quick brown fox jumps over the lazy dog. attention mixes each word with the words it needs. "


def test_a_tiny_causal_transformer_overfits_a_short_text() -> None:
    started = time.perf_counter()
    alphabet = sorted(set(TEXT))
    data = torch.tensor([alphabet.index(c) for c in TEXT * 8])
    model = Transformer(preset("tiny", vocab_size=len(alphabet)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)

    def loss_on(starts: Tensor) -> Tensor:
        windows = torch.stack([data[s : s + 33] for s in starts.tolist()])  # (B, 33)
        logits = model(windows[:, :-1])  # (B, 32, V)
        return F.cross_entropy(logits.reshape(-1, len(alphabet)), windows[:, 1:].reshape(-1))

    held = torch.randint(0, len(data) - 33, (16,), generator=generator)
    with torch.no_grad():
        initial = float(loss_on(held))
    for _ in range(200):
        loss = loss_on(torch.randint(0, len(data) - 33, (16,), generator=generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = float(loss_on(held))
    assert initial > 0.9 * math.log(len(alphabet))  # it starts from a guess
    assert final < 0.25 * initial, f"loss {initial:.3f} → {final:.3f}"
    assert time.perf_counter() - started < 60


def test_the_sigmoid_form_of_tanh_gelu_is_the_same_function_as_pytorchs() -> None:
    from qkv.model.transformer import gelu_tanh, gelu_tanh_as_sigmoid

    x = torch.linspace(-12, 12, 100_001, dtype=torch.float64, requires_grad=True)
    reference = F.gelu(x, approximate="tanh")
    torch.testing.assert_close(gelu_tanh_as_sigmoid(x), reference, rtol=0, atol=1e-14)
    torch.testing.assert_close(gelu_tanh(x), reference, rtol=0, atol=0)  # eagerly: PyTorch's own kernel
    (grad,) = torch.autograd.grad(gelu_tanh_as_sigmoid(x).sum(), x)
    (reference_grad,) = torch.autograd.grad(reference.sum(), x)
    torch.testing.assert_close(grad, reference_grad, rtol=0, atol=1e-13)
