"""Training: one full step (forward, loss, backward, clip, AdamW) of qkv's model against transformers' GPT-2.

A step is :func:`qkv.training.train_step`, what ``qkv train`` runs for every batch. Every case starts from the
peer's random initial weights and trains on the same batches, and their losses over the first steps must agree
before anything is timed. A 2048² float32 matrix product timed in the same rounds gives the machine's peak in
that run. ``qkv-compiled`` runs in a worker process of its own: inductor's OpenMP threads would slow the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import torch
from torch import nn

from benchmarks import harness
from benchmarks.gpt2 import PeerLogits, gpt2_peer, qkv_twin
from qkv.model import Transformer, TransformerConfig, preset
from qkv.shapes import Tensor
from qkv.text import CorpusError, default_corpus, encode_corpus, read_corpus, train_tokenizer
from qkv.training import TrainConfig, configure_optimizer, train_step
from qkv.training.data import get_batch
from qkv.training.precision import ResolvedPrecision, resolve_precision

CASES = {
    "qkv": "qkv's Transformer + configure_optimizer (fused AdamW), as `qkv train` runs them on runs under 5,000 "
    "steps (precision auto, eager)",
    "qkv-float32": "qkv as `qkv train --precision float32` runs it",
    "qkv-compiled": "qkv as `qkv train --compile` runs it, and runs of 5,000 steps or more (the first step compiles), "
    "in a process of its own",
    "qkv-foreach": "qkv with AdamW(foreach=True), the optimizer qkv used before the fused one",
    "qkv-nanogpt": "qkv's Transformer with exact GELU and no biases (nanoGPT's choices): its losses differ",
    "peer": "transformers' GPT2LMHeadModel + torch.optim.AdamW (torch's default implementation), float32",
    "peer-bf16": "the peer under the same bfloat16 autocast as qkv's mixed precision",
    "peer-fused": "the peer with AdamW(fused=True), the optimizer qkv uses",
}
DIFFERENT_MATHS = ("qkv-nanogpt",)
IN_OWN_PROCESS = ("qkv-compiled",)
CHECKED_STEPS = 3
PEAK_MATMUL = 2048


@dataclass(frozen=True)
class Config:
    cases: tuple[str, ...] = field(
        default=("qkv", "qkv-float32", "qkv-compiled", "peer", "peer-bf16"), metadata={"help": ", ".join(CASES)}
    )
    layers: int = 4
    heads: int = 4
    width: int = 128
    context: int = 64
    batch: int = 12
    rounds: int = 5
    seed: int = 0
    batches: int = field(default=64, metadata={"help": "distinct batches, cycled through by every case"})
    text: str | None = field(default=None, metadata={"help": "train on this file (default: qkv train's corpus)"})
    memory: bool = field(default=True, metadata={"help": "measure each case's memory in a fresh process"})

    def __post_init__(self) -> None:
        harness.require_positive(self, "layers", "heads", "width", "context", "batch", "rounds", "batches")
        harness.require_some(self, "cases", list(CASES))


QUICK = {"cases": ("qkv", "peer", "qkv-compiled"), "layers": 1, "heads": 2, "width": 32, "context": 16}
QUICK.update(batch=2, batches=4, rounds=2)


def model_config(config: Config, vocab_size: int) -> TransformerConfig:
    """GPT-2's conventions (qkv's ``small`` preset) at the benchmark's shape."""
    shape = {name: getattr(config, name) for name in ("layers", "heads", "width", "context")}
    return preset("small", vocab_size=vocab_size, **shape)


def flops_per_token(model: Transformer) -> int:
    """Training FLOPs per token (PaLM's appendix B, nanoGPT's ``estimate_mfu``): ``6·N + 12·L·D·T``, ``N`` the
    weights a token is multiplied by (position vectors are looked up, the tied output projection counts once)."""
    positions = model.embedding.positions
    excluded = sum(p.numel() for p in positions.parameters()) if positions is not None else 0
    weights = sum(p.numel() for p in model.parameters()) - excluded
    return 6 * weights + 12 * model.config.layers * model.config.width * model.config.context


def precision(case: str) -> ResolvedPrecision:
    """How the case's forward pass multiplies."""
    if case == "peer-bf16":
        return "bfloat16"
    if case.startswith("peer") or case == "qkv-float32":
        return "float32"
    return resolve_precision(TrainConfig().precision, torch.device("cpu"))


