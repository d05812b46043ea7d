"""GGUF export: qkv → GGUF → qkv gives the same logits and ids; the file has llama.cpp's names, metadata and RoPE
row order (read with the gguf package's own reader, and loaded by transformers' GGUF loader as an independent
reference); what GGUF's llama architecture cannot hold is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from qkv.errors import InputError
from qkv.export import gguf as gguf_export
from qkv.export.gguf import export_gguf, interleave_rope_rows
from qkv.export.run import Run
from qkv.export.support import ExportError
from qkv.export.tokenizer import GGUFVocabulary, gguf_vocabulary
from qkv.pretrained import load
from qkv.pretrained.gguf_llama import unpermute_rope_rows
from qkv.text.tokenizers import CharTokenizer, TokenizerError

from .conftest import GGUF_VARIANTS, TOLERANCE, reference, sample_ids

TEXT = "the lazy dog\n jumps  over"


@pytest.fixture(scope="module")
def exported(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    return {name: export_gguf(runs[name], root / f"{name}.gguf") for name in GGUF_VARIANTS}


@pytest.mark.parametrize("name", GGUF_VARIANTS)
def test_qkv_reads_the_gguf_back_with_the_same_logits_and_ids(
    name: str, runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run]
) -> None:
    run = read(runs[name])
    ids = sample_ids(run)
    with torch.no_grad():
        expected = reference(run)(ids)
    loaded = load(exported[name])
    assert loaded.architecture == "llama (GGUF ALL_F32)"
    assert (loaded.forward(ids) - expected).abs().max().item() < TOLERANCE
    tokens = run.tokenizer.encode(TEXT)
    assert loaded.tokenizer.encode(TEXT) == tokens
    assert loaded.tokenizer.decode(tokens) == TEXT
    assert loaded.stop_ids == ()  # no token ends a text


def test_an_unknown_character_is_an_error_from_the_gguf_too(exported: dict[str, Path]) -> None:
    with pytest.raises(TokenizerError, match="cannot encode"):
        load(exported["llama-char"]).tokenizer.encode("the Z")


def test_float16_rounds_the_matrices_and_keeps_the_norms(
    runs: dict[str, Path], tmp_path: Path, read: Callable[[Path], Run]
) -> None:
    from gguf import GGUFReader

    run = read(runs["llama-char"])
    path = export_gguf(run, tmp_path / "half.gguf", dtype="float16")
    types = {tensor.name: tensor.tensor_type.name for tensor in GGUFReader(path).tensors}
    assert {types[name] for name in types if name.endswith("norm.weight")} == {"F32"}
    assert {types[name] for name in types if not name.endswith("norm.weight")} == {"F16"}
    rounded = reference(run)
    with torch.no_grad():
        for parameter in rounded.parameters():
            if parameter.dim() == 2:
                parameter.copy_(parameter.half().float())
        ids = sample_ids(run)
        loaded = load(path)
        assert loaded.architecture == "llama (GGUF F16)"
        assert (loaded.forward(ids) - rounded(ids)).abs().max().item() < TOLERANCE


def field(reader: Any, key: str) -> Any:
    return reader.fields[key].contents()


@pytest.mark.parametrize("name", GGUF_VARIANTS)
def test_the_file_has_llama_cpps_names_and_metadata(
    name: str, runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run]
) -> None:
    from gguf import GGUFReader

    run, reader = read(runs[name]), GGUFReader(exported[name])
    config = run.config
    assert field(reader, "general.architecture") == "llama"
    expected = {
        "llama.block_count": config.layers,
        "llama.context_length": config.context,
        "llama.embedding_length": config.width,
        "llama.feed_forward_length": config.hidden_width,
        "llama.attention.head_count": config.heads,
        "llama.attention.head_count_kv": config.attention.groups,
        "llama.rope.dimension_count": config.attention.key_width,
        "llama.vocab_size": config.vocab_size,
        "tokenizer.ggml.add_bos_token": False,
    }
    assert {key: field(reader, key) for key in expected} == expected
    assert field(reader, "llama.rope.freq_base") == pytest.approx(config.rope_theta)
    assert field(reader, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(config.norm_eps)
    assert field(reader, "tokenizer.ggml.model") == ("gpt2" if run.tokenizer.kind == "bpe" else "llama")
    assert len(field(reader, "tokenizer.ggml.tokens")) == config.vocab_size
    per_block = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
    names = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{part}.weight" for i in range(config.layers) for part in per_block
    }
    if not config.tie_embeddings:
        names.add("output.weight")  # llama.cpp reuses token_embd where a file has none
    assert {tensor.name for tensor in reader.tensors} == names


def llama_cpp_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute), as it permutes a Hugging Face Llama."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def test_query_and_key_rows_are_in_llama_cpps_rope_order() -> None:
    weight = torch.randn(4 * 8, 6)  # 4 heads of width 8
    assert torch.equal(interleave_rope_rows(weight, 4), torch.from_numpy(llama_cpp_permute(weight.numpy(), 4)))
    assert torch.equal(unpermute_rope_rows(interleave_rope_rows(weight, 4), 4), weight)


@pytest.mark.slow
@pytest.mark.parametrize("name", GGUF_VARIANTS)
def test_transformers_gguf_loader_gives_the_same_logits(
    name: str, runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run]
) -> None:
    transformers = pytest.importorskip("transformers", reason="the reference needs transformers")
    pytest.importorskip("accelerate", reason="transformers loads a GGUF with accelerate")
    transformers.utils.logging.disable_progress_bar()
    run, path = read(runs[name]), exported[name]
    theirs = transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, attn_implementation="eager", dtype=torch.float32
    ).eval()
    ids = sample_ids(run)
    with torch.no_grad():
        assert (theirs(ids).logits - reference(run)(ids)).abs().max().item() < TOLERANCE
    if run.tokenizer.kind == "bpe":  # transformers' SentencePiece conversion puts a space before every text
        tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        assert tokenizer(TEXT)["input_ids"] == run.tokenizer.encode(TEXT)


# --------------------------------------------------------------------------------------------------------------
# What GGUF cannot hold.


@pytest.mark.parametrize(("name", "field_name"), [("gpt2-char", "positions"), ("llama-biases", "attention_bias")])
def test_a_config_gguf_cannot_hold_is_refused_by_its_field(
    name: str, field_name: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match=f"TransformerConfig.{field_name}="):
        export_gguf(runs[name], tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []


def test_a_char_vocabulary_holding_the_sentencepiece_space_is_refused() -> None:
    with pytest.raises(ExportError, match="U\\+2581"):
        gguf_vocabulary(CharTokenizer(["a", " ", "\u2581"]))


def test_the_space_is_written_as_sentencepieces_stand_in() -> None:
    vocabulary = gguf_vocabulary(CharTokenizer(["\n", " ", "é", "日"]))
    assert vocabulary.tokens == ["\n", "\u2581", "é", "日"] and vocabulary.model == "llama" and not vocabulary.merges


def sentencepiece_variant(vocabulary: GGUFVocabulary, change: str) -> GGUFVocabulary:
    tokens, types = list(vocabulary.tokens), list(vocabulary.types)
    if change == "piece":
        tokens[-1] = "ab"
    elif change == "control":
        types[-1] = 3
    return GGUFVocabulary(vocabulary.model, vocabulary.pre, tokens, [], vocabulary.scores, types)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("piece", "'ab' is longer than one character"),
        ("control", "special tokens is not supported"),
        ("space prefix", "add_space_prefix is not false"),
    ],
)
def test_qkv_refuses_a_sentencepiece_gguf_it_would_misread(
    change: str, message: str, runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gguf import GGUFWriter

    vocabulary = gguf_vocabulary
    monkeypatch.setattr(
        gguf_export, "gguf_vocabulary", lambda tokenizer: sentencepiece_variant(vocabulary(tokenizer), change)
    )
    if change == "space prefix":
        prefix = GGUFWriter.add_add_space_prefix
        monkeypatch.setattr(GGUFWriter, "add_add_space_prefix", lambda writer, value: prefix(writer, True))
    path = export_gguf(runs["llama-char"], tmp_path / "pieces.gguf")
    with pytest.raises(InputError, match=message):
        load(path)
