"""Tables for benchmark reports, as aligned plain text or as Markdown; pure formatting, no output."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TextIO, TypeVar

__all__ = [
    "Verdict",
    "add_report_arguments",
    "format_ms",
    "format_table",
    "format_verdicts",
    "load_average",
    "positive_int",
    "run_and_report",
]


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False, left: int = 0
) -> str:
    """A table; the first ``left`` columns are aligned left, the others (numbers) right."""
    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row needs {len(headers)} cells")
    smallest = 3 if markdown else 1  # a Markdown rule needs a hyphen besides its colon
    widths = [max([smallest, len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |" if markdown else "  ".join(padded).rstrip()

    lines = [line(headers)]
    if markdown:
        rules = [(":" + "-" * (w - 1)) if i < left else ("-" * (w - 1) + ":") for i, w in enumerate(widths)]
        lines.append("| " + " | ".join(rules) + " |")
    else:
        lines.append("  ".join("-" * w for w in widths))
    lines.extend(line(row) for row in rows)
    return "\n".join(lines)


def format_ms(seconds: float) -> str:
    """Milliseconds with three or four significant digits: ``0.0123`` → ``"12.3"``."""
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


@dataclass(frozen=True)
class Verdict:
    """One target of an issue, judged on a benchmark's report."""

    status: Literal["PASS", "FAIL", "SKIP"]
    target: str
    measured: str


def format_verdicts(verdicts: Sequence[Verdict], *, markdown: bool = False) -> str:
    """The verdicts as a Markdown table, or one ``STATUS  target: measured`` line each."""
    if markdown:
        return format_table(
            ["verdict", "target", "measured"],
            [[f"**{v.status}**", v.target, v.measured] for v in verdicts],
            markdown=True,
            left=3,
        )
    return "\n".join(f"{v.status}  {v.target}: {v.measured}" for v in verdicts)


def load_average() -> float | None:
    """The 1-minute load average, where the system reports one (reports quote it: timings depend on it)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


ReportT = TypeVar("ReportT")


ReportIn = TypeVar("ReportIn", contravariant=True)


class _FormatReport(Protocol[ReportIn]):
    def __call__(self, report: ReportIn, *, markdown: bool = False) -> str: ...


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: ``--markdown`` tables and ``--strict`` exit status."""
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for BENCHMARKS.md)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if a target fails")


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[Callable[[str], None]], ReportT],
    format_report: _FormatReport[ReportT],
    verdicts: Callable[[ReportT], Sequence[Verdict]],
    *,
    out: TextIO,
    log: TextIO,
) -> int:
    """The glue every benchmark shares: timed progress on ``log``, the report on ``out`` (Markdown with
    ``args.markdown``), and exit status 1 when ``args.strict`` and a target failed."""
    start = time.perf_counter()

    def progress(message: str) -> None:
        log.write(f"[{time.perf_counter() - start:6.1f} s] {message}\n")
        log.flush()

    report = run(progress)
    progress("done")
    out.write(format_report(report, markdown=args.markdown))
    out.flush()
    failed = any(verdict.status == "FAIL" for verdict in verdicts(report))
    return 1 if failed and args.strict else 0
