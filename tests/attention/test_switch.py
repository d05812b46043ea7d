"""The attention-implementation switch: it picks the path attend and SelfAttention take, a with-block restores
the previous choice on the way out (exceptions too) and nests, use() sets the process's choice, each thread keeps
its own block, and a name that is not an implementation is one clear error."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
import torch

from qkv.attention import (
    IMPLEMENTATIONS,
    Implementation,
    attend,
    current_implementation,
    implementation,
    use,
)
from qkv.attention.layer import AttentionConfig, SelfAttention
from qkv.errors import ConfigError, InputError

KernelCalls = Callable[[], AbstractContextManager[Counter[str]]]  # the conftest's kernel_calls


@pytest.fixture(autouse=True)
def _fused_afterwards() -> Iterator[None]:
    """use() changes the whole process: every test here leaves it as it found it."""
    yield
    use("fused")


def qkv_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)  # (B, H, T, K), (B, G, S, K) ×2


def test_fused_is_the_default() -> None:
    assert current_implementation() == "fused" and IMPLEMENTATIONS == ("fused", "exact")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_the_switch_picks_the_path_attend_takes_and_both_give_the_same_output(
    name: Implementation, kernel_calls: KernelCalls
) -> None:
    queries, keys, values = qkv_tensors()
    reference, _ = attend(queries, keys, values, causal=True, need_weights=True)
    with implementation(name), kernel_calls() as calls:
        output, weights = attend(queries, keys, values, causal=True)
    assert calls == {name: 1}
    assert (weights is not None) == (name == "exact")  # the exact path hands back the weights it computed
    torch.testing.assert_close(output, reference, atol=1e-5, rtol=1e-5)


def test_asking_for_the_weights_takes_the_exact_path_whatever_the_switch_says(kernel_calls: KernelCalls) -> None:
    with implementation("fused"), kernel_calls() as calls:
        _, weights = attend(*qkv_tensors(), need_weights=True)
    assert calls == {"exact": 1} and weights is not None and weights.shape == (2, 4, 5, 5)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_the_switch_picks_the_path_of_a_self_attention_layer(name: Implementation, kernel_calls: KernelCalls) -> None:
    attention = SelfAttention(AttentionConfig(width=16, heads=4, kv_heads=2, positions="rope", context=8))
    x = torch.randn(1, 3, 16)
    with implementation(name), kernel_calls() as calls:
        output, weights = attention.attend(x, need_weights=False)
    assert calls == {name: 1} and (weights is not None) == (name == "exact")
    with kernel_calls() as calls:
        torch.testing.assert_close(attention(x), output, atol=1e-5, rtol=1e-5)
    assert calls == {"fused": 1}  # outside the block: the default again


def test_a_block_restores_the_previous_choice_even_when_it_raises() -> None:
    with pytest.raises(RuntimeError, match="inside"), implementation("exact"):
        assert current_implementation() == "exact"
        raise RuntimeError("inside")
    assert current_implementation() == "fused"


def test_blocks_nest_and_each_restores_the_one_around_it() -> None:
    with implementation("exact"):
        with implementation("fused"):
            assert current_implementation() == "fused"
            with implementation("exact"):
                assert current_implementation() == "exact"
            assert current_implementation() == "fused"
        assert current_implementation() == "exact"
    assert current_implementation() == "fused"


def test_use_sets_the_process_choice_which_a_block_overrides_inside_itself() -> None:
    use("exact")
    assert current_implementation() == "exact"
    with implementation("fused"):
        assert current_implementation() == "fused"
    assert current_implementation() == "exact"
    use("fused")
    assert current_implementation() == "fused"


def in_a_new_thread() -> Implementation:
    seen: list[Implementation] = []
    thread = threading.Thread(target=lambda: seen.append(current_implementation()))
    thread.start()
    thread.join()
    return seen[0]


def test_a_block_holds_in_its_own_thread_only_and_use_holds_in_every_thread() -> None:
    with implementation("exact"):
        assert in_a_new_thread() == "fused"
    use("exact")
    assert in_a_new_thread() == "exact"


@pytest.mark.parametrize("name", ["flash", "EXACT", None])
def test_a_name_that_is_no_implementation_is_one_clear_config_error(name: object) -> None:
    expected = rf"attention\.implementation={name!r} is not one of 'fused', 'exact'"
    with pytest.raises(ConfigError, match=expected) as raised, implementation(name):  # type: ignore[arg-type]
        pass
    assert isinstance(raised.value, InputError) and "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match=expected):
        use(name)  # type: ignore[arg-type]
    assert current_implementation() == "fused"


def test_compiled_code_reads_the_choice_without_a_graph_break() -> None:
    """torch.compile cannot read a with-block's choice (a ContextVar): compiled code takes use()'s instead of
    breaking the graph there (a break split `qkv train --compile`'s model into pieces slower than no compiling)."""
    layer = SelfAttention(AttentionConfig(width=16, heads=4, causal=True, context=8))
    x = torch.randn(2, 8, 16)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)  # fullgraph: a graph break is an error
    torch.testing.assert_close(compiled(x), layer(x))
