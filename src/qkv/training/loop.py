"""The training loop, as a few small named functions: configure_optimizer, estimate_loss, train_step, train.

The loop reports what happens through ``on_event`` (a progress bar in the CLI, a list in tests) and never
prints. It stops at ``steps`` or ``time_limit``, checkpoints at every validation and at the end, saves and
stops cleanly on Ctrl-C, and stops with the step and the last good checkpoint named if the loss is not finite.
With ``config.watch``, a text's attention is stored at the start and at every validation (:mod:`.watch`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from qkv.errors import SEED_LIMIT, ConfigError, InputError
from qkv.inspection.trace import trace
from qkv.model.config import TransformerConfig
from qkv.model.memory import check_memory
from qkv.shapes import Tensor
from qkv.training.checkpoint import (
    Checkpoint,
    Progress,
    gather_full_state,
    restore_training_state,
    save_checkpoint,
)
from qkv.training.compiling import can_compile, resolve_compile
from qkv.training.config import TrainConfig
from qkv.training.data import fingerprint, get_batch
from qkv.training.distributed import Distributed, shard_model, whole_root
from qkv.training.lock import hold_run
from qkv.training.precision import mixed_precision, resolve_precision
from qkv.training.schedule import learning_rate
from qkv.training.watch import Watch

__all__ = [
    "CompileFailed",
    "TrainEvent",
    "TrainResult",
    "TrainingDiverged",
    "check_step_fits",
    "configure_optimizer",
    "estimate_loss",
    "step_memory",
    "train",
    "train_step",
]


class TrainingDiverged(InputError, RuntimeError):
    """The loss stopped being a finite number; the message names the step and the last good checkpoint."""


class CompileFailed(InputError, RuntimeError):
    """``torch.compile`` could not compile the model (the message says so and how to train without it)."""


@dataclass(frozen=True)
class TrainEvent:
    """One thing that happened: a training step, a validation, a checkpoint, or the end; or, before the first
    step of a resume, ``data_changed``: the token ids differ from those the run was trained on (their
    :func:`~qkv.training.data.fingerprint`), so training goes on, on the new data, but not exactly as it would
    have gone on uninterrupted."""

    kind: Literal["step", "validation", "checkpoint", "done", "data_changed"]
    step: int
    total_steps: int
    loss: float = math.nan
    learning_rate: float = math.nan
    tokens_per_second: float = math.nan
    elapsed_seconds: float = 0.0
    path: Path | None = None


@dataclass(frozen=True)
class TrainResult:
    progress: Progress
    checkpoint: Path
    stopped_by: Literal["steps", "time", "interrupt"]


def configure_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, decaying matrices (weights, embeddings) but not biases or norm gains."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for parameter in model.parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    lr, betas = config.learning_rate, (config.beta1, config.beta2)
    try:
        # One kernel updates a whole parameter (moments, bias correction, decay, step), where foreach runs a
        # dozen separate ops per parameter: the fastest update on the CPU (BENCHMARKS.md, training).
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    except RuntimeError:  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)


def language_model_loss(model: nn.Module, inputs: Tensor, targets: Tensor, precision: str = "float32") -> Tensor:
    """Mean cross-entropy of next-token predictions; the forward pass in ``precision``, the loss in float32."""
    device = next(model.parameters()).device
    with mixed_precision(precision, device):
        logits = model(inputs.to(device, non_blocking=True))  # (B, T, V)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.to(device).flatten())  # (B·T, V) against (B·T,)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    grad_clip: float,
    precision: str = "float32",
) -> Tensor:
    """One optimizer step on one batch ``(B, T)``: forward, loss, backward, clip the gradient norm, update.

    Returns the loss before the update (detached). ``qkv train`` runs exactly this, and ``benchmarks/train.py``
    times it. ``precision`` is the forward pass's (:mod:`qkv.training.precision`); weights, gradients and the
    optimizer stay float32.
    """
    loss = language_model_loss(model, inputs, targets, precision)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


def step_memory(model_config: TransformerConfig, batch_size: int, shards: int = 1) -> int:
    """A lower bound on the bytes one training step adds to a model's weights: gradients and AdamW's two moments
    (12 bytes a parameter, a ``shards``-th of them when the model is sharded over that many processes), the
    activations kept for the backward pass (in each block the norms' inputs, queries, keys, values, the
    attention output and the MLP's hidden layer before and after its activation) and the logits with their
    log-softmax and gradient. A real step takes more (temporaries the bound leaves out); a step whose lower
    bound does not fit certainly cannot run."""
    D, F, V = model_config.width, model_config.hidden_width, model_config.vocab_size
    tokens = batch_size * model_config.context
    per_token = 3 * V + model_config.layers * (8 * D + 2 * F) + 2 * D  # float32 values kept per token
    return 12 * model_config.parameter_count() // shards + 4 * tokens * per_token


def check_step_fits(
    model_config: TransformerConfig,
    batch_size: int,
    device: torch.device,
    processes: int = 1,
    *,
    sharded: bool = False,
) -> None:
    """Refuse (:class:`~qkv.errors.TooLargeError`) batches whose :func:`step_memory` exceeds the free memory of
    ``device``, where each of ``processes`` takes an equal slice (and, ``sharded``, a slice of the model)."""
    check_memory(
        step_memory(model_config, batch_size // processes, processes if sharded else 1),
        f"a training step on batches of {batch_size:,} sequences of {model_config.context:,} tokens",
        "lower the batch size (or the context)",
        device,
    )


@torch.no_grad()
def estimate_loss(model: nn.Module, ids: Tensor, config: TrainConfig, context: int) -> float:
    """Mean loss over ``eval_batches`` batches drawn with a fixed seed (the same batches every time)."""
    generator = torch.Generator().manual_seed((config.seed + 1) % SEED_LIMIT)
    was_training = model.training
    model.eval()
    losses = [
        language_model_loss(model, *get_batch(ids, config.batch_size, context, generator), config.precision).item()
        for _ in range(config.eval_batches)
    ]
    model.train(was_training)
    return sum(losses) / len(losses)


@contextlib.contextmanager
def _ctrl_c_between_steps() -> Iterator[Callable[[], bool]]:
    """Hold a Ctrl-C (SIGINT) until the step it lands in is complete; yield "was Ctrl-C pressed?".

    A KeyboardInterrupt raised wherever the signal lands (in the forward pass, between the batch draw and the
    update) would leave weights, optimizer and batch generator at different steps, and the checkpoint saved on
    interrupt would not resume exactly. A second Ctrl-C raises at once. Outside the main thread, where Python
    cannot take the signal, nothing changes.
    """
    pressed = False

    def hold(signum: int, frame: object) -> None:
        nonlocal pressed
        if pressed:
            raise KeyboardInterrupt
        pressed = True

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield lambda: pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def train(
    model: nn.Module,
    *,
    model_config: TransformerConfig,
    tokenizer_json: str,
    train_ids: Tensor,
    validation_ids: Tensor,
    config: TrainConfig,
    run_dir: str | Path,
    resume: Checkpoint | None = None,
    on_event: Callable[[TrainEvent], None] = lambda event: None,
    distributed: Distributed = Distributed(),
) -> TrainResult:
    """Train ``model`` until ``config.steps`` (counting steps done before a resume) or ``config.time_limit``.

    Under ``torchrun`` (``distributed.enabled``) each rank trains a DistributedDataParallel replica on its
    slice of the same global batch, or with ``distributed.shard`` its FSDP2 shard of the model
    (:mod:`qkv.training.distributed`); only rank 0 writes checkpoints (whole, either way) and reports events.
    ``run_dir`` is held for the whole training (:func:`~qkv.training.lock.hold_run`): a second training into it
    is refused.
    """
    with hold_run(run_dir) if distributed.is_main else contextlib.nullcontext():
        return _train(
            model,
            model_config=model_config,
            tokenizer_json=tokenizer_json,
            train_ids=train_ids,
            validation_ids=validation_ids,
            config=config,
            run_dir=run_dir,
            resume=resume,
            on_event=on_event,
            distributed=distributed,
        )


def _train(
    model: nn.Module,
    *,
    model_config: TransformerConfig,
    tokenizer_json: str,
    train_ids: Tensor,
    validation_ids: Tensor,
    config: TrainConfig,
    run_dir: str | Path,
    resume: Checkpoint | None,
    on_event: Callable[[TrainEvent], None],
    distributed: Distributed,
) -> TrainResult:
    context = model_config.context
    # where the steps run: a sharded model moves there as it is sharded (below), from wherever it was built
    device = distributed.device() if distributed.shard else next(model.parameters()).device
    # "auto" precision and compile become concrete here, so that the checkpoint records them and a resume
    # computes alike
    steps_left = config.steps - (resume.progress.step if resume is not None else 0)
    compiled = resolve_compile(config.compile, steps_left, device.type)
    config = replace(config, precision=resolve_precision(config.precision, device), compile=compiled)
    if compiled and device.type == "cpu" and not can_compile("cpu"):  # said before the first step, not in it
        raise CompileFailed("torch.compile needs a C++ compiler on the PATH (g++, or $CXX); train without --compile")
    if config.batch_size % distributed.world_size:
        raise ConfigError(
            f"TrainConfig.batch_size={config.batch_size} must be divisible by the {distributed.world_size} "
            "processes (each takes an equal slice of the global batch)"
        )
    local = slice(
        distributed.rank * config.batch_size // distributed.world_size,
        (distributed.rank + 1) * config.batch_size // distributed.world_size,
    )
    check_step_fits(model_config, config.batch_size, device, distributed.world_size, sharded=distributed.shard)
    watch = None
    if config.watch is not None:  # the text is checked on every rank; only rank 0 writes the snapshots
        watch = Watch(
            config.watch, model, tokenizer_json, run_dir, interval=config.eval_interval, writes=distributed.is_main
        )
        watch.start(resume.progress.step if resume is not None else 0)  # before sharding: rank 0 alone traces
    if distributed.shard:
        shard_model(model, distributed)  # before the optimizer, which steps the shards
    optimizer = configure_optimizer(model, config)
    batches = torch.Generator().manual_seed(config.seed)  # the same global batches on every rank
    report = on_event if distributed.is_main else (lambda event: None)
    progress = Progress()
    data = fingerprint(train_ids, validation_ids)
    if resume is not None:
        restore_training_state(resume, optimizer, {"batches": batches}, model=model)
        progress = resume.progress
        if progress.data_sha256 not in (None, data):  # None: a checkpoint from before qkv recorded it
            report(TrainEvent("data_changed", progress.step, config.steps))
    progress.data_sha256 = data
    replica: nn.Module = model
    if distributed.enabled and not distributed.shard:
        replica = torch.nn.parallel.DistributedDataParallel(model)
    if config.compile:
        # One graph for the forward pass and one for the backward, fused by inductor; the weights stay the
        # model's own, so checkpoints and validation (run on `model`, uncompiled) see every update.
        replica = cast(nn.Module, torch.compile(replica))

    def checkpoint() -> Path:
        path = Path(run_dir) / "checkpoint"
        # a sharded model's checkpoint is gathered whole onto rank 0 (every rank takes part), as unsharded
        weights, moments = gather_full_state(model, optimizer) if distributed.shard else (model, optimizer)
        if distributed.is_main:
            path = save_checkpoint(
                run_dir,
                model=weights,
                model_config=model_config,
                tokenizer_json=tokenizer_json,
                progress=progress,
                train_config=config,
                optimizer=moments,
                generators={"batches": batches},
            )
            report(TrainEvent("checkpoint", progress.step, config.steps, path=path))
        return path

    def validate() -> None:
        validation = estimate_loss(model, validation_ids, config, context)
        progress.validation_losses.append((progress.step, validation))
        report(TrainEvent("validation", progress.step, config.steps, loss=validation))
        if watch is not None and not distributed.shard:
            watch.snapshot(progress.step)
        elif watch is not None:  # every rank passes the text through the sharded model; rank 0 keeps the trace
            with whole_root(model):
                watch.snapshot(progress.step) if distributed.is_main else trace(watch.handle, watch.text)

    last_good: Path | None = resume.path if resume is not None else None
    saved_step = progress.step if resume is not None else -1
    tokens_per_step = config.batch_size * context
    started = time.perf_counter() - progress.elapsed_seconds
    session_start, session_step = time.perf_counter(), progress.step
    stopped_by: Literal["steps", "time", "interrupt"] = "steps"
    model.train()
    with _ctrl_c_between_steps() as ctrl_c_pressed:
        try:
            while progress.step < config.steps:
                out_of_time = config.time_limit is not None and time.perf_counter() - started >= config.time_limit
                if config.time_limit is not None and distributed.agree(out_of_time):
                    stopped_by = "time"
                    break
                lr = learning_rate(progress.step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                inputs, targets = get_batch(train_ids, config.batch_size, context, batches)  # (B, T) each
                try:
                    loss = train_step(
                        replica, optimizer, inputs[local], targets[local], config.grad_clip, config.precision
                    )
                except torch._dynamo.exc.BackendCompilerFailed as error:  # e.g. no C++ compiler on this machine
                    cause = getattr(error, "inner_exception", error)
                    reason = " ".join(str(cause).split())[:200]
                    raise CompileFailed(
                        f"torch.compile failed ({type(cause).__name__}: {reason}); train without --compile"
                    ) from None

                value = distributed.average(loss.item())
                if not math.isfinite(value):
                    where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
                    raise TrainingDiverged(
                        f"loss became {value} at step {progress.step + 1}; {where}. "
                        "Lower the learning rate or raise --warmup, then resume from it"
                    )
                progress.step += 1
                progress.tokens_seen += tokens_per_step
                progress.elapsed_seconds = time.perf_counter() - started
                progress.train_losses.append((progress.step, value))
                session_seconds = time.perf_counter() - session_start
                report(
                    TrainEvent(
                        "step",
                        progress.step,
                        config.steps,
                        loss=value,
                        learning_rate=lr,
                        tokens_per_second=(progress.step - session_step) * tokens_per_step / max(session_seconds, 1e-9),
                        elapsed_seconds=progress.elapsed_seconds,
                    )
                )
                if progress.step % config.eval_interval == 0 or progress.step == config.steps:
                    validate()
                    last_good, saved_step = checkpoint(), progress.step
                if distributed.agree(ctrl_c_pressed()):
                    raise KeyboardInterrupt  # held until the step was complete
        except KeyboardInterrupt:
            stopped_by = "interrupt"
        if not progress.validation_losses or progress.validation_losses[-1][0] != progress.step:
            validate()
        if saved_step != progress.step or last_good is None:
            last_good = checkpoint()
        report(TrainEvent("done", progress.step, config.steps, elapsed_seconds=progress.elapsed_seconds))
        return TrainResult(progress=progress, checkpoint=last_good, stopped_by=stopped_by)
