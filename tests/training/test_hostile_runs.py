"""Runs a user (or a damaged disk) can get wrong: a checkpoint config that does not fit its weights, an optimizer
state of another model, a random-generator state of another size, a resume on other text, a batch no memory can
hold, a seed beyond 64 bits, and two writers in one run directory. Each is one InputError, before any harm."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from qkv.errors import InputError, TooLargeError
from qkv.model import Transformer
from qkv.training import CheckpointError, TrainConfig, TrainEvent, load_checkpoint, load_weights
from qkv.training.checkpoint import restore_training_state
from qkv.training.data import fingerprint
from qkv.training.lock import LOCK_FILE, RunDirectoryError, check_run_dir, hold_run
from qkv.training.loop import configure_optimizer, step_memory

from .conftest import QUICK, Tiny

FOUR = dataclasses.replace(QUICK, steps=4)


@pytest.fixture
def run(tiny: Tiny, tmp_path: Path) -> Path:
    """A run trained for four steps (a checkpoint at step 3 and at step 4)."""
    tiny.train(tiny.model(), tmp_path / "run", FOUR)
    return tmp_path / "run"


def edit_model_config(run: Path, **changes: object) -> None:
    path = run / "checkpoint" / "config.json"
    config = json.loads(path.read_text())
    config["model"].update(changes)
    path.write_text(json.dumps(config))


def resumed(tiny: Tiny, run: Path, config: TrainConfig = QUICK, **options: object) -> list[TrainEvent]:
    checkpoint = load_checkpoint(run)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    events: list[TrainEvent] = []
    tiny.train(model, run, config, resume=checkpoint, on_event=events.append, **options)
    return events


# ------------------------------------------------------------------------------------------------------------
# A config.json that asks for more than its weights hold is refused from the weights' header, before building.


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layers": 100_000}, r"config.json asks for 100,000 layers, the weights hold 2"),
        ({"layers": 10**12}, r"config.json asks for 1,000,000,000,000 layers, the weights hold 2"),
        ({"width": 10**9}, r"embedding.tokens.weight: the config needs \(\d+, 1000000000\), the weights hold"),
        ({"vocab_size": 10**12}, r"embedding.tokens.weight: the config needs \(1000000000000, 32\)"),
    ],
    ids=["100k layers", "1e12 layers", "width 1e9", "vocab 1e12"],
)
def test_a_config_asking_for_more_than_its_weights_is_refused_before_any_model_is_built(
    run: Path, changes: dict[str, int], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_model_config(run, **changes)
    from qkv.model import transformer

    monkeypatch.setattr(transformer, "Block", None)  # building a block would fail: nothing is built
    with pytest.raises(CheckpointError, match=r"weights do not fit the model config \(" + message) as caught:
        load_checkpoint(run)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------------------------
# An optimizer or generator state that does not belong to the model is one CheckpointError.


def test_optimizer_state_of_another_model_is_refused_before_loading(tiny: Tiny, run: Path) -> None:
    checkpoint = load_checkpoint(run)
    other = Transformer(dataclasses.replace(tiny.model_config, width=48))
    with pytest.raises(CheckpointError, match=r"state.safetensors: the optimizer's exp_avg.* belongs to another model"):
        restore_training_state(checkpoint, configure_optimizer(other, QUICK))


def test_optimizer_groups_of_another_shape_are_refused(tiny: Tiny, run: Path) -> None:
    checkpoint = load_checkpoint(run)
    model = tiny.model()
    one_group = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match=r"parameter groups of \[\d+, \d+\] tensors, this model's has \[\d+\]"):
        restore_training_state(checkpoint, one_group)


def test_optimizer_state_for_more_parameters_than_the_model_has_is_refused(tiny: Tiny, run: Path) -> None:
    checkpoint = load_checkpoint(run)
    checkpoint.state["optimizer.999.exp_avg"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"optimizer state for parameter 999, but .* has \d+ parameters"):
        restore_training_state(checkpoint, configure_optimizer(tiny.model(), QUICK))


def test_a_random_generator_state_of_another_size_is_refused(tiny: Tiny, run: Path) -> None:
    checkpoint = load_checkpoint(run)
    checkpoint.state["rng.batches"] = torch.zeros(7, dtype=torch.uint8)
    with pytest.raises(CheckpointError, match=r"state.safetensors: a saved random-generator state is not one"):
        restore_training_state(checkpoint, None, {"batches": torch.Generator()})


def test_resuming_with_a_swapped_optimizer_state_is_one_line_through_the_loop(
    tiny: Tiny, run: Path, tmp_path: Path
) -> None:
    wide = dataclasses.replace(tiny, model_config=dataclasses.replace(tiny.model_config, width=48))
    wide.train(wide.model(), tmp_path / "wide", FOUR)
    (run / "checkpoint" / "state.safetensors").write_bytes(
        (tmp_path / "wide" / "checkpoint" / "state.safetensors").read_bytes()
    )
    with pytest.raises(CheckpointError, match=r"belongs to another model") as caught:
        resumed(tiny, run)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------------------------
# The data a run was trained on is fingerprinted; a resume on other data says so.


def test_a_run_records_the_fingerprint_of_its_token_ids(tiny: Tiny, run: Path) -> None:
    progress = json.loads((run / "checkpoint" / "progress.json").read_text())
    assert progress["data_sha256"] == fingerprint(tiny.train_ids, tiny.validation_ids)


def test_the_fingerprint_sees_the_order_of_the_same_characters() -> None:
    ids = torch.tensor([1, 2, 3, 4])
    assert fingerprint(ids, ids) == fingerprint(ids.clone(), ids.clone())
    assert fingerprint(ids, ids) != fingerprint(ids.flip(0), ids)
    assert fingerprint(ids[:2], ids[2:]) != fingerprint(ids[:3], ids[3:])  # where the split falls counts too


def test_resuming_on_the_same_data_reports_nothing_unusual(tiny: Tiny, run: Path) -> None:
    assert [event.kind for event in resumed(tiny, run) if event.kind == "data_changed"] == []


def test_resuming_on_text_rewritten_with_the_same_characters_reports_that_the_data_changed(
    tiny: Tiny, run: Path
) -> None:
    shuffled = dataclasses.replace(tiny, train_ids=tiny.train_ids.flip(0))
    events = resumed(shuffled, run)
    assert events[0].kind == "data_changed" and events[0].step == 4
    assert json.loads((run / "checkpoint" / "progress.json").read_text())["data_sha256"] == fingerprint(
        shuffled.train_ids, shuffled.validation_ids
    )  # from now on the run continues on the new data


def test_a_checkpoint_from_before_fingerprints_resumes_without_a_warning(tiny: Tiny, run: Path) -> None:
    path = run / "checkpoint" / "progress.json"
    progress = json.loads(path.read_text())
    del progress["data_sha256"]
    path.write_text(json.dumps(progress))
    assert "data_changed" not in [event.kind for event in resumed(tiny, run)]


# ------------------------------------------------------------------------------------------------------------
# Sizes: a batch no memory can hold, a seed beyond 64 bits.


def test_a_batch_no_memory_can_hold_is_refused_before_the_first_step(tiny: Tiny, tmp_path: Path) -> None:
    events: list[TrainEvent] = []
    config = dataclasses.replace(QUICK, batch_size=10**12)
    with pytest.raises(TooLargeError, match=r"^a training step on batches of 1,000,000,000,000 sequences .*batch size"):
        tiny.train(tiny.model(), tmp_path / "huge", config, on_event=events.append)
    assert events == [] and not (tmp_path / "huge").exists()  # nothing was written, not even the directory


def test_the_step_memory_estimate_is_a_lower_bound_that_grows_with_the_batch(tiny: Tiny) -> None:
    parameters = tiny.model_config.parameter_count()
    assert step_memory(tiny.model_config, 1) > 12 * parameters
    assert step_memory(tiny.model_config, 8) > step_memory(tiny.model_config, 4)


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70])
def test_a_seed_torch_cannot_take_is_a_config_error(seed: int) -> None:
    with pytest.raises(InputError, match=r"TrainConfig.seed must be a whole number from 0 to 2\*\*64 - 1"):
        TrainConfig(seed=seed)


def test_the_largest_seed_trains(tiny: Tiny, tmp_path: Path) -> None:
    tiny.train(tiny.model(), tmp_path / "seed", dataclasses.replace(QUICK, steps=1, seed=2**64 - 1))


# ------------------------------------------------------------------------------------------------------------
# One writer per run directory.


HOLD = """
import sys
from qkv.training.lock import hold_run
with hold_run(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def holder(run: Path) -> subprocess.Popen[str]:
    """Another process holding ``run`` until its stdin closes (or it is killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_run_another_process_trains_into_is_refused_naming_it(tiny: Tiny, run: Path) -> None:
    other = holder(run)
    try:
        with pytest.raises(RunDirectoryError, match=rf"{run} is in use: another qkv training \(process {other.pid}\)"):
            resumed(tiny, run)
        with pytest.raises(RunDirectoryError, match=r"is in use"):
            tiny.train(tiny.model(), run, FOUR)
    finally:
        other.kill()
        other.wait()
    # The killed holder left its lock file behind; the kernel released its lock, so the run is free again.
    assert (run / LOCK_FILE).exists()
    resumed(tiny, run, dataclasses.replace(QUICK, steps=5))
    assert load_checkpoint(run).progress.step == 5 and not (run / LOCK_FILE).exists()


def test_a_holder_that_exits_cleanly_removes_its_lock_file(tmp_path: Path) -> None:
    other = holder(tmp_path / "run")
    assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(other.pid)
    assert other.communicate("")[1] is None and other.returncode == 0
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_holding_is_reentrant_in_one_thread_and_exclusive_across_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            with hold_run(tmp_path / "run"):
                pass
        except RunDirectoryError as error:
            errors.append(error)

    with hold_run(tmp_path / "run"), hold_run(tmp_path / "run"):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "is in use" in str(errors[0])
    with hold_run(tmp_path / "run"):  # released: free again
        pass


@pytest.mark.parametrize("below", [False, True], ids=["a file", "below a file"])
def test_a_run_directory_that_is_a_file_or_lies_below_one_is_refused(tmp_path: Path, below: bool) -> None:
    (tmp_path / "notes.txt").write_text("not a directory")
    target = tmp_path / "notes.txt" / "run" / "deeper" if below else tmp_path / "notes.txt"
    expected = f"lies below {tmp_path / 'notes.txt'}, which is a file" if below else "is a file"
    with pytest.raises(RunDirectoryError, match=rf"^cannot train into {target}: it {expected}; choose a directory$"):
        check_run_dir(target)
    with pytest.raises(RunDirectoryError, match="which is a file" if below else "is a file"), hold_run(target):
        pass
