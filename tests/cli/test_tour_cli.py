"""``qkv tour``: every part, both languages, the HTML page, and one clear line for a path it cannot write."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import run_cli


def test_part_four_runs_alone() -> None:
    result = run_cli(["tour", "--part", "4", "--quick"])
    assert result.code == 0, result.err
    assert "Part 4 — what the article left out" in result.out and "Part 3 —" not in result.out
    for number in ("4.1", "4.2", "4.3", "4.4", "4.5"):
        assert f"\n{number} " in result.out


def test_spanish_runs_end_to_end() -> None:
    result = run_cli(["tour", "--quick", "--lang", "es"])
    assert result.code == 0, result.err
    assert "Parte 1 —" in result.out and "Parte 4 — lo que el artículo dejó fuera" in result.out
    assert "El eslabón final" in result.out


def test_html_writes_one_self_contained_page(tmp_path: Path) -> None:
    target = tmp_path / "tour.html"
    result = run_cli(["tour", "--quick", "--lang", "es", "--html", str(target)])
    assert result.code == 0, result.err
    said = ["loading minilm (91 MB)…", "drawing the page's figures…", f"wrote {target}"]  # qkv.cli.progress
    assert result.out == "" and result.err.splitlines() == said
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="es">' in page
    assert not re.search(r"https?://", page)
    assert page.count('<img src="data:image/svg+xml;base64,') == 4  # final link, two of the heads, the stack
    # Each figure is the trace view of `qkv attend --format html`, in Spanish; its style and script come once.
    assert page.count('<div class="qkv-trace" lang="es">') == 4
    assert page.count("<summary>La figura como imagen</summary>") == 4
    assert page.count("<script>") == 1 and "main.setUpViews();" in page
    assert [p.name for p in tmp_path.iterdir()] == ["tour.html"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing/tour.html", r"cannot write missing/tour\.html: the directory missing does not exist"),
        (".", r"cannot write \.: it is a directory"),
    ],
    ids=["no directory", "a directory"],
)
def test_an_unwritable_page_is_one_line_and_exit_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(["tour", "--quick", "--html", target])
    assert result.code == 2 and result.out == ""
    assert len(result.err.strip().splitlines()) == 1 and re.search(rf"^qkv tour: error: {message}", result.err)


@pytest.mark.parametrize("arguments", [["--lang", "fr"], ["--part", "0"], ["--part", "5"]])
def test_bad_flags_exit_two(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["tour", *arguments])
    assert exit_info.value.code == 2
