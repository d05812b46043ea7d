"""Pretrained models: SmolLM2-135M and MiniLM in qkv against transformers.

* decode: greedy tokens after a prompt at batch 1, the prompt's prefill untimed; qkv in each ``--dtypes``
  precision, the peer ``LlamaForCausalLM`` from the same GGUF (float32) stepping its own KV cache;
* prefill: one long prompt into an empty cache, the last position's logits;
* load: in a fresh process per case, the seconds of the imports and of loading, and the resident memory after
  loading and decoding 16 tokens (``VmRSS``, ``VmHWM``);
* minilm: sentence embeddings, qkv's ``embed`` against ``BertModel`` with sentence-transformers' pooling.

Nothing is timed unless qkv's float32 SmolLM2 picks the peer's greedy tokens and qkv's MiniLM embeddings match
the peer's (cosine ≥ 0.9999). Each round runs every case once, in an order rotated from round to round.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

import qkv.pretrained as pretrained
from benchmarks import harness
from qkv.data.registry import find_packaged
from qkv.generation.fast_decoder import FastDecoder

PEER = "transformers"
SECTIONS = ("smollm2", "load", "minilm")
DTYPES = ("int4", "bfloat16", "float32")
_WORDS = """the a one every some no this that my your our their dog cat bird horse child teacher friend city river
mountain story song letter window garden kitchen morning evening winter summer light rain wind road bridge runs
sings reads writes finds keeps opens carries watches remembers builds follows waits sleeps laughs quietly slowly
often never always together alone again early late very quite almost red small old new bright cold warm long quiet
happy tired careful strange green open and but because while after before when although with without under over
near across through""".split()  # noqa: SIM905


@dataclass(frozen=True)
class Config:
    sections: tuple[str, ...] = field(default=SECTIONS, metadata={"help": ", ".join(SECTIONS)})
    dtypes: tuple[str, ...] = field(default=DTYPES, metadata={"help": "qkv's precisions for SmolLM2"})
    rounds: int = 5
    prompt_tokens: int = 64
    decode_tokens: int = 128
    prefill_tokens: int = 512
    sentences: int = 1000
    batch_size: int = 32
    load_repeats: int = field(default=3, metadata={"help": "fresh processes per qkv precision (the peer's: one)"})

    def __post_init__(self) -> None:
        harness.require_positive(self, "rounds", "prompt_tokens", "decode_tokens", "prefill_tokens", "sentences")
        harness.require_positive(self, "batch_size", "load_repeats")
        harness.require_some(self, "sections", SECTIONS)
        harness.require_some(self, "dtypes", DTYPES)


QUICK = {"dtypes": ("int4", "float32"), "rounds": 1, "decode_tokens": 16, "prefill_tokens": 128, "sentences": 64}
QUICK["load_repeats"] = 1


def sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` made-up sentences of 3 to 48 words, the same every run."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(int(rng.triangular(3, 48, 10)))).capitalize() + "."
        for _ in range(count)
    ]


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise harness.BenchmarkError(
            "the peer is transformers: python -m pip install transformers accelerate"
        ) from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _smollm2_peer() -> Any:
    _, path = find_packaged("smollm2")
    auto = _transformers().AutoModelForCausalLM
    return auto.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()


def peer_decode(peer: Any, prompt: Sequence[int], steps: int) -> tuple[list[int], float]:
    """Greedy tokens, and the seconds of the ``steps`` decoding steps after the untimed prefill."""
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = peer(input_ids=torch.tensor([list(prompt)]), use_cache=True, logits_to_keep=1)
        tokens = [int(out.logits[0, -1].argmax())]
        start = time.perf_counter()
        for _ in range(steps):
            out = peer(input_ids=torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values, use_cache=True)
            tokens.append(int(out.logits[0, -1].argmax()))
        return tokens, time.perf_counter() - start


def qkv_decode(model: Any, prompt: Sequence[int], steps: int) -> tuple[list[int], float]:
    decoder = FastDecoder(model.model, len(prompt) + steps)
    tokens = [int(decoder.prefill(torch.tensor(list(prompt))).argmax())]
    start = time.perf_counter()
    for _ in range(steps):
        tokens.append(int(decoder.decode(tokens[-1]).argmax()))
    return tokens, time.perf_counter() - start


def qkv_prefill(model: Any, ids: torch.Tensor) -> torch.Tensor:
    return FastDecoder(model.model, len(ids)).prefill(ids)


def _smollm2(config: Config, say: harness.Say) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str]]:
    """Seconds of the decoding steps, and of the prefill, per case and round; the greedy tokens' agreement."""
    say("smollm2: loading transformers' model from the GGUF (slow: it dequantises every tensor)")
    peer = _smollm2_peer()
    models = {dtype: pretrained.load("smollm2", dtype=dtype) for dtype in config.dtypes}
    first = next(iter(models.values()))
    text = first.encode(first.chat_prompt("Tell me a long story about " + " ".join(sentences(400, seed=1))))
    if len(text) < max(config.prompt_tokens, config.prefill_tokens):
        raise harness.BenchmarkError(f"the benchmark's text is {len(text)} tokens, too few for the prompts")
    prompt, long_prompt = text[: config.prompt_tokens], torch.tensor(text[: config.prefill_tokens])
    say("smollm2: checking greedy tokens against transformers (also the warm-up)")
    expected, _ = peer_decode(peer, prompt, 32)
    notes = []
    for dtype, model in models.items():
        got, _ = qkv_decode(model, prompt, 32)
        same = next((i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b), len(got))
        if dtype == "float32" and same < len(got):
            raise harness.BenchmarkError(f"qkv float32 and transformers differ from greedy token {same}: nothing timed")
        notes.append(f"qkv {dtype}: the first {same}/{len(got)} greedy tokens as transformers")
    steps = config.decode_tokens
    decode = {PEER: partial(peer_decode, peer, prompt, steps)}
    prefill = {PEER: partial(peer, input_ids=long_prompt[None], use_cache=True, logits_to_keep=1)}
    for dtype, model in models.items():
        decode[f"qkv {dtype}"] = partial(qkv_decode, model, prompt, steps)
        prefill[f"qkv {dtype}"] = partial(qkv_prefill, model, long_prompt)
    on_round = lambda what: lambda r: say(f"smollm2 {what}: round {r + 1}/{config.rounds}")  # noqa: E731
    decode_s = harness.round_robin(
        decode, rounds=config.rounds, measure=lambda case: case()[1], on_round=on_round("decode")
    )
    with torch.inference_mode():
        harness.first_calls(prefill, say)  # the prompt path's warm-up
        prefill_s = harness.round_robin(prefill, rounds=config.rounds, on_round=on_round("prefill"))
    return decode_s, prefill_s, notes


