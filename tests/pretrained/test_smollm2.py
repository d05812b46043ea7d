"""SmolLM2-135M-Instruct from its GGUF in qkv's Transformer equals transformers loading the same GGUF (eager
attention, fp32): token ids, the chat template, logits, 30 greedy tokens; cached decoding ≡ recomputation."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from qkv.pretrained import Model, load

from .conftest import packaged_or_skip, transformers_or_skip

pytestmark = pytest.mark.slow  # loads SmolLM2 and transformers' reference

PROMPTS = [
    "Evan's dog Riley is so hyperactive, she never stops moving",
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "In 2024, 1,234.56 people   spent  café money — naïvely 😀",
]
CHATS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Sky colour?"}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
]
LOGIT_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def ours() -> Model:
    packaged_or_skip("smollm2")
    return load("smollm2")


@pytest.fixture(scope="module")
def reference() -> tuple[Any, Any]:
    """transformers reading the same GGUF (its own dequantiser, its own RoPE un-permutation): ~30 s, once."""
    transformers = transformers_or_skip()
    pytest.importorskip("accelerate", reason="transformers needs accelerate to load a GGUF")
    path = packaged_or_skip("smollm2")
    model = transformers.AutoModelForCausalLM.from_pretrained(  # type: ignore[attr-defined]
        path.parent, gguf_file=path.name, attn_implementation="eager", dtype=torch.float32
    ).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)  # type: ignore[attr-defined]
    return model, tokenizer


def test_token_ids_match_the_reference_tokenizer(ours: Model, reference: tuple[Any, Any]) -> None:
    _, tokenizer = reference
    texts = [*PROMPTS, ours.chat_prompt(CHATS[2]), "  leading spaces\n\n\ttabs<|im_end|>x<|endoftext|>"]
    for text in texts:
        assert ours.encode(text) == tokenizer.encode(text), text
        assert ours.decode(ours.encode(text)) == text


@pytest.mark.parametrize("generation_prompt", [True, False])
def test_the_chat_template_renders_as_transformers_renders_it(
    ours: Model, reference: tuple[Any, Any], generation_prompt: bool
) -> None:
    _, tokenizer = reference
    for messages in CHATS:
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        assert ours.chat_prompt(messages, add_generation_prompt=generation_prompt) == expected


def test_logits_of_a_padded_batch_match_transformers(ours: Model, reference: tuple[Any, Any]) -> None:
    model, _ = reference
    ids, keep = ours.encode_batch([*PROMPTS, ours.chat_prompt(CHATS[0])])
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=keep.long()).logits  # (B, T, V)
    got = ours.forward(ids, keep=keep)
    gap = (got - expected)[keep].abs().max().item()
    assert gap < LOGIT_TOLERANCE, f"logits differ by {gap:.2e}"
    assert torch.equal(got[keep].argmax(-1), expected[keep].argmax(-1))


@pytest.mark.parametrize("question", ["What is the capital of France?", "Write a short poem about attention."])
def test_thirty_greedy_tokens_are_identical(ours: Model, reference: tuple[Any, Any], question: str) -> None:
    model, _ = reference
    prompt = ours.encode(ours.chat_prompt(question))
    with torch.no_grad():
        output = model.generate(torch.tensor([prompt]), max_new_tokens=30, do_sample=False)[0, len(prompt) :].tolist()
    expected = output[: output.index(2)] if 2 in output else output  # transformers keeps the end-of-turn token
    assert list(ours.stream(prompt, 30)) == expected
    assert len(expected) == 30 or output[len(expected)] in ours.stop_ids


def test_it_knows_the_capital_of_france(ours: Model) -> None:
    assert ours.generate(ours.chat_prompt("What is the capital of France?"), 20) == "The capital of France is Paris."


def test_cached_decoding_equals_full_recomputation(ours: Model) -> None:
    from qkv.generation import decode_one_token, prefill

    prompt = torch.tensor([ours.encode(PROMPTS[0])])  # (1, T)
    cache = ours.model.new_cache(1, prompt.shape[1] + 8)
    with torch.no_grad():
        steps, sequence = [prefill(ours.model, prompt, cache)], prompt
        for _ in range(8):
            token = steps[-1].argmax(-1)  # (1,)
            sequence = torch.cat([sequence, token[:, None]], dim=1)
            steps.append(decode_one_token(ours.model, token, cache))
        full = ours.model(sequence)[0, prompt.shape[1] - 1 :]  # (9, V)
    gap = (torch.cat(steps) - full).abs().max().item()
    assert gap < 1e-4, f"cached and recomputed logits differ by {gap:.2e}"


def test_the_model_is_what_the_gguf_says(ours: Model) -> None:
    c = ours.config
    assert (c.layers, c.heads, c.kv_heads, c.width, c.mlp_width, c.vocab_size) == (30, 9, 3, 576, 1536, 49152)
    assert (c.positions, c.norm, c.activation, c.rope_theta, c.tie_embeddings) == (
        "rope",
        "rmsnorm",
        "swiglu",
        100000.0,
        True,
    )
    assert ours.model.lm_head is not None and ours.model.lm_head.weight is ours.model.embedding.tokens.weight
    assert sum(p.numel() for p in ours.model.parameters()) == 134_515_008
    assert next(ours.model.parameters()).dtype == torch.float32


# --------------------------------------------------------------------------------------------------------------
# Lower precisions (bfloat16, and int4: the file's own Q4_1 and Q8_0 blocks) against float32, and the fast decoder.
#
# Tolerance: a low-precision model rounds activations (and, for int4, the blocks' scales) to bfloat16, 8
# significant bits. Over the 30 layers this moves SmolLM2's logits (which span about ±40) by 0.1 on average
# and by at most ~0.8 at any position measured here; the greedy choice flips only where the two best logits lie
# that close. The tests therefore require a mean logit difference below 0.2, the same top token as float32 at
# ≥ 97% of the positions of varied text read one token at a time by the decoder (as generation runs it; ≥ 95% on
# the short prompts through the module path), identical greedy answers on the prompts below (measured: identical
# for 60 tokens on 8/8 chat prompts in int4, 7/8 in bfloat16) and "Paris" in every precision.

SAME_ANSWERS = ["What is the capital of France?", "Write a short poem about attention.", "What is 2 + 2?"]
VARIED_TEXTS = [
    "The old lighthouse keeper climbed the spiral stairs every evening, counting the steps as his father had taught "
    "him. Ninety-seven steps, a landing, then the lamp room where the great lens waited. Tonight the fog rolled in "
    "early from the sea, thick and grey, and he knew the ships would need the light more than ever.",
    "def merge_sort(items):\n    if len(items) <= 1:\n        return items\n    middle = len(items) // 2\n"
    "    left = merge_sort(items[:middle])\n    right = merge_sort(items[middle:])\n    result = []\n"
    "    while left and right:\n        result.append(left.pop(0) if left[0] <= right[0] else right.pop(0))\n"
    "    return result + left + right\n",
    "Photosynthesis converts light energy into chemical energy. In the chloroplasts, water is split and oxygen is "
    "released, while carbon dioxide is fixed into sugars through the Calvin cycle. The overall equation is "
    "6 CO2 + 6 H2O -> C6H12O6 + 6 O2.",
    "Le petit prince demanda au renard ce que signifiait apprivoiser. Le renard répondit que c'était une chose trop "
    "oubliée: cela signifie créer des liens.",
    "| year | city | visitors |\n|------|------|----------|\n| 2019 | Lisbon | 4,512,000 |\n"
    "| 2020 | Lisbon | 1,201,300 |\n| 2021 | Porto | 2,870,450 |",
]


@pytest.fixture(scope="module", params=["int4", "bfloat16"])
def low(request: pytest.FixtureRequest) -> Model:
    packaged_or_skip("smollm2")
    return load("smollm2", dtype=request.param)


def test_low_precision_logits_stay_close_to_float32(ours: Model, low: Model) -> None:
    chats = [ours.chat_prompt(messages) for messages in CHATS] + [ours.chat_prompt(q) for q in SAME_ANSWERS]
    ids, keep = ours.encode_batch([*PROMPTS, *chats])
    expected, got = ours.forward(ids, keep=keep)[keep], low.forward(ids, keep=keep)[keep]  # (positions, V)
    gap = (got - expected).abs()
    assert gap.mean().item() < 0.2, f"mean logit difference {gap.mean().item():.3f}"
    agreement = (got.argmax(-1) == expected.argmax(-1)).float().mean().item()
    assert agreement >= 0.95, f"same top token at {agreement:.1%} of positions"


def test_low_precision_decoding_picks_float32s_top_token_at_97_percent_of_positions(ours: Model, low: Model) -> None:
    from qkv.generation.fast_decoder import FastDecoder

    answer = (
        "The sky looks blue because the molecules of the air scatter the short blue wavelengths of sunlight far more "
        "than the long red ones, so blue light reaches our eyes from every direction."
    )
    chat = ours.chat_prompt("Why is the sky blue? Answer in one sentence.") + answer
    same = positions = 0
    with torch.inference_mode():
        for text in [*VARIED_TEXTS, chat]:
            ids = ours.encode(text)
            expected = ours.model(torch.tensor([ids]))[0].argmax(-1)  # (T,): float32, the whole text at once
            decoder = FastDecoder(low.model, len(ids))
            got = torch.stack([decoder.decode(token).argmax() for token in ids])  # one token at a time
            same, positions = same + int((got == expected).sum()), positions + len(ids)
    assert positions >= 300
    assert same >= 0.97 * positions, f"the same top token at {same}/{positions} positions"


def test_low_precision_knows_the_capital_of_france(low: Model) -> None:
    assert low.generate(low.chat_prompt("What is the capital of France?"), 20) == "The capital of France is Paris."


@pytest.mark.parametrize("question", SAME_ANSWERS)
def test_low_precision_writes_the_float32_answer(ours: Model, low: Model, question: str) -> None:
    prompt = ours.encode(ours.chat_prompt(question))
    assert list(low.stream(prompt, 30)) == list(ours.stream(prompt, 30))


def test_int4_holds_the_model_in_under_a_quarter_of_float32s_bytes(ours: Model) -> None:
    int4 = load("smollm2", dtype="int4")
    tensors = [*int4.model.parameters(), *int4.model.buffers()]
    held = sum(t.untyped_storage().nbytes() for t in {t.untyped_storage().data_ptr(): t for t in tensors}.values())
    assert held < 135e6  # 4-bit layers (4.5 bits a weight), a bfloat16 embedding shared with the output layer
    assert 4 * held < sum(p.numel() * 4 for p in ours.model.parameters())


def test_the_fast_decoder_matches_the_transformer(ours: Model) -> None:
    from qkv.generation import decode_one_token, prefill
    from qkv.generation.fast_decoder import FastDecoder

    prompt = ours.encode(PROMPTS[0])
    decoder = FastDecoder(ours.model, len(prompt) + 8)
    cache = ours.model.new_cache(1, len(prompt) + 8)
    with torch.inference_mode():
        expected, got = prefill(ours.model, torch.tensor([prompt]), cache)[0], decoder.prefill(torch.tensor(prompt))
        for _ in range(8):
            assert (got - expected).abs().max().item() < 1e-4
            token = int(expected.argmax())
            expected, got = decode_one_token(ours.model, torch.tensor([token]), cache)[0], decoder.decode(token)
