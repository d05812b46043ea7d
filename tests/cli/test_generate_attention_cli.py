"""``qkv generate … --show-attention``: the text is the one generated without it; then one line per generated
token, whose weights are those a trace of the text so far gives its last token (cropped windows included); bad
layer numbers are one line, exit 2."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import qkv
from qkv.inspection import token_labels

from .conftest import run_cli
from .test_cli_errors import one_line_error

PROMPT, TOKENS, CONTEXT = "the ", 20, 16  # 4 + 20 characters: past the run's context of 16, so it crops
SEEDED = ["--seed", "5", "--prompt", PROMPT, "--tokens", str(TOKENS)]
LINE = re.compile(r"^(?P<token>'[^']*'|\"[^\"]*\") +⇒ (?P<targets>.+)$")
TARGET = re.compile(r"^(?P<label>'[^']*'|\"[^\"]*\") (?P<weight>\d\.\d\d)$")


def parse(out: str) -> tuple[str, str, list[tuple[str, list[tuple[str, float]]]]]:
    """The text, the header (its lines joined), and per token: its label and its ``(label, weight)`` targets
    (a row wrapped onto indented lines joined back)."""
    text, _, table = out.partition("\n\n")
    header: list[str] = []
    lines: list[str] = []
    for line in table.rstrip("\n").split("\n"):
        if line.startswith(("'", '"')):
            lines.append(line)
        elif lines:  # a row's continuation, under its first target
            lines[-1] += " · " + line.strip()
        else:
            header.append(line.strip())
    rows = []
    for line in lines:
        match = LINE.match(line)
        assert match, line
        targets = [TARGET.match(target) for target in match["targets"].split(" · ")]
        assert all(targets), line
        parsed = [(ast.literal_eval(t["label"]), float(t["weight"])) for t in targets if t]
        rows.append((ast.literal_eval(match["token"]), parsed))
    return text + "\n", " ".join(header), rows


def windows(prompt: int, new: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the window each new token attends over, by generation's documented crop: past the
    context, the newest half plus the new token."""
    spans, length = [], prompt
    for index in range(new):
        length += 1
        if length > CONTEXT:
            length = CONTEXT // 2 + 1
        end = prompt + index + 1
        spans.append((end - length, end))
    return spans


def test_the_text_is_unchanged_and_each_token_lists_what_a_trace_of_its_window_gives_it(trained: Path) -> None:
    plain = run_cli(["generate", str(trained), *SEEDED])
    shown = run_cli(["generate", str(trained), *SEEDED, "--show-attention"])
    assert plain.code == shown.code == 0, shown.err
    text, header, rows = parse(shown.out)
    assert text == plain.out  # same seed, same tokens: capturing changes nothing
    assert header == (
        "attention in layer 1 (of 0…1), averaged over its 4 heads: each generated token ⇒ the 3 earlier tokens it "
        "attends to most"
    )
    full = text[:-1]  # the prompt and the 20 generated characters (one character, one token)
    assert [token for token, _ in rows] == token_labels(list(full[len(PROMPT) :]))

    model = qkv.load(trained)
    spans = windows(len(PROMPT), TOKENS)
    assert any(start > 0 for start, _ in spans)  # some windows were cropped
    for (start, end), (_, targets) in zip(spans, rows, strict=True):
        window = full[start:end]
        row = qkv.trace(model, window, layers=[1]).head_weights(1)[-1, :-1]  # (S - 1,): its row
        labels = token_labels(list(window[:-1]))
        top = row.topk(3).values.tolist()
        assert [weight for _, weight in targets] == pytest.approx(top, abs=0.0051)
        for label, weight in targets:  # each label is a key holding that weight (ties may swap places)
            assert any(labels[s] == label and abs(float(row[s]) - weight) <= 0.0051 for s in range(len(labels)))


def test_on_a_narrow_terminal_every_line_fits_and_says_the_same(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wide = run_cli(["generate", str(trained), *SEEDED, "--show-attention"])
    monkeypatch.setenv("COLUMNS", "34")
    narrow = run_cli(["generate", str(trained), *SEEDED, "--show-attention"])
    table = narrow.out.partition("\n\n")[2]
    assert max(len(line) for line in table.splitlines()) < 34
    assert any(line.startswith(" ") for line in table.splitlines())  # some rows went on under their first target
    assert parse(narrow.out) == parse(wide.out)


def test_k_and_the_layer_are_chosen_by_flags(trained: Path) -> None:
    result = run_cli(["generate", str(trained), *SEEDED, "--show-attention", "2", "--attention-layer", "-2"])
    assert result.code == 0, result.err
    _, header, rows = parse(result.out)
    assert header.startswith("attention in layer 0 (of 0…1)") and "the 2 earlier tokens" in header
    assert len(rows) == TOKENS and all(len(targets) == 2 for _, targets in rows)


@pytest.mark.parametrize(
    ("flags", "what"),
    [
        (
            ["--show-attention", "--attention-layer", "2"],
            "--attention-layer 2 is out of range; this model has layers 0…1",
        ),
        (["--show-attention", "--attention-layer", "-3"], "--attention-layer -3 is out of range"),
        (["--show-attention", "0"], "--show-attention K must be at least 1, got 0"),
        (["--attention-layer", "1"], "add --show-attention"),
    ],
)
def test_a_bad_attention_flag_is_one_line_exit_2(trained: Path, flags: list[str], what: str) -> None:
    result = run_cli(["generate", str(trained), *SEEDED, *flags])
    assert what in one_line_error(result, "generate") and result.out == ""
