"""``qkv train``: a run directory with the documented layout, an interrupted run that resumes to the very same
losses, ``runs/latest`` only beside runs kept under ``runs/``, and a diverging run stopped in one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

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
