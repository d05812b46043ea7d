"""``TrainConfig.watch`` (``qkv train --watch``): a snapshot of the text's attention at the start and at every
validation, exactly the model's at that step; training goes on exactly as without it; a resume appends; the
folder stays bounded and evenly thinned; a text the model cannot read is refused before the first step."""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import qkv
from qkv.cli.main import main
from qkv.data.scale import head_scales
from qkv.errors import ConfigError, InputError
from qkv.model import Transformer
from qkv.text.tokenizers import tokenizer_from_json
from qkv.training import TrainConfig, TrainEvent, load_checkpoint, load_weights
from qkv.training import watch as watch_module
from qkv.training.watch import DEFAULT_TEXT, Watch, kept_steps, read_snapshots, snapshot_steps

from .conftest import QUICK, Tiny, small_text

TORCHRUN = Path(sys.executable).parent / "torchrun"
TEXT = "the lazy dog"  # 12 characters of the tiny corpus; its context is 16
WATCHED = replace(QUICK, watch=TEXT)


def cells(model: Transformer, tiny: Tiny, text: str = TEXT) -> np.ndarray:
    """The expected thumbnail bytes ``(L, H, T, T)``: the model's weights for ``text`` (qkv.trace), each head
    shaded as its heatmap (255 at its scale, clipped above; no pooling below 64 tokens)."""
    handle = qkv.Model(model, tokenizer_from_json(tiny.tokenizer_json), name="tiny")
    traced = qkv.trace(handle, text)
    weights = traced.weights.numpy().astype(np.float64)  # (L, H, T, S)
    scales = head_scales(traced).numpy().astype(np.float64)[..., None, None]  # (L, H, 1, 1)
    return np.minimum(np.round(weights / scales * 255), 255).astype(np.uint8)


def stored(record: dict[str, object]) -> np.ndarray:
    thumbs = record["thumbs"]
    assert isinstance(thumbs, dict)
    n = thumbs["size"]
    data = np.frombuffer(base64.b64decode(thumbs["data"]), dtype=np.uint8)
    return data.reshape(record["layers"], record["heads"], n, n)  # type: ignore[call-overload]


