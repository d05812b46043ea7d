"""MiniLM (BERT family) in qkv's Transformer equals transformers' BertModel (eager attention): every layer's
hidden states (at real tokens) and attention weights (everywhere), padded batches included, and
sentence-transformers' embeddings."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from qkv.inspection import capture_attention
from qkv.pretrained import Model, load

from .conftest import packaged_or_skip, transformers_or_skip

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"
SENTENCES = [
    SENTENCE,
    "The quick brown fox jumps over the lazy dog.",
    "Attention is all you need.",
    "Hi!",
    "Naïve café owners don't queue; they wait — patiently, in 2024.",
]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def ours() -> Model:
    packaged_or_skip("minilm")
    return load("minilm")


@pytest.fixture(scope="module")
def reference() -> tuple[Any, Any]:
    """transformers' BertModel with eager attention (the only path that returns the weights) and tokenizer."""
    transformers = transformers_or_skip()
    directory = packaged_or_skip("minilm")
    model = transformers.BertModel.from_pretrained(directory, attn_implementation="eager").eval()  # type: ignore[attr-defined]
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)  # type: ignore[attr-defined]
    return model, tokenizer


def run_ours(ours: Model, ids: torch.Tensor, keep: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Hidden states after the embedding and after every block, and every layer's weights (B, H, T, S)."""
    states: list[torch.Tensor] = []
    hooks = [ours.model.embedding.register_forward_hook(lambda _m, _i, out: states.append(out))]
    hooks += [block.register_forward_hook(lambda _m, _i, out: states.append(out)) for block in ours.model.blocks]
    try:
        with capture_attention(ours.model) as records:
            ours.forward(ids, keep=keep)
    finally:
        for hook in hooks:
            hook.remove()
    return states, [records[layer][0] for layer in sorted(records)]


def test_token_ids_match_the_reference_tokenizer(ours: Model, reference: tuple[Any, Any]) -> None:
    _, tokenizer = reference
    for text in SENTENCES:
        assert ours.encode(text) == tokenizer(text)["input_ids"], text


def test_a_padded_batch_matches_the_reference_tokenizer_padding(ours: Model, reference: tuple[Any, Any]) -> None:
    _, tokenizer = reference
    ids, keep = ours.encode_batch(SENTENCES)
    expected = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert torch.equal(ids, expected["input_ids"]) and torch.equal(keep, expected["attention_mask"].bool())


@pytest.mark.parametrize("texts", [[SENTENCE], SENTENCES], ids=["the article's sentence", "padded batch"])
def test_every_layer_hidden_states_and_weights_match_bert(
    ours: Model, reference: tuple[Any, Any], texts: list[str]
) -> None:
    model, _ = reference
    ids, keep = ours.encode_batch(texts)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=keep.long(), output_hidden_states=True, output_attentions=True)
    states, weights = run_ours(ours, ids, keep)
    assert len(states) == len(expected.hidden_states) == 7 and len(weights) == len(expected.attentions) == 6
    for layer, (got, want) in enumerate(zip(states, expected.hidden_states, strict=True)):
        # At real tokens; the states at padding positions mean nothing (no real token attends to them) and
        # carry float noise of a few 1e-5 on both sides.
        gap = (got - want)[keep].abs().max().item()
        assert gap < TOLERANCE, f"hidden states after layer {layer} differ by {gap:.2e}"
    for layer, (got, want) in enumerate(zip(weights, expected.attentions, strict=True)):
        gap = (got - want).abs().max().item()
        assert gap < TOLERANCE, f"layer {layer} weights differ by {gap:.2e}"


def test_padding_gets_no_weight(ours: Model) -> None:
    ids, keep = ours.encode_batch(SENTENCES)
    _, weights = run_ours(ours, ids, keep)
    assert all(float(w.masked_select(~keep[:, None, None, :]).abs().max()) == 0.0 for w in weights)


def test_sentence_embeddings_match_sentence_transformers_pooling(ours: Model, reference: tuple[Any, Any]) -> None:
    """sentence-transformers' all-MiniLM-L6-v2: mean of the last hidden states over real tokens, L2-normalised."""
    model, tokenizer = reference
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, S, D)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    got = ours.embed(SENTENCES)
    assert got.shape == (len(SENTENCES), 384)
    assert (got - expected).abs().max().item() < TOLERANCE
    assert torch.allclose(ours.embed(SENTENCE), got[0], atol=TOLERANCE)  # one text: one vector, batch-independent


def test_long_texts_are_cut_at_256_tokens_as_sentence_transformers_cuts_them(
    ours: Model, reference: tuple[Any, Any]
) -> None:
    model, tokenizer = reference
    text = " ".join(["attention"] * 400)
    batch = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model(**batch).last_hidden_state.mean(1), dim=-1)[0]
    assert ours.max_embed_tokens == 256
    assert (ours.embed(text) - expected).abs().max().item() < TOLERANCE


def test_similar_sentences_are_closer_than_unrelated_ones(ours: Model) -> None:
    dog, puppy, market = ours.embed(["a dog runs in the park", "a puppy plays outside", "stock prices fell today"])
    assert float(dog @ puppy) > float(dog @ market) + 0.3
    assert torch.allclose(dog.norm(), torch.tensor(1.0))


def test_word_pieces_read_as_text_for_display(ours: Model) -> None:
    pieces = ours.tokenizer.pieces(ours.encode("Riley is so hyperactive"))
    assert pieces == ["[CLS]", " riley", " is", " so", " hyper", "active", "[SEP]"]
    ids, pieces = ours.tokenizer.encode_with_pieces(SENTENCE)
    assert ids == ours.encode(SENTENCE) and "".join(pieces) == f"[CLS]{SENTENCE}[SEP]"
    assert pieces[:4] == ["[CLS]", "Evan", "'", "s"] and pieces[8:10] == [" hyper", "active"]


def test_an_encoder_cannot_generate(ours: Model) -> None:
    from qkv.errors import InputError

    with pytest.raises(InputError, match="encoder"):
        ours.generate("Hello", 3)
    with pytest.raises(InputError, match="no chat template"):
        ours.chat_prompt("Hello")
