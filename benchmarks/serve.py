"""The explorer: a real ``qkv serve`` in a subprocess, timed from outside as the page uses it.

* start: ``python -m qkv serve --port 0`` spawned, timed until ``GET /`` answers 200 (``--starts`` fresh
  servers); beside it the CPU seconds the server used by then (``/proc/PID/stat``).
* inspect: ``POST /api/trace`` of a ``--minilm-tokens``-token text through MiniLM and a ``--smollm2-tokens``-token
  one through SmolLM2 (int4, the server's precision), gzip accepted as a browser does: the round trip, the
  server's own ``Server-Timing`` (model, encoding), its CPU seconds, the bytes on the wire and unzipped; then
  ``GET /api/trace/{id}/head/…`` of the SmolLM2 trace (one head in full).
* generate: ``POST /api/generate`` (SmolLM2, greedy, ``--generate-tokens`` tokens): the first token line's
  seconds after the request, and the seconds per token after it, against plain decoding of the same tokens in
  this process (``Model.stream``: the fast decoder, one torch thread like the server's worker) and through the
  model's modules (``qkv.generation.generate`` with ``decode_one_token``, the slower path kept for comparison),
  each round once each. The stream must write the same tokens as plain decoding, or nothing is timed.
* browser: Debian's Chromium (Playwright) opens the page, traces a ``--browser-tokens``-token text through
  MiniLM, switches heads and hovers tokens; the page's own ``performance.now()`` timings of each
  (``window.qkvExplorer.timings``). Skipped, with a note, without Playwright or Chromium.

The machine's load (1-minute average) is given with every row: absolute seconds move with it, CPU seconds and
the paired ratios much less. The first call of each kind (loading the model) is a warm-up and is not counted.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness

SECTIONS = ("start", "inspect", "generate", "browser")
PROMPT = "The history of the city begins with a small village on the river, where"
CHROMIUM = os.environ.get("QKV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
_URL = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\]):(\d+)/")


@dataclass(frozen=True)
class Config:
    rounds: int = 7
    starts: int = field(default=3, metadata={"help": "fresh servers timed from spawn to the page"})
    minilm_tokens: int = field(default=64, metadata={"help": "tokens of the text MiniLM traces"})
    smollm2_tokens: int = field(default=256, metadata={"help": "tokens of the text SmolLM2 traces"})
    generate_tokens: int = field(default=32, metadata={"help": "tokens each generation writes"})
    browser_tokens: int = field(default=512, metadata={"help": "tokens of the text the page traces"})
    sections: tuple[str, ...] = field(default=SECTIONS, metadata={"help": "some of " + ", ".join(SECTIONS)})
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        harness.require_positive(self, "rounds", "starts", "minilm_tokens", "smollm2_tokens", "generate_tokens")
        harness.require_positive(self, "browser_tokens")
        harness.require_some(self, "sections", SECTIONS)


QUICK = {"rounds": 2, "starts": 1, "smollm2_tokens": 64, "generate_tokens": 8, "browser_tokens": 128}


# -- what the server says -------------------------------------------------------------------------------------


def server_address(line: str) -> tuple[str, int]:
    """``("127.0.0.1", 8750)`` from ``qkv serve``'s first line, ``qkv serve: http://127.0.0.1:8750/  (…)``."""
    found = _URL.search(line)
    if found is None:
        raise harness.BenchmarkError(f"qkv serve printed no loopback URL: {line.strip()[:120]!r}")
    return found.group(1).strip("[]"), int(found.group(2))


def server_timing(header: str) -> dict[str, float]:
    """``Server-Timing: model;dur=12.5, encode;dur=3`` as seconds by name: ``{"model": 0.0125, "encode": 0.003}``."""
    timings = {}
    for metric in header.split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if name and key == "dur":
                timings[name] = float(value) / 1000
    return timings


def cpu_seconds(stat: str) -> float:
    """User plus system CPU seconds of a process from its ``/proc/PID/stat`` line (all its threads)."""
    fields = stat.rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def load() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass(frozen=True)