def interrupt_at(step: int) -> object:
    def on_event(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == step:
            raise KeyboardInterrupt

    return on_event


@pytest.fixture(scope="module")
def watched(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> tuple[Transformer, Path]:
    model = tiny.model()
    run = tmp_path_factory.mktemp("watched")
    tiny.train(model, run, WATCHED)
    return model, run


def test_a_snapshot_at_the_start_and_at_each_validation_with_the_models_shapes(
    tiny: Tiny, watched: tuple[Transformer, Path]
) -> None:
    _, run = watched
    assert [path.name for path in snapshot_steps(run).values()] == [
        "step-000000.json",
        "step-000003.json",
        "step-000006.json",
        "step-000008.json",
    ]
    records = read_snapshots(run)
    assert [record["step"] for record in records] == [0, 3, 6, 8]
    for record in records:
        assert record["tokens"] == list(TEXT) and record["text"] == TEXT
        assert (record["layers"], record["heads"]) == (tiny.model_config.layers, tiny.model_config.heads) == (2, 4)
        assert stored(record).shape == (2, 4, len(TEXT), len(TEXT))
        assert set(record["metrics"]) == {"entropy", "distance", "asymmetry", "relative_asymmetry", "sink_share"}
        assert np.array(record["metrics"]["entropy"]).shape == (2, 4)
    assert load_checkpoint(run).train_config.watch == TEXT


def test_the_snapshots_are_the_models_attention_at_their_step(tiny: Tiny, watched: tuple[Transformer, Path]) -> None:
    model, run = watched
    first, *_, last = read_snapshots(run)
    np.testing.assert_array_equal(stored(first), cells(tiny.model(), tiny))  # the untrained model (seeded)
    np.testing.assert_array_equal(stored(last), cells(model, tiny))  # the trained one
    assert not np.array_equal(stored(first), stored(last))  # and training changed what the heads do


def test_watching_changes_nothing_in_training(tiny: Tiny, watched: tuple[Transformer, Path], tmp_path: Path) -> None:
    plain_model = tiny.model()
    plain = tiny.train(plain_model, tmp_path, QUICK)
    with_watch = load_checkpoint(watched[1]).progress
    assert plain.progress.train_losses == with_watch.train_losses  # exactly, not approximately
    assert plain.progress.validation_losses == with_watch.validation_losses
    for (name, a), (_, b) in zip(plain_model.state_dict().items(), watched[0].state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not (tmp_path / "watch").exists()


def test_a_snapshot_leaves_the_random_state_and_the_training_mode_alone(tiny: Tiny, tmp_path: Path) -> None:
    model = tiny.model().train()
    watch = Watch(TEXT, model, tiny.tokenizer_json, tmp_path, interval=3)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    watch.snapshot(1)
    assert torch.equal(torch.get_rng_state(), before) and model.training


def test_a_resumed_run_appends_the_same_snapshots(
    tiny: Tiny, watched: tuple[Transformer, Path], tmp_path: Path
) -> None:
    tiny.train(tiny.model(), tmp_path, WATCHED, on_event=interrupt_at(4))
    assert list(snapshot_steps(tmp_path)) == [0, 3, 4]
    (tmp_path / "watch" / "step-000007.json").write_text("{}")  # from a future the checkpoint never reached
    checkpoint = load_checkpoint(tmp_path)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    tiny.train(model, tmp_path, checkpoint.train_config, resume=checkpoint)  # its config keeps watching
    assert list(snapshot_steps(tmp_path)) == [0, 3, 4, 6, 8]
    resumed = {record["step"]: stored(record) for record in read_snapshots(tmp_path)}
    for record in read_snapshots(watched[1]):
        difference = np.abs(resumed[record["step"]].astype(int) - stored(record).astype(int))
        assert difference.max() <= 1  # resuming reproduces the weights to ~1e-6, so a cell may round apart


def test_a_run_resumed_with_watch_starts_watching_where_it_resumes(tiny: Tiny, tmp_path: Path) -> None:
    tiny.train(tiny.model(), tmp_path, QUICK)  # no watch: snapshots start with the resume
    checkpoint = load_checkpoint(tmp_path)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    tiny.train(model, tmp_path, replace(WATCHED, steps=10), resume=checkpoint)
    assert list(snapshot_steps(tmp_path)) == [8, 9, 10]


def test_a_resume_refuses_to_mix_another_text_into_the_snapshots(tiny: Tiny, watched: tuple[Transformer, Path]) -> None:
    _, run = watched
    checkpoint = load_checkpoint(run)
    model = Transformer(checkpoint.model_config)
    with pytest.raises(InputError, match=r"holds snapshots of another text \('the lazy dog'\)"):
        tiny.train(model, run, replace(WATCHED, steps=9, watch="a cat sits"), resume=checkpoint)
    assert list(snapshot_steps(run)) == [0, 3, 6, 8]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("the lazy dóg", r"'ó' \(U\+00F3\) at position 10 is not in this tokenizer's vocabulary"),
        ("the lazy dog jumps", "the text to watch is 18 tokens long; the model reads at most 16: shorten it"),
    ],
)
def test_a_text_the_model_cannot_read_is_refused_before_the_first_step(
    tiny: Tiny, tmp_path: Path, text: str, error: str
) -> None:
    events: list[TrainEvent] = []
    with pytest.raises(InputError, match=error) as raised:
        tiny.train(tiny.model(), tmp_path, replace(QUICK, watch=text), on_event=events.append)
    assert "\n" not in str(raised.value)
    assert events == [] and list(tmp_path.iterdir()) == []


def test_an_empty_watch_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"TrainConfig\.watch must be a text"):
        TrainConfig(watch="  ")


def test_the_default_text_is_the_articles_sentence() -> None:
    from qkv.article.vectors import SENTENCE

    assert DEFAULT_TEXT == SENTENCE


def test_thinning_keeps_at_most_the_cap_evenly_spaced_and_the_newest() -> None:
    steps: list[int] = []
    for step in range(0, 100_001, 50):
        steps = kept_steps([*steps, step], interval=50, cap=20)
        assert len(steps) <= 20 and steps[-1] == step and steps[0] == 0
        gaps = {b - a for a, b in itertools.pairwise(steps[:-1])}
        assert len(gaps) <= 1  # evenly spaced, but for the newest
    assert steps == [*range(0, 100_000, 6400), 100_000]
    assert kept_steps([0, 3, 6, 8], interval=3, cap=20) == [0, 3, 6, 8]  # nothing dropped while they fit


def test_the_watch_folder_stays_within_the_cap(tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "MAX_SNAPSHOTS", 4)
    config = replace(WATCHED, steps=12, eval_interval=1)
    tiny.train(tiny.model(), tmp_path, config)
    assert list(snapshot_steps(tmp_path)) == [0, 4, 8, 12]


