"""A small corpus and one tiny trained run, shared by the command-line tests (training once is enough)."""

from __future__ import annotations

import contextlib
import io
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from qkv.cli.main import main

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sit", "on", "mats")
TINY = ["--preset", "tiny", "--context", "16", "--batch-size", "4", "--seed", "3"]


def write_corpus(path: Path, lines: int = 80) -> Path:
    rng = random.Random(0)
    path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(7)) for _ in range(lines)) + "\n")
    return path


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_cli(argv: list[str]) -> Result:
    """``qkv ARGV`` in this process, its exit status and what it wrote."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _terminal_of_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands fold their lines to the terminal's width: the same 80 columns for every test, wherever it runs."""
    monkeypatch.setenv("COLUMNS", "80")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "words.txt")


@pytest.fixture(scope="session")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained for 6 steps (checkpoints at 3 and 6)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli(["train", str(corpus), *TINY, "--steps", "6", "--eval-interval", "3", "--out", str(run)])
    assert result.code == 0, result.err
    return run
