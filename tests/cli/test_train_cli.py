"""``qkv train``: a run directory with the documented layout, an interrupted run that resumes to the very same
losses, a resume that says what its flags change, ``runs/latest`` only beside runs kept under ``runs/``, a
diverging run stopped in one line, and what it says fits 80 columns."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from qkv.cli import train as train_cli
from qkv.training.checkpoint import FILES

from .conftest import TINY, run_cli

EIGHT_STEPS = [*TINY, "--steps", "8", "--eval-interval", "3", "--warmup", "2", "--lr", "3e-3"]


def losses(run: Path) -> list[list[float]]:
    return json.loads((run / "checkpoint" / "progress.json").read_text())["train_losses"]


@pytest.fixture(scope="module")
def full_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("home") / "runs" / "full"
    result = run_cli(["train", str(corpus), *EIGHT_STEPS, "--out", str(run)])
    assert result.code == 0, result.err
    return run


def test_a_run_directory_holds_the_checkpoint_the_source_and_the_loss_curve(trained: Path) -> None:
    assert sorted(p.name for p in trained.iterdir()) == ["checkpoint", "loss.png", "source.txt"]
    assert sorted(p.name for p in (trained / "checkpoint").iterdir()) == sorted(FILES)
    assert (trained / "loss.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_training_reports_progress_and_where_the_checkpoint_is(corpus: Path, tmp_path: Path) -> None:
    result = run_cli(
        ["train", str(corpus), *TINY, "--steps", "4", "--eval-interval", "2", "--out", str(tmp_path / "r")]
    )
    assert result.code == 0 and result.out == ""
    assert "done (reached the step count): step 4" in result.err and f"checkpoint: {tmp_path / 'r'}" in result.err
    assert [step for step, _ in losses(tmp_path / "r")] == [1, 2, 3, 4]


def test_an_interrupted_cli_run_resumes_to_the_same_losses(
    corpus: Path, full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_show = train_cli.ProgressLine.show

    def ctrl_c_at_step_5(self: train_cli.ProgressLine, event: object) -> None:
        real_show(self, event)
        if getattr(event, "kind", None) == "step" and getattr(event, "step", None) == 5:
            raise KeyboardInterrupt

    run = tmp_path / "cut"
    with monkeypatch.context() as patch:
        patch.setattr(train_cli.ProgressLine, "show", ctrl_c_at_step_5)
        stopped = run_cli(["train", str(corpus), *EIGHT_STEPS, "--out", str(run)])
    assert stopped.code == 130 and "done (interrupted): step 5" in stopped.err
    resumed = run_cli(["train", "--resume", str(run), "--steps", "8"])
    assert resumed.code == 0, resumed.err
    assert [s for s, _ in losses(run)] == [s for s, _ in losses(full_run)]
    assert [v for _, v in losses(run)] == pytest.approx([v for _, v in losses(full_run)], rel=0, abs=1e-6)


def test_resuming_can_extend_a_finished_run(trained: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "copy"))
    result = run_cli(["train", "--resume", str(run), "--steps", "8"])
    assert result.code == 0, result.err
    assert [step for step, _ in losses(run)] == list(range(1, 9))
    assert losses(run)[:6] == losses(trained)


def test_runs_latest_points_to_the_newest_run_under_runs(full_run: Path) -> None:
    latest = full_run.parent / "latest"
    assert latest.is_symlink() and os.readlink(latest) == "full" and latest.resolve() == full_run.resolve()


def test_no_latest_link_beside_a_run_kept_elsewhere(trained: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "elsewhere" / "run"))
    assert not (trained.parent / "latest").exists()
    assert run_cli(["train", "--resume", str(run), "--steps", "7"]).code == 0
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]  # resuming did not add a "latest" either


def test_without_out_the_run_goes_under_runs_and_latest_follows_it(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(["train", str(corpus), *TINY, "--steps", "2"]).code == 0
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.name != "latest"]
    assert run.name.startswith("words-") and (run / "checkpoint").is_dir()
    assert (tmp_path / "runs" / "latest").resolve() == run.resolve()


def test_a_diverging_run_stops_with_one_line_naming_the_step(corpus: Path, tmp_path: Path) -> None:
    diverging = [*TINY, "--steps", "20", "--lr", "1e12", "--warmup", "0", "--out", str(tmp_path / "r")]
    result = run_cli(["train", str(corpus), *diverging])
    assert result.code == 2 and "Traceback" not in result.err
    error = result.err.strip().splitlines()[-1]
    assert error.startswith("qkv train: error: loss became") and "at step" in error


@pytest.mark.parametrize("choice", ["float32", "bfloat16"])
def test_training_says_and_records_the_precision_it_runs_in(corpus: Path, tmp_path: Path, choice: str) -> None:
    run = tmp_path / "r"
    result = run_cli(["train", str(corpus), *TINY, "--steps", "2", "--precision", choice, "--out", str(run)])
    assert result.code == 0, result.err
    said = "precision: bfloat16 products" if choice == "bfloat16" else "precision: float32"
    assert said in result.err
    recorded = json.loads((run / "checkpoint" / "config.json").read_text())["training"]["precision"]
    assert recorded == choice


def test_an_unknown_precision_is_refused_before_anything_is_written(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qkv.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(corpus), *TINY, "--precision", "fp16", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and "invalid choice: 'fp16'" in error
    assert not (tmp_path / "r").exists()


def test_extending_a_finished_run_keeps_its_schedule_and_says_the_extra_steps_train_at_the_floor(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "copy"))
    rates: dict[int, float] = {}
    real_show = train_cli.ProgressLine.show

    def record(self: train_cli.ProgressLine, event: Any) -> None:
        if event.kind == "step":
            rates[event.step] = event.learning_rate
        real_show(self, event)

    monkeypatch.setattr(train_cli.ProgressLine, "show", record)
    result = run_cli(["train", "--resume", str(run), "--steps", "9"])
    assert result.code == 0, result.err
    said = " ".join(result.err.split())
    assert "resuming" in said and "at step 6 of 6" in said
    assert "the learning-rate schedule still ends at step 6, so steps 7–9 train at its floor, 1.0e-04" in said
    assert rates == {7: pytest.approx(1e-4), 8: pytest.approx(1e-4), 9: pytest.approx(1e-4)}
    training = json.loads((run / "checkpoint" / "config.json").read_text())["training"]
    assert training["steps"] == 9 and training["schedule_steps"] == 6


def test_a_flag_that_changes_a_resumed_run_is_named_with_the_old_and_new_value(trained: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "copy"))
    result = run_cli(["train", "--resume", str(run), "--steps", "7", "--lr", "3e-3", "--batch-size", "4"])
    assert result.code == 0, result.err
    said = " ".join(result.err.split())
    assert "changed from the run: --lr 0.001 → 0.003;" in said  # --batch-size 4 is the run's own: not a change
    assert "--batch-size" not in said


def test_a_vocab_the_corpus_cannot_fill_is_said(corpus: Path, tmp_path: Path) -> None:
    arguments = [*TINY, "--steps", "1", "--tokenizer", "bpe", "--vocab", "5000", "--out", str(tmp_path / "r")]
    result = run_cli(["train", str(corpus), *arguments])
    assert result.code == 0, result.err
    vocab = json.loads((tmp_path / "r" / "checkpoint" / "config.json").read_text())["model"]["vocab_size"]
    assert vocab < 5000 and f"vocab: {vocab:,} tokens, fewer than --vocab 5,000" in " ".join(result.err.split())


def test_a_folder_corpus_names_the_files_it_skipped(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(corpus, folder / "sub" / "words.txt")
    (folder / "notes.md").write_text("# not a .txt\n")
    (folder / "empty.txt").write_text("")
    (folder / ".hidden.txt").write_text("hidden words\n")
    result = run_cli(["train", str(folder), *TINY, "--steps", "1", "--out", str(tmp_path / "r")])
    assert result.code == 0, result.err
    said = " ".join(result.err.split())
    assert "skipped 3 files of the folder" in said and ".hidden.txt, empty.txt, notes.md" in said
    assert "words.txt" not in said.split("skipped", 1)[1].split("model:")[0]


def test_the_closing_hint_prompts_with_words_of_the_users_own_validation_text(corpus: Path, tmp_path: Path) -> None:
    result = run_cli(["train", str(corpus), *TINY, "--steps", "1", "--out", str(tmp_path / "r")])
    hint = result.err.strip().splitlines()[-1]
    assert hint.startswith(f"try: qkv generate {tmp_path / 'r'} --prompt ")
    prompt = shlex.split(hint)[-1]
    validation = corpus.read_text()[int(len(corpus.read_text()) * 0.9) :]  # char tokenizer: the last tenth
    assert "ROMEO" not in hint and 0 < len(prompt) <= 16
    assert any(line.startswith(prompt) for line in validation.splitlines()[1:])


def test_prompt_from_takes_the_first_whole_line_and_stops_between_words() -> None:
    assert train_cli.prompt_from("cut line\nROMEO:\nBut soft") == "ROMEO:"
    assert train_cli.prompt_from("…end\n\n  What light through yonder window") == "What light"
    assert train_cli.prompt_from("one line only") == "one line only"
    assert train_cli.prompt_from("\n\n") == ""


def test_every_line_training_prints_fits_80_columns_but_paths(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    long_folder = tmp_path / ("a-rather-long-folder-name-" * 3)
    long_folder.mkdir()
    shutil.copy(corpus, long_folder / "words.txt")
    (long_folder / "skip-me.md").write_text("x")
    arguments = [*TINY, "--steps", "60", "--eval-interval", "5", "--tokenizer", "bpe", "--vocab", "999999"]
    result = run_cli(["train", str(long_folder), *arguments, "--out", str(tmp_path / "r")])
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert any(line.startswith("step ") and "tok/s" in line for line in lines)  # the progress lines are there
    paths = ("checkpoint: ", "loss curve: ", "try: ")
    assert [line for line in lines if len(line) >= 80 and not line.startswith(paths)] == []
