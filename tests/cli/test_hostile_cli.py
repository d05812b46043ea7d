"""Hostile and faulty input at the command line: each is one line on stderr and exit status 2 (or, for what is
not an error, a clear warning), never a traceback, a NaN, a half-written run or a second writer in one run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qkv.cli.main import main
from qkv.training import load_checkpoint

from .conftest import TINY, Result, run_cli, write_corpus


def run_any(argv: list[str]) -> Result:
    """``qkv ARGV`` in this process, argparse's own refusals (SystemExit) included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


def refused(argv: list[str], message: str) -> str:
    """Run ``argv``; assert exit 2, nothing on stdout, no traceback and ``message`` on the last stderr line."""
    result = run_any(argv)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and result.out == ""
    last = result.err.strip().splitlines()[-1]
    assert message in last, result.err
    return last


def copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


# ------------------------------------------------------------------------------------------------------------
# Sizes and numbers.


@pytest.mark.parametrize("seed", ["18446744073709551616", "-1", str(2**70)])
def test_a_seed_beyond_64_bits_is_refused_by_train_and_generate(
    corpus: Path, trained: Path, tmp_path: Path, seed: str
) -> None:
    refused(["train", str(corpus), *TINY[:-2], "--seed", seed, "--out", str(tmp_path / "r")], "is not a seed")
    refused(["generate", str(trained), "--seed", seed], "is not a seed")
    assert not (tmp_path / "r").exists()


def test_the_largest_seed_generates(trained: Path) -> None:
    result = run_cli(["generate", str(trained), "--seed", str(2**64 - 1), "--tokens", "5"])
    assert result.code == 0, result.err


@pytest.mark.parametrize("temperature", ["1e-30", "1e-45", "1e-300", "5e-324"])
def test_a_temperature_too_small_to_divide_by_samples_greedily(trained: Path, temperature: str) -> None:
    tiny = run_cli(["generate", str(trained), "--prompt", "the", "--tokens", "12", "--temperature", temperature])
    greedy = run_cli(["generate", str(trained), "--prompt", "the", "--tokens", "12", "--temperature", "0"])
    assert tiny.code == 0 and "Traceback" not in tiny.err, tiny.err
    assert tiny.out == greedy.out


@pytest.mark.parametrize("temperature", ["inf", "nan", "-1"])
def test_a_temperature_that_is_no_temperature_is_one_line(trained: Path, temperature: str) -> None:
    refused(["generate", str(trained), "--temperature", temperature], "--temperature must be")


def test_a_batch_no_memory_can_hold_is_refused_and_leaves_no_run(corpus: Path, tmp_path: Path) -> None:
    argv = ["train", str(corpus), "--preset", "tiny", "--context", "16", "--batch-size", str(10**12)]
    refused([*argv, "--out", str(tmp_path / "r")], "a training step on batches of 1,000,000,000,000 sequences")
    assert not (tmp_path / "r").exists()


def test_a_context_no_memory_can_hold_is_refused(tmp_path: Path) -> None:
    corpus = tmp_path / "big.txt"
    corpus.write_text("ab" * 1_000_000)
    argv = ["train", str(corpus), "--preset", "tiny", "--context", "190000", "--batch-size", "64"]
    refused([*argv, "--out", str(tmp_path / "r")], "batches of 64 sequences of 190,000 tokens needs about")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------------------
# Paths and text.


