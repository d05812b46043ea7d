"""Checkpoints: a fixed layout of safetensors and JSON, exact round trips, nothing unpickled, atomic saves,
recovery after a crash between renames, and every kind of damage refused with the path named."""

from __future__ import annotations

import errno
import json
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from qkv.cli.main import main
from qkv.model import Transformer
from qkv.training import CheckpointError, Progress, TrainConfig, find_checkpoint, load_checkpoint, load_weights
from qkv.training import checkpoint as checkpoint_module
from qkv.training.checkpoint import FILES, restore_training_state, save_checkpoint
from qkv.training.loop import configure_optimizer

from .conftest import Tiny

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def stepped(tiny: Tiny, seed: int) -> tuple[Transformer, torch.optim.AdamW]:
    """A model and an optimizer after one step, so that weights differ by seed and the optimizer has moments."""
    model = tiny.model()
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    optimizer = configure_optimizer(model, TrainConfig())
    model(tiny.train_ids[None, :16]).square().mean().backward()
    optimizer.step()
    return model, optimizer


def save(tiny: Tiny, run: Path, model: Transformer, optimizer: torch.optim.AdamW, step: int) -> Path:
    return save_checkpoint(
        run,
        model=model,
        model_config=tiny.model_config,
        tokenizer_json=tiny.tokenizer_json,
        progress=Progress(step=step, tokens_seen=step * 64, train_losses=[(step, 2.5)]),
        train_config=TrainConfig(steps=99),
        optimizer=optimizer,
        generators={"batches": torch.Generator().manual_seed(step)},
    )


def loaded_model(path: Path) -> Transformer:
    checkpoint = load_checkpoint(path)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    return model


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    a_state, b_state = a.state_dict(), b.state_dict()
    return a_state.keys() == b_state.keys() and all(torch.equal(a_state[k], b_state[k]) for k in a_state)


@pytest.fixture
def saved(tiny: Tiny, tmp_path: Path) -> tuple[Path, Transformer]:
    model, optimizer = stepped(tiny, seed=1)
    save(tiny, tmp_path / "run", model, optimizer, step=1)
    return tmp_path / "run", model


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.startswith(".checkpoint.tmp-"))


# ------------------------------------------------------------------------------------------------------------
# Layout and round trips.


def test_a_checkpoint_is_exactly_the_five_documented_files(saved: tuple[Path, Transformer]) -> None:
    run, _ = saved
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint"]
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == sorted(FILES)


