"""Watching heads form while a model learns: ``qkv train --watch TEXT`` (``TrainConfig.watch``).

When a run starts (step 0, or the step a resume starts from) and at every validation, :class:`Watch` runs its
text through the model once (:func:`qkv.trace`: eval mode, no gradient, no randomness, so training goes on
exactly as it would without it) and stores what every head did as a snapshot beside the checkpoint::

    RUN/watch/step-000250.json   {"format": "qkv-watch", "version": 1, "step": 250, "text": …, "tokens": [str],
                                  "layers": L, "heads": H, "thumbs": {"size": n, "data": base64},
                                  "metrics": {"entropy": [[float]], …}}

``thumbs`` are the explorer's thumbnails (:mod:`qkv.data.thumbnails`: uint8 ``(L, H, n, n)``,
``n = min(T, 64)``), so ``qkv serve`` passes them to the page as they are; ``metrics`` are
:func:`~qkv.data.metrics.head_metrics` ``(L × H)``. Each file is written atomically.

The folder stays bounded: at most :data:`MAX_SNAPSHOTS` snapshots and about :data:`MAX_BYTES` of thumbnails
(fewer snapshots for a bigger model). Past that the snapshots are thinned evenly: only the steps that are
multiples of a spacing (the validation interval, doubled as often as needed) are kept, and the newest one. A
resume keeps appending, after dropping any snapshot of a step beyond the checkpoint it resumes from.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from qkv.data.metrics import head_metrics
from qkv.data.thumbnails import THUMB_SIZE, thumbnails
from qkv.errors import ConfigError, InputError
from qkv.files import write_atomically
from qkv.inspection.trace import trace
from qkv.model.transformer import Transformer
from qkv.text.tokenizers import Tokenizer, TokenizerError, tokenizer_from_json

__all__ = [
    "DEFAULT_TEXT",
    "FORMAT",
    "MAX_BYTES",
    "MAX_SNAPSHOTS",
    "WATCH_FOLDER",
    "Watch",
    "check_watch_text",
    "kept_steps",
    "read_snapshots",
    "snapshot_steps",
]

DEFAULT_TEXT = "Evan's dog Riley is so hyperactive, she never stops moving"  # the article's sentence
FORMAT = "qkv-watch"
FORMAT_VERSION = 1
WATCH_FOLDER = "watch"
MAX_SNAPSHOTS = 200
MAX_BYTES = 24 * 1024**2  # of thumbnails, all snapshots together (a snapshot's JSON is 4/3 of its bytes)
MAX_FILE_BYTES = 8 * 1024**2  # a snapshot file larger than this is not one qkv wrote: skipped when reading
_NAME = re.compile(r"step-(\d+)\.json")


def check_watch_text(text: str, tokenizer: Tokenizer, context: int) -> list[int]:
    """The token ids of ``text``, or one line saying why the model cannot read it (an unknown character, too long)."""
    if not text.strip():
        raise InputError("the text to watch is empty; give a sentence, or --watch alone for the article's")
    try:
        ids = tokenizer.encode(text)
    except TokenizerError as error:
        raise InputError(f"the text to watch does not fit this run's tokenizer: {error}") from None
    if len(ids) > context:
        raise InputError(f"the text to watch is {len(ids)} tokens long; the model reads at most {context}: shorten it")
    return ids


def snapshot_steps(run_dir: str | Path) -> dict[int, Path]:
    """The snapshot files of a run, by step (``{}`` when there are none)."""
    folder = Path(run_dir) / WATCH_FOLDER
    if not folder.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        match = _NAME.fullmatch(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def kept_steps(steps: list[int], interval: int, cap: int) -> list[int]:
    """Which of the snapshots at ``steps`` to keep so that at most ``cap`` (≥ 3) stay, evenly spaced.

    While the steps fit, every one is kept. Past that, the spacing is the validation ``interval`` doubled until
    its multiples up to the newest step, with the newest step, number at most ``cap``; those are kept. The
    spacing grows with the newest step alone, so a snapshot dropped once is never wanted again.
    """
    steps = sorted(set(steps))
    if not steps:
        return []
    newest = steps[-1]
    spacing = interval
    while -(-newest // spacing) + 1 > cap:  # ⌈newest / spacing⌉ + 1: the multiples below newest, 0 and newest
        spacing *= 2
    if spacing == interval and len(steps) <= cap:
        return steps
    while True:
        kept = [step for step in steps if step % spacing == 0 or step == newest]
        if len(kept) <= cap:
            return kept
        spacing *= 2


@dataclass(frozen=True)
class _Handle:
    """What :func:`qkv.trace` reads from a model: the network, its tokenizer and a name."""

    model: Transformer
    tokenizer: Tokenizer
    name: str


class Watch:
    """Snapshots of one text's attention, written into ``RUN/watch/`` as the model trains.

    ``writes=False`` (the ranks other than 0 under ``torchrun``) checks the text and writes nothing.
    """

    def __init__(
        self,
        text: str,
        model: nn.Module,
        tokenizer_json: str,
        run_dir: str | Path,
        *,
        interval: int,
        writes: bool = True,
    ) -> None:
        if not isinstance(model, Transformer):
            raise ConfigError(f"TrainConfig.watch traces a qkv Transformer; this model is a {type(model).__name__}")
        tokenizer = tokenizer_from_json(tokenizer_json)
        check_watch_text(text, tokenizer, model.config.context)
        self.text, self.interval, self.writes = text, interval, writes
        self.folder = Path(run_dir) / WATCH_FOLDER
        self.handle = _Handle(model, tokenizer, Path(run_dir).name)
        config = model.config
        n = min(len(tokenizer.encode(text)), THUMB_SIZE)
        self.cap = max(3, min(MAX_SNAPSHOTS, MAX_BYTES // (config.layers * config.heads * n * n)))

    def start(self, step: int) -> None:
        """Begin watching at ``step``: a new run (0) starts an empty folder; a resume keeps the snapshots up to
        its step (of the same text: another one is refused) and drops later ones, which its checkpoint never
        reached. Then a snapshot of ``step``, unless one is there."""
        if not self.writes:
            return
        existing = snapshot_steps(self.folder.parent)
        if step > 0 and existing:
            newest = read_snapshot(existing[max(existing)])
            if newest is not None and newest["text"] != self.text:
                raise InputError(
                    f"{self.folder} holds snapshots of another text ({newest['text'][:60]!r}); resume without "
                    "--watch to keep watching it, or move that folder away"
                )
        for old, path in existing.items():
            if step == 0 or old > step:
                path.unlink(missing_ok=True)
        if step == 0 or step not in existing:
            self.snapshot(step)

    def snapshot(self, step: int) -> Path | None:
        """Trace the text at ``step``, write ``RUN/watch/step-NNNNNN.json``, and thin the folder to the cap."""
        if not self.writes:
            return None
        result = trace(self.handle, self.text)
        metrics = head_metrics(result)
        L, H = result.weights.shape[:2]
        record = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "step": step,
            "text": self.text,
            "tokens": list(result.tokens),
            "layers": L,
            "heads": H,
            "thumbs": thumbnails(result),
            "metrics": {
                name: _rounded(getattr(metrics, name).tolist())
                for name in ("entropy", "distance", "asymmetry", "relative_asymmetry", "sink_share")
            },
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        path = write_atomically(self.folder / f"step-{step:06d}.json", json.dumps(record, separators=(",", ":")))
        existing = snapshot_steps(self.folder.parent)
        kept = set(kept_steps(list(existing), self.interval, self.cap))
        for old, old_path in existing.items():
            if old not in kept:
                old_path.unlink(missing_ok=True)
        return path


def _rounded(rows: list[list[float]]) -> list[list[float]]:
    return [[float(f"{value:.5g}") for value in row] for row in rows]


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """One snapshot file as the explorer serves it, or ``None`` when it is not a whole, consistent snapshot."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("version") != FORMAT_VERSION:
        return None
    step, tokens, layers, heads = (record.get(key) for key in ("step", "tokens", "layers", "heads"))
    thumbs, text = record.get("thumbs"), record.get("text")
    if not (
        isinstance(step, int)
        and isinstance(text, str)
        and isinstance(tokens, list)
        and tokens
        and all(isinstance(token, str) for token in tokens)
        and isinstance(layers, int)
        and isinstance(heads, int)
        and layers > 0
        and heads > 0
        and isinstance(thumbs, dict)
        and isinstance(thumbs.get("data"), str)
        and thumbs.get("size") == min(len(tokens), THUMB_SIZE)
    ):
        return None
    n = thumbs["size"]
    if len(thumbs["data"]) != 4 * math.ceil(layers * heads * n * n / 3):  # base64 of L·H·n² bytes
        return None
    metrics = record.get("metrics")
    return {
        "step": step,
        "text": text,
        "tokens": tokens,
        "layers": layers,
        "heads": heads,
        "thumbs": {"size": n, "data": thumbs["data"]},
        "metrics": metrics if isinstance(metrics, dict) else {},
    }


def read_snapshots(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every whole snapshot of a run, by step (a damaged or foreign file is skipped)."""
    found = (read_snapshot(path) for path in snapshot_steps(run_dir).values())
    return [record for record in found if record is not None]
