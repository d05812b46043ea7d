"""GGUF reading on tiny files written as llama.cpp writes them: the RoPE un-permutation, the config, the
tokenizer from metadata, and one clear error for each kind of file qkv cannot read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from qkv.errors import InputError, TooLargeError
from qkv.pretrained import load
from qkv.pretrained.gguf_llama import unpermute_rope_rows

from .conftest import transformers_or_skip
from .tiny import (
    VOCAB,
    byte_level_tokens,
    gguf_tensors,
    llama_cpp_permute,
    set_tensor_type,
    tiny_llama,
    write_gguf,
)

pytestmark = pytest.mark.slow  # parity with transformers

pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def source() -> Any:
    transformers_or_skip()
    return tiny_llama()


@pytest.fixture(scope="module")
def tensors(source: Any) -> dict[str, np.ndarray]:
    return gguf_tensors(source)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory, tensors: dict[str, np.ndarray]) -> Path:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tensors)


def test_unpermuting_undoes_llama_cpp_permutation_exactly() -> None:
    weight = torch.randn(4 * 8, 12)  # 4 heads of width 8
    permuted = torch.from_numpy(llama_cpp_permute(weight.numpy(), 4))
    assert not torch.equal(permuted, weight)
    assert torch.equal(unpermute_rope_rows(permuted, 4), weight)


def test_a_gguf_written_by_the_llama_cpp_recipe_computes_the_source_models_logits(source: Any, tiny_gguf: Path) -> None:
    model = load(tiny_gguf)
    c = model.config
    assert (c.layers, c.heads, c.kv_heads, c.width, c.vocab_size, c.tie_embeddings) == (2, 4, 2, 32, VOCAB, True)
    ids = torch.randint(0, VOCAB, (2, 20))
    with torch.no_grad():
        expected = source(ids).logits
    assert (model.forward(ids) - expected).abs().max().item() < 1e-5


def test_the_tokenizer_comes_from_the_metadata(tiny_gguf: Path) -> None:
    model = load(tiny_gguf)
    tokens = byte_level_tokens()
    ids = model.encode("<|im_start|>the theme")
    assert [tokens[i] for i in ids] == ["<|im_start|>", "t", "he", "Ġthe", "m", "e"]
    assert model.decode(ids) == "<|im_start|>the theme"
    assert model.tokenizer.encode_with_pieces("<|im_start|>the theme") == (
        ids,
        ["<|im_start|>", "t", "he", " the", "m", "e"],
    )
    assert model.tokenizer.pieces(ids) == ["<|im_start|>", "t", "he", " the", "m", "e"]
    assert model.chat_prompt("Hi") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert model.stop_ids == (2,)


def test_add_bos_token_puts_the_bos_token_first(tmp_path: Path, tensors: dict[str, np.ndarray]) -> None:
    model = load(write_gguf(tmp_path / "bos.gguf", tensors, add_bos=True))
    assert model.encode("the") == [1, byte_level_tokens().index("t"), byte_level_tokens().index("he")]


# --------------------------------------------------------------------------------------------------------------
# Files qkv refuses: one InputError each, naming the problem.


def test_an_unknown_architecture_is_named_with_the_supported_ones(tmp_path: Path, tensors: dict) -> None:
    path = write_gguf(tmp_path / "mamba.gguf", tensors, architecture="mamba")
    with pytest.raises(InputError, match=r"architecture 'mamba' is not supported; qkv reads llama"):
        load(path)


def test_an_unknown_tensor_type_is_named(tmp_path: Path, tensors: dict) -> None:
    path = write_gguf(tmp_path / "odd.gguf", tensors)
    set_tensor_type(path, "output_norm.weight", 99)
    with pytest.raises(InputError, match=r"tensor type 99.*Q4_1"):
        load(path)


def test_a_tensor_type_qkv_cannot_dequantise_is_named(tmp_path: Path, tensors: dict) -> None:
    odd = dict(tensors, **{"output_norm.weight": np.ones(32, dtype=np.int32)})
    with pytest.raises(InputError, match=r"output_norm.weight has type I32, which qkv cannot dequantise"):
        load(write_gguf(tmp_path / "int.gguf", odd))


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.01])
def test_a_truncated_gguf_is_refused(tmp_path: Path, tiny_gguf: Path, keep: float) -> None:
    data = tiny_gguf.read_bytes()
    path = tmp_path / "short.gguf"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match=r"truncated"):
        load(path)


def test_a_tokenizer_that_does_not_fit_the_vocabulary_is_refused(tmp_path: Path, tensors: dict) -> None:
    tokens = [*byte_level_tokens(), "extra"]
    with pytest.raises(InputError, match=r"263 tokens but the token embedding has 262 rows"):
        load(write_gguf(tmp_path / "more.gguf", tensors, tokens=tokens))


def test_a_declared_vocab_size_that_disagrees_is_refused(tmp_path: Path, tensors: dict) -> None:
    path = write_gguf(tmp_path / "declared.gguf", tensors, extra=lambda writer: writer.add_vocab_size(300))
    with pytest.raises(InputError, match=r"vocab_size says 300"):
        load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokenizer_model": "llama"}, r"SentencePiece piece '<\|endoftext\|>' is longer than one character"),
        ({"tokenizer_model": "bert"}, r"tokenizer 'bert' is not supported"),
        ({"pre": "mystery"}, r"pre-tokenizer 'mystery' is not supported"),
        ({"heads": 3}, r"heads=3"),
    ],
)
def test_metadata_qkv_cannot_follow_is_refused(tmp_path: Path, tensors: dict, change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load(write_gguf(tmp_path / "meta.gguf", tensors, **change))


def test_a_missing_or_extra_tensor_is_named(tmp_path: Path, tensors: dict) -> None:
    fewer = {name: value for name, value in tensors.items() if name != "blk.1.ffn_up.weight"}
    with pytest.raises(InputError, match=r"lacks 1 tensors.*blocks\.1\.mlp\.to_hidden\.weight"):
        load(write_gguf(tmp_path / "fewer.gguf", fewer))
    more = dict(tensors, **{"rope_freqs.weight": np.ones(4, dtype=np.float32)})
    with pytest.raises(InputError, match=r"no place for.*rope_freqs\.weight"):
        load(write_gguf(tmp_path / "more.gguf", more))


def test_a_directory_of_gguf_files_points_to_the_file(tiny_gguf: Path) -> None:
    with pytest.raises(
        InputError, match=r"holds GGUF files, not a Hugging Face model; give the file, e.g. .*tiny.gguf"
    ):
        load(tiny_gguf.parent)


def test_generating_past_the_context_hands_over_to_the_cropping_generator(tiny_gguf: Path) -> None:
    from qkv.generation import SamplingConfig, generate

    model = load(tiny_gguf)
    prompt = list(range(3, 63))  # 60 of the 64 positions
    expected = [int(t) for t in generate(model.model, torch.tensor([prompt]), 10, SamplingConfig(temperature=0))]
    assert list(model.stream(prompt, 10, stop_at_eos=False)) == expected
    assert list(model.stream(prompt[:20], 0)) == []


def test_metadata_asking_for_more_memory_than_there_is_is_refused_before_reading_tensors(
    tmp_path: Path, tensors: dict
) -> None:
    path = write_gguf(
        tmp_path / "huge.gguf", tensors, layers=100_000, width=4096, heads=32, kv_heads=8, mlp_width=16384
    )
    with pytest.raises(TooLargeError, match=r"huge.gguf describes a model of [\d,]+ parameters \(100,000 layers of"):
        load(path, dtype="int4")


def test_metadata_that_fits_in_memory_but_not_the_tensors_is_refused_before_building(
    tmp_path: Path, tensors: dict
) -> None:
    with pytest.raises(InputError, match=r"lacks \d+ tensors this config needs, e.g. blocks.10"):
        load(write_gguf(tmp_path / "deep.gguf", tensors, layers=20_000))