def test_damaged_or_foreign_snapshot_files_are_skipped_when_read(
    watched: tuple[Transformer, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "watch"
    folder.mkdir()
    good = json.loads((watched[1] / "watch" / "step-000003.json").read_text())
    (folder / "step-000003.json").write_text(json.dumps(good))
    (folder / "step-000004.json").write_text("{not json")
    (folder / "step-000005.json").write_text(json.dumps({**good, "step": 5, "layers": 3}))  # bytes do not fit
    (folder / "step-000006.json").write_text(json.dumps({**good, "step": 6, "format": "other"}))
    (folder / "notes.json").write_text("{}")
    assert [record["step"] for record in read_snapshots(tmp_path)] == [3]


# -- qkv train --watch ------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``qkv ARGV`` in this process: its exit status and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def write_corpus(path: Path) -> Path:
    path.write_text(small_text(80))
    return path


CLI = ["--preset", "tiny", "--context", "64", "--batch-size", "2", "--seed", "3", "--eval-interval", "2"]


@pytest.fixture(scope="module")
def sentence_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Word salad that holds every character of the article's sentence."""
    path = write_corpus(tmp_path_factory.mktemp("corpus") / "words.txt")
    path.write_text(path.read_text() + (DEFAULT_TEXT + "\n") * 3)
    return path


def test_the_cli_watches_the_articles_sentence_by_default_and_a_resume_keeps_watching(
    sentence_corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    code, err = run_cli(["train", str(sentence_corpus), *CLI, "--steps", "2", "--watch", "--out", str(run)])
    assert code == 0, err
    said = " ".join(err.split())  # train's lines wrap to the terminal's width
    assert f"watch: {DEFAULT_TEXT!r} at the start and every 2 steps, in {run / 'watch'}" in said
    assert [record["step"] for record in read_snapshots(run)] == [0, 2]
    assert read_snapshots(run)[0]["tokens"] == list(DEFAULT_TEXT)
    assert load_checkpoint(run).train_config.watch == DEFAULT_TEXT
    code, err = run_cli(["train", "--resume", str(run), "--steps", "4"])
    assert code == 0, err
    assert [record["step"] for record in read_snapshots(run)] == [0, 2, 4]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--watch"], "the text to watch does not fit this run's tokenizer: character 'E' (U+0045) at position 0"),
        (
            ["--watch", "the lazy dog", "--context", "8"],
            "the text to watch is 12 tokens long; the model reads at most 8",
        ),
        (["--watch", ""], "TrainConfig.watch must be a text to watch"),
    ],
)
def test_the_cli_refuses_a_text_it_cannot_watch_in_one_line_before_making_the_run(
    tmp_path: Path, arguments: list[str], error: str
) -> None:
    corpus = write_corpus(tmp_path / "words.txt")  # no capital letters: the article's sentence cannot be read
    code, err = run_cli(["train", str(corpus), *CLI, "--steps", "2", *arguments, "--out", str(tmp_path / "run")])
    assert code == 2 and err.count("\n") == 1 and error in err, err
    assert not (tmp_path / "run").exists()


def test_the_cli_says_when_watch_took_the_corpus_as_its_text(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "words.txt")
    code, err = run_cli(["train", "--watch", str(corpus), "--steps", "2"])
    assert code == 2 and "put FILE before --watch, or --watch=TEXT" in err


def test_a_watch_that_does_not_write_only_checks_the_text(tiny: Tiny, tmp_path: Path) -> None:
    watch = Watch(TEXT, tiny.model(), tiny.tokenizer_json, tmp_path, interval=3, writes=False)  # ranks 1, 2, …
    watch.start(0)
    assert watch.snapshot(3) is None and list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="at most 16"):
        Watch(TEXT * 2, tiny.model(), tiny.tokenizer_json, tmp_path, interval=3, writes=False)


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_under_torchrun_the_run_is_watched_as_in_one_process(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "words.txt")
    arguments = [str(corpus), "--preset", "tiny", "--context", "16", "--steps", "4", "--eval-interval", "2"]
    arguments += ["--seed", "3", "--precision", "float32", "--watch", TEXT]
    assert run_cli(["train", *arguments, "--out", str(tmp_path / "one")])[0] == 0
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "qkv", "train", *arguments]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [*command, "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=180, env=environment
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one, both = read_snapshots(tmp_path / "one"), read_snapshots(tmp_path / "two")
    assert [record["step"] for record in both] == [record["step"] for record in one] == [0, 2, 4]
    for a, b in zip(one, both, strict=True):
        assert np.abs(stored(a).astype(int) - stored(b).astype(int)).max() <= 1
    assert sorted(path.name for path in (tmp_path / "two" / "watch").iterdir()) == [
        "step-000000.json",
        "step-000002.json",
        "step-000004.json",
    ]  # no stray temporary files from a second writer