class Answer:
    """One request: its status, the body as it came over the wire, the headers, the round trip's seconds and
    the server's CPU seconds meanwhile."""

    status: int
    wire: bytes
    headers: dict[str, str]
    seconds: float
    cpu_s: float

    @property
    def body(self) -> bytes:
        return gzip.decompress(self.wire) if self.headers.get("content-encoding") == "gzip" else self.wire

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """``qkv serve --port 0`` in a :class:`harness.Process`: spawned when made, stopped by Ctrl-C on leaving."""

    def __init__(self, timeout_s: float) -> None:
        self.spawned = time.perf_counter()
        command = [sys.executable, "-m", "qkv", "serve", "--port", "0"]
        self.process = harness.Process(command, timeout_s=timeout_s)
        self.host, self.port = server_address(self.process.read_line())

    def cpu_s(self) -> float:
        return cpu_seconds(Path(f"/proc/{self.process.pid}/stat").read_text())

    def request(self, method: str, path: str, body: object = None, *, timeout: float = 300.0) -> Answer:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {"accept-encoding": "gzip", "content-type": "application/json"}
        payload = None if body is None else json.dumps(body).encode("utf-8")
        cpu, start = self.cpu_s(), time.perf_counter()
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            wire = response.read()
        finally:
            connection.close()
        seconds, cpu = time.perf_counter() - start, self.cpu_s() - cpu
        answer = Answer(response.status, wire, {k.lower(): v for k, v in response.getheaders()}, seconds, cpu)
        if answer.status != 200:
            raise harness.BenchmarkError(f"{method} {path} answered {answer.status}: {answer.body[:200]!r}")
        return answer

    def stream(self, body: object, *, timeout: float = 300.0) -> Iterator[tuple[float, dict[str, Any]]]:
        """``POST /api/generate``'s lines as they arrive, each with its seconds since the request was sent."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            start = time.perf_counter()
            headers = {"content-type": "application/json"}
            connection.request("POST", "/api/generate", body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                raise harness.BenchmarkError(
                    f"POST /api/generate answered {response.status}: {response.read()[:200]!r}"
                )
            while line := response.readline():
                yield time.perf_counter() - start, json.loads(line)
        finally:
            connection.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(harness.BenchmarkError):
            self.process.interrupt()


# -- start ----------------------------------------------------------------------------------------------------


def time_start(timeout_s: float) -> tuple[float, float, float]:
    """Seconds from spawning ``qkv serve`` to its URL line and to ``GET /`` answering 200, and its CPU seconds."""
    with Server(timeout_s) as server:
        printed = time.perf_counter() - server.spawned
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = server.request("GET", "/")
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise harness.BenchmarkError("qkv serve printed its URL but refused connections for 60 s") from None
                time.sleep(0.01)
        served = time.perf_counter() - server.spawned
        if b"<html" not in answer.body.lower() and b"<!doctype html" not in answer.body.lower():
            raise harness.BenchmarkError("GET / did not answer the page")
        return printed, served, server.cpu_s()


def start_section(config: Config, say: harness.Say) -> tuple[harness.Table, dict[str, float | None]]:
    rows, served = [], []
    for i in range(config.starts):
        say(f"start: fresh server {i + 1}/{config.starts}")
        printed, page, cpu = time_start(config.timeout_s)
        served.append(page)
        rows.append([str(i + 1), f"{printed:.2f}", f"{page:.2f}", f"{cpu:.2f}", f"{load():.2f}"])
    table = harness.Table(
        "Start: spawn to the page (s)", ["server", "URL printed s", "GET / 200 s", "server CPU s", "load"], rows
    )
    return table, {"page_s": statistics.median(served)}


# -- inspect --------------------------------------------------------------------------------------------------


def text_of_tokens(model: str, tokens: int) -> str:
    """The start of ``qkv train``'s corpus that ``model`` reads as exactly ``tokens`` tokens (specials included)."""
    from benchmarks.inspect import text_of_tokens as cut
    from qkv.pretrained import load as load_model
    from qkv.text import default_corpus

    return cut(load_model(model).tokenizer, default_corpus().text, tokens)


@dataclass
class Samples:
    """One kind of request's samples, a row of the inspect table."""

    name: str
    seconds: list[float] = field(default_factory=list)
    model_s: list[float] = field(default_factory=list)
    encode_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)
    plain: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, answer: Answer) -> None:
        timing = server_timing(answer.headers.get("server-timing", ""))
        self.seconds.append(answer.seconds)
        self.cpu_s.append(answer.cpu_s)
        self.wire.append(len(answer.wire))
        self.plain.append(len(answer.body))
        self.loads.append(load())
        if "model" in timing:
            self.model_s.append(timing["model"])
        if "encode" in timing:
            self.encode_s.append(timing["encode"])

    def row(self) -> list[str]:
        def median_ms(values: list[float]) -> str:
            return harness.ms(statistics.median(values)) if values else "n/a"

        return [
            self.name,
            median_ms(self.seconds),
            f"{harness.ms(min(self.seconds))}–{harness.ms(max(self.seconds))}",
            median_ms(self.model_s),
            median_ms(self.encode_s),
            median_ms(self.cpu_s),
            f"{statistics.median(self.wire) / 1000:,.0f}",
            f"{statistics.median(self.plain) / 1000:,.0f}",
            f"{statistics.median(self.loads):.2f}",
        ]


