"""SelfAttention: both kernel paths agree through the layer, it is PyTorch's MultiheadAttention with the same
weights, it is permutation-equivariant exactly when it has no positions, and cached decoding changes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import torch
from torch import nn

from qkv.attention import IMPLEMENTATIONS, Implementation, implementation, masks
from qkv.attention.kv_cache import KVCache
from qkv.attention.layer import AttentionConfig, SelfAttention
from qkv.attention.positions import POSITION_SCHEMES
from qkv.errors import ConfigError, ShapeError

Tensor = torch.Tensor
KernelCalls = Callable[[], AbstractContextManager[Counter[str]]]  # the conftest's kernel_calls
D, H = 16, 4


def layer(positions: str = "none", *, G: int | None = None, causal: bool = True, bias: bool = True) -> SelfAttention:
    config = AttentionConfig(width=D, heads=H, kv_heads=G, positions=positions, causal=causal, bias=bias, context=32)
    return SelfAttention(config)  # type: ignore[arg-type]


def parameter_grads(module: nn.Module, output: Tensor, upstream: Tensor, x: Tensor) -> list[Tensor]:
    return list(torch.autograd.grad(output, [x, *module.parameters()], upstream))


@pytest.mark.parametrize("positions", POSITION_SCHEMES)
@pytest.mark.parametrize("G", [4, 2, 1])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_exact_and_fused_paths_agree_through_the_layer(positions: str, G: int, causal: bool, padded: bool) -> None:
    attention = layer(positions, G=G, causal=causal)
    x = torch.randn(2, 7, D, requires_grad=True)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[1, 5:] = False
    mask = masks.padding(keep) if padded else None
    fused = attention(x, mask=mask)
    exact, weights = attention.attend(x, mask=mask, need_weights=True)
    assert weights is not None and weights.shape == (2, H, 7, 7)
    torch.testing.assert_close(fused, exact, atol=1e-5, rtol=1e-5)
    upstream = torch.randn_like(fused)
    for g_fused, g_exact in zip(
        parameter_grads(attention, fused, upstream, x), parameter_grads(attention, exact, upstream, x), strict=True
    ):
        torch.testing.assert_close(g_fused, g_exact, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_capture_hook_takes_the_exact_path_under_either_setting_and_gets_its_weights(
    name: Implementation, kernel_calls: KernelCalls
) -> None:
    attention, x = layer("alibi", G=2), torch.randn(2, 5, D)
    expected_output, expected = attention.attend(x, need_weights=True)
    captured: list[Tensor] = []
    attention.weights_hook = captured.append
    with implementation(name), kernel_calls() as calls:
        output = attention(x)
    assert calls == {"exact": 1} and len(captured) == 1
    assert expected is not None and torch.equal(captured[0], expected) and torch.equal(output, expected_output)


def multihead_twin(attention: SelfAttention) -> nn.MultiheadAttention:
    """torch.nn.MultiheadAttention holding our layer's weights: in_proj is to_q, to_k, to_v stacked."""
    twin = nn.MultiheadAttention(D, H, bias=True, batch_first=True)
    with torch.no_grad():
        twin.in_proj_weight.copy_(torch.cat([attention.to_q.weight, attention.to_k.weight, attention.to_v.weight]))
        twin.in_proj_bias.copy_(torch.cat([attention.to_q.bias, attention.to_k.bias, attention.to_v.bias]))
        twin.out_proj.weight.copy_(attention.to_out.weight)
        twin.out_proj.bias.copy_(attention.to_out.bias)
    return twin


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_self_attention_is_torch_multihead_attention_with_the_same_weights(causal: bool, padded: bool) -> None:
    attention = layer(causal=causal)
    for parameter in attention.parameters():  # non-zero biases, so that copying them is tested too
        nn.init.normal_(parameter, std=0.3)
    twin = multihead_twin(attention).eval()
    x = torch.randn(3, 6, D)
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[1, 4:], keep[2, 1:] = False, False  # right padding: every query still sees key 0
    hidden_future = ~masks.causal(6) if causal else None  # MultiheadAttention's bool masks are True where hidden
    expected, expected_weights = twin(
        x,
        x,
        x,
        attn_mask=hidden_future,
        key_padding_mask=~keep if padded else None,
        need_weights=True,
        average_attn_weights=False,
    )
    mask = masks.padding(keep) if padded else None
    output, weights = attention.attend(x, mask=mask, need_weights=True)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(attention(x, mask=mask), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["none", "rope", "alibi"])
