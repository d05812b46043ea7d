"""``qkv bench train``: one full training step of qkv's model against ``transformers``' GPT-2, in one run.

A step is what ``qkv train`` does for every batch, :func:`qkv.training.train_step`: forward, cross-entropy,
backward, clip the gradient norm to 1, AdamW update. The cases (``--cases``):

* ``qkv``          — qkv's :class:`~qkv.model.Transformer` and the optimizer of
  :func:`qkv.training.configure_optimizer`, exactly as ``qkv train`` runs them: in its default precision
  (``auto``: bfloat16 mixed precision where the processor multiplies bfloat16 natively, else float32);
* ``peer``         — ``GPT2LMHeadModel`` (random init, its default attention, no dropout) with
  ``torch.optim.AdamW`` as torch gives it (its default implementation: a loop over the parameters on CPU),
  the same hyperparameters and weight-decay groups, through the same step function, in float32 (its default);
* ``qkv-float32``  — ``qkv`` in float32 throughout: what qkv's code is worth without mixed precision;
* ``peer-bf16``    — the peer under the same bfloat16 autocast as ``qkv``: what mixed precision is worth to it;
* ``qkv-foreach``  — qkv with ``AdamW(foreach=True)``, the optimizer ``qkv train`` used before the fused one;
* ``qkv-compiled`` — qkv's model through ``torch.compile``, as ``qkv train --compile`` runs it (the first step
  pays for compiling), timed in a process of its own (:mod:`qkv.bench.step_worker`): inductor's OpenMP threads
  would slow every other case of a shared process;
* ``peer-fused``   — the peer with the fused AdamW qkv uses: what the optimizer alone is worth to it;
* ``qkv-nanogpt``  — qkv's Transformer with nanoGPT's conventions instead of GPT-2's (exact GELU, no biases):
  what those two choices are worth. Different maths, so its losses are not compared.

Shape (``--layers`` …): character level, 4 layers, 4 heads, width 128, context 64, batch 12, the widely
published CPU setting for char-level Shakespeare. Data: the corpus ``qkv train`` uses by default (or
``--text FILE``), tokenized by characters; every case trains on the same batches in the same order, from the
same initial weights (the peer's, copied into qkv's model). Before anything is timed, the cases' losses over the
first steps must agree (:data:`LOSS_TOLERANCE`): the same work is being timed. Then the cases take turns
(:mod:`qkv.bench.timing`), together with a large matrix multiply that measures the machine's fp32 peak in the
same rounds, and each case's memory is measured in a fresh process (:mod:`qkv.bench.memory`).

Target (the issue): qkv trains at ≥ 2× the peer's tokens per second.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO, cast

import torch
from torch import nn

from qkv.bench import BenchmarkError, memory, timing
from qkv.bench.peers import PeerLogits, gpt2_peer, qkv_twin
from qkv.bench.report import (
    Verdict,
    add_report_arguments,
    format_ms,
    format_table,
    format_verdicts,
    load_average,
    positive_int,
    run_and_report,
)
from qkv.bench.step_worker import StepWorker
from qkv.errors import ConfigError
from qkv.model import Transformer, TransformerConfig, preset
from qkv.shapes import Tensor
from qkv.text import CorpusError, default_corpus, encode_corpus, read_corpus, train_tokenizer
from qkv.training import TrainConfig, configure_optimizer, train_step
from qkv.training.data import get_batch
from qkv.training.precision import ResolvedPrecision, resolve_precision

__all__ = [
    "CASES",
    "CaseResult",
    "StepCase",
    "TrainBenchConfig",
    "TrainReport",
    "add_arguments",
    "build_case",
    "flops_per_token",
    "format_report",
    "memory_case",
    "run",
    "run_cli",
    "verdicts",
]

CASES: dict[str, str] = {
    "qkv": "qkv's Transformer + configure_optimizer (fused AdamW), as `qkv train` runs them (precision auto)",
    "peer": "transformers' GPT2LMHeadModel + torch.optim.AdamW (torch's default implementation), float32",
    "qkv-float32": "qkv as `qkv train --precision float32` runs it",
    "peer-bf16": "the peer under the same bfloat16 autocast as qkv's mixed precision",
    "qkv-foreach": "qkv's Transformer + AdamW(foreach=True), the optimizer qkv used before",
    "qkv-compiled": "qkv as `qkv train --compile` runs it (torch.compile; the first step compiles), in a process "
    "of its own",
    "peer-fused": "GPT2LMHeadModel + AdamW(fused=True), the optimizer qkv uses",
    "qkv-nanogpt": "qkv's Transformer with exact GELU and no biases (nanoGPT's choices) + fused AdamW",
}
DIFFERENT_MATHS = ("qkv-nanogpt",)  # cases whose losses are not compared with the others
# Cases timed in a process of their own (qkv.bench.step_worker): inductor's kernels bring their own OpenMP
# threads, which would slow every other case of a shared process.
IN_OWN_PROCESS = ("qkv-compiled",)
DEFAULT_CASES = ("qkv", "qkv-float32", "qkv-compiled", "peer", "peer-bf16")
MIN_SPEEDUP = 2.0  # qkv's tokens/s over the peer's
LOSS_TOLERANCE = 1e-3  # largest difference between the cases' losses over the checked steps
MIXED_LOSS_TOLERANCE = 1e-2  # the same, when either case multiplies in bfloat16
CHECKED_STEPS = 3
PEAK_MATMUL = 2048  # the side of the square fp32 matrices whose product measures the machine's peak
REFERENCE_PEAK_GFLOPS = 330.0  # DESIGN.md §4: fp32 matmul on both cores of this machine, quiet
MB = 1e6


@dataclass(frozen=True)
class TrainBenchConfig:
    """What to measure; ``threads=None`` keeps torch's default, ``text=None`` uses the default corpus."""

    layers: int = 4
    heads: int = 4
    width: int = 128
    context: int = 64
    batch: int = 12
    cases: tuple[str, ...] = DEFAULT_CASES
    rounds: int = 5
    threads: int | None = None
    seed: int = 0
    batches: int = 64  # distinct batches, cycled through in the same order by every case
    text: str | None = None
    measure_memory: bool = True

    def __post_init__(self) -> None:
        for name in ("layers", "heads", "width", "context", "batch", "rounds", "batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainBenchConfig.{name} must be at least 1, got {getattr(self, name)}")
        unknown = [case for case in self.cases if case not in CASES]
        if unknown or not self.cases:
            raise ConfigError(f"TrainBenchConfig.cases must name some of {', '.join(CASES)}, got {self.cases}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"TrainBenchConfig.threads must be at least 1, got {self.threads}")


def model_config(config: TrainBenchConfig, vocab_size: int) -> TransformerConfig:
    """GPT-2 conventions (qkv's ``small`` preset) at the benchmark's shape."""
    return preset(
        "small",
        vocab_size=vocab_size,
        layers=config.layers,
        heads=config.heads,
        width=config.width,
        context=config.context,
    )


def flops_per_token(model: Transformer) -> int:
    """Training FLOPs per token by the usual estimate (PaLM's appendix B; nanoGPT's ``estimate_mfu``).

    ``6·N`` for the ``N`` weights every token is multiplied by (2 in the forward pass, 4 in the backward), plus
    ``12·L·D·T`` for attention's scores and weighted sums over a context of ``T``. Position vectors are looked
    up, not multiplied: they are not in ``N``; the tied output projection counts once.
    """
    config = model.config
    positions = model.embedding.positions
    excluded = sum(p.numel() for p in positions.parameters()) if positions is not None else 0
    weights = sum(p.numel() for p in model.parameters()) - excluded
    return 6 * weights + 12 * config.layers * config.width * config.context


def _same_groups(model: nn.Module) -> list[dict[str, Any]]:
    """qkv's weight-decay groups (matrices decay; biases and norm gains do not), for the other optimizers."""
    groups = configure_optimizer(model, TrainConfig()).param_groups
    return [{"params": group["params"], "weight_decay": group["weight_decay"]} for group in groups]


class StepCase:
    """One case, ready to train: a model (called as ``model(ids) → logits``), its optimizer, and the batches."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: list[tuple[Tensor, Tensor]],
        precision: ResolvedPrecision = "float32",
    ) -> None:
        self.name, self.model, self.optimizer, self.batches = name, model, optimizer, batches
        self.precision = precision
        self.steps = 0

    def __call__(self) -> Tensor:
        """One training step on the next batch (the batches repeat in order); the loss before the update."""
        inputs, targets = self.batches[self.steps % len(self.batches)]
        self.steps += 1
        return train_step(self.model, self.optimizer, inputs, targets, TrainConfig().grad_clip, self.precision)


def build_case(
    name: str, config: TransformerConfig, batches: list[tuple[Tensor, Tensor]], *, seed: int, peer: Any | None = None
) -> StepCase:
    """Build case ``name``; qkv's cases copy ``peer``'s weights when one is given (else they start from their own)."""
    train = TrainConfig()
    betas = (train.beta1, train.beta2)
    auto = resolve_precision(train.precision, torch.device("cpu"))
    if name.startswith("peer"):
        model: nn.Module = PeerLogits(gpt2_peer(config, seed=seed))
        groups = _same_groups(model)
        if name == "peer-fused":
            optimizer = torch.optim.AdamW(groups, lr=train.learning_rate, betas=betas, fused=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=train.learning_rate, betas=betas)
        return StepCase(name, model.train(), optimizer, batches, "bfloat16" if name == "peer-bf16" else "float32")
    if name == "qkv-nanogpt":
        config = replace(config, activation="gelu", attention_bias=False, mlp_bias=False, norm_bias=False)
    if peer is not None and name not in DIFFERENT_MATHS:
        qkv_model = qkv_twin(peer, config)
    else:
        torch.manual_seed(seed)
        qkv_model = Transformer(config)
    qkv_model.train()
    optimizer = configure_optimizer(qkv_model, train)
    if name == "qkv-foreach":
        optimizer = torch.optim.AdamW(_same_groups(qkv_model), lr=train.learning_rate, betas=betas, foreach=True)
    precision: ResolvedPrecision = "float32" if name == "qkv-float32" else auto
    if name == "qkv-compiled":
        return StepCase(name, cast(nn.Module, torch.compile(qkv_model)), optimizer, batches, precision)
    return StepCase(name, qkv_model, optimizer, batches, precision)


def _load_ids(text: str | None) -> tuple[Tensor, int, str]:
    """Token ids of the corpus, the vocabulary size, and the corpus's name."""
    corpus = read_corpus(text) if text else default_corpus()
    tokenizer = train_tokenizer("char", corpus.text, None)
    ids = torch.from_numpy(encode_corpus(tokenizer, corpus.text).astype("int64"))
    return ids, tokenizer.vocab_size, corpus.name


def _batches(ids: Tensor, config: TrainBenchConfig) -> list[tuple[Tensor, Tensor]]:
    if len(ids) < config.context + 1:
        raise CorpusError(
            f"the text has {len(ids)} tokens; one batch row needs context + 1 = {config.context + 1}: "
            "give a longer --text or a smaller --context"
        )
    generator = torch.Generator().manual_seed(config.seed)
    return [get_batch(ids, config.batch, config.context, generator) for _ in range(config.batches)]


def memory_case(
    case: str, layers: int, heads: int, width: int, context: int, batch: int, vocab_size: int, seed: int
) -> Callable[[], object]:
    """The memory worker's factory: build ``case`` on random batches, return a function running one step.

    qkv's cases start from their own initialisation here, so that their process never imports transformers.
    """
    bench = TrainBenchConfig(layers=layers, heads=heads, width=width, context=context, batch=batch, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab_size, (batch * context * 4,), generator=generator)
    return build_case(case, model_config(bench, vocab_size), _batches(ids, bench), seed=seed)


@dataclass(frozen=True)
class CaseResult:
    """One case: seconds per step (one sample per round), its first step, its losses, its memory."""

    name: str
    seconds: tuple[float, ...]
    steps_per_sample: int
    first_step_s: float
    losses: tuple[float, ...]  # over the checked steps
    memory: memory.PeakMemory | None
    precision: str = "float32"  # how the forward pass multiplies (qkv.training.precision)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class TrainReport:
    config: TrainBenchConfig
    vocab_size: int
    corpus: str
    flops_per_token: int
    threads: int
    torch_version: str
    machine: str
    cases: Mapping[str, CaseResult]
    peak_seconds: tuple[float, ...]  # one PEAK_MATMUL × PEAK_MATMUL product, per round
    memory_note: str | None
    load_average: tuple[float, float] | None = None

    @property
    def tokens_per_step(self) -> int:
        return self.config.batch * self.config.context

    def tokens_per_second(self, case: str) -> float:
        return self.tokens_per_step / self.cases[case].median_s

    def speedup(self, case: str, over: str) -> float:
        """Median over rounds of ``time(over) / time(case)``: how many times faster ``case`` trains."""
        return timing.paired_ratio(self.cases[over].seconds, self.cases[case].seconds)

    def peak_gflops(self) -> float:
        return 2 * PEAK_MATMUL**3 / statistics.median(self.peak_seconds) / 1e9

    def gflops(self, case: str) -> float:
        return self.flops_per_token * self.tokens_per_second(case) / 1e9

    def share_of_peak(self, case: str) -> float:
        """Median over rounds of the case's FLOP rate over the matmul's, measured in the same round."""
        per_step = self.flops_per_token * self.tokens_per_step
        peak_flops = 2 * PEAK_MATMUL**3
        return statistics.median(
            (per_step / step) / (peak_flops / peak)
            for step, peak in zip(self.cases[case].seconds, self.peak_seconds, strict=True)
        )


def _matmul(size: int) -> Callable[[], object]:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    return lambda: a @ b


def run(config: TrainBenchConfig, progress: Callable[[str], None] | None = None) -> TrainReport:
    """Run the benchmark; ``progress`` receives a line of news at each stage."""
    say = progress or (lambda _message: None)
    load_start = load_average()
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        with contextlib.ExitStack() as workers:  # the cases timed in processes of their own stop with the run
            return _run(config, say, load_start, workers)
    finally:
        torch.set_num_threads(previous_threads)


class OwnProcessCase:
    """A case of :data:`IN_OWN_PROCESS`, built and stepped in a worker process (:mod:`qkv.bench.step_worker`)
    from the same batches and the same initial weights as the others; it has run the checked steps once built."""

    def __init__(self, name: str, config: TrainBenchConfig, threads: int) -> None:
        params = {"case": name, **{k: getattr(config, k) for k in ("layers", "heads", "width", "context", "batch")}}
        params.update(batches=config.batches, seed=config.seed, text=config.text)
        self.worker = StepWorker("qkv.bench.train", "timing_case", params, checked_steps=CHECKED_STEPS, threads=threads)
        self.precision: ResolvedPrecision = resolve_precision(TrainConfig().precision, torch.device("cpu"))

    def __call__(self) -> None:
        self.worker()


def timing_case(
    case: str,
    layers: int,
    heads: int,
    width: int,
    context: int,
    batch: int,
    batches: int,
    seed: int,
    text: str | None,
) -> StepCase:
    """The step worker's factory: ``case`` on the very batches and initial weights the benchmark's process uses."""
    bench = TrainBenchConfig(
        layers=layers, heads=heads, width=width, context=context, batch=batch, batches=batches, seed=seed, text=text
    )
    ids, vocab_size, _ = _load_ids(text)
    shape = model_config(bench, vocab_size)
    return build_case(case, shape, _batches(ids, bench), seed=seed, peer=gpt2_peer(shape, seed=seed))


def _run(
    config: TrainBenchConfig, say: Callable[[str], None], load_start: float | None, workers: contextlib.ExitStack
) -> TrainReport:
    threads = torch.get_num_threads()
    ids, vocab_size, corpus = _load_ids(config.text)
    shape = model_config(config, vocab_size)
    batches = _batches(ids, config)
    del ids
    say(
        f"train: {config.layers} layers, {config.heads} heads, width {config.width}, context {config.context}, "
        f"batch {config.batch}, vocab {vocab_size} ({corpus}); cases {', '.join(config.cases)}; {threads} threads"
    )
    peak = _matmul(PEAK_MATMUL)
    peak()  # starts the thread pool, so that no case's first step pays for it
    peer = gpt2_peer(shape, seed=config.seed)  # its initial weights are every case's
    flops = flops_per_token(qkv_twin(peer, shape))

    # 1. The same work: from the same weights on the same batches, every case's losses agree.
    cases: dict[str, StepCase | OwnProcessCase] = {}
    first_step_s: dict[str, float] = {}
    losses: dict[str, list[float]] = {}
    for name in config.cases:
        compiling = "; compiling" if "compiled" in name else ""
        where = "; in a process of its own" if name in IN_OWN_PROCESS else ""
        say(f"{name}: {CHECKED_STEPS} checked steps (also the warm-up{compiling}{where})")
        start = time.perf_counter()
        if name in IN_OWN_PROCESS:
            own = OwnProcessCase(name, config, threads)  # starts the worker, which runs the checked steps
            workers.callback(own.worker.close)
            cases[name], losses[name] = own, own.worker.losses
            first_step_s[name] = time.perf_counter() - start  # the process's start-up too
            continue
        case = cases[name] = build_case(name, shape, batches, seed=config.seed, peer=peer)
        losses[name] = [float(case())]
        first_step_s[name] = time.perf_counter() - start
        losses[name] += [float(case()) for _ in range(CHECKED_STEPS - 1)]
    del peer
    compared = {name: values for name, values in losses.items() if name not in DIFFERENT_MATHS}
    first = next(iter(compared), None)
    reference = compared[first] if first is not None else []
    for name, values in compared.items():
        gap = max(abs(a - b) for a, b in zip(values, reference, strict=True))
        mixed = "bfloat16" in (cases[name].precision, cases[first].precision if first else "float32")
        tolerance = MIXED_LOSS_TOLERANCE if mixed else LOSS_TOLERANCE
        if not gap <= tolerance:
            raise BenchmarkError(
                f"{name}'s losses {values} differ from {first}'s {reference} by {gap:.2g} "
                f"(tolerance {tolerance:g}): the cases do not compute the same thing; nothing timed"
            )
    if len(compared) > 1:
        say(f"the losses agree: {', '.join(f'{value:.4f}' for value in reference)}")

    # 2. Peak memory, each case in a fresh process.
    peaks: dict[str, memory.PeakMemory | None] = dict.fromkeys(cases)
    note = None
    if not config.measure_memory:
        note = "not measured (--no-memory)"
    elif not memory.supported():
        note = "not measured: needs Linux /proc/self/status and /proc/self/clear_refs"
    else:
        for name in cases:
            say(f"{name}: peak memory (fresh process)")
            params: dict[str, int | str] = {
                "case": name,
                "layers": config.layers,
                "heads": config.heads,
                "width": config.width,
                "context": config.context,
                "batch": config.batch,
                "vocab_size": vocab_size,
                "seed": config.seed,
            }
            peaks[name] = memory.measure_peak_in_subprocess(
                memory.MemoryCase("qkv.bench.train", "memory_case", params), threads=threads
            )

    # 3. Time: the cases' steps interleaved within each round, and the matmul peak in the same rounds.
    calls: dict[str, Callable[[], object]] = dict(cases)
    calls["matmul peak"] = peak
    per_sample = {name: timing.calls_per_sample(timing.time_calls(call, 3)) for name, call in calls.items()}
    for name, entry in cases.items():
        if isinstance(entry, OwnProcessCase):  # a whole sample of its steps per call (see qkv.bench.step_worker)
            entry.worker.steps_per_call, per_sample[name] = per_sample[name], 1
    samples = timing.round_robin(
        calls,
        rounds=config.rounds,
        calls=per_sample,
        on_round=lambda r: say(f"timing round {r + 1}/{config.rounds}"),
    )
    for name, entry in cases.items():
        if isinstance(entry, OwnProcessCase):  # seconds per call → per step
            samples[name] = [seconds / entry.worker.steps_per_call for seconds in samples[name]]
            per_sample[name] = entry.worker.steps_per_call
    results = {
        name: CaseResult(
            name,
            tuple(samples[name]),
            per_sample[name],
            first_step_s[name],
            tuple(losses[name]),
            peaks[name],
            cases[name].precision,
        )
        for name in cases
    }
    return TrainReport(
        config=config,
        vocab_size=vocab_size,
        corpus=corpus,
        flops_per_token=flops,
        threads=threads,
        torch_version=torch.__version__,
        machine=f"{platform.system()} {platform.machine()}",
        cases=results,
        peak_seconds=tuple(samples["matmul peak"]),
        memory_note=note,
        load_average=None if load_start is None or (load_end := load_average()) is None else (load_start, load_end),
    )


def verdicts(report: TrainReport) -> list[Verdict]:
    """The issue's target, judged for ``qkv train`` as it runs by default and with ``--compile``."""
    judged = []
    for case, how in (("qkv", "qkv train"), ("qkv-compiled", "qkv train --compile")):
        target = f"{how} trains at ≥ {MIN_SPEEDUP:g}× the peer's tokens/s"
        if case not in report.cases or "peer" not in report.cases:
            if case == "qkv":
                judged.append(Verdict("SKIP", target, "needs the cases qkv and peer"))
            continue
        speedup = report.speedup(case, "peer")
        measured = (
            f"{speedup:.2f}× ({report.tokens_per_second(case) / 1000:.1f}k vs "
            f"{report.tokens_per_second('peer') / 1000:.1f}k tokens/s)"
        )
        judged.append(Verdict("PASS" if speedup >= MIN_SPEEDUP else "FAIL", target, measured))
    return judged


def _threads(count: int) -> str:
    return f"{count} thread" if count == 1 else f"{count} threads"


def _mb(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / MB:.0f}"


def format_report(report: TrainReport, *, markdown: bool = False) -> str:
    """The measured table and the target's verdict, as plain text or as Markdown."""
    config = report.config
    load = report.load_average
    about = [
        "Training step (forward, loss, backward, clip, AdamW; weights and optimizer in float32, the forward pass "
        f"as the column says): {config.layers} layers, {config.heads} heads, width {config.width}, context "
        f"{config.context}, batch {config.batch}, vocab {report.vocab_size} "
        f"({report.corpus}, characters); torch {report.torch_version}, {_threads(report.threads)}, {report.machine}, "
        f"{os.cpu_count()} CPUs" + ("" if load is None else f", load average {load[0]:.1f} → {load[1]:.1f}") + ".",
        f"Time: median (and best) over {config.rounds} rounds; in each round the cases' steps are interleaved and a "
        "case's sample is the median of its steps; tokens/s from the median; × peer is the median of per-round "
        "ratios. GFLOP/s by the estimate "
        f"6·N + 12·L·D·T = {report.flops_per_token / 1e6:.2f} MFLOP per token; % of peak against a "
        f"{PEAK_MATMUL}² fp32 matmul timed in the same rounds ({report.peak_gflops():.0f} GFLOP/s here; "
        f"{REFERENCE_PEAK_GFLOPS:.0f} on a quiet machine).",
        "Memory, in a fresh process per case: resident at rest (Python, torch, model, optimizer state; the peer's "
        "process also holds transformers), the extra at the high point of one step (activations, gradients, "
        "temporaries), and the process's peak (MB = 10⁶ bytes)."
        + (f" Memory {report.memory_note}." if report.memory_note else ""),
    ]
    rows = []
    for name, result in report.cases.items():
        peak = result.memory
        rows.append(
            [
                name,
                result.precision,
                format_ms(result.median_s),
                format_ms(min(result.seconds)),
                f"{report.tokens_per_second(name):,.0f}",
                f"{report.speedup(name, 'peer'):.2f}×" if "peer" in report.cases else "n/a",
                f"{report.gflops(name):.0f}",
                f"{report.share_of_peak(name):.0%}",
                f"{result.first_step_s:.2f}",
                _mb(peak.resident_before if peak else None),
                _mb(peak.peak_extra if peak else None),
                _mb(peak.peak_resident if peak else None),
            ]
        )
    table = format_table(
        [
            "case",
            "forward",
            "ms/step",
            "best ms/step",
            "tokens/s",
            "× peer",
            "GFLOP/s",
            "% of peak",
            "first step s",
            "rest MB",
            "step extra MB",
            "peak MB",
        ],
        rows,
        markdown=markdown,
        left=2,
    )
    losses = "Losses over the first steps (the same maths, the same losses): " + ", ".join(
        f"{name} {' '.join(f'{loss:.4f}' for loss in result.losses)}" for name, result in report.cases.items()
    )
    judged = verdicts(report)
    if markdown:
        legend = "\n".join(f"- `{name}`: {CASES[name]}" for name in report.cases)
        targets = format_verdicts(judged, markdown=True)
        return "\n\n".join([" ".join(about), legend, table, losses, targets]) + "\n"
    legend = "\n".join(f"  {name:<13} {CASES[name]}" for name in report.cases)
    targets = format_verdicts(judged)
    return "\n\n".join(["\n".join(about), legend, table, losses, targets]) + "\n"


def _cases(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose cases among {', '.join(CASES)}; got {text!r}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainBenchConfig()
    parser.add_argument(
        "--cases",
        type=_cases,
        default=DEFAULT_CASES,
        metavar="A,B,...",
        help=f"cases to run (default {','.join(DEFAULT_CASES)}); all: {','.join(CASES)}",
    )
    parser.add_argument("--text", metavar="FILE", help="train on this text (default: qkv train's default corpus)")
    parser.add_argument("--repeats", type=positive_int, default=defaults.rounds, metavar="N", help="timed rounds")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch threads")
    for name in ("layers", "heads", "width", "context", "batch"):
        parser.add_argument(f"--{name}", type=positive_int, default=getattr(defaults, name), metavar="N")
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory measurements")
    add_report_arguments(parser)


def run_cli(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    config = TrainBenchConfig(
        layers=args.layers,
        heads=args.heads,
        width=args.width,
        context=args.context,
        batch=args.batch,
        cases=args.cases,
        rounds=args.repeats,
        threads=args.threads,
        text=args.text,
        measure_memory=not args.no_memory,
    )
    return run_and_report(args, lambda progress: run(config, progress), format_report, verdicts, out=out, log=log)