INSPECT_HEADERS = [
    "request",
    "median ms",
    "range ms",
    "server model ms",
    "server encode ms",
    "server CPU ms",
    "wire KB",
    "JSON KB",
    "load",
]


def check_overview(overview: dict[str, Any], model: str, tokens: int) -> None:
    """The overview is of the text asked for: as many tokens, every head's metrics and thumbnail."""
    if len(overview["tokens"]) != tokens:
        raise harness.BenchmarkError(f"{model} traced {len(overview['tokens'])} tokens, expected {tokens}")
    L, H, n = len(overview["layers"]), overview["heads"], overview["thumbs"]["size"]
    if len(overview["metrics"]["entropy"]) != L or len(overview["thumbs"]["data"]) != 4 * ((L * H * n * n + 2) // 3):
        raise harness.BenchmarkError(f"{model}'s overview does not hold {L} × {H} heads")


def inspect_section(server: Server, config: Config, say: harness.Say) -> tuple[harness.Table, dict[str, float | None]]:
    texts = {"minilm": text_of_tokens("minilm", config.minilm_tokens)}
    texts["smollm2"] = text_of_tokens("smollm2", config.smollm2_tokens)
    sizes = {"minilm": config.minilm_tokens, "smollm2": config.smollm2_tokens}
    samples = {name: Samples(f"{name} overview, {sizes[name]} tokens") for name in texts}
    head = Samples(f"smollm2 one head, {config.smollm2_tokens}²")
    ids, shapes = {}, {}
    for name, text in texts.items():
        say(f"inspect: {name} warm-up (loads the model)")
        overview = server.request("POST", "/api/trace", {"model": name, "text": text}).json()
        check_overview(overview, name, sizes[name])
        ids[name], shapes[name] = overview["id"], (len(overview["layers"]), overview["heads"])
    for r in range(config.rounds):
        say(f"inspect: round {r + 1}/{config.rounds}")
        for name in texts if r % 2 == 0 else reversed(list(texts)):
            answer = server.request("POST", "/api/trace", {"model": name, "text": texts[name]})
            samples[name].add(answer)
            ids[name] = answer.json()["id"]
        L, H = shapes["smollm2"]
        for layer, number in ((r % L, r % H), (L - 1 - r % L, H - 1 - r % H)):
            answer = server.request("GET", f"/api/trace/{ids['smollm2']}/head/{layer}/{number}")
            if answer.json()["shape"] != [config.smollm2_tokens] * 2:
                raise harness.BenchmarkError(f"one head's shape is {answer.json()['shape']}")
            head.add(answer)
    table = harness.Table(
        "Inspect: requests on a warm server", INSPECT_HEADERS, [s.row() for s in (*samples.values(), head)]
    )
    minilm, smollm2 = samples["minilm"], samples["smollm2"]
    measures: dict[str, float | None] = {
        "minilm_trace_s": statistics.median(minilm.seconds),
        "minilm_trace_kb": statistics.median(minilm.wire) / 1000,
        "smollm2_trace_s": statistics.median(smollm2.seconds),
        "smollm2_trace_mb": statistics.median(smollm2.wire) / harness.MB,
        "head_s": statistics.median(head.seconds),
    }
    return table, measures


# -- generate -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    """One generation: its tokens, the seconds to the first one, and the seconds (wall and CPU: the server's
    for the stream, this process's for plain decoding) per token after it."""

    tokens: tuple[int, ...]
    first_s: float
    per_token_s: float
    cpu_per_token_s: float


def per_token(times: Sequence[float]) -> float:
    """Seconds per token from the first token's time to the last's (the first's own wait is the prefill)."""
    if len(times) < 2:
        raise harness.BenchmarkError("a generation wrote fewer than two tokens: raise --generate-tokens")
    return (times[-1] - times[0]) / (len(times) - 1)


def read_stream(lines: Iterator[tuple[float, dict[str, Any]]], cpu: Callable[[], float]) -> Decoded:
    """The tokens of an NDJSON generation, the first token line's seconds and the seconds per token after it;
    ``cpu()`` is read at each token line (the server's CPU seconds)."""
    tokens, times, cpus = [], [], []
    for seconds, line in lines:
        if line["type"] == "token":
            cpus.append(cpu())
            tokens.append(int(line["id"]))
            times.append(seconds)
        elif line["type"] == "error":
            raise harness.BenchmarkError(f"the generation failed: {line['error']}")
        elif line["type"] == "done":
            first = times[0] if times else float("nan")
            return Decoded(tuple(tokens), first, per_token(times), per_token(cpus))
    raise harness.BenchmarkError("the generation's stream ended without a done line")


def timed(tokens: Iterator[int]) -> Decoded:
    """Plain decoding's tokens, timed as :func:`read_stream` times the stream's (CPU: this process's)."""
    start, got, times, cpus = time.perf_counter(), [], [], []
    for token in tokens:
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time())
        got.append(int(token))
    return Decoded(tuple(got), times[0], per_token(times), per_token(cpus))