def build_case(
    case: str, config: TransformerConfig, batches: list[tuple[Tensor, Tensor]], *, seed: int, peer: Any = None
) -> Callable[[], Tensor]:
    """One training step of ``case`` per call, on the next batch; qkv's cases copy ``peer``'s weights if given."""
    train = TrainConfig()
    adamw: dict[str, Any] = {"lr": train.learning_rate, "betas": (train.beta1, train.beta2)}
    model: nn.Module
    if case.startswith("peer"):
        model = PeerLogits(gpt2_peer(config, seed=seed))
        optimizer = torch.optim.AdamW(_groups(model), **adamw, fused=True if case == "peer-fused" else None)
    else:
        if case in DIFFERENT_MATHS:
            config = replace(config, activation="gelu", attention_bias=False, mlp_bias=False, norm_bias=False)
        if peer is not None and case not in DIFFERENT_MATHS:
            model = qkv_twin(peer, config)
        else:
            torch.manual_seed(seed)
            model = Transformer(config)
        optimizer = configure_optimizer(model, train)
        if case == "qkv-foreach":
            optimizer = torch.optim.AdamW(_groups(model), **adamw, foreach=True)
        if case == "qkv-compiled":
            model = cast(nn.Module, torch.compile(model))
    model.train()
    steps = iter(range(sys.maxsize))

    def step() -> Tensor:
        inputs, targets = batches[next(steps) % len(batches)]
        return train_step(model, optimizer, inputs, targets, train.grad_clip, precision(case))

    return step


def _groups(model: nn.Module) -> list[dict[str, Any]]:
    """qkv's weight-decay groups (matrices decay; biases and norm gains do not), for the other optimizers."""
    groups = configure_optimizer(model, TrainConfig()).param_groups
    return [{"params": group["params"], "weight_decay": group["weight_decay"]} for group in groups]


def _load_ids(text: str | None) -> tuple[Tensor, int, str]:
    corpus = read_corpus(text) if text else default_corpus()
    tokenizer = train_tokenizer("char", corpus.text, None)
    return torch.from_numpy(encode_corpus(tokenizer, corpus.text).astype("int64")), tokenizer.vocab_size, corpus.name


def _batches(ids: Tensor, config: Config) -> list[tuple[Tensor, Tensor]]:
    if len(ids) < config.context + 1:
        raise CorpusError(f"the text has {len(ids)} tokens; a batch row needs context + 1 = {config.context + 1}")
    generator = torch.Generator().manual_seed(config.seed)
    return [get_batch(ids, config.batch, config.context, generator) for _ in range(config.batches)]


def worker_case(case: str, vocab_size: int | None, **fields: Any) -> Callable[[], Tensor]:
    """A worker's case. With ``vocab_size``, for memory: random batches, and qkv's own initial weights (qkv's
    process never imports transformers); without, for timing: the very batches and weights of :func:`run`."""
    config = Config(**fields)
    if vocab_size is not None:
        ids = torch.randint(vocab_size, (config.batch * config.context * 4,), generator=torch.Generator())
        return build_case(case, model_config(config, vocab_size), _batches(ids, config), seed=config.seed)
    ids, vocab_size, _ = _load_ids(config.text)
    shape = model_config(config, vocab_size)
    return build_case(case, shape, _batches(ids, config), seed=config.seed, peer=gpt2_peer(shape, seed=config.seed))


def _check_losses(losses: dict[str, list[float]]) -> None:
    compared = {case: values for case, values in losses.items() if case not in DIFFERENT_MATHS}
    first, reference = next(iter(compared.items()), ("", []))
    for case, values in compared.items():
        gap = max(abs(a - b) for a, b in zip(values, reference, strict=True))
        tolerance = 1e-2 if "bfloat16" in (precision(case), precision(first)) else 1e-3
        if not gap <= tolerance:
            raise harness.BenchmarkError(
                f"{case}'s losses {values} differ from {first}'s {reference} by {gap:.2g} (tolerance {tolerance:g}): "
                "the cases do not compute the same thing; nothing timed"
            )


def _whole_samples(process: harness.Process) -> tuple[Callable[[], object], int]:
    """A call that runs a whole sample of steps in the worker: the processes hand the cores over once a sample,
    not once a step, so that neither's idle threads, still spinning for work, take time from the other's."""
    count = harness.calls_per_sample(harness.time_calls(lambda: process.ask("run 1")))
    return (lambda: process.ask(f"run {count}")), count