def test_layer_weights_rows_sum_to_one_and_the_future_gets_none(positions: str) -> None:
    _, weights = layer(positions, G=2).attend(torch.randn(2, 6, D))
    assert weights is not None
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, H, 6), atol=1e-6, rtol=0)
    assert (weights[..., ~masks.causal(6)] == 0).all()


@pytest.mark.parametrize("G", [4, 1])
def test_without_positions_a_bidirectional_layer_is_permutation_equivariant(G: int) -> None:
    attention = layer("none", G=G, causal=False)
    x, order = torch.randn(2, 7, D), torch.randperm(7)
    keep = torch.rand(2, 7) < 0.7
    keep[:, 0] = True
    permuted = attention(x[:, order], mask=masks.padding(keep[:, order]))
    torch.testing.assert_close(permuted, attention(x, mask=masks.padding(keep))[:, order], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_with_rope_or_alibi_the_layer_is_not_permutation_equivariant(positions: str) -> None:
    attention = layer(positions, causal=False)
    x, order = torch.randn(2, 7, D), torch.tensor([6, 2, 0, 4, 1, 5, 3])
    difference = (attention(x[:, order]) - attention(x)[:, order]).abs().max()
    assert difference > 1e-3


def decode_in_pieces(attention: SelfAttention, x: Tensor, pieces: list[int], *, exact: bool) -> Tensor:
    """Run ``x`` through the layer a piece at a time with a KV cache; return every position's output."""
    cache = attention.new_cache(x.shape[0], capacity=x.shape[1])
    outputs, start = [], 0
    for size in pieces:
        output, _ = attention.attend(x[:, start : start + size], cache=cache, need_weights=exact)
        outputs.append(output)
        start += size
    assert start == x.shape[1] and cache.length == x.shape[1]
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("positions", POSITION_SCHEMES)
@pytest.mark.parametrize("G", [4, 2, 1])
@pytest.mark.parametrize("exact", [False, True])
@torch.no_grad()
def test_cached_decoding_equals_recomputing_the_whole_sequence(positions: str, G: int, exact: bool) -> None:
    attention = layer(positions, G=G)
    x = torch.randn(2, 10, D)
    full = attention(x)
    pieces = [4, 1, 1, 3, 1]  # a prefill, one-token steps, a multi-token chunk, one more step
    torch.testing.assert_close(decode_in_pieces(attention, x, pieces, exact=exact), full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_cached_decoding_with_a_padding_mask_equals_recomputing() -> None:
    attention = layer("alibi", G=2)
    x = torch.randn(2, 6, D)
    keep = torch.ones(2, 6, dtype=torch.bool)
    keep[1, :2] = False  # left padding: the padded queries see nothing and output to_out's bias
    full = attention(x, mask=masks.padding(keep))
    cache = attention.new_cache(2, capacity=8)
    prefill = attention(x[:, :3], mask=masks.padding(keep[:, :3]), cache=cache)
    steps = [attention(x[:, t : t + 1], mask=masks.padding(keep[:, : t + 1]), cache=cache) for t in range(3, 6)]
    torch.testing.assert_close(torch.cat([prefill, *steps], dim=1), full, atol=1e-5, rtol=1e-5)


def test_the_cache_returns_everything_stored_so_far_and_crops() -> None:
    cache = KVCache(batch=2, kv_heads=3, capacity=5, head_width=4, dtype=torch.float64)
    first, second = torch.randn(2, 3, 2, 4, dtype=torch.float64), torch.randn(2, 3, 1, 4, dtype=torch.float64)
    cache.append(first, -first)
    keys, values = cache.append(second, -second)
    assert cache.length == 3 and cache.capacity == 5
    torch.testing.assert_close(keys, torch.cat([first, second], dim=2))
    torch.testing.assert_close(values, -keys)
    cache.crop(1)
    keys, _ = cache.append(second, second)
    torch.testing.assert_close(keys, torch.cat([first[:, :, :1], second], dim=2))


def test_the_cache_refuses_overflow_wrong_shapes_and_bad_crops() -> None:
    cache = KVCache(batch=1, kv_heads=2, capacity=3, head_width=4)
    cache.append(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ShapeError, match="holds 3 positions and has 3; 1 more"):
        cache.append(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    with pytest.raises(ShapeError, match=r"cache holds \(B=1, G=2, S=3, K=4\).*keys \(B=1, G=1, T=1, K=4\)"):
        cache.append(torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 4))
    with pytest.raises(ShapeError, match="0…3 positions, not 4"):
        cache.crop(4)


def test_a_layers_new_cache_matches_its_heads_and_weights() -> None:
    attention = layer(G=2).double()
    cache = attention.new_cache(batch=3, capacity=9)
    assert cache.keys.shape == (3, 2, 9, D // H) and cache.keys.dtype == torch.float64 and cache.length == 0


def test_the_layer_refuses_a_wrong_width_or_rank() -> None:
    attention = layer()
    with pytest.raises(ShapeError, match=r"expects width D=16, got input \(2, 5, 12\)"):
        attention(torch.randn(2, 5, 12))
    with pytest.raises(ShapeError, match=r"SelfAttention input must have 3 dimensions \(B, T, D\).*\(5, 16\)"):
        attention(torch.randn(5, 16))


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_the_layer_refuses_input_beyond_its_context(positions: str) -> None:
    with pytest.raises(ShapeError, match=r"outside the model's context of 32 positions"):
        layer(positions)(torch.randn(1, 33, D))


def test_the_layer_refuses_a_mask_that_does_not_fit() -> None:
    with pytest.raises(ShapeError, match=r"mask of shape \(2, 1, 1, 4\) does not broadcast"):
        layer()(torch.randn(2, 5, D), mask=torch.ones(2, 1, 1, 4, dtype=torch.bool))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"width": 0, "heads": 1}, "width"),
        ({"width": 16, "heads": 0}, "heads"),
        ({"width": 16, "heads": 3}, "heads"),
        ({"width": 16, "heads": 4, "kv_heads": 3}, "kv_heads"),
        ({"width": 16, "heads": 4, "kv_heads": 0}, "kv_heads"),
        ({"width": 16, "heads": 4, "head_width": 0}, "head_width"),
        ({"width": 16, "heads": 4, "context": 0}, "context"),
        ({"width": 12, "heads": 4, "positions": "rope"}, "head_width"),
        ({"width": 16, "heads": 4, "positions": "absolute"}, "positions"),
        ({"width": 16, "heads": 4, "rope_theta": 0.0}, "rope_theta"),
    ],
)
def test_attention_config_names_the_invalid_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=rf"AttentionConfig\.{named}\b"):
        AttentionConfig(**fields)  # type: ignore[arg-type]


