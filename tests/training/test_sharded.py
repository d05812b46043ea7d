"""``qkv train --shard``: FSDP2 over torchrun's processes trains as one process does (the losses within 1e-4,
the tolerance of the replicated test), writes the checkpoint one process writes, watches the same attention,
and resumes sharded or not to the losses of an uninterrupted run."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import qkv
from qkv.cli.main import main
from qkv.training import load_checkpoint, save_checkpoint
from qkv.training.checkpoint import Progress
from qkv.training.loop import configure_optimizer, train_step
from qkv.training.watch import read_snapshots

from .conftest import QUICK, Tiny, small_text
from .sharded_worker import train_tiny

TORCHRUN = Path(sys.executable).parent / "torchrun"
ROOT = Path(__file__).resolve().parents[2]  # the worker runs as tests.training.sharded_worker from here
TEXT = "the lazy dog"
ARGUMENTS = ["--preset", "tiny", "--context", "16", "--steps", "10", "--eval-interval", "5", "--seed", "3"]
# float32: in bfloat16 a half batch rounds differently from a whole one, which is not what these tests are about
ARGUMENTS += ["--lr", "3e-3", "--warmup", "2", "--precision", "float32", "--watch", TEXT]
needs_torchrun = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")


def torchrun(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Two processes under torchrun (one thread each), from the repository root; the run must succeed."""
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", *arguments]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def train_losses(run: Path) -> list[float]:
    return [loss for _, loss in json.loads((run / "checkpoint" / "progress.json").read_text())["train_losses"]]


def header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """A safetensors file's tensor shapes by name, and its metadata."""
    with safe_open(str(path), "pt") as file:
        return {name: tuple(file.get_slice(name).get_shape()) for name in file.keys()}, file.metadata()  # noqa: SIM118


def thumbs(record: dict[str, object]) -> np.ndarray:
    data = record["thumbs"]
    assert isinstance(data, dict)
    return np.frombuffer(base64.b64decode(data["data"]), dtype=np.uint8).astype(int)


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command trained in this process, unsharded."""
    folder = tmp_path_factory.mktemp("one")
    corpus = folder / "words.txt"
    corpus.write_text(small_text(lines=80))
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", str(corpus), *ARGUMENTS, "--out", str(folder / "run")]) == 0
    return folder / "run"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The same command sharded over two processes: its run and what it printed."""
    folder = tmp_path_factory.mktemp("sharded")
    corpus = folder / "words.txt"
    corpus.write_text(small_text(lines=80))
    done = torchrun("-m", "qkv", "train", str(corpus), *ARGUMENTS, "--shard", "--out", str(folder / "run"))
    return folder / "run", done.stderr


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker's 10 steps in one unsharded process, without a stop."""
    run = tmp_path_factory.mktemp("uninterrupted")
    train_tiny(run, 10)
    return run


@pytest.mark.slow
@needs_torchrun
def test_two_sharded_processes_reach_the_losses_of_one(one: Path, sharded: tuple[Path, str]) -> None:
    run, printed = sharded
    assert train_losses(run) == pytest.approx(train_losses(one), rel=0, abs=1e-4) and len(train_losses(run)) == 10
    assert "2 processes, sharded (FSDP2)" in " ".join(printed.split())  # the line may be folded
    assert printed.count("done (reached the step count)") == 1  # only rank 0 reports


@pytest.mark.slow
@needs_torchrun
def test_a_sharded_run_writes_the_checkpoint_one_process_writes(one: Path, sharded: tuple[Path, str]) -> None:
    run, _ = sharded
    assert sorted(path.name for path in run.iterdir()) == sorted(path.name for path in one.iterdir())
    for name in ("model.safetensors", "state.safetensors"):  # the same tensors, shapes and metadata (tied: once)
        assert header(run / "checkpoint" / name) == header(one / "checkpoint" / name)
    saved, expected = load_checkpoint(run), load_checkpoint(one)
    assert saved.optimizer_groups == expected.optimizer_groups
    for name, tensor in expected.state.items():
        if name.startswith("optimizer."):  # the moments, gathered whole from the two shards
            torch.testing.assert_close(saved.state[name], tensor, rtol=0, atol=1e-4)


@pytest.mark.slow
@needs_torchrun
def test_a_sharded_run_loads_and_generates_as_one_process_trained_it(one: Path, sharded: tuple[Path, str]) -> None:
    run, _ = sharded
    mine, theirs = qkv.load(run), qkv.load(one)
    ids = torch.tensor([mine.encode("the quick brown")])
    torch.testing.assert_close(mine.model(ids), theirs.model(ids), rtol=0, atol=1e-4)
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
        assert main(["generate", str(run), "--prompt", "the", "--tokens", "8", "--seed", "1"]) == 0
    assert out.getvalue().startswith("the")


