"""Shared by the pretrained-model tests: offline transformers, and skips that name the install command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# transformers must never reach the network; set before anything imports it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def transformers_or_skip() -> object:
    transformers = pytest.importorskip(
        "transformers", reason="the reference needs transformers (pip install -e '.[dev]')"
    )
    transformers.utils.logging.disable_progress_bar()
    return transformers


def packaged_or_skip(name: str) -> Path:
    """The installed files of a packaged model, or a skip that says how to install them."""
    from qkv.data.registry import PACKAGED, _package_dir

    entry = PACKAGED[name]
    root = _package_dir(entry.package)
    if root is None:
        pytest.skip(f"{name} is not installed: {entry.install_command}")
    return root / entry.location
