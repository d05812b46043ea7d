"""A checkpoint's folder and files get the permissions ``mkdir`` and ``open`` give under the umask, like any
other file the user writes: the staging folder ``mkdtemp`` makes private does not leave it private."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qkv.training import Progress
from qkv.training.checkpoint import FILES, save_checkpoint

from .conftest import Tiny


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_checkpoint_follows_the_umask(tiny: Tiny, tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        checkpoint = save_checkpoint(
            tmp_path / "run",
            model=tiny.model(),
            model_config=tiny.model_config,
            tokenizer_json=tiny.tokenizer_json,
            progress=Progress(step=1),
        )
    finally:
        os.umask(previous)
    assert checkpoint.stat().st_mode & 0o7777 == 0o777 & ~umask
    for name in FILES:
        assert (checkpoint / name).stat().st_mode & 0o7777 == 0o666 & ~umask, name