@pytest.mark.slow
@needs_torchrun
def test_a_sharded_run_watches_what_one_process_watches(one: Path, sharded: tuple[Path, str]) -> None:
    run, _ = sharded
    expected, snapshots = read_snapshots(one), read_snapshots(run)
    assert [record["step"] for record in snapshots] == [record["step"] for record in expected] == [0, 5, 10]
    for a, b in zip(expected, snapshots, strict=True):
        assert np.abs(thumbs(a) - thumbs(b)).max() <= 1  # uint8 cells: a weight 1e-6 away may round the other way
    assert sorted(path.name for path in (run / "watch").iterdir()) == [f"step-{s:06d}.json" for s in (0, 5, 10)]


@pytest.mark.slow
@needs_torchrun
def test_a_sharded_run_resumed_unsharded_reaches_the_losses_of_an_uninterrupted_run(
    uninterrupted: Path, tmp_path: Path
) -> None:
    torchrun("-m", "tests.training.sharded_worker", str(tmp_path), "--steps", "5", "--shard")
    train_tiny(tmp_path, 10, resume=True)
    assert train_losses(tmp_path) == pytest.approx(train_losses(uninterrupted), rel=0, abs=1e-4)


@pytest.mark.slow
@needs_torchrun
def test_an_unsharded_run_resumed_sharded_reaches_the_losses_of_an_uninterrupted_run(
    uninterrupted: Path, tmp_path: Path
) -> None:
    train_tiny(tmp_path, 5)
    torchrun("-m", "tests.training.sharded_worker", str(tmp_path), "--steps", "10", "--resume", "--shard")
    assert train_losses(tmp_path) == pytest.approx(train_losses(uninterrupted), rel=0, abs=1e-4)


@pytest.mark.slow
@needs_torchrun
def test_a_sharded_compiled_run_trains_like_an_eager_one(uninterrupted: Path, tmp_path: Path) -> None:
    torchrun("-m", "tests.training.sharded_worker", str(tmp_path), "--steps", "3", "--shard", "--compile")
    assert train_losses(tmp_path) == pytest.approx(train_losses(uninterrupted)[:3], rel=0, abs=1e-4)
    assert load_checkpoint(tmp_path).train_config.compile  # type: ignore[union-attr]


def test_shard_without_torchrun_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    corpus = tmp_path / "words.txt"
    corpus.write_text(small_text(lines=80))
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["train", str(corpus), "--preset", "tiny", "--shard", "--out", str(tmp_path / "run")])
    assert code == 2 and len(err.getvalue().strip().splitlines()) == 1
    assert "torchrun --nproc-per-node N -m qkv train … --shard" in err.getvalue() and "drop --shard" in err.getvalue()
    assert not (tmp_path / "run").exists()


def test_a_gathered_state_is_saved_as_the_model_itself_would_be(tiny: Tiny, tmp_path: Path) -> None:
    """What a sharded run saves (state dicts; a tied weight held once, under both names) is the checkpoint that
    the model and its optimizer themselves give."""
    model = tiny.model()
    optimizer = configure_optimizer(model, QUICK)
    ids = tiny.train_ids[: 4 * 17].view(4, 17)  # (B, T + 1)
    train_step(model, optimizer, ids[:, :-1], ids[:, 1:], QUICK.grad_clip)
    weights = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    weights["lm_head.weight"] = weights["embedding.tokens.weight"]  # tied, as gather_full_state gives it
    for name, saved_model, saved_optimizer in [
        ("module", model, optimizer),
        ("dicts", weights, optimizer.state_dict()),
    ]:
        torch.manual_seed(0)  # the same random-generator state saved in both
        save_checkpoint(
            tmp_path / name,
            model=saved_model,
            model_config=tiny.model_config,
            tokenizer_json=tiny.tokenizer_json,
            progress=Progress(),
            optimizer=saved_optimizer,
        )
    module, dicts = tmp_path / "module" / "checkpoint", tmp_path / "dicts" / "checkpoint"
    for name in ("model.safetensors", "state.safetensors"):
        assert header(dicts / name) == header(module / name)
    assert (dicts / "config.json").read_text() == (module / "config.json").read_text()  # the optimizer's groups
    saved, expected = load_checkpoint(dicts), load_checkpoint(module)
    for key, tensor in expected.state.items():
        assert torch.equal(saved.state[key], tensor), key
    assert torch.equal(qkv.load(dicts).model.embedding.tokens.weight, model.embedding.tokens.weight)
