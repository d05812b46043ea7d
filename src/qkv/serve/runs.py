"""The user's own training runs (``qkv serve --runs DIR``): finding them, describing them, loading one.

A run is a directory ``qkv train`` wrote (``RUN/checkpoint/`` with ``config.json``, ``model.safetensors``, …).
Runs are found among the direct subfolders of ``DIR`` (and ``DIR`` itself, when it is one) and offered to the
page as ``run:<folder name>``; the page can only name what was listed, never a path.

Finding and describing a run reads JSON only (no PyTorch), so the model list stays instant.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_RUNS", "PREFIX", "RunInfo", "find_runs", "training_data", "watch_traces"]

PREFIX = "run:"
MAX_RUNS = 200  # subfolders listed at most (sorted by name)


@dataclass(frozen=True)
class RunInfo:
    """A run found under ``--runs``: its name (``run:<folder>``), where it is, and what its config says."""

    name: str
    path: Path
    layers: int
    heads: int
    step: int

    @property
    def detail(self) -> str:
        return f"your run {self.path.name}: {self.layers} layers × {self.heads} heads, step {self.step}"


def _checkpoint_dir(path: Path) -> Path | None:
    """``RUN/checkpoint`` when ``path`` is a run written by ``qkv train``, else ``None``."""
    checkpoint = path / "checkpoint"
    if (checkpoint / "config.json").is_file() and (checkpoint / "model.safetensors").is_file():
        return checkpoint
    return None


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _describe(path: Path) -> RunInfo | None:
    checkpoint = _checkpoint_dir(path)
    if checkpoint is None:
        return None
    config = _read(checkpoint / "config.json")
    if not isinstance(config, dict) or config.get("format") != "qkv-checkpoint":
        return None
    model = config.get("model")
    progress = _read(checkpoint / "progress.json")
    if not isinstance(model, dict):
        return None
    step = progress.get("step", 0) if isinstance(progress, dict) else 0
    layers, heads = model.get("layers"), model.get("heads")
    if not (isinstance(layers, int) and isinstance(heads, int) and isinstance(step, int)):
        return None
    return RunInfo(f"{PREFIX}{path.name}", path, layers, heads, step)


def find_runs(root: Path | None) -> dict[str, RunInfo]:
    """The runs in ``root`` and its direct subfolders, by name; a folder that is no run is skipped."""
    if root is None or not root.is_dir():
        return {}
    found: dict[str, RunInfo] = {}
    try:
        folders = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    except OSError:
        return {}
    for path in [root, *folders[:MAX_RUNS]]:
        info = _describe(path)
        if info is not None:
            found.setdefault(info.name, info)
    return found


def training_data(path: Path) -> dict[str, Any]:
    """The run's loss curve from ``progress.json``: every logged step, its loss, and the validation loss where
    one was measured (``None`` elsewhere)."""
    checkpoint = _checkpoint_dir(path)
    progress = _read(checkpoint / "progress.json") if checkpoint is not None else None
    if not isinstance(progress, dict):
        return {"steps": [], "loss": [], "val_loss": [], "traces": watch_traces(path)}
    train = _points(progress.get("train_losses"))
    validation = dict(_points(progress.get("validation_losses")))
    return {
        "steps": [step for step, _ in train],
        "loss": [loss for _, loss in train],
        "val_loss": [validation.get(step) for step, _ in train],
        "traces": watch_traces(path),
    }


def _points(pairs: Any) -> list[tuple[int, float]]:
    """``[[step, loss], …]`` as read from JSON, keeping only well-formed, finite points."""
    if not isinstance(pairs, list):
        return []
    points = []
    for pair in pairs:
        if isinstance(pair, list) and len(pair) == 2:
            step, loss = pair
            if isinstance(step, int) and isinstance(loss, (int, float)) and math.isfinite(loss):
                points.append((step, float(loss)))
    return points


def watch_traces(path: Path) -> list[dict[str, Any]]:
    """The snapshots ``qkv train --watch`` stored in ``RUN/watch/``, by step: ``{"step", "tokens", "layers",
    "heads", "thumbs", "metrics"}`` each. Their thumbnails are the overview's (:mod:`qkv.data.thumbnails`) and
    pass through as stored; a damaged file is skipped (:func:`qkv.training.watch.read_snapshots`)."""
    from qkv.training.watch import read_snapshots  # imports PyTorch: only when a run's training is asked for

    keys = ("step", "tokens", "layers", "heads", "thumbs", "metrics")
    return [{key: record[key] for key in keys} for record in read_snapshots(path)]
