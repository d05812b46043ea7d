"""Shared fixtures for the core's tests: a fixed seed, and a switch that forces the exact attention path."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    # The tests use tiny tensors: one thread is faster than two, and far faster on a shared, busy machine
    # (idle threads spin-wait for work that never comes).
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """Same seed, same numbers: every test starts from torch's seed 0."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def exact_path(monkeypatch: pytest.MonkeyPatch) -> Callable[[], AbstractContextManager[list[int]]]:
    """A switch: inside ``with exact_path() as calls:`` every SelfAttention takes the exact kernel.

    ``SelfAttention`` looks ``attend`` up in its module at call time, so swapping that one name for a version
    that asks for the weights makes a whole Transformer take the readable path, while outside the ``with``
    the default (fused) path runs. ``calls`` grows by one per attention call, so a test can prove the switch
    took effect.
    """
    from qkv.attention import kernels, layer

    @contextlib.contextmanager
    def forced() -> Iterator[list[int]]:
        calls: list[int] = []

        def exact_attend(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            kwargs["need_weights"] = True
            return kernels.attend(*args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(layer, "attend", exact_attend)
            yield calls

    return forced
