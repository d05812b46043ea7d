"""``qkv bench``: the attention benchmark runs end to end at a tiny size; bad names and options fail in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from qkv.bench import BENCHMARKS, attention, timing
from qkv.cli.main import main

PATHS = ("sdpa", "fused", "exact", "naive")


def test_the_attention_benchmark_runs_through_the_cli_and_reports_every_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(timing, "MIN_SAMPLE_S", 0.01)  # a short sample is enough to prove it runs
    assert main(["bench", "attention", "--sizes", "32", "--repeats", "1"]) == 0
    out, err = capsys.readouterr()
    rows = {m["path"]: m for m in re.finditer(r"^32\s+(?P<path>\w+)\s+(?P<cells>.+)$", out, re.MULTILINE)}
    assert set(rows) == set(PATHS), out
    for path, row in rows.items():
        median_ms, min_ms, _times_sdpa, memory_mb, diff = row["cells"].split()
        assert float(median_ms) > 0 and float(min_ms) > 0, path
        assert float(memory_mb) >= 0, path  # measured, not "n/a", on Linux
        assert float(diff) <= 1e-4, f"{path} disagrees with naive by {diff}"
    assert re.search(r"^(PASS|FAIL)  fused path within 1.1× of SDPA", out, re.MULTILINE)
    assert out.count("SKIP  at T=4096") == 2  # the naive targets are judged at T=4096 only
    assert "checking that the 4 paths agree" in err and "timing round 1/1" in err  # progress goes to stderr


def test_markdown_output_is_a_set_of_markdown_tables(capsys: pytest.CaptureFixture[str]) -> None:
    report = attention.AttentionReport(
        config=attention.AttentionBenchConfig(sizes=(4096,), rounds=2),
        threads=2,
        torch_version=torch.__version__,
        machine="test",
        memory_note=None,
        sizes=(fake_size(4096, {"sdpa": 1.0, "fused": 1.02, "exact": 20.0, "naive": 10.0}),),
    )
    text = attention.format_report(report, markdown=True)
    assert re.search(r"^\| T +\| path +\|", text, re.MULTILINE), text
    assert re.search(r"^\|\s*-+:\s*\|", text, re.MULTILINE)  # a right-aligned rule under the T column
    assert text.count("**PASS**") == 3, text


def fake_size(T: int, seconds: dict[str, float], memory_mb: dict[str, float] | None = None) -> attention.SizeResult:
    memory_mb = memory_mb or {"sdpa": 34, "fused": 34, "exact": 6500, "naive": 4300}
    return attention.SizeResult(
        T,
        {path: attention.PathResult(path, (s, s), 1, int(memory_mb[path] * 1e6), 0.0) for path, s in seconds.items()},
    )


@pytest.mark.parametrize(
    ("fused_s", "naive_s", "fused_mb", "expected"),
    [
        (1.05, 10.0, 34, ["PASS", "PASS", "PASS"]),
        (1.2, 10.0, 34, ["FAIL", "PASS", "PASS"]),  # the wrapper costs more than 10% over SDPA
        (1.0, 4.0, 34, ["PASS", "FAIL", "PASS"]),  # naive is not 5× slower
        (1.0, 10.0, 300, ["PASS", "PASS", "FAIL"]),  # fused needs 7% of naive's memory
    ],
)
def test_the_verdicts_follow_the_targets(fused_s: float, naive_s: float, fused_mb: float, expected: list[str]) -> None:
    size = fake_size(
        4096,
        {"sdpa": 1.0, "fused": fused_s, "exact": 20.0, "naive": naive_s},
        {"sdpa": 34, "fused": fused_mb, "exact": 6500, "naive": 4300},
    )
    report = attention.AttentionReport(
        attention.AttentionBenchConfig(sizes=(4096,)), 2, torch.__version__, "test", None, (size,)
    )
    assert [v.status for v in attention.verdicts(report)] == expected


def test_paths_that_disagree_stop_the_benchmark_before_timing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(attention.PATHS, "fused", lambda q, k, v: attention.naive_attention(q, k, v) + 1e-2)
    assert main(["bench", "attention", "--sizes", "8", "--repeats", "1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "disagree" in err and "fused" in err and "timing round" not in err


def test_an_unknown_benchmark_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nonesuch"]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "unknown benchmark 'nonesuch'" in err and "attention" in err


def test_no_benchmark_name_is_exit_2_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "attention" in err


@pytest.mark.parametrize("option", [["--sizes", "256,x"], ["--sizes", "0"], ["--repeats", "0"], ["--bogus"]])
def test_a_bad_option_is_exit_2_with_one_line(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "attention", *option]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("qkv bench: error:")


def test_every_registered_benchmark_provides_the_two_functions() -> None:
    from qkv.bench import load

    for name in BENCHMARKS:
        module = load(name)
        assert callable(module.add_arguments) and callable(module.run_cli)


def test_values_the_parser_lets_through_but_a_benchmark_refuses_are_one_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "short.txt"
    short.write_text("abc\n", encoding="utf-8")
    for argv, said in (
        (["generate", "--context", "1", "--no-memory"], "GenerateBenchConfig.context must be at least 2"),
        (["train", "--text", str(short), "--no-memory"], "the text has 4 tokens; one batch row needs"),
    ):
        assert main(["bench", *argv]) == 2
        _, err = capsys.readouterr()
        assert err.count("\n") == 1 and said in err and "Traceback" not in err, err