@pytest.mark.parametrize("below", [False, True], ids=["an existing file", "below a file"])
def test_out_that_is_a_file_or_lies_below_one_is_refused_before_any_work(
    corpus: Path, tmp_path: Path, below: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    out = tmp_path / "notes.txt" / "run" if below else tmp_path / "notes.txt"
    from qkv.text import corpus as corpus_module

    monkeypatch.setattr(corpus_module, "read_corpus", None)  # reading the corpus would fail: it is not reached
    last = refused(["train", str(corpus), *TINY, "--out", str(out)], f"cannot train into {out}")
    assert "which is a file" in last if below else "it is a file" in last
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_corpus_whose_name_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.txt")
    write_corpus(tmp_path / name)
    last = refused(["train", str(tmp_path / name), *TINY, "--out", str(tmp_path / "r")], "is not valid UTF-8")
    assert r"bad\xff.txt" in last and not (tmp_path / "r").exists()


def test_attend_text_with_a_byte_that_is_not_utf8_is_one_line_before_loading(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.training import checkpoint

    monkeypatch.setattr(checkpoint, "load_checkpoint", None)  # loading would fail: it is not reached
    refused(["attend", "caf\udcff dog", "--model", str(trained)], "the byte 0xff at character 3 is not UTF-8")


@pytest.mark.parametrize("flag", ["--prompt", "--stop"])
def test_generate_text_with_a_byte_that_is_not_utf8_is_one_line(trained: Path, flag: str) -> None:
    refused(["generate", str(trained), flag, "the \udce9"], f"{flag} is not valid UTF-8 text: the byte 0xe9")


def test_an_empty_stop_text_is_refused(trained: Path) -> None:
    refused(["generate", str(trained), "--stop", "the", "--stop", ""], '--stop "" would stop before the first token')


# ------------------------------------------------------------------------------------------------------------
# Resuming what no longer fits.


def test_resuming_a_run_whose_config_asks_for_100000_layers_is_one_line(trained: Path, tmp_path: Path) -> None:
    run = copy(trained, tmp_path)
    config_path = run / "checkpoint" / "config.json"
    config = json.loads(config_path.read_text())
    config["model"]["layers"] = 100_000
    config_path.write_text(json.dumps(config))
    refused(["train", "--resume", str(run), "--steps", "9"], "asks for 100,000 layers, the weights hold 2")
    refused(["generate", str(run)], "asks for 100,000 layers")


def test_resuming_with_an_optimizer_state_of_another_run_is_one_line(
    corpus: Path, trained: Path, tmp_path: Path
) -> None:
    other = tmp_path / "wide"
    argv = ["train", str(corpus), "--preset", "small", "--context", "16", "--batch-size", "4", "--steps", "1"]
    assert run_cli([*argv, "--out", str(other)]).code == 0
    run = copy(trained, tmp_path)
    shutil.copy(other / "checkpoint" / "state.safetensors", run / "checkpoint" / "state.safetensors")
    refused(["train", "--resume", str(run), "--steps", "9"], "the optimizer state belongs to another model")


def test_resuming_after_the_corpus_was_rewritten_says_the_resume_is_not_exact(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "words.txt")
    run = tmp_path / "run"
    assert run_cli(["train", str(corpus), *TINY, "--steps", "3", "--out", str(run)]).code == 0
    same = run_cli(["train", "--resume", str(run), "--steps", "4"])
    assert same.code == 0 and "warning" not in same.err
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join(reversed(lines)) + "\n")  # the same characters, another text
    changed = run_cli(["train", "--resume", str(run), "--steps", "5"])
    assert changed.code == 0, changed.err
    assert "warning: the corpus is not the text steps 1-4 were trained on" in changed.err
    assert "this resume is not exact" in changed.err
    again = run_cli(["train", "--resume", str(run), "--steps", "6"])  # the run now continues on the new text
    assert again.code == 0 and "warning" not in again.err


# ------------------------------------------------------------------------------------------------------------
# Two trainings into one run directory.


def test_a_second_training_into_a_run_in_use_is_refused_and_the_first_finishes_loadable(
    corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "shared"
    argv = [*TINY, "--steps", "100000", "--time", "90s", "--eval-interval", "5", "--out", str(run)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(
        [sys.executable, "-m", "qkv", "train", str(corpus), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoint").is_dir():  # holding the lock, and a checkpoint written
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline, "the first training never wrote a checkpoint"
            time.sleep(0.2)
        last = refused(["train", str(corpus), *argv], f"{run} is in use: another qkv training")
        assert f"(process {first.pid})" in last
        refused(["train", "--resume", str(run), "--steps", "100001"], "is in use")
    finally:
        first.send_signal(signal.SIGINT)  # the first saves and stops cleanly
        _, error = first.communicate(timeout=240)
    assert first.returncode == 130 and "Traceback" not in error, error
    checkpoint = load_checkpoint(run)
    assert checkpoint.progress.step >= 5
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint", "loss.png", "source.txt"]