def read_safetensors_header(path: Path) -> dict[str, object]:
    """The safetensors format read by hand: an 8-byte little-endian length, a JSON header, then raw bytes."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header: dict[str, object] = json.loads(data[8 : 8 + length])
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]  # type: ignore[index]
    assert len(data) == 8 + length + max(ends)  # nothing after the tensors: no pickle hides in the file
    return header


@pytest.mark.parametrize("name", ["model.safetensors", "state.safetensors"])
def test_tensor_files_are_plain_safetensors(saved: tuple[Path, Transformer], name: str) -> None:
    header = read_safetensors_header(saved[0] / "checkpoint" / name)
    assert header["__metadata__"]["format"] == "qkv-checkpoint"  # type: ignore[index]
    assert all(entry["dtype"] in {"F32", "I64", "U8"} for k, entry in header.items() if k != "__metadata__")  # type: ignore[index]


def test_json_files_parse_and_say_what_they_are(saved: tuple[Path, Transformer], tiny: Tiny) -> None:
    directory = saved[0] / "checkpoint"
    config = json.loads((directory / "config.json").read_text())
    assert (config["format"], config["format_version"]) == ("qkv-checkpoint", 1)
    assert config["model"] == tiny.model_config.to_dict()
    assert json.loads((directory / "progress.json").read_text())["step"] == 1
    assert (directory / "tokenizer.json").read_text() == tiny.tokenizer_json


def test_weights_round_trip_exactly(saved: tuple[Path, Transformer]) -> None:
    run, model = saved
    restored = loaded_model(run)
    assert same_weights(restored, model)
    assert restored.lm_head is not None and restored.lm_head.weight is restored.embedding.tokens.weight  # still tied


def test_optimizer_and_generator_state_round_trip_exactly(tiny: Tiny, tmp_path: Path) -> None:
    model, optimizer = stepped(tiny, seed=2)
    generator = torch.Generator().manual_seed(11)
    torch.randint(10, (5,), generator=generator)  # advanced past its seed
    save_checkpoint(
        tmp_path,
        model=model,
        model_config=tiny.model_config,
        tokenizer_json=tiny.tokenizer_json,
        progress=Progress(step=1),
        optimizer=optimizer,
        generators={"batches": generator},
    )
    fresh_model = loaded_model(tmp_path)
    fresh_optimizer, fresh_generator = configure_optimizer(fresh_model, TrainConfig()), torch.Generator()
    restore_training_state(load_checkpoint(tmp_path), fresh_optimizer, {"batches": fresh_generator})
    before, after = optimizer.state_dict(), fresh_optimizer.state_dict()
    as_json = json.dumps  # JSON holds the groups: betas come back as a list, not a tuple
    assert as_json(before["param_groups"], sort_keys=True) == as_json(after["param_groups"], sort_keys=True)
    for index, state in before["state"].items():
        assert all(torch.equal(value, after["state"][index][name]) for name, value in state.items())
    assert torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=fresh_generator))


def test_a_pickle_in_place_of_the_weights_is_refused_and_never_unpickled(
    saved: tuple[Path, Transformer], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, model = saved
    directory = run / "checkpoint"
    state = (directory / "state.safetensors").read_bytes()
    torch.save(model.state_dict(), directory / "model.safetensors")
    torch.save({"rng.torch": torch.get_rng_state()}, directory / "state.safetensors")
    unpickled: list[str] = []

    def refuse(name: str) -> Callable[..., object]:
        def called(*args: object, **kwargs: object) -> object:
            unpickled.append(name)
            raise AssertionError(f"{name} was called on a checkpoint")

        return called

    for owner, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(owner, name, refuse(name))
    with pytest.raises(CheckpointError, match=r"state\.safetensors"):
        load_checkpoint(run)
    (directory / "state.safetensors").write_bytes(state)
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        loaded_model(run)
    assert unpickled == []


# ------------------------------------------------------------------------------------------------------------
# Atomic saves.


def fail_midway(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Make the next save fail with a full disk at ``where``."""
    if where in ("save_model", "save_file", "_write_json"):

        def full(*args: object, **kwargs: object) -> None:
            raise ENOSPC

        monkeypatch.setattr(checkpoint_module, where, full)
        return
    failing_call = {"rename 1": 1, "rename 2": 2}[where]
    calls = 0
    real_rename = os.rename

    def rename(source: object, target: object) -> None:
        nonlocal calls
        calls += 1
        if calls == failing_call:
            raise ENOSPC
        real_rename(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)


