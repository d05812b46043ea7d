"""When training compiles: a choice given is kept, auto compiles runs long enough where a C++ compiler is found
(and says so in the checkpoint), an explicit compile without a compiler stops before the first step in one line,
and inductor's cache lives in the user's cache folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qkv.cli.from_config import field_docs
from qkv.training import CompileFailed, TrainConfig, load_checkpoint
from qkv.training.compiling import AUTO_COMPILE_STEPS, can_compile, cpp_compiler, inductor_cache_dir, resolve_compile

from .conftest import QUICK, Tiny


@pytest.fixture
def no_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))


@pytest.fixture
def a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", sys.executable)  # any program on the PATH stands for the compiler here


def test_a_choice_given_is_kept(no_compiler: None) -> None:
    assert resolve_compile(True, 1, "cpu") and not resolve_compile(False, 10**6, "cpu")


def test_auto_compiles_long_runs_where_a_compiler_is_found(a_compiler: None) -> None:
    assert cpp_compiler() == sys.executable and can_compile("cpu")
    assert resolve_compile(None, AUTO_COMPILE_STEPS, "cpu") and not resolve_compile(None, AUTO_COMPILE_STEPS - 1, "cpu")
    assert not resolve_compile(None, AUTO_COMPILE_STEPS, "mps")  # a device inductor is not asked to build for


def test_auto_stays_eager_without_a_compiler(no_compiler: None) -> None:
    assert cpp_compiler() is None and not resolve_compile(None, 10 * AUTO_COMPILE_STEPS, "cpu")


def test_the_help_says_the_threshold_the_code_uses() -> None:
    assert TrainConfig().compile is None
    assert f"{AUTO_COMPILE_STEPS:,} steps" in field_docs(TrainConfig)["compile"]


def test_a_short_auto_run_records_that_it_did_not_compile(tiny: Tiny, tmp_path: Path, a_compiler: None) -> None:
    tiny.train(tiny.model(), tmp_path, TrainConfig(**{**QUICK.to_dict(), "steps": 2}))
    assert load_checkpoint(tmp_path).train_config.compile is False  # never None: a resume computes alike


def test_compile_without_a_compiler_stops_before_the_first_step(tiny: Tiny, tmp_path: Path, no_compiler: None) -> None:
    config = TrainConfig(**{**QUICK.to_dict(), "steps": 2, "compile": True})
    with pytest.raises(CompileFailed, match=r"^torch\.compile needs a C\+\+ compiler .*; train without --compile$"):
        tiny.train(tiny.model(), tmp_path / "run", config)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_inductors_cache_is_in_the_users_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert inductor_cache_dir() == tmp_path / "qkv" / "inductor"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert inductor_cache_dir() == Path.home() / ".cache" / "qkv" / "inductor"
