"""Bad input on the command line: exit status 2, one line on stderr naming the problem, no traceback, and
nothing half-written left behind."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Result, run_cli, write_corpus

Setup = Callable[[Path, Path, Path], list[str]]  # (tmp_path, corpus, trained run) → arguments after "train"


def one_line_error(result: Result, command: str) -> str:
    assert result.code == 2 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"qkv {command}: error: "), result.err
    return lines[0]


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with a hash of its bytes (to prove nothing changed)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def text_dir(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir()
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


TRAIN_CASES: dict[str, tuple[Setup, str]] = {
    "missing file": (lambda t, c, r: [str(t / "nope.txt")], "does not exist"),
    "empty file": (lambda t, c, r: [str(write(t / "empty.txt", b""))], "is empty"),
    "whitespace-only file": (lambda t, c, r: [str(write(t / "blank.txt", b" \n\n\t\n"))], "is empty"),
    "folder without .txt files": (lambda t, c, r: [str(text_dir(t / "d", {"a.md": b"# hi"}))], "no .txt files"),
    "folder of empty .txt files": (lambda t, c, r: [str(text_dir(t / "d", {"a.txt": b""}))], "is empty"),
    "binary file": (lambda t, c, r: [str(write(t / "x.bin", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"))], "looks binary"),
    "non-UTF-8 file": (
        lambda t, c, r: [str(write(t / "latin1.txt", "café au lait\n".encode("latin-1") * 50))],
        "not UTF-8",
    ),
    "corpus shorter than one context": (
        lambda t, c, r: [str(write(t / "short.txt", b"hello there\n"))],
        "too short",
    ),
    "--resume with --preset": (lambda t, c, r: ["--resume", str(r), "--preset", "tiny"], "drop --preset"),
    "--resume with a corpus": (lambda t, c, r: [str(c), "--resume", str(r)], "drop FILE"),
    "--vocab without bpe": (lambda t, c, r: [str(c), "--vocab", "100"], "--tokenizer bpe"),
    "--out already holds a checkpoint": (lambda t, c, r: [str(c), "--out", str(r)], "already holds a checkpoint"),
    "--resume from a folder that is no run": (
        lambda t, c, r: ["--resume", str(text_dir(t / "d", {}))],
        "not a qkv checkpoint",
    ),
    "--resume from nothing": (lambda t, c, r: ["--resume", str(t / "nothing")], "no such checkpoint"),
    "--resume without more steps": (lambda t, c, r: ["--resume", str(r), "--steps", "6"], "already at step 6"),
    "invalid learning rate": (lambda t, c, r: [str(c), "--lr", "-1"], "--lr must be positive, got -1"),
    "zero steps": (lambda t, c, r: [str(c), "--steps", "0"], "--steps must be a positive integer, got 0"),
    "zero batch size": (lambda t, c, r: [str(c), "--batch-size", "0"], "--batch-size must be a positive integer"),
    "negative warmup": (lambda t, c, r: [str(c), "--warmup", "-2"], "--warmup must be 0 or more"),
    "zero context": (lambda t, c, r: [str(c), "--context", "0", "--preset", "tiny"], "--context must be a positive"),
    "unknown preset": (lambda t, c, r: [str(c), "--preset", "giant"], "unknown --preset 'giant'"),
    "an encoder preset": (lambda t, c, r: [str(c), "--preset", "bert"], "--preset bert is an encoder"),
    "zero steps on a resume": (lambda t, c, r: ["--resume", str(r), "--steps", "0"], "--steps must be a positive"),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_bad_train_input_is_one_line_exit_2_and_leaves_no_files(
    case: str, tmp_path: Path, corpus: Path, trained: Path
) -> None:
    setup, what = TRAIN_CASES[case]
    arguments = setup(tmp_path, corpus, trained)
    before = fingerprint(trained)
    if "--resume" not in arguments:
        context = [] if "--context" in arguments else ["--context", "16"]
        arguments += [*context, *([] if "--out" in arguments else ["--out", str(tmp_path / "out")])]
    error = one_line_error(run_cli(["train", *arguments]), "train")
    assert what in error
    assert not (tmp_path / "out").exists() and fingerprint(trained) == before


def test_a_long_path_in_an_error_stays_on_one_line(tmp_path: Path) -> None:
    folder = tmp_path / ("deep" * 20)
    folder.mkdir()
    one_line_error(run_cli(["train", str(write(folder / "empty.txt", b""))]), "train")


GENERATE_CASES: dict[str, tuple[list[str], str]] = {
    "empty prompt": (["--prompt", ""], "--prompt is empty"),
    "prompt longer than the context": (["--prompt", "the cat sat on the mat and the dog"], "--long-prompt crop"),
    "zero tokens": (["--tokens", "0"], "--tokens must be at least 1"),
    "negative tokens": (["--tokens", "-5"], "--tokens must be at least 1"),
    "a character the tokenizer never saw": (["--prompt", "the €"], "'€'"),
    "top-k of zero": (["--top-k", "0"], "--top-k must be a positive integer, got 0"),
    "top-p above one": (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    "negative temperature": (
        ["--temperature", "-1"],
        "--temperature must be 0 (greedy) or a finite positive number, got -1",
    ),
    "temperature not a number": (
        ["--temperature", "nan"],
        "--temperature must be 0 (greedy) or a finite positive number",
    ),
}


@pytest.mark.parametrize("case", GENERATE_CASES)
def test_bad_generate_input_is_one_line_exit_2_and_prints_no_text(case: str, trained: Path) -> None:
    arguments, what = GENERATE_CASES[case]
    result = run_cli(["generate", str(trained), *arguments])
    assert what in one_line_error(result, "generate") and result.out == ""


def test_generate_from_a_folder_that_is_no_run_names_it(tmp_path: Path) -> None:
    write_corpus(tmp_path / "words.txt")
    error = one_line_error(run_cli(["generate", str(tmp_path)]), "generate")
    assert str(tmp_path) in error and "not a qkv checkpoint" in error
