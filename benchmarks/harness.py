"""The benchmarks' harness: timing, peak memory, one worker process, flags from a config, the report.

* Correctness first: each script checks that its cases compute the same thing before it times any of them, and
  raises :class:`BenchmarkError` (nothing timed) when they do not.
* Interleaved rounds (:func:`round_robin`): one sample of every case per round, their calls interleaved, so that a
  slow spell of a shared machine falls on all alike; :func:`paired_ratio`: the median of per-round ratios.
* Peak memory in a fresh process (:func:`peak_in_fresh_process`) under glibc's ``MALLOC_MMAP_THRESHOLD_``.
* One worker (:func:`worker`): ``python -m benchmarks.harness MODULE FACTORY PARAMS THREADS`` holds a case and
  answers commands, one JSON line each: the memory probe, the load probe and the compiled training step use it.
* :func:`main`: flags from a frozen config dataclass, targets from BENCHMARKS.md, a JSON line to end the report.

BENCHMARKS.md, "Method", says why each step is there.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import json
import math
import operator
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from qkv.errors import ConfigError, InputError, check_positive

ROOT = Path(__file__).resolve().parents[1]
STARTED = time.perf_counter()  # in a worker: before torch and the case's module are imported
MIN_SAMPLE_S = 1.0  # a fast case is called several times per sample, for a sample of at least this long
MB = 1e6
Say = Callable[[str], None]
T = TypeVar("T")
ConfigT = TypeVar("ConfigT")


class BenchmarkError(RuntimeError):
    """A benchmark could not produce honest numbers: the cases disagree, a process failed, ..."""


# -- timing ---------------------------------------------------------------------------------------------------


def time_calls(fn: Callable[[], object]) -> float:
    """Seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def calls_per_sample(seconds_per_call: float) -> int:
    """How many calls make one sample last at least :data:`MIN_SAMPLE_S`."""
    if seconds_per_call >= MIN_SAMPLE_S:
        return 1
    return min(10_000, math.ceil(MIN_SAMPLE_S / max(seconds_per_call, 1e-9)))