STREAM, FAST, MODULES = "server stream (capture, NDJSON)", "plain: Model.stream (fast decoder)", "plain: modules"


def generate_cases(server: Server, config: Config) -> dict[str, Callable[[], Decoded]]:
    """Three ways to decode the same tokens: the server's stream, and plainly in this process (one torch thread,
    as the server's worker): :meth:`Model.stream` (the fast decoder) and the model's modules
    (``decode_one_token``, the Transformer's own path, kept for comparison)."""
    import torch

    from qkv.generation import GREEDY, decode_one_token, generate
    from qkv.pretrained import load as load_model

    torch.set_num_threads(1)
    model = load_model("smollm2", dtype="int4")
    prompt, count, stops = model.encode(PROMPT), config.generate_tokens, set(model.stop_ids)
    body = {"model": "smollm2", "prompt": PROMPT, "tokens": count, "temperature": 0, "layer": -1}

    def until_stop(tokens: Iterator[Any]) -> Iterator[int]:
        for token in tokens:
            if int(token) in stops:
                return
            yield int(token)

    def modules() -> Decoded:
        ids = torch.tensor([prompt], dtype=torch.long)  # (1, T)
        with torch.inference_mode():
            return timed(until_stop(generate(model.model, ids, count, GREEDY, decode=decode_one_token)))

    return {
        STREAM: lambda: read_stream(server.stream(body), server.cpu_s),
        FAST: lambda: timed(model.stream(prompt, count)),
        MODULES: modules,
    }


def generate_section(server: Server, config: Config, say: harness.Say) -> tuple[harness.Table, dict[str, float | None]]:
    cases = generate_cases(server, config)
    say("generate: the first call of each (warm-up and the check that all write the same tokens)")
    first = {name: case() for name, case in cases.items()}
    for name, decoded in first.items():
        if decoded.tokens != first[FAST].tokens:
            raise harness.BenchmarkError(f"{name} wrote other tokens than {FAST}: nothing timed")
    results: dict[str, list[Decoded]] = {name: [] for name in cases}
    loads: list[float] = []

    def recorded(name: str) -> Callable[[], float]:
        def run() -> float:
            decoded = cases[name]()
            results[name].append(decoded)
            return decoded.per_token_s

        return run

    def on_round(r: int) -> None:
        say(f"generate: round {r + 1}/{config.rounds}")
        loads.append(load())

    recorders = {name: recorded(name) for name in cases}
    harness.round_robin(recorders, rounds=config.rounds, on_round=on_round, measure=lambda run: run())
    wall = {name: [d.per_token_s for d in decoded] for name, decoded in results.items()}
    cpu = {name: [d.cpu_per_token_s for d in decoded] for name, decoded in results.items()}

    def ratio(samples: dict[str, list[float]], name: str, over: str = FAST) -> str:
        return "" if name == over else f"{harness.paired_ratio(samples[name], samples[over]):.2f}"

    rows = [
        [
            name,
            harness.ms(statistics.median(d.first_s for d in decoded)),
            harness.ms(statistics.median(wall[name])),
            f"{1 / statistics.median(wall[name]):.1f}",
            harness.ms(statistics.median(cpu[name])),
            ratio(wall, name),
            ratio(cpu, name),
            f"{statistics.median(loads):.2f}",
        ]
        for name, decoded in results.items()
    ]
    table = harness.Table(
        f"Generate: SmolLM2 int4, greedy, {len(first[FAST].tokens)} tokens, one torch thread",
        ["decoding", "first token ms", "ms/token", "tokens/s", "CPU ms/token", "× fast, time", "× fast, CPU", "load"],
        rows,
    )
    measures: dict[str, float | None] = {
        "first_token_s": statistics.median(d.first_s for d in results[STREAM]),
        "capture_overhead": harness.paired_ratio(wall[STREAM], wall[FAST]) - 1,
        "capture_overhead_cpu": harness.paired_ratio(cpu[STREAM], cpu[FAST]) - 1,
        "capture_over_modules_cpu": harness.paired_ratio(cpu[STREAM], cpu[MODULES]) - 1,
    }
    return table, measures