@pytest.mark.parametrize("where", ["save_model", "save_file", "_write_json", "rename 1", "rename 2"])
def test_a_failed_save_leaves_the_previous_checkpoint_intact_and_no_temporary_files(
    saved: tuple[Path, Transformer], tiny: Tiny, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    run, first_model = saved
    second_model, second_optimizer = stepped(tiny, seed=2)
    with monkeypatch.context() as patch:
        fail_midway(patch, where)
        with pytest.raises(OSError, match="No space left on device"):
            save(tiny, run, second_model, second_optimizer, step=2)
    assert load_checkpoint(run).progress.step == 1
    assert same_weights(loaded_model(run), first_model)
    assert leftovers(run) == []


def test_the_next_save_after_a_failed_one_succeeds(
    saved: tuple[Path, Transformer], tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = saved
    model, optimizer = stepped(tiny, seed=3)
    with monkeypatch.context() as patch:
        fail_midway(patch, "rename 2")
        with pytest.raises(OSError):
            save(tiny, run, model, optimizer, step=2)
    save(tiny, run, model, optimizer, step=3)
    assert load_checkpoint(run).progress.step == 3
    assert same_weights(loaded_model(run), model)


def test_a_crash_between_the_renames_is_recovered_from_the_old_copy(saved: tuple[Path, Transformer]) -> None:
    run, model = saved
    (run / "checkpoint").rename(run / ".checkpoint.old-x1y2")
    assert find_checkpoint(run) == run / ".checkpoint.old-x1y2"
    assert same_weights(loaded_model(run), model)


def test_a_successful_save_replaces_the_checkpoint_and_leaves_nothing_beside_it(
    saved: tuple[Path, Transformer], tiny: Tiny
) -> None:
    run, _ = saved
    model, optimizer = stepped(tiny, seed=4)
    assert save(tiny, run, model, optimizer, step=2) == run / "checkpoint"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint"]
    assert same_weights(loaded_model(run), model)


# ------------------------------------------------------------------------------------------------------------
# Damage: each kind is a CheckpointError naming the path, and through the CLI one line and exit status 2.


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        config = json.loads((directory / "config.json").read_text())
        config.update(changes)
        (directory / "config.json").write_text(json.dumps(config))

    return edit


def edit_model_config(**changes: object) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        config = json.loads((directory / "config.json").read_text())
        config["model"].update(changes)
        (directory / "config.json").write_text(json.dumps(config))

    return edit


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "model.safetensors cut in half": (lambda d: truncate(d / "model.safetensors"), "model.safetensors"),
    "state.safetensors cut in half": (lambda d: truncate(d / "state.safetensors"), "state.safetensors"),
    "model.safetensors empty": (lambda d: (d / "model.safetensors").write_bytes(b""), "model.safetensors"),
    "config.json corrupted": (lambda d: (d / "config.json").write_text('{"format": "qkv-chec'), "config.json"),
    "config.json not UTF-8": (lambda d: (d / "config.json").write_bytes(b"\xff\xfe{}"), "config.json"),
    "progress.json corrupted": (lambda d: (d / "progress.json").write_text("[1, 2"), "progress.json"),
    "progress.json missing a field": (lambda d: (d / "progress.json").write_text('{"step": 3}'), "checkpoint"),
    "tokenizer.json corrupted": (lambda d: (d / "tokenizer.json").write_text('{"kind": "ch'), "tokenizer.json"),
    "tokenizer.json not UTF-8": (lambda d: (d / "tokenizer.json").write_bytes(b"\xff{}"), "tokenizer.json"),
    "tokenizer.json of an unknown kind": (
        lambda d: (d / "tokenizer.json").write_text('{"kind": "wordpiece", "version": 1}'),
        "tokenizer.json",
    ),
    **{f"{name} missing": ((lambda d, n=name: (d / n).unlink()), name) for name in FILES},
    "format_version from another version": (edit_config(format_version=2), "version 2"),
    "format of another program": (edit_config(format="something-else"), "not a qkv checkpoint"),
    "invalid model config": (edit_model_config(width=-4), "TransformerConfig.width"),
    "weights that do not fit the config": (edit_model_config(width=48), "do not fit"),
    "config asking for 100,000 layers": (edit_model_config(layers=100_000), "asks for 100,000 layers"),
    "config asking for a width of 10⁹": (edit_model_config(width=10**9), "needs (28, 1000000000)"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_is_refused_naming_the_path(saved: tuple[Path, Transformer], damage: str) -> None:
    run, _ = saved
    harm, what = DAMAGE[damage]
    harm(run / "checkpoint")
    with pytest.raises(CheckpointError) as caught:
        loaded_model(run)
    assert str(run / "checkpoint") in str(caught.value) and what in str(caught.value)


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: p.mkdir(), "not a qkv checkpoint"),
        (lambda p: (p.mkdir(), (p / "notes.txt").write_text("hello")), "not a qkv checkpoint"),
        (lambda p: p.write_text("a file"), "not a file"),
        (lambda p: None, "no such checkpoint"),
    ],
    ids=["empty directory", "directory of other files", "a file", "nothing there"],
)
def test_what_is_not_a_checkpoint_is_refused_naming_the_path(
    tmp_path: Path, make: Callable[[Path], object], what: str
) -> None:
    make(tmp_path / "thing")
    with pytest.raises(CheckpointError, match=what) as caught:
        load_checkpoint(tmp_path / "thing")
    assert str(tmp_path / "thing") in str(caught.value)


@pytest.fixture
def no_traceback(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[list[str]], str]]:
    def run(argv: list[str]) -> str:
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert len(captured.err.strip().splitlines()) == 1, captured.err
        assert captured.out == ""
        return captured.err

    yield run


@pytest.mark.parametrize("damage", DAMAGE)
def test_generate_from_a_damaged_checkpoint_exits_2_with_one_line(
    saved: tuple[Path, Transformer], damage: str, no_traceback: Callable[[list[str]], str]
) -> None:
    run, _ = saved
    DAMAGE[damage][0](run / "checkpoint")
    error = no_traceback(["generate", str(run), "--tokens", "3"])
    assert error.startswith("qkv generate: error: ") and str(run / "checkpoint") in error


def test_generate_from_a_file_exits_2_with_one_line(tmp_path: Path, no_traceback: Callable[[list[str]], str]) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not a directory")
    error = no_traceback(["generate", str(tmp_path / "model.safetensors")])
    assert error.startswith("qkv generate: error: ") and str(tmp_path / "model.safetensors") in error
