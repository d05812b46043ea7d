"""qkv.generation's FastDecoder, the fast twin of the Transformer's cached forward pass, on a
Llama-family GGUF: the same logits at every step, for a prompt given at once or in parts, in float32 and int4;
a capture hook keeps generation on the Transformer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from qkv.generation import decode_one_token, prefill
from qkv.generation.fast_decoder import FastDecoder, supports
from qkv.pretrained import Model, load

from .conftest import transformers_or_skip
from .tiny import gguf_tensors, tiny_llama, write_gguf

pytestmark = pytest.mark.slow  # parity with transformers

pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def q4_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers_or_skip()
    source: Any = tiny_llama(hidden_size=64, intermediate_size=128)
    tensors = gguf_tensors(source)
    types = {name: "Q4_1" for name, array in tensors.items() if array.ndim == 2}
    return write_gguf(tmp_path_factory.mktemp("dec") / "q4.gguf", tensors, width=64, mlp_width=128, types=types)


def transformer_steps(model: Model, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """The Transformer's own cached path: the prompt's last logits, then one row per fed token ``(1 + n, V)``."""
    cache = model.model.new_cache(1, len(prompt) + len(tokens))
    with torch.inference_mode():
        rows = [prefill(model.model, torch.tensor([prompt]), cache)[0]]
        rows += [decode_one_token(model.model, torch.tensor([t]), cache)[0] for t in tokens]
    return torch.stack(rows)


def decoder_steps(model: Model, prompt: list[int], tokens: list[int], split: int | None = None) -> torch.Tensor:
    decoder = FastDecoder(model.model, len(prompt) + len(tokens))
    if split is None:
        rows = [decoder.prefill(torch.tensor(prompt))]
    else:  # the prompt in two parts: the second part's queries see the cached keys and their own past
        decoder.prefill(torch.tensor(prompt[:split]))
        rows = [decoder.prefill(torch.tensor(prompt[split:]))]
    rows += [decoder.decode(t) for t in tokens]
    return torch.stack(rows)


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-5), ("int4", 2e-2)])
@pytest.mark.parametrize("split", [None, 1, 7])
def test_the_decoder_computes_the_transformers_logits(
    q4_gguf: Path, dtype: str, tolerance: float, split: int | None
) -> None:
    model = load(q4_gguf, dtype=dtype)
    assert supports(model.model)
    prompt, tokens = list(range(10, 22)), [5, 40, 41, 7, 200]
    expected = transformer_steps(model, prompt, tokens)
    got = decoder_steps(model, prompt, tokens, split)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= tolerance * scale


def test_generation_goes_through_the_decoder_and_gives_the_transformers_tokens(
    q4_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.generation import SamplingConfig, generate

    model = load(q4_gguf)
    prompt = list(range(3, 15))
    greedy = SamplingConfig(temperature=0)
    modules = generate(model.model, torch.tensor([prompt]), 12, greedy, decode=decode_one_token)  # the Transformer
    expected = [int(t) for t in modules]
    steps: list[int] = []
    decode = FastDecoder.decode
    monkeypatch.setattr(FastDecoder, "decode", lambda self, token: steps.append(1) or decode(self, token))
    assert list(model.stream(prompt, 12, stop_at_eos=False)) == expected
    assert len(steps) == 11  # every token but the last read back in by the decoder


def test_a_capture_hook_sees_every_step_of_generation_and_changes_no_token(q4_gguf: Path) -> None:
    model = load(q4_gguf)
    prompt = list(range(3, 15))
    plain = list(model.stream(prompt, 6, stop_at_eos=False))
    seen: list[tuple[int, ...]] = []
    attention = model.model.blocks[0].attention
    attention.weights_hook = lambda weights: seen.append(tuple(weights.shape))
    try:
        assert supports(model.model)  # the fast decoder runs the exact path where a capture point is set
        assert list(model.stream(prompt, 6, stop_at_eos=False)) == plain
    finally:
        attention.weights_hook = None
    assert seen[0] == (1, 4, 12, 12) and len(seen) == 6  # the prompt, then one row per new token but the last