def peer_embed(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int) -> Any:
    """sentence-transformers' ``encode`` on transformers: sorted by length, padded per batch, the mean over real
    tokens, unit length; in the input order."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            inputs = tokenizer(batch, padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**inputs).last_hidden_state  # (B, S, D)
            weights = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, S, 1)
            chunks.append(F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9), dim=-1))
    embeddings = torch.cat(chunks)
    result = torch.empty_like(embeddings)
    result[torch.tensor(order)] = embeddings
    return result


def _minilm(config: Config, say: harness.Say) -> dict[str, list[float]]:
    """Seconds of embedding all the sentences, per case and round."""
    say("minilm: loading qkv's and transformers' models")
    ours, (_, path), transformers = pretrained.load("minilm"), find_packaged("minilm"), _transformers()
    peer, tokenizer = (
        transformers.AutoModel.from_pretrained(path).eval(),
        transformers.AutoTokenizer.from_pretrained(path),
    )
    texts, size = sentences(config.sentences), config.batch_size
    cases = {
        PEER: partial(peer_embed, peer, tokenizer, texts, size),
        "qkv": partial(ours.embed, texts, batch_size=size),
    }
    with torch.inference_mode():
        embeddings, _ = harness.first_calls(cases, say)
        cosine = float((embeddings["qkv"] * embeddings[PEER]).sum(-1).min())
        if not cosine >= 0.9999:
            raise harness.BenchmarkError(f"qkv's MiniLM embeddings differ from transformers' (cosine {cosine:.6f})")
        return harness.round_robin(cases, rounds=config.rounds, on_round=lambda r: say(f"minilm: round {r + 1}"))


def probe(case: str) -> Callable[[], dict[str, float]]:
    """The load worker's case: import, load SmolLM2 as ``case`` (``qkv DTYPE`` or the peer), decode 16 tokens."""
    decode: Callable[[Any, Sequence[int], int], object] = peer_decode
    if case == PEER:
        _transformers()
        imported = time.perf_counter()
        model = _smollm2_peer()
    else:
        imported = time.perf_counter()
        model, decode = pretrained.load("smollm2", dtype=case.removeprefix("qkv ")), qkv_decode
    loaded = time.perf_counter()
    decode(model, range(100, 164), 16)
    rss, peak = harness.resident_bytes(), harness.peak_resident_bytes()
    result = {"import_s": imported - harness.STARTED, "load_s": loaded - imported, "rss": rss, "peak": peak}
    return lambda: result


