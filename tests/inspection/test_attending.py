"""What each generated token attends to: the row captured in its decode step equals the last row of a full
forward pass over the text so far (every position scheme, across crops, through the fast decoder where it runs);
the tokens are those `generate` picks; the prompt's prefill is never captured; SmolLM2's tokens are its fast
twin's."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
import torch
from torch import nn

from qkv.attention.positions import POSITION_SCHEMES
from qkv.errors import InputError
from qkv.generation import SamplingConfig, generate
from qkv.inspection import AttendedToken, capture_attention, generate_attending
from qkv.model import Transformer, TransformerConfig

KernelCalls = Callable[[], AbstractContextManager[Counter[str]]]  # the conftest's kernel_calls
VOCAB, CONTEXT = 17, 16
PROMPT = [3, 1, 4, 1, 5]
SAMPLED = SamplingConfig(temperature=1.0)


@functools.cache
def random_model(positions: str) -> Transformer:
    """Untrained, with large weights: attention rows are far from uniform, so a wrong key would show."""
    config = TransformerConfig(vocab_size=VOCAB, context=CONTEXT, width=32, layers=2, heads=4, positions=positions)  # type: ignore[arg-type]
    torch.manual_seed(2)
    model = Transformer(config)
    for parameter in model.parameters():
        nn.init.normal_(parameter, std=0.4)
    return model.eval()


def full_forward_row(model: Transformer, keys: tuple[int, ...], layer: int) -> torch.Tensor:
    """The reference: the whole window through the model at once, the last query's weights ``(H, S)``."""
    with torch.no_grad(), capture_attention(model, [layer]) as records:
        model(torch.tensor([keys]))
    return records[layer][0][0, :, -1]  # (B, H, T, S) → (H, S)


def attending(model: Transformer, new: int, seed: int, **options: Any) -> list[AttendedToken]:
    generator = torch.Generator().manual_seed(seed)
    return list(generate_attending(model, PROMPT, new, SAMPLED, generator=generator, **options))


@pytest.mark.parametrize("layer", [0, -1])
@pytest.mark.parametrize("positions", POSITION_SCHEMES)
def test_each_row_equals_the_last_row_of_a_full_forward_pass_over_the_window(positions: str, layer: int) -> None:
    model = random_model(positions)
    steps = attending(model, 3 * CONTEXT, seed=4, layer=layer)  # crosses the context: generation crops
    sequence = PROMPT + [step.token for step in steps]
    assert any(step.start > 0 for step in steps)  # the crops were met
    for index, step in enumerate(steps):
        end = len(PROMPT) + index + 1  # the window ends with the step's own token
        assert step.keys == tuple(sequence[step.start : end]) and step.weights.shape == (4, len(step.keys))
        assert step.layer == layer % 2
        reference = full_forward_row(model, step.keys, layer % 2)
        torch.testing.assert_close(step.weights, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_capturing_attention_does_not_change_the_tokens(positions: str) -> None:
    model = random_model(positions)
    plain = generate(model, torch.tensor([PROMPT]), 3 * CONTEXT, SAMPLED, generator=torch.Generator().manual_seed(9))
    assert [step.token for step in attending(model, 3 * CONTEXT, seed=9)] == [int(t[0]) for t in plain]


@pytest.mark.parametrize("positions", ["rope", "alibi"])  # the fast decoder, and the Transformer (ALiBi)
def test_only_the_decode_steps_are_captured_never_the_prompt(positions: str, kernel_calls: KernelCalls) -> None:
    model = random_model(positions)
    with kernel_calls() as calls:
        steps = attending(model, 2 * CONTEXT, seed=1)
    assert len(steps) == 2 * CONTEXT
    crops = len({step.start for step in steps}) - 1  # each crop moves the window's start
    assert crops > 0
    # One exact call per token in the captured layer, and one per crop (its prefill runs while a token is read
    # back in); the prompt's prefill and every other layer took the fused path.
    assert calls["exact"] == len(steps) + crops
    assert calls["fused"] > calls["exact"]


def test_generation_ends_before_a_stop_token_which_is_not_yielded() -> None:
    model = random_model("learned")
    tokens = [step.token for step in attending(model, 40, seed=3)]
    stop = tokens[6]
    stopped = [step.token for step in attending(model, 40, seed=3, stop_ids=[stop])]
    assert stopped == tokens[: tokens.index(stop)]


def test_top_leaves_the_token_itself_out_and_ranks_the_earlier_ones() -> None:
    weights = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.1, 0.4]])  # (H=2, S=4): the token itself last
    step = AttendedToken(token=7, layer=0, keys=(4, 5, 6, 7), start=0, weights=weights)
    assert step.top(5) == [(0, pytest.approx(0.3)), (2, pytest.approx(0.2)), (1, pytest.approx(0.1))]
    assert step.top(1, head=0) == [(2, pytest.approx(0.3))]
    with pytest.raises(InputError, match="k must be at least 1"):
        step.top(0)


def test_a_layer_out_of_range_is_refused_before_anything_runs() -> None:
    with pytest.raises(InputError, match=r"layer 2 is out of range; this model has layers 0…1"):
        next(generate_attending(random_model("none"), PROMPT, 3, layer=2))


# -- SmolLM2 ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> Any:
    from qkv.data import registry
    from qkv.pretrained import load

    entry = registry.PACKAGED["smollm2"]
    if registry._package_dir(entry.package) is None:
        pytest.skip(f"smollm2 is not installed: {entry.install_command}")
    return load("smollm2")


@pytest.mark.slow
def test_smollm2_rows_match_a_full_forward_pass_and_the_tokens_match_its_fast_twin(smollm2: Any) -> None:
    ids = smollm2.encode(smollm2.chat_prompt("What is the capital of France?"))
    steps = list(generate_attending(smollm2.model, ids, 4, stop_ids=smollm2.stop_ids))
    assert [step.token for step in steps] == list(smollm2.stream(ids, 4))  # FastDecoder, no capture
    assert smollm2.decode([step.token for step in steps]) == "The capital of France"
    for step in steps:
        assert step.keys == tuple(ids + [s.token for s in steps])[: len(step.keys)] and step.weights.shape[0] == 9
        reference = full_forward_row(smollm2.model, step.keys, 29)
        torch.testing.assert_close(step.weights, reference, rtol=1e-4, atol=1e-5)