def run(config: Config, say: harness.Say) -> harness.Report:
    ids, vocab_size, corpus = _load_ids(config.text)
    shape, batches = model_config(config, vocab_size), _batches(ids, config)
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(PEAK_MATMUL, PEAK_MATMUL, generator=generator) for _ in range(2))
    calls: dict[str, Callable[[], object]] = {"matmul peak": lambda: a @ b}
    calls["matmul peak"]()  # starts the thread pool, so that no case's first step pays for it
    peer = gpt2_peer(shape, seed=config.seed)  # every case's initial weights
    flops = flops_per_token(qkv_twin(peer, shape))
    fields = dataclasses.asdict(config)
    losses: dict[str, list[float]] = {}
    checked_s: dict[str, float] = {}
    steps_per_call = dict.fromkeys(config.cases, 1)
    with contextlib.ExitStack() as processes:
        for case in config.cases:
            say(f"{case}: {CHECKED_STEPS} checked steps (also the warm-up)")
            start = time.perf_counter()
            if case in IN_OWN_PROCESS:
                params = {"case": case, "vocab_size": None, **fields}
                process = harness.worker("benchmarks.train", "worker_case", params)
                processes.enter_context(process)
                losses[case] = process.ask(f"run {CHECKED_STEPS}")["values"]
                checked_s[case] = time.perf_counter() - start
                calls[case], steps_per_call[case] = _whole_samples(process)
            else:
                step = calls[case] = build_case(case, shape, batches, seed=config.seed, peer=peer)
                losses[case] = [float(step()) for _ in range(CHECKED_STEPS)]
                checked_s[case] = time.perf_counter() - start
        del peer
        _check_losses(losses)
        peaks: dict[str, harness.PeakMemory | None] = dict.fromkeys(config.cases)
        for case in config.cases if config.memory else ():
            say(f"{case}: peak memory (fresh process)")
            params = {"case": case, "vocab_size": vocab_size, **fields}
            peaks[case] = harness.peak_in_fresh_process("benchmarks.train", "worker_case", params)
        seconds = harness.interleaved(calls, config.rounds, say)
    peak_s = seconds.pop("matmul peak")
    seconds = {case: [s / steps_per_call[case] for s in samples] for case, samples in seconds.items()}
    tokens = config.batch * config.context
    rows = []
    for case, samples in seconds.items():
        median, memory = statistics.median(samples), peaks[case]
        over_peer = f"{harness.paired_ratio(seconds['peer'], samples):.2f}×" if "peer" in seconds else "n/a"
        of_peak = statistics.median(
            (flops * tokens / s) / (2 * PEAK_MATMUL**3 / p) for s, p in zip(samples, peak_s, strict=True)
        )
        cells = [harness.ms(median), harness.ms(min(samples)), f"{tokens / median:,.0f}", over_peer]
        cells += [f"{flops * tokens / median / 1e9:.0f}", f"{of_peak:.0%}", f"{checked_s[case]:.2f}"]
        rows.append([case, precision(case), *cells, *harness.memory_cells(memory)])
    headers = ["case", "forward", "ms/step", "best ms/step", "tokens/s", "× peer", "GFLOP/s", "% of peak"]
    headers += ["checked steps s", "rest MB", "step extra MB", "peak MB"]
    title = (
        f"{config.layers} layers, {config.heads} heads, width {config.width}, context {config.context}, batch "
        f"{config.batch}, vocab {vocab_size} ({corpus}); {flops / 1e6:.2f} MFLOP/token; "
        f"the {PEAK_MATMUL}² matmul: {2 * PEAK_MATMUL**3 / statistics.median(peak_s) / 1e9:.0f} GFLOP/s"
    )
    measures = {
        f"{case}_over_peer": harness.paired_ratio(seconds["peer"], seconds[case]) if "peer" in seconds else None
        for case in ("qkv", "qkv-compiled")
        if case in seconds
    }
    notes = [
        "Losses over the checked steps: "
        + "; ".join(f"{c} {' '.join(f'{x:.4f}' for x in v)}" for c, v in losses.items())
    ]
    notes += [f"- {case}: {CASES[case]}" for case in config.cases]
    return harness.Report([harness.Table(title, headers, rows, 2)], measures, notes)


if __name__ == "__main__":
    sys.exit(harness.main("train", Config, run, QUICK))
