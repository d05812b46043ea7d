"""Shared fixtures: a fixed seed, a count of the attention kernels that ran, and one headless Chromium for the
browser tests (one Playwright per test module, stopped with it: two at once cannot share Python's event loop,
and a Playwright left running would keep its loop in the main thread for every later test)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def pytest_configure(config: pytest.Config) -> None:
    # The tests use tiny tensors: one thread is faster than two, and far faster on a shared, busy machine
    # (idle threads spin-wait for work that never comes).
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """Same seed, same numbers: every test starts from torch's seed 0."""
    torch.manual_seed(0)
    yield


class KernelCalls(TorchFunctionMode):
    """Counts the attention kernels that run inside ``with KernelCalls() as calls:``: ``calls["fused"]`` the
    calls of ``scaled_dot_product_attention``, ``calls["exact"]`` those of ``torch.softmax`` over ``(B, H, T, S)``
    scores (the exact path's; a sampler's softmax over logits is not counted). Forward calls only: backward
    runs outside this mode. A ``TorchFunctionMode`` sees every torch call: no qkv module is patched."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __enter__(self) -> Counter[str]:  # type: ignore[override]
        super().__enter__()
        return self.calls

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if func is F.scaled_dot_product_attention:
            self.calls["fused"] += 1
        elif func is torch.softmax and args[0].dim() == 4:
            self.calls["exact"] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture
def kernel_calls() -> type[KernelCalls]:
    """``with kernel_calls() as calls:`` counts which attention kernels ran: a test's proof that the path it
    chose with ``qkv.attention.implementation`` (or a capture hook) is the one that ran."""
    return KernelCalls


CHROMIUM = os.environ.get("QKV_CHROMIUM", "/usr/bin/chromium")  # Debian's, which `make setup` installs
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> None:
    """Skip with a one-line reason on a developer's machine; fail under CI, which must run the browser tests."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium through Playwright's sync API (never `playwright install`: the system's Chromium), shared by
    the browser tests of one module and stopped after them."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright; never `playwright install`)")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