def test_an_explicit_head_width_need_not_divide_the_width() -> None:
    attention = SelfAttention(AttentionConfig(width=10, heads=3, head_width=4, kv_heads=1))
    assert attention(torch.randn(1, 4, 10)).shape == (1, 4, 10)


@pytest.mark.parametrize("positions", ["none", "rope", "alibi"])
@pytest.mark.parametrize("G", [4, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_training_projects_q_k_v_in_one_product_with_the_same_outputs_and_gradients(
    positions: str, G: int, bias: bool
) -> None:
    attention = layer(positions, G=G, bias=bias)
    separate_calls: list[str] = []
    for name in ("to_q", "to_k", "to_v"):
        getattr(attention, name).register_forward_hook(lambda m, i, o, name=name: separate_calls.append(name))
    x = torch.randn(2, 7, D, requires_grad=True)
    upstream = torch.randn(2, 7, D)
    attention.train()
    fused = attention(x)
    fused_grads = parameter_grads(attention, fused, upstream, x)
    assert separate_calls == []  # one stacked product, not the three maps
    attention.eval()
    separate = attention(x)
    separate_grads = parameter_grads(attention, separate, upstream, x)
    assert separate_calls == ["to_q", "to_k", "to_v"]
    torch.testing.assert_close(fused, separate, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused_grads, separate_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