def _probes(config: Config, say: harness.Say) -> dict[str, list[dict[str, float]]]:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    probes: dict[str, list[dict[str, float]]] = {}
    for case in [*(f"qkv {dtype}" for dtype in config.dtypes), PEER]:
        repeats = 1 if case == PEER else config.load_repeats
        for index in range(repeats):
            say(f"load: {case}, fresh process {index + 1}/{repeats}")
            params = {"case": case}
            with harness.worker("benchmarks.pretrained", "probe", params, timeout_s=600, env=env) as process:
                probes.setdefault(case, []).append(process.ask("run 1")["values"][0])
    return probes


def _speeds(title: str, seconds: dict[str, list[float]], count: int) -> harness.Table:
    rows = [
        [
            case,
            *(f"{count / f(s):.1f}" for f in (statistics.median, max, min)),
            f"{harness.paired_ratio(seconds[PEER], s):.2f}×",
        ]
        for case, s in seconds.items()
    ]
    return harness.Table(title, ["case", "median /s", "min /s", "max /s", "× transformers"], rows)


def run(config: Config, say: harness.Say) -> harness.Report:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tables: list[harness.Table] = []
    measures: dict[str, float | None] = {}
    notes: list[str] = []
    if "smollm2" in config.sections:
        decode, prefill, notes = _smollm2(config, say)
        best = min((case for case in decode if case != PEER), key=lambda case: statistics.median(decode[case]))
        measures["decode_over_peer"] = harness.paired_ratio(decode[PEER], decode[best])
        measures["prefill_over_peer"] = harness.paired_ratio(prefill[PEER], prefill[best])
        notes.append(f"The targets judge qkv's fastest decoding precision: {best}.")
        what = f"{config.decode_tokens} greedy tokens after {config.prompt_tokens}, batch 1, tokens/s"
        tables.append(_speeds(f"SmolLM2 decode: {what}", decode, config.decode_tokens))
        tables.append(
            _speeds(f"SmolLM2 prefill: {config.prefill_tokens} tokens, tokens/s", prefill, config.prefill_tokens)
        )
    if "load" in config.sections:
        probes = {
            case: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            for case, runs in _probes(config, say).items()
        }
        rows = [
            [case, f"{p['import_s']:.2f}", f"{p['load_s']:.2f}", harness.mb(p["rss"]), harness.mb(p["peak"])]
            for case, p in probes.items()
        ]
        headers = ["case", "imports s", "load s", "resident MB", "peak MB"]
        tables.append(harness.Table("SmolLM2 load and memory, a fresh process per case", headers, rows))
        measures["load_s"] = max(p["load_s"] for case, p in probes.items() if case != PEER)
        low = next((probes[f"qkv {d}"] for d in ("int4", "bfloat16") if f"qkv {d}" in probes), None)
        measures["low_precision_peak_mb"] = None if low is None else low["peak"] / harness.MB
    if "minilm" in config.sections:
        embed = _minilm(config, say)
        measures["embed_over_peer"] = harness.paired_ratio(embed[PEER], embed["qkv"])
        what = f"{config.sentences} sentence embeddings, {config.batch_size} a batch, sentences/s"
        tables.append(_speeds(f"MiniLM: {what}", embed, config.sentences))
    return harness.Report(tables, measures, notes)


if __name__ == "__main__":
    sys.exit(harness.main("pretrained", Config, run, QUICK))
