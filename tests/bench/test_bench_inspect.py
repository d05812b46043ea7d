"""``qkv bench inspect``: runs through the CLI at a tiny setting (a 16-token MiniLM trace, stand-in commands
for the timed ones) and reports both tables and both verdicts; a failing command stops it in one line."""

from __future__ import annotations

import re
import sys

import pytest

from qkv.bench import BENCHMARKS, inspection
from qkv.cli.main import main
from qkv.data import registry


@pytest.fixture
def quick_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -c pass` for both timed commands: the real `qkv attend` is the CLI tests' (and BENCHMARKS.md's)."""
    monkeypatch.setattr(inspection.InspectBenchConfig, "attend_command", property(lambda self: quick()))
    monkeypatch.setattr(inspection.InspectBenchConfig, "floor_command", property(lambda self: quick()))


def quick(code: str = "pass") -> list[str]:
    return [sys.executable, "-c", code]


def test_it_runs_through_the_cli_and_reports_the_times_the_trace_memory_and_the_verdicts(
    quick_commands: None, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = registry.PACKAGED["minilm"]
    if registry._package_dir(entry.package) is None:
        pytest.skip(f"minilm is not installed: {entry.install_command}")
    assert BENCHMARKS["inspect"].module == "qkv.bench.inspection"
    assert main(["bench", "inspect", "--repeats", "2", "--tokens", "16", "--model", "minilm"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"^qkv attend --model minilm +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d$", out, re.MULTILINE), out
    row = re.search(r"^trace minilm +16 +6 × 12 +(?P<rest>[\d,.]+) +[\d.]+ +0\.1 +[\d.]+$", out, re.M)
    assert row and float(row["rest"].replace(",", "")) > 50, out  # the model is loaded before the trace
    assert re.search(r"^PASS  qkv attend on minilm, the article's sentence, start to exit < 3 s: ", out, re.M)
    assert re.search(r"^PASS  tracing 16 tokens through minilm \(all layers, all heads\) < 1 GB extra: ", out, re.M)
    assert "attend: round 2/2" in err and "fresh process" in err  # progress goes to stderr


def test_a_command_that_fails_stops_the_benchmark_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(inspection.InspectBenchConfig, "attend_command", property(lambda self: quick("exit(3)")))
    assert main(["bench", "inspect", "--repeats", "1"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and re.search(r"^qkv bench inspect: error: .* failed with exit status 3", err, re.M)


def test_the_text_is_exactly_as_many_tokens_as_asked() -> None:
    from qkv.pretrained.tokenizer import tokenizer_from_file

    entry = registry.PACKAGED["minilm"]
    root = registry._package_dir(entry.package)
    if root is None:
        pytest.skip(f"minilm is not installed: {entry.install_command}")
    tokenizer = tokenizer_from_file(str(root / entry.location / "tokenizer.json"))
    source = "Evan's dog Riley is so hyperactive, she never stops moving. " * 20
    for tokens in (3, 17, 100):
        assert len(tokenizer.encode(inspection.text_of_tokens(tokenizer, source, tokens))) == tokens