def round_robin(
    cases: Mapping[str, Callable[[], Any]],
    *,
    rounds: int,
    calls: Mapping[str, int] | None = None,
    on_round: Callable[[int], None] | None = None,
    measure: Callable[[Any], float] = time_calls,
) -> dict[str, list[float]]:
    """Seconds per call, one sample per round for each case: the median of its ``calls[name]`` calls that round.

    A round spreads each case's calls evenly over it (3 of a, 1 of b: a a b a), and the order at a tie is rotated
    and reversed from round to round, so that no case always follows the same neighbour. ``measure(case)`` gives
    the seconds of one call (a case that times itself, around work it leaves untimed, reports its own).
    """
    names = list(cases)
    counts = {name: max(1, (calls or {}).get(name, 1)) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        if on_round is not None:
            on_round(r)
        shift = (r // 2) % len(names)
        order = names[shift:] + names[:shift]
        if r % 2:
            order.reverse()
        rank = {name: i for i, name in enumerate(order)}
        schedule = sorted(((i + 0.5) / counts[name], rank[name], name) for name in names for i in range(counts[name]))
        durations: dict[str, list[float]] = {name: [] for name in names}
        gc.collect()
        for _, _, name in schedule:
            durations[name].append(measure(cases[name]))
        for name in names:
            samples[name].append(statistics.median(durations[name]))
    return samples


def first_calls(cases: Mapping[str, Callable[[], T]], say: Say) -> tuple[dict[str, T], dict[str, float]]:
    """Each case called once, for the correctness check (its result) and as its warm-up (its seconds)."""
    results, seconds = {}, {}
    for name, case in cases.items():
        say(f"{name}: first call (the warm-up)")
        start = time.perf_counter()
        results[name] = case()
        seconds[name] = time.perf_counter() - start
    return results, seconds


def interleaved(
    cases: Mapping[str, Callable[[], object]], rounds: int, say: Say, first_s: Mapping[str, float] | None = None
) -> dict[str, list[float]]:
    """:func:`round_robin` with each case's calls per sample measured first (a case whose first call, in
    ``first_s``, already lasted a sample is not called again for it)."""
    calls = {
        name: 1 if (first_s or {}).get(name, 0.0) >= MIN_SAMPLE_S else calls_per_sample(time_calls(fn))
        for name, fn in cases.items()
    }
    return round_robin(cases, rounds=rounds, calls=calls, on_round=lambda r: say(f"timing round {r + 1}/{rounds}"))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median over rounds of ``numerators[r] / denominators[r]``: a ratio robust to a slow spell."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError(f"need equally many samples, at least one: {len(numerators)} and {len(denominators)}")
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


# -- memory ---------------------------------------------------------------------------------------------------

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def memory_supported() -> bool:
    """True where the high-water mark of resident memory can be read and reset (Linux 4.0 or later)."""
    return _STATUS.is_file() and _CLEAR_REFS.exists() and os.access(_CLEAR_REFS, os.W_OK)


def require_memory() -> None:
    if not memory_supported():
        raise BenchmarkError("measuring peak memory needs Linux /proc/self/status and /proc/self/clear_refs")


def _status_bytes(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise BenchmarkError(f"{_STATUS} has no {key} line")


def resident_bytes() -> int:
    return _status_bytes("VmRSS")


def peak_resident_bytes() -> int:
    return _status_bytes("VmHWM")


@dataclasses.dataclass(frozen=True)
class PeakMemory:
    """One call's memory: bytes resident just before it, and the extra bytes resident at its high point."""

    resident_before: int
    peak_extra: int

    @property
    def peak_resident(self) -> int:
        return self.resident_before + self.peak_extra


def memory_cells(peak: PeakMemory | None) -> list[str]:
    """MB resident at rest, extra at the call's high point, and at that point in all; ``n/a`` if not measured."""
    values = (peak.resident_before, peak.peak_extra, peak.peak_resident) if peak else (None, None, None)
    return [mb(value) for value in values]


def measure_peak(fn: Callable[[], object]) -> PeakMemory:
    """The resident bytes before one call of ``fn``, and those beyond them at the call's high point."""
    gc.collect()
    _CLEAR_REFS.write_text("5")  # VmHWM := VmRSS
    before = resident_bytes()
    result = fn()
    peak = peak_resident_bytes()
    del result
    return PeakMemory(before, max(0, peak - before))


def allocation_case(nbytes: int) -> Callable[[], object]:
    """A case of known size, to check the method: one call fills a new ``nbytes``-byte buffer."""
    import torch

    return lambda: torch.ones(nbytes, dtype=torch.uint8)


# -- the one worker -------------------------------------------------------------------------------------------


class Process:
    """A child process running this checkout's ``qkv`` and ``benchmarks``, killed after ``timeout_s``. With
    ``pipes``, :meth:`ask` sends it a line and reads its one-line JSON answer, :meth:`read_line` reads what it
    says unasked (a server its address). A process that stops or fails is a :class:`BenchmarkError` quoting the
    end of its stderr."""

    def __init__(
        self, command: Sequence[str], *, timeout_s: float = 0, env: Mapping[str, str] = {}, pipes: bool = True
    ) -> None:
        qkv_root = Path(importlib.import_module("qkv").__file__ or "").parents[1]
        paths = os.pathsep.join(p for p in (str(qkv_root), str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.name, self.timed_out = " ".join(command[1:4]), False
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- lives as long as the process
        pipe = subprocess.PIPE if pipes else subprocess.DEVNULL
        environ = {**os.environ, **env, "PYTHONPATH": paths}
        self._popen = subprocess.Popen(command, env=environ, stdin=pipe, stdout=pipe, stderr=self._stderr, text=True)
        self._timer = threading.Timer(timeout_s, self._kill)
        if timeout_s:
            self._timer.start()

    def _kill(self) -> None:
        self.timed_out = True
        self._popen.kill()

    def ask(self, line: str) -> dict[str, Any]:
        assert self._popen.stdin is not None and self._popen.stdout is not None, "started without pipes"
        with contextlib.suppress(BrokenPipeError):  # then the answer is missing: a failure
            self._popen.stdin.write(line + "\n")
            self._popen.stdin.flush()
        answer = self._popen.stdout.readline()
        if not answer:
            raise self._failure()
        reply: dict[str, Any] = json.loads(answer)
        return reply

    @property
    def pid(self) -> int:
        return self._popen.pid

    def read_line(self) -> str:
        """The next line it writes to stdout (a server's address); its end, or a failure, is an error."""
        assert self._popen.stdout is not None, "started without pipes"
        line = self._popen.stdout.readline()
        if not line:
            raise self._failure()
        return line

    def interrupt(self) -> None:
        """Ctrl-C (SIGINT; a server's cue to end) and wait for it to end well."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGINT)
        self.wait()

    def wait(self) -> None:
        """Close its input (a worker's cue to end) and wait for it to end well."""
        if self._popen.stdin is not None:
            self._popen.stdin.close()
        if self._popen.wait() != 0:
            raise self._failure()
        self._timer.cancel()

    def _failure(self) -> BenchmarkError:
        code = self._popen.wait()
        self._timer.cancel()
        if self.timed_out:
            return BenchmarkError(f"{self.name} ran past its time limit")
        self._stderr.seek(0)
        tail = " | ".join(self._stderr.read().strip().splitlines()[-3:]) or "no message"
        return BenchmarkError(f"{self.name} stopped with exit status {code}: {tail}")

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._popen.poll() is None:
            with contextlib.suppress(BenchmarkError):
                self.wait()
        self._timer.cancel()


def worker(module: str, factory: str, params: Mapping[str, object], *, threads: int = 0, **process: Any) -> Process:
    """A fresh :class:`Process` holding the case ``module.factory(**params)``, a function of no arguments, with
    ``threads`` torch threads (default: as many as this process uses). ``run N``
    calls it ``N`` times and answers ``{"values": [...]}`` (each a float unless JSON already); ``peak`` answers its
    :class:`PeakMemory` after a warm-up call. The process ends when its input closes (``wait``, or leaving ``with``)."""
    import torch

    threads = threads or torch.get_num_threads()
    command = [sys.executable, "-m", "benchmarks.harness", module, factory, json.dumps(dict(params)), str(threads)]
    return Process(command, **process)


def peak_in_fresh_process(module: str, factory: str, params: Mapping[str, object], **process: Any) -> PeakMemory:
    """:func:`measure_peak` of one call of a case, after a warm-up call, in a fresh worker whose glibc hands every
    block of 64 KiB or more back when it is freed: none waits in the heap for the measured call to reuse it."""
    require_memory()
    with worker(module, factory, params, env={"MALLOC_MMAP_THRESHOLD_": "65536"}, **process) as case:
        return PeakMemory(**case.ask("peak"))


def _as_json(value: object) -> object:
    return value if isinstance(value, (dict, list, int, str, type(None))) else float(value)  # type: ignore[arg-type]


def worker_main(argv: Sequence[str]) -> int:
    module, factory, params, threads = argv
    if not module.startswith("benchmarks."):
        raise SystemExit(f"cases live under benchmarks, got module {module!r}")
    import torch

    torch.set_num_threads(int(threads))
    case = getattr(importlib.import_module(module), factory)(**json.loads(params))
    for line in sys.stdin:
        command, _, count = line.strip().partition(" ")
        if command == "peak":
            case()  # warm-up: thread pools, code pages and one-time buffers are not the case's cost
            answer: object = dataclasses.asdict(measure_peak(case))
        elif command == "run" and count.isdigit():
            answer = {"values": [_as_json(case()) for _ in range(int(count))]}
        else:
            raise SystemExit(f"worker: unknown command {line.strip()!r}")
        print(json.dumps(answer), flush=True)
    return 0


# -- flags from a config --------------------------------------------------------------------------------------


def require_positive(config: object, *names: str) -> None:
    for name in names:
        check_positive(type(config).__name__, name, getattr(config, name))


def require_some(config: object, name: str, allowed: Sequence[str]) -> None:
    """``config.name`` must be a non-empty tuple of names among ``allowed``."""
    chosen = getattr(config, name)
    if not chosen or not set(chosen) <= set(allowed):
        raise ConfigError(f"{type(config).__name__}.{name} must be some of {', '.join(allowed)}, got {chosen}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _items(kind: Callable[[str], object]) -> Callable[[str], tuple[object, ...]]:
    def parse(text: str) -> tuple[object, ...]:
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated values like 1,2, got {text!r}") from None

    return parse


def add_config_arguments(parser: argparse.ArgumentParser, config_type: type) -> None:
    """One option per field of the frozen dataclass ``config_type``: ``--name VALUE``, ``--name/--no-name`` for a
    bool, comma-separated for a tuple; ``X | None`` takes an ``X``. Unset options stay out of the namespace."""
    hints = typing.get_type_hints(config_type)
    for field in dataclasses.fields(config_type):
        hint = hints[field.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata.get('help', '')} (default {field.default!r})".strip()
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
            continue
        if typing.get_origin(hint) is tuple:
            kind, metavar = _items(typing.get_args(hint)[0]), "A,B"
        else:
            kind, metavar = hint, field.name.upper()
        parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=metavar, help=help_text)


# -- targets and the report -----------------------------------------------------------------------------------

_COMPARE = {"<": operator.lt, "≤": operator.le, ">": operator.gt, "≥": operator.ge}


def verdicts(
    benchmark: str, measures: Mapping[str, float | None], path: Path = ROOT / "BENCHMARKS.md"
) -> list[dict[str, Any]]:
    """The rows for ``benchmark`` of BENCHMARKS.md's "## Targets" table, ``| name | measure | ≥ 2 | what |``, judged:
    PASS or FAIL where the measure was taken, SKIP where it was not."""
    section = path.read_text(encoding="utf-8").split("\n## Targets\n", 1)[-1].split("\n## ", 1)[0]
    judged = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] == benchmark:
            cells[1] = cells[1].strip("`")
            (op, target), value = cells[2].split(), measures.get(cells[1])
            status = "SKIP" if value is None else "PASS" if _COMPARE[op](value, float(target)) else "FAIL"
            judged.append({"status": status, "measure": cells[1], "value": value, "target": cells[3]})
    return judged


@dataclasses.dataclass(frozen=True)
class Table:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    left: int = 1  # columns aligned left; the rest (numbers) align right


@dataclasses.dataclass(frozen=True)
class Report:
    """What a script measured: its tables, the measures its targets judge, lines on its method."""

    tables: Sequence[Table]
    measures: Mapping[str, float | None]
    notes: Sequence[str] = ()


def format_table(table: Table, *, markdown: bool = False) -> str:
    headers, rows = table.headers, table.rows
    widths = [max([3 if markdown else 1, len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i < table.left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |" if markdown else "  ".join(padded).rstrip()

    rules = [
        ("-" * w if not markdown else ":" + "-" * (w - 1) if i < table.left else "-" * (w - 1) + ":")
        for i, w in enumerate(widths)
    ]
    rule = "| " + " | ".join(rules) + " |" if markdown else "  ".join(rules)
    title = f"**{table.title}**" if markdown else table.title
    return "\n".join([title, line(headers), rule, *map(line, rows)])


def ms(seconds: float) -> str:
    """Milliseconds with three or four significant digits."""
    value = seconds * 1000
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def mb(nbytes: float | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / MB:.1f}" if nbytes < 100 * MB else f"{nbytes / MB:,.0f}"


def main(
    name: str,
    config_type: type[ConfigT],
    run: Callable[[ConfigT, Say], Report],
    quick: Mapping[str, object],
    argv: Sequence[str] | None = None,
) -> int:
    """Run benchmark ``name``: parse its flags, run it, print its report, and last its JSON line on stdout.

    Exit status: 0; 2 for a bad flag or config (one line on stderr); 1 when the benchmark cannot produce honest
    numbers (one line), or with ``--strict`` when a target fails.
    """
    doc = (sys.modules[run.__module__].__doc__ or "").strip()
    parser = _Parser(prog=f"python -m benchmarks.{name}", description=doc.split("\n\n")[0])
    add_config_arguments(parser, config_type)
    parser.add_argument("--quick", action="store_true", help=f"a quick check that it runs: {dict(quick)}")
    parser.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's default)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if a target fails")
    args = vars(parser.parse_args(argv))
    options = {key: args.pop(key) for key in ("quick", "threads", "markdown", "strict")}
    try:
        config = config_type(**{**(quick if options["quick"] else {}), **args})
        if options["threads"] is not None and options["threads"] < 1:
            raise InputError(f"--threads must be at least 1, got {options['threads']}")
    except InputError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    import torch

    if options["threads"]:
        torch.set_num_threads(options["threads"])
    if options["quick"]:
        global MIN_SAMPLE_S
        MIN_SAMPLE_S = 0.05
    start = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {name}: {message}", file=sys.stderr, flush=True)

    before: dict[str, object] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    before.update(machine=f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs")
    before.update(omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset"), load_average=round(os.getloadavg()[0], 2))
    try:
        report = run(config, say)
    except (BenchmarkError, InputError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    env = {**before, "load_average": (before["load_average"], round(os.getloadavg()[0], 2))}
    env["wall_s"] = round(time.perf_counter() - start, 1)
    judged = verdicts(name, report.measures)
    verdict_table = Table(
        "Targets (BENCHMARKS.md)",
        ["verdict", "target", "measure", "measured"],
        [
            [
                str(v["status"]),
                str(v["target"]),
                str(v["measure"]),
                f"{v['value']:.3g}" if v["value"] is not None else "n/a",
            ]
            for v in judged
        ],
        left=3,
    )
    about = ", ".join(f"{key} {value}" for key, value in env.items())
    tables = [format_table(t, markdown=options["markdown"]) for t in [*report.tables, verdict_table]]
    print("\n\n".join([f"{name}: {about}", *(["\n".join(report.notes)] if report.notes else []), *tables]) + "\n")
    result = {"benchmark": name, "config": dataclasses.asdict(config), "environment": env}  # type: ignore[call-overload]
    result.update(measures=dict(report.measures), verdicts=judged)
    result["tables"] = {t.title: [dict(zip(t.headers, row, strict=True)) for row in t.rows] for t in report.tables}
    print(json.dumps(result), flush=True)
    return 1 if options["strict"] and any(v["status"] == "FAIL" for v in judged) else 0


if __name__ == "__main__":  # a worker: run in the module benchmarks.harness, whose STARTED its cases can read
    from benchmarks import harness

    sys.exit(harness.worker_main(sys.argv[1:]))
