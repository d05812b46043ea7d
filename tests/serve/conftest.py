"""The server's test fixtures: an app over a tiny run saved in a temporary folder, and a client for it.

Requests go through Starlette's in-process ``TestClient`` with the ``Host`` a browser sends for
``http://127.0.0.1:8750`` (the default ``testserver`` is, rightly, refused). Models load once per session:
the app's registry is shared by every test that uses the ``client`` fixture.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from starlette.applications import Starlette
from starlette.testclient import TestClient

from qkv.generation.fast_decoder import FastDecoder
from qkv.model import Transformer, preset
from qkv.serve.app import create_app
from qkv.serve.config import Limits, ServeConfig
from qkv.text.tokenizers import CharTokenizer
from qkv.training import Progress, save_checkpoint

BASE = "http://127.0.0.1:8750"
CORPUS = "the quick brown fox jumps over the lazy dog. a cat sits on the mat.\n"
RUN_CONTEXT = 32


@contextmanager
def counting_passes(app: Starlette, name: str, seconds: float = 0.0) -> Iterator[list[int]]:
    """Counts the passes of model ``name`` (one per prefill and per decoded token) while inside, on either path:
    the fast decoder's (its one forward function) and the modules' (the output layer's forward hook). Each pass
    then takes ``seconds`` more, as a real model's would, so that a stop is not a race."""
    network = app.state.qkv.registry.load(name).network
    calls: list[int] = []
    forward = FastDecoder._forward

    def count(*_: object) -> None:
        calls.append(1)
        time.sleep(seconds)

    def counted(self: FastDecoder, ids: torch.Tensor) -> torch.Tensor:
        count()
        return forward(self, ids)

    handle = network.lm_head.register_forward_hook(count)
    FastDecoder._forward = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        FastDecoder._forward = forward  # type: ignore[method-assign]
        handle.remove()


def make_run(folder: Path) -> Path:
    """A run as ``qkv train`` leaves it: a tiny char-level model (untrained, seeded) and a short loss history."""
    tokenizer = CharTokenizer.train(CORPUS)
    config = preset("tiny", vocab_size=tokenizer.vocab_size, context=RUN_CONTEXT)
    torch.manual_seed(7)
    model = Transformer(config)
    progress = Progress(
        step=4,
        tokens_seen=512,
        train_losses=[(1, 3.5), (2, 3.25), (3, 3.0), (4, 2.75)],
        validation_losses=[(2, 3.4), (4, 3.1)],
    )
    save_checkpoint(folder, model=model, model_config=config, tokenizer_json=tokenizer.to_json(), progress=progress)
    return folder


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of runs: ``demo`` is one, ``notes`` is a plain folder that must not be listed."""
    root = tmp_path_factory.mktemp("runs")
    make_run(root / "demo")
    (root / "notes").mkdir()
    (root / "notes" / "config.json").write_text("{}")
    return root


@pytest.fixture(scope="session")
def static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the page's files (the real ones are the page's own, tested with it)."""
    folder = tmp_path_factory.mktemp("static")
    (folder / "index.html").write_text('<!DOCTYPE html><title>qkv</title><script type="module" src="/static/main.js">')
    (folder / "main.js").write_text("export const ready = true;\n")
    return folder


def new_app(runs: Path | None, static: Path, **limits: int | float) -> Starlette:
    return create_app(ServeConfig(runs=runs, limits=Limits(**limits)), static=static)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def app(runs: Path, static: Path) -> Starlette:
    return new_app(runs, static)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE) as test_client:
        yield test_client
    assert app.state.qkv.unexpected_errors == 0, "a request reached the 500 handler"
