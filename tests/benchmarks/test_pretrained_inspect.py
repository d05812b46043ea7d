"""The pretrained and inspection benchmarks: the same sentences every run, options checked in one line, a text of
exactly as many tokens as asked, a failing command stops the run in one line, and inspect runs end to end."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks import harness, inspect, pretrained
from qkv.data import registry


def minilm_root() -> object:
    entry = registry.PACKAGED["minilm"]
    root = registry._package_dir(entry.package)
    if root is None:
        pytest.skip(f"minilm is not installed: {entry.install_command}")
    return root / entry.location


def test_sentences_are_the_same_every_run_and_vary_in_length() -> None:
    first = pretrained.sentences(200)
    assert first == pretrained.sentences(200) and len(set(first)) == 200
    lengths = [len(s.split()) for s in first]
    assert min(lengths) <= 5 and max(lengths) >= 30


def test_an_unknown_precision_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        harness.main("pretrained", pretrained.Config, pretrained.run, pretrained.QUICK, ["--dtypes", "int8"])
    _, err = capsys.readouterr()
    assert exit_.value.code == 2 and err.count("\n") == 1 and "Config.dtypes must be some of int4" in err


def test_the_text_is_exactly_as_many_tokens_as_asked() -> None:
    from qkv.pretrained.tokenizer import tokenizer_from_file

    tokenizer = tokenizer_from_file(str(minilm_root() / "tokenizer.json"))  # type: ignore[operator]
    source = "Evan's dog Riley is so hyperactive, she never stops moving. " * 20
    for tokens in (3, 17, 100):
        assert len(tokenizer.encode(inspect.text_of_tokens(tokenizer, source, tokens))) == tokens


def stand_in(code: str) -> object:
    """`python -c CODE` for both timed commands: the real `qkv attend` is the CLI tests' (and BENCHMARKS.md's)."""
    return lambda config: {"qkv attend --model minilm": [sys.executable, "-c", code], "import torch": ["true"]}


@pytest.mark.slow
def test_a_command_that_fails_stops_the_benchmark_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(inspect, "commands", stand_in("exit(3)"))
    assert harness.main("inspect", inspect.Config, inspect.run, inspect.QUICK, ["--rounds", "1"]) == 1
    out, err = capsys.readouterr()
    last = err.splitlines()[-1]  # the lines before it are progress
    assert out == "" and last.startswith("python -m benchmarks.inspect: error:") and "exit status 3" in last


@pytest.mark.slow
def test_inspect_runs_end_to_end_and_ends_with_a_json_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    minilm_root()
    monkeypatch.setattr(inspect, "commands", stand_in("pass"))
    assert harness.main("inspect", inspect.Config, inspect.run, inspect.QUICK, ["--quick", "--tokens", "16"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    memory = result["tables"]["The trace's memory (MB = 10⁶ bytes)"][0]
    assert memory["layers × heads"] == "6 × 12" and float(memory["rest MB"].replace(",", "")) > 50
    assert [v["status"] for v in result["verdicts"]] == ["PASS", "PASS"]
