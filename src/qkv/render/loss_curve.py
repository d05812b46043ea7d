"""The loss curve of a training run, as a PNG beside its checkpoint."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

from qkv.files import write_atomically

__all__ = ["write_loss_curve"]


def write_loss_curve(
    path: str | os.PathLike[str],
    train_losses: Sequence[tuple[int, float]],
    validation_losses: Sequence[tuple[int, float]],
    *,
    title: str = "training",
) -> Path:
    """Plot training loss (and its running mean) and validation loss against step; write ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no display, no network
    import matplotlib.pyplot as plt

    target = Path(path)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        if train_losses:
            steps, losses = zip(*train_losses, strict=True)
            axes.plot(steps, losses, color="#9ab", linewidth=0.8, label="train (per step)")
            window = max(1, len(losses) // 50)
            if window > 1:
                smooth = [
                    sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
                    for i in range(len(losses))
                ]
                axes.plot(steps, smooth, color="#246", linewidth=1.5, label=f"train (mean of {window})")
        if validation_losses:
            steps, losses = zip(*validation_losses, strict=True)
            axes.plot(steps, losses, "o-", color="#c42", linewidth=1.5, markersize=4, label="validation")
        axes.set_xlabel("step")
        axes.set_ylabel("cross-entropy loss")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        picture = io.BytesIO()
        figure.savefig(picture, format="png")
        write_atomically(target, picture.getvalue())
    finally:
        plt.close(figure)
    return target
