"""The training loop: it lowers the loss, follows the schedule, stops where told, resumes exactly after an
interruption, and stops on a non-finite loss naming the step and the last good checkpoint."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from qkv.errors import ConfigError
from qkv.model import Transformer
from qkv.shapes import Tensor
from qkv.training import (
    TrainConfig,
    TrainEvent,
    TrainingDiverged,
    TrainResult,
    configure_optimizer,
    load_checkpoint,
    load_weights,
    train_step,
)
from qkv.training import loop as loop_module
from qkv.training.data import get_batch
from qkv.training.distributed import Distributed
from qkv.training.schedule import learning_rate

from .conftest import QUICK, Tiny


def interrupt_at(step: int) -> object:
    """An on_event callback that presses Ctrl-C once step ``step`` is reported."""

    def on_event(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == step:
            raise KeyboardInterrupt

    return on_event


def resume(tiny: Tiny, run: Path, config: TrainConfig) -> tuple[Transformer, TrainResult]:
    checkpoint = load_checkpoint(run)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    return model, tiny.train(model, run, config, resume=checkpoint)


def assert_same_losses(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    assert [step for step, _ in a] == [step for step, _ in b]
    assert [loss for _, loss in a] == pytest.approx([loss for _, loss in b], rel=0, abs=1e-6)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def uninterrupted(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> tuple[Transformer, TrainResult]:
    model = tiny.model()
    return model, tiny.train(model, tmp_path_factory.mktemp("full"), QUICK)


def test_a_run_trains_every_step_validates_and_checkpoints_as_configured(
    tiny: Tiny, quick: TrainConfig, tmp_path: Path
) -> None:
    events: list[TrainEvent] = []
    result = tiny.train(tiny.model(), tmp_path, quick, on_event=events.append)
    assert result.stopped_by == "steps" and result.checkpoint == tmp_path / "checkpoint"
    assert [e.step for e in events if e.kind == "step"] == list(range(1, 9))
    assert [e.step for e in events if e.kind == "checkpoint"] == [3, 6, 8]
    assert [step for step, _ in result.progress.validation_losses] == [3, 6, 8]
    assert result.progress.tokens_seen == 8 * quick.batch_size * tiny.model_config.context
    assert load_checkpoint(tmp_path).progress.to_dict() == result.progress.to_dict()


def test_each_step_uses_the_scheduled_learning_rate(tiny: Tiny, quick: TrainConfig, tmp_path: Path) -> None:
    events: list[TrainEvent] = []
    tiny.train(tiny.model(), tmp_path, quick, on_event=events.append)
    assert [e.learning_rate for e in events if e.kind == "step"] == [learning_rate(s, quick) for s in range(8)]


def test_training_lowers_the_loss_on_a_small_text(tiny: Tiny, tmp_path: Path) -> None:
    config = TrainConfig(steps=40, batch_size=8, learning_rate=1e-2, warmup_steps=5, eval_interval=40, eval_batches=4)
    result = tiny.train(tiny.model(), tmp_path, config)
    first, last = result.progress.validation_losses[0][1], result.progress.validation_losses[-1][1]
    losses = [loss for _, loss in result.progress.train_losses]
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5 and first == last  # one validation, at the end


@pytest.mark.parametrize("k", [3, 5])
def test_an_interrupted_run_resumes_to_the_same_losses_and_weights(
    tiny: Tiny, quick: TrainConfig, tmp_path: Path, uninterrupted: tuple[Transformer, TrainResult], k: int
) -> None:
    interrupted = tiny.train(tiny.model(), tmp_path, quick, on_event=interrupt_at(k))
    assert interrupted.stopped_by == "interrupt" and load_checkpoint(tmp_path).progress.step == k
    model, resumed = resume(tiny, tmp_path, quick)
    assert resumed.stopped_by == "steps"
    assert_same_losses(resumed.progress.train_losses, uninterrupted[1].progress.train_losses)
    assert_same_weights(model, uninterrupted[0])


def test_a_ctrl_c_in_the_middle_of_a_step_still_resumes_exactly(
    tiny: Tiny,
    quick: TrainConfig,
    tmp_path: Path,
    uninterrupted: tuple[Transformer, TrainResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real_loss = loop_module.language_model_loss

    def loss_then_ctrl_c(model: nn.Module, inputs: Tensor, targets: Tensor, precision: str) -> Tensor:
        nonlocal calls
        calls += model.training  # training steps only, not validation batches
        loss = real_loss(model, inputs, targets, precision)
        if model.training and calls == 5:  # during step 5, after its batch was drawn and before its update
            signal.raise_signal(signal.SIGINT)
        return loss

    handler = signal.getsignal(signal.SIGINT)
    with monkeypatch.context() as patch:
        patch.setattr(loop_module, "language_model_loss", loss_then_ctrl_c)
        interrupted = tiny.train(tiny.model(), tmp_path, quick)
    assert interrupted.stopped_by == "interrupt" and interrupted.progress.step == 5  # the step was finished
    assert signal.getsignal(signal.SIGINT) is handler  # and Ctrl-C works as before once training returns
    model, resumed = resume(tiny, tmp_path, quick)
    assert_same_losses(resumed.progress.train_losses, uninterrupted[1].progress.train_losses)
    assert_same_weights(model, uninterrupted[0])


def test_resuming_a_finished_run_trains_no_more(
    tiny: Tiny, quick: TrainConfig, uninterrupted: tuple[Transformer, TrainResult]
) -> None:
    run = uninterrupted[1].checkpoint.parent
    _, again = resume(tiny, run, quick)
    assert again.progress.step == 8 and again.progress.train_losses == uninterrupted[1].progress.train_losses


def nan_from_step(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real_loss = loop_module.language_model_loss

    def loss(model: nn.Module, inputs: Tensor, targets: Tensor, precision: str) -> Tensor:
        nonlocal calls
        calls += model.training  # training steps only, not validation batches
        value = real_loss(model, inputs, targets, precision)
        return value * float("nan") if model.training and calls >= step else value

    monkeypatch.setattr(loop_module, "language_model_loss", loss)


def test_a_nan_loss_stops_naming_the_step_and_the_last_good_checkpoint(
    tiny: Tiny, quick: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nan_from_step(5, monkeypatch)
    with pytest.raises(TrainingDiverged, match=rf"nan at step 5\b.*{tmp_path / 'checkpoint'}"):
        tiny.train(tiny.model(), tmp_path, quick)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.progress.step == 3  # the last validation before the loss went bad
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_nan_loss_before_any_checkpoint_says_so(
    tiny: Tiny, quick: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nan_from_step(1, monkeypatch)
    with pytest.raises(TrainingDiverged, match="at step 1; no checkpoint was written yet"):
        tiny.train(tiny.model(), tmp_path, quick)
    assert not (tmp_path / "checkpoint").exists()


def test_a_huge_learning_rate_diverges_with_the_step_named(tiny: Tiny, tmp_path: Path) -> None:
    config = TrainConfig(steps=50, batch_size=4, learning_rate=1e12, min_learning_rate=0, warmup_steps=0)
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at step \d+"):
        tiny.train(tiny.model(), tmp_path, config)


def test_a_time_limit_stops_the_run_and_still_checkpoints(tiny: Tiny, quick: TrainConfig, tmp_path: Path) -> None:
    config = TrainConfig(**{**quick.to_dict(), "time_limit": 1e-9})
    result = tiny.train(tiny.model(), tmp_path, config)
    assert result.stopped_by == "time" and load_checkpoint(tmp_path).progress.step == result.progress.step < 8


def test_a_global_batch_that_does_not_split_evenly_over_processes_is_refused(
    tiny: Tiny, quick: TrainConfig, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"TrainConfig\.batch_size=4 .* 3 processes"):
        tiny.train(tiny.model(), tmp_path, quick, distributed=Distributed(rank=0, world_size=3))


def test_a_second_ctrl_c_stops_at_once(
    tiny: Tiny, quick: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = loop_module.language_model_loss

    def impatient(model: nn.Module, inputs: Tensor, targets: Tensor, precision: str) -> Tensor:
        if model.training and len(steps) == 4:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return real_loss(model, inputs, targets, precision)

    steps: list[TrainEvent] = []
    monkeypatch.setattr(loop_module, "language_model_loss", impatient)
    result = tiny.train(tiny.model(), tmp_path, quick, on_event=lambda e: steps.append(e) if e.kind == "step" else None)
    assert result.stopped_by == "interrupt" and result.progress.step == 4 == load_checkpoint(tmp_path).progress.step


def test_the_optimizer_is_fused_adamw_that_decays_only_matrices(tiny: Tiny, quick: TrainConfig) -> None:
    optimizer = configure_optimizer(tiny.model(), quick)
    decay, no_decay = optimizer.param_groups
    assert optimizer.defaults["fused"]  # one kernel per parameter (benchmarks/train.py: 8% of a step on CPU)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])


def test_the_fused_optimizer_updates_the_weights_as_foreach_does(tiny: Tiny, quick: TrainConfig) -> None:
    fused, reference = tiny.model(), tiny.model()
    fused_optimizer = configure_optimizer(fused, quick)
    reference_optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in reference.parameters() if p.dim() >= 2], "weight_decay": quick.weight_decay},
            {"params": [p for p in reference.parameters() if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=quick.learning_rate,
        betas=(quick.beta1, quick.beta2),
        foreach=True,
    )
    batches = torch.Generator().manual_seed(0)
    for _ in range(3):
        inputs, targets = get_batch(tiny.train_ids, 4, tiny.model_config.context, batches)
        train_step(fused, fused_optimizer, inputs, targets, quick.grad_clip)
        train_step(reference, reference_optimizer, inputs, targets, quick.grad_clip)
    # Key biases are left out: adding b to every key adds q·b to a whole row of scores, which softmax ignores,
    # so their exact gradient is 0 and Adam's update of rounding noise (≈1e-9 over √v ≈ eps) is noise too.
    for (name, x), (_, y) in zip(fused.state_dict().items(), reference.state_dict().items(), strict=True):
        if not name.endswith("to_k.bias"):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)


def test_a_training_step_returns_the_loss_before_its_update(tiny: Tiny, quick: TrainConfig) -> None:
    model = tiny.model()
    optimizer = configure_optimizer(model, quick)
    inputs, targets = get_batch(tiny.train_ids, 4, tiny.model_config.context, torch.Generator().manual_seed(0))
    before = loop_module.language_model_loss(model, inputs, targets).item()
    loss = train_step(model, optimizer, inputs, targets, quick.grad_clip)
    assert loss.item() == pytest.approx(before) and not loss.requires_grad
    assert train_step(model, optimizer, inputs, targets, quick.grad_clip).item() < before  # the update helped