# -- browser --------------------------------------------------------------------------------------------------


def browser_missing() -> str | None:
    """Why the page cannot be timed here (no Playwright, no Chromium), or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


def browser_section(server: Server, config: Config, say: harness.Say) -> tuple[harness.Table, dict[str, float | None]]:
    """The page's own timings of a head switch (drawing a cached head) and of a hover (a token's lines)."""
    from playwright.sync_api import sync_playwright

    text = text_of_tokens("minilm", config.browser_tokens)
    timings: dict[str, list[float]] = {"head": [], "hover": []}
    loads = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(config.timeout_s * 1000)
            page.goto(f"http://{server.host}:{server.port}/#view=inspect")
            page.wait_for_selector("body[data-ready='inspect']")
            say(f"browser: the page traces {config.browser_tokens} tokens through MiniLM")
            page.select_option("#inspect-model", "minilm")
            page.fill("#inspect-text", text)
            page.click("#inspect-form button[type=submit]")
            page.wait_for_selector("#inspect-grid [role=gridcell]")
            page.wait_for_function("() => window.qkvExplorer && window.qkvExplorer.inspect.shown")
            shown = page.evaluate("document.querySelectorAll('#inspect-lines text[data-side=left]').length")
            if shown != config.browser_tokens:
                raise harness.BenchmarkError(f"the page shows {shown} tokens, expected {config.browser_tokens}")
            cells = [(1, 2), (3, 4)]
            for layer, number in cells:  # each head fetched once: the switches below draw from the page's cache
                page.click(f"#inspect-grid [data-layer='{layer}'][data-head='{number}']")
                page.wait_for_function(f"() => window.qkvExplorer.inspect.shown.head === {number}")
            for r in range(config.rounds):
                say(f"browser: round {r + 1}/{config.rounds}")
                page.evaluate("window.qkvExplorer.timings.head.length = 0; window.qkvExplorer.timings.hover.length = 0")
                for i in range(6):
                    layer, number = cells[i % 2]
                    page.click(f"#inspect-grid [data-layer='{layer}'][data-head='{number}']")
                    page.wait_for_function(f"() => window.qkvExplorer.inspect.shown.head === {number}")
                for token in range(r % 7, config.browser_tokens, max(1, config.browser_tokens // 12)):
                    page.hover(f"#inspect-lines text[data-side='left'][data-index='{token}']")
                got = page.evaluate("window.qkvExplorer.timings")
                timings["head"] += got["head"]
                timings["hover"] += got["hover"]
                loads.append(load())
        finally:
            browser.close()
    if not timings["head"] or not timings["hover"]:
        raise harness.BenchmarkError("the page recorded no head-switch or hover timings")
    rows = [
        [
            what,
            str(len(timings[key])),
            f"{statistics.median(timings[key]):.2f}",
            f"{sorted(timings[key])[int(0.9 * (len(timings[key]) - 1))]:.2f}",
            f"{max(timings[key]):.2f}",
            f"{statistics.median(loads):.2f}",
        ]
        for what, key in (("head switch (a fetched head)", "head"), ("hover (a token's lines)", "hover"))
    ]
    table = harness.Table(
        f"The page at {config.browser_tokens} tokens (Chromium, performance.now(), ms)",
        ["interaction", "samples", "median ms", "90th ms", "max ms", "load"],
        rows,
    )
    return table, {
        "head_switch_ms": statistics.median(timings["head"]),
        "hover_ms": statistics.median(timings["hover"]),
    }


# -- the run --------------------------------------------------------------------------------------------------


def run(config: Config, say: harness.Say) -> harness.Report:
    tables, measures, notes = [], {}, []
    sections = {name for name in config.sections}
    if "browser" in sections and (missing := browser_missing()) is not None:
        sections.discard("browser")
        notes.append(f"browser: skipped, {missing}")
    if "start" in sections:
        table, found = start_section(config, say)
        tables.append(table)
        measures.update(found)
    if sections & {"inspect", "generate", "browser"}:
        with Server(config.timeout_s) as server:
            for name, section in (("inspect", inspect_section), ("generate", generate_section)):
                if name in sections:
                    table, found = section(server, config, say)
                    tables.append(table)
                    measures.update(found)
            if "browser" in sections:
                table, found = browser_section(server, config, say)
                tables.append(table)
                measures.update(found)
    notes.append(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return harness.Report(tables, measures, notes)


if __name__ == "__main__":
    sys.exit(harness.main("serve", Config, run, QUICK))
