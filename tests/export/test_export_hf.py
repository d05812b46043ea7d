"""Hugging Face export: qkv → HF → qkv gives the same logits; transformers' stock classes give the same logits and
the same greedy text; the tokenizer files give the run's ids through `tokenizers` and `AutoTokenizer`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from qkv.export.hf import export_hf
from qkv.export.run import Run
from qkv.generation import GREEDY, generate
from qkv.pretrained import load

from .conftest import HF_VARIANTS, TOLERANCE, reference, sample_ids

TEXT = "the lazy dog\n jumps  over"
ARCHITECTURE = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}


@pytest.fixture(scope="module")
def exported(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {name: export_hf(run, root / name) for name, run in runs.items()}


@pytest.mark.parametrize("name", HF_VARIANTS)
def test_qkv_reads_the_export_back_with_the_same_logits(
    name: str, runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run]
) -> None:
    run = read(runs[name])
    ids = sample_ids(run)
    with torch.no_grad():
        expected = reference(run)(ids)
    loaded = load(exported[name])
    assert loaded.architecture == ARCHITECTURE[name.split("-")[0]]
    assert (loaded.forward(ids) - expected).abs().max().item() < TOLERANCE


def test_the_directory_holds_what_save_pretrained_writes(exported: dict[str, Path]) -> None:
    files = sorted(path.name for path in exported["gpt2-char"].iterdir())
    assert files == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((exported["gpt2-char"] / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["eos_token_id"] is None  # no token of a qkv tokenizer ends a text


@pytest.mark.parametrize("name", ["gpt2-char", "gpt2-bpe"])
def test_the_tokenizer_json_gives_the_runs_ids(
    name: str, runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run]
) -> None:
    from tokenizers import Tokenizer

    theirs, ours = Tokenizer.from_file(str(exported[name] / "tokenizer.json")), read(runs[name]).tokenizer
    ids = ours.encode(TEXT)
    assert theirs.encode(TEXT).ids == ids
    assert theirs.decode(ids) == ours.decode(ids) == TEXT
    assert theirs.get_vocab_size() == ours.vocab_size


def test_an_unknown_character_is_an_error_there_too(
    runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run]
) -> None:
    from tokenizers import Tokenizer

    from qkv.text.tokenizers import TokenizerError

    with pytest.raises(TokenizerError, match="'Z'"):
        read(runs["gpt2-char"]).tokenizer.encode("the Z")
    with pytest.raises(Exception, match="UNK"):
        Tokenizer.from_file(str(exported["gpt2-char"] / "tokenizer.json")).encode("the Z")
    with pytest.raises(TokenizerError, match="cannot encode"):
        load(exported["gpt2-char"]).tokenizer.encode("the Z")


def test_float16_holds_the_weights_rounded_to_half_precision(
    runs: dict[str, Path], tmp_path: Path, read: Callable[[Path], Run]
) -> None:
    from safetensors import safe_open

    run = read(runs["llama-char"])
    directory = export_hf(run, tmp_path / "half", dtype="float16")
    with safe_open(str(directory / "model.safetensors"), "pt") as file:
        assert {file.get_tensor(name).dtype for name in file.keys()} == {torch.float16}  # noqa: SIM118
    rounded = reference(run)
    with torch.no_grad():
        for parameter in rounded.parameters():
            parameter.copy_(parameter.half().float())
        ids = sample_ids(run)
        assert (load(directory).forward(ids) - rounded(ids)).abs().max().item() < TOLERANCE


# --------------------------------------------------------------------------------------------------------------
# transformers, the independent reference.


@pytest.fixture(scope="module")
def transformers() -> Any:
    module = pytest.importorskip("transformers", reason="the reference needs transformers (pip install -e '.[dev]')")
    module.utils.logging.disable_progress_bar()
    return module


def stock_model(transformers: Any, directory: Path) -> Any:
    return transformers.AutoModelForCausalLM.from_pretrained(
        directory, attn_implementation="eager", dtype=torch.float32
    ).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", HF_VARIANTS)
def test_transformers_stock_class_gives_the_same_logits_and_greedy_text(
    name: str, runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run], transformers: Any
) -> None:
    run = read(runs[name])
    theirs = stock_model(transformers, exported[name])
    assert type(theirs).__name__ == ARCHITECTURE[name.split("-")[0]]
    ids = sample_ids(run)
    ours = reference(run)
    with torch.no_grad():
        assert (theirs(ids).logits - ours(ids)).abs().max().item() < TOLERANCE

    prompt = run.tokenizer.encode("the ")
    new = 16 - len(prompt)
    expected = [int(token[0]) for token in generate(ours, torch.tensor([prompt]), new, GREEDY)]
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported[name])
    inputs = tokenizer("the ", return_tensors="pt")
    assert inputs["input_ids"][0].tolist() == prompt
    with torch.no_grad():
        output = theirs.generate(**inputs, max_new_tokens=new, do_sample=False, pad_token_id=0)
    assert output[0, len(prompt) :].tolist() == expected
    assert tokenizer.decode(output[0]) == run.tokenizer.decode(prompt + expected)


@pytest.mark.slow
def test_auto_tokenizer_keeps_the_char_ids_and_refuses_an_unknown_character(
    runs: dict[str, Path], exported: dict[str, Path], read: Callable[[Path], Run], transformers: Any
) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported["gpt2-char"])
    ours = read(runs["gpt2-char"]).tokenizer
    assert len(tokenizer) == ours.vocab_size
    assert tokenizer(TEXT)["input_ids"] == ours.encode(TEXT)
    assert tokenizer.decode(ours.encode(TEXT)) == TEXT
    with pytest.raises(Exception, match="UNK"):
        tokenizer("the Z")
