"""Hugging Face directories: random GPT-2, Llama and BERT models saved with save_pretrained load into qkv with
the same outputs; directories qkv cannot load give one clear error each, and pickles are never opened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from qkv.errors import InputError, TooLargeError
from qkv.pretrained import load

from .conftest import transformers_or_skip
from .tiny import VOCAB, tiny_llama

pytestmark = pytest.mark.slow  # parity with transformers

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def transformers() -> Any:
    return transformers_or_skip()


def tiny_gpt2(transformers: Any, **overrides: Any) -> Any:
    fields: dict[str, Any] = {"vocab_size": 300, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 4}
    torch.manual_seed(0)
    config = transformers.GPT2Config(**{**fields, **overrides}, attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # nonzero biases and norm shifts, so that a misplaced one shows
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:
                parameter.uniform_(-0.5, 0.5) if name.endswith("bias") else parameter.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory, transformers: Any) -> tuple[Any, Path]:
    model = tiny_gpt2(transformers)
    directory = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(directory)
    return model, directory


def logits_gap(ours: Any, reference: Any, ids: torch.Tensor, keep: torch.Tensor | None = None) -> float:
    with torch.no_grad():
        expected = reference(ids, attention_mask=None if keep is None else keep.long()).logits
    got = ours.forward(ids, keep=keep)
    if keep is not None:
        return (got - expected)[keep].abs().max().item()
    return (got - expected).abs().max().item()


def test_a_random_gpt2_loads_with_the_same_logits(gpt2: tuple[Any, Path]) -> None:
    reference, directory = gpt2
    assert (directory / "model.safetensors").is_file()
    ours = load(directory)
    assert ours.config.activation == "gelu_tanh" and ours.config.tie_embeddings and ours.is_causal
    ids = torch.randint(0, 300, (3, 32))
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[1, 20:] = False
    assert logits_gap(ours, reference, ids) < TOLERANCE
    assert logits_gap(ours, reference, ids, keep) < TOLERANCE


def test_an_untied_gpt2_keeps_its_own_output_layer(tmp_path: Path, transformers: Any) -> None:
    reference = tiny_gpt2(transformers, tie_word_embeddings=False)
    reference.save_pretrained(tmp_path)
    ours = load(tmp_path)
    assert ours.model.lm_head is not None and ours.model.lm_head.weight is not ours.model.embedding.tokens.weight
    assert logits_gap(ours, reference, torch.randint(0, 300, (2, 16))) < TOLERANCE


def test_a_sharded_checkpoint_loads(tmp_path: Path, gpt2: tuple[Any, Path]) -> None:
    reference, _ = gpt2
    reference.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert logits_gap(load(tmp_path), reference, torch.randint(0, 300, (1, 16))) < TOLERANCE


@pytest.mark.parametrize("tied", [True, False])
def test_a_random_llama_with_grouped_query_attention_loads_with_the_same_logits(tmp_path: Path, tied: bool) -> None:
    transformers_or_skip()
    reference = tiny_llama(tie_word_embeddings=tied)
    reference.save_pretrained(tmp_path)
    ours = load(tmp_path)
    assert (ours.config.heads, ours.config.kv_heads, ours.config.tie_embeddings) == (4, 2, tied)
    ids = torch.randint(0, VOCAB, (2, 24))
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[0, 15:] = False
    assert logits_gap(ours, reference, ids) < TOLERANCE
    assert logits_gap(ours, reference, ids, keep) < TOLERANCE


def test_a_bert_with_task_heads_loads_its_encoder(tmp_path: Path, transformers: Any) -> None:
    config = transformers.BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path)  # stores "bert.…" and "cls.…" tensors
    reference = transformers.BertModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ours = load(tmp_path)
    ids, types = torch.randint(0, 120, (2, 12)), torch.randint(0, 2, (2, 12))
    with torch.no_grad():
        expected = reference(ids, token_type_ids=types).last_hidden_state
    got = ours.model(ids, token_types=types)
    assert (got - expected).abs().max().item() < TOLERANCE


def test_a_directory_tokenizer_encodes_decodes_and_generates(tmp_path: Path, transformers: Any) -> None:
    from qkv.text.tokenizers import BPETokenizer

    tokenizer = BPETokenizer.train("the theory of attention: the thing that matters " * 20, vocab_size=280)
    tokenizer.backend.save(str(tmp_path / "tokenizer.json"))
    reference = tiny_gpt2(transformers, vocab_size=tokenizer.vocab_size)
    reference.save_pretrained(tmp_path)
    ours = load(tmp_path)
    ids = ours.encode("the theory")
    assert ids == tokenizer.encode("the theory") and ours.decode(ids) == "the theory"
    text = ours.generate("the theory", 5)
    with torch.no_grad():
        expected = reference.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False)[0, len(ids) :]
    assert text == ours.decode(expected)


def test_a_directory_chat_template_and_special_tokens_are_read(tmp_path: Path, gpt2: tuple[Any, Path]) -> None:
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((gpt2[1] / name).read_bytes())
    template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    settings = {"chat_template": template, "bos_token": {"content": "<s>"}, "eos_token": "</s>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    ours = load(tmp_path)
    assert ours.chat_prompt("Hi") == "<s>Hi"
    (tmp_path / "chat_template.jinja").write_text("[{{ messages[0]['content'] }}]")  # the newer place wins
    assert load(tmp_path).chat_prompt("Hi") == "[Hi]"


# --------------------------------------------------------------------------------------------------------------
# Directories qkv refuses.


def test_an_unknown_name_or_path_names_the_known_models() -> None:
    with pytest.raises(InputError, match=r"unknown model 'no-such-model': not a known name \(minilm, smollm2\)"):
        load("no-such-model")


def test_a_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"has no config.json"):
        load(tmp_path)


def test_a_directory_without_weights_is_refused(tmp_path: Path, gpt2: tuple[Any, Path]) -> None:
    (tmp_path / "config.json").write_text((gpt2[1] / "config.json").read_text())
    with pytest.raises(InputError, match=r"has no weights: expected model.safetensors"):
        load(tmp_path)


def test_an_unsupported_architecture_is_named_with_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "architectures": ["T5Model"]}))
    with pytest.raises(InputError, match=r"model_type 't5' \(T5Model\) is not supported; qkv loads bert, gpt2, llama"):
        load(tmp_path)


def test_a_config_value_of_the_wrong_kind_is_named(tmp_path: Path, gpt2: tuple[Any, Path]) -> None:
    config = json.loads((gpt2[1] / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_head": "four"}))
    (tmp_path / "model.safetensors").write_bytes((gpt2[1] / "model.safetensors").read_bytes())
    with pytest.raises(InputError, match=r"config.json: .*heads='four'"):
        load(tmp_path)


def test_a_truncated_safetensors_file_is_refused(tmp_path: Path, gpt2: tuple[Any, Path]) -> None:
    (tmp_path / "config.json").write_text((gpt2[1] / "config.json").read_text())
    data = (gpt2[1] / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cannot read .*model.safetensors.*truncated"):
        load(tmp_path)


def test_weights_that_do_not_fit_the_config_are_named(tmp_path: Path, gpt2: tuple[Any, Path]) -> None:
    config = json.loads((gpt2[1] / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    (tmp_path / "model.safetensors").write_bytes((gpt2[1] / "model.safetensors").read_bytes())
    with pytest.raises(InputError, match=r"lacks 16 tensors this config needs, e.g. blocks.2."):
        load(tmp_path)


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path: Path, transformers: Any) -> None:
    from qkv.text.tokenizers import BPETokenizer

    BPETokenizer.train("abc def " * 50, vocab_size=300).backend.save(str(tmp_path / "tokenizer.json"))
    tiny_gpt2(transformers, vocab_size=260).save_pretrained(tmp_path)
    with pytest.raises(InputError, match=r"tokenizer.json has \d+ tokens but the model's vocabulary holds 260"):
        load(tmp_path)


def test_a_pickle_is_never_opened(tmp_path: Path, gpt2: tuple[Any, Path]) -> None:
    (tmp_path / "config.json").write_text((gpt2[1] / "config.json").read_text())
    torch.save({"wte.weight": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(InputError, match=r"pytorch_model.bin is a pickle.*never unpickles"):
        load(tmp_path)
    with pytest.raises(InputError, match=r"is a pickle"):
        load(tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "pytorch_model.bin").read_bytes())  # renamed pickle
    with pytest.raises(InputError, match=r"model.safetensors is a pickle"):
        load(tmp_path)


def test_a_bare_safetensors_file_points_to_its_directory(gpt2: tuple[Any, Path]) -> None:
    with pytest.raises(InputError, match=r"bare safetensors file; load the directory"):
        load(gpt2[1] / "model.safetensors")


def test_a_file_of_no_known_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"neither a GGUF file nor a model directory"):
        load(tmp_path / "notes.txt")


def test_a_config_missing_a_field_names_the_file_once(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(InputError) as error:
        load(str(tmp_path))
    message = str(error.value)
    assert "lacks 'hidden_size'" in message and message.count(str(tmp_path / "config.json")) == 1, message


@pytest.mark.parametrize(
    ("change", "layers"),
    [({"n_layer": 100_000, "n_embd": 4096, "n_head": 32}, "100,000"), ({"n_embd": 10**9, "n_head": 1}, "2")],
    ids=["100k wide layers", "width 1e9"],
)
def test_a_config_asking_for_more_memory_than_there_is_is_refused_before_reading_weights(
    tmp_path: Path, gpt2: tuple[Any, Path], change: dict[str, int], layers: str
) -> None:
    config = json.loads((gpt2[1] / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    (tmp_path / "model.safetensors").write_bytes(b"not read: the config is refused first")
    with pytest.raises(TooLargeError, match=rf"config.json describes a model of [\d,]+ parameters \({layers} layers"):
        load(tmp_path)


def test_a_config_that_fits_in_memory_but_not_its_weights_is_refused_before_building(
    tmp_path: Path, gpt2: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.model import transformer

    config = json.loads((gpt2[1] / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_layer": 20_000}))
    (tmp_path / "model.safetensors").write_bytes((gpt2[1] / "model.safetensors").read_bytes())
    monkeypatch.setattr(transformer, "Block", None)  # building a block would fail: nothing is built
    with pytest.raises(InputError, match=r"lacks \d+ tensors this config needs"):
        load(tmp_path)
