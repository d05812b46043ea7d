"""Waits of a second or more are said on stderr before they start (loading a model, a long trace, drawing);
stdout keeps only the command's output, and a small run, which loads in milliseconds, says nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qkv.cli import progress
from qkv.cli import train as train_cli
from qkv.data import registry

from .conftest import TINY, run_cli

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"


def installed(name: str) -> registry.PackagedModel:
    entry = registry.PACKAGED[name]
    if entry.installed_path() is None:
        pytest.skip(f"{name} is not installed: {entry.install_command}")
    return entry


def test_attend_on_minilm_says_it_is_loading_with_the_size_on_stderr_only() -> None:
    entry = installed("minilm")
    result = run_cli(["attend", SENTENCE, "--model", "minilm", "--color", "never"])
    assert result.code == 0, result.err
    assert result.err == f"loading minilm ({round(entry.size / 1e6)} MB)…\n"
    assert result.out.startswith("model minilm · layer 5") and "loading" not in result.out


def test_a_picture_says_it_is_drawing_before_it_writes(tmp_path: Path) -> None:
    installed("minilm")
    target = tmp_path / "grid.png"
    result = run_cli(["attend", SENTENCE, "--model", "minilm", "-o", str(target)])
    assert result.code == 0 and result.out == "", result.err
    assert result.err.splitlines() == [
        "loading minilm (91 MB)…",
        "drawing the heatmaps of 6 layers × 12 heads, 16 tokens each…",
        f"wrote {target}",
    ]


def test_a_small_run_loads_without_a_word(trained: Path) -> None:
    result = run_cli(["attend", "the lazy dog", "--model", str(trained), "--color", "never"])
    assert result.code == 0 and result.err == "" and result.out


@pytest.mark.slow  # SmolLM2, in a subprocess whose stdout is a pipe
def test_generate_says_it_is_loading_smollm2_and_a_pipe_gets_only_the_text() -> None:
    entry = installed("smollm2")
    command = [sys.executable, "-m", "qkv", "generate", "--model", "smollm2", "--dtype", "int4"]
    command += ["--prompt", "What is the capital of France?"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The capital of France is Paris.\n"
    assert done.stderr == f"loading smollm2 ({round(entry.size / 1e6)} MB)…\n"


def test_the_weights_of_a_run_are_its_checkpoints_model(trained: Path) -> None:
    size = (trained / "checkpoint" / "model.safetensors").stat().st_size
    assert progress.weights_bytes(str(trained)) == size
    assert progress.weights_bytes(str(trained / "checkpoint")) == size


def test_nothing_to_load_is_no_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress.weights_bytes(str(tmp_path / "missing")) is None
    assert progress.weights_bytes(str(tmp_path)) is None  # a directory without weights
    entry = registry.PACKAGED["smollm2"]
    monkeypatch.setattr(type(entry), "installed_path", lambda self: None)
    assert progress.weights_bytes("smollm2") is None  # not installed: the load's own error says so, alone


@pytest.mark.parametrize(("size", "shown"), [(98_362_432, "98 MB"), (1_234_567, "1.2 MB"), (2_500_000_000, "2.5 GB")])
def test_sizes_read_as_megabytes(size: int, shown: str) -> None:
    assert progress.megabytes(size) == shown


def test_a_long_forward_pass_is_said_and_a_short_one_is_not(capsys: pytest.CaptureFixture[str]) -> None:
    progress.forward("tracing 400 tokens through smollm2", 135_000_000, 400)
    progress.forward("tracing 16 tokens through smollm2", 135_000_000, 16)
    assert capsys.readouterr() == ("", "tracing 400 tokens through smollm2…\n")


def test_training_a_bpe_tokenizer_on_a_large_corpus_is_said(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train_cli, "BPE_NOTICE_CHARACTERS", 100)  # the test corpus is small
    arguments = [str(corpus), *TINY, "--steps", "1", "--tokenizer", "bpe", "--out", str(tmp_path / "r")]
    result = run_cli(["train", *arguments])
    assert result.code == 0, result.err
    assert result.err.startswith(f"training a BPE tokenizer on {len(corpus.read_text()):,} characters…\n")
