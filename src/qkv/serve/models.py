"""The models a server offers, loaded lazily and once, and the one worker thread every model call runs in.

The page names a model only by a name this registry listed (``minilm``, ``smollm2``, ``run:<folder>``), never
by a path. A model is loaded the first time a request needs it, inside the worker, and then kept.

:class:`Worker` runs model work one call at a time: an anyio ``CapacityLimiter(1)`` keeps a second call from
taking a thread while one runs, and a lock guards the models themselves. On a laptop's few cores, two traces
at once only thrash; a queue of short calls is both faster and fairer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from qkv.data.registry import PACKAGED, available
from qkv.serve.config import ServeConfig
from qkv.serve.inputs import NotFound
from qkv.serve.runs import find_runs

if TYPE_CHECKING:
    from qkv.model.transformer import Transformer
    from qkv.pretrained.model import Model
    from qkv.text.tokenizers import Tokenizer

__all__ = ["Loaded", "ModelEntry", "Registry", "Worker"]

T = TypeVar("T")


@dataclass(frozen=True)
class ModelEntry:
    """One model the page may name: ``GET /api/models`` lists these."""

    name: str
    causal: bool
    available: bool
    detail: str

    def to_json(self, loaded: bool) -> dict[str, object]:
        return {
            "name": self.name,
            "causal": self.causal,
            "available": self.available,
            "loaded": loaded,
            "detail": self.detail,
        }


@dataclass(frozen=True, eq=False)
class Loaded:
    """A loaded model under the name the page knows it by: the one handle ``qkv.load`` gives every model."""

    name: str
    handle: Model

    @property
    def network(self) -> Transformer:
        return self.handle.model

    @property
    def tokenizer(self) -> Tokenizer:
        return self.handle.tokenizer

    @property
    def stop_ids(self) -> tuple[int, ...]:
        return tuple(self.handle.stop_ids)

    @property
    def causal(self) -> bool:
        return bool(self.network.config.causal and self.network.config.lm_head)

    def is_special(self, token_id: int) -> bool:
        check = getattr(self.tokenizer, "is_special", None)
        return bool(check(token_id)) if callable(check) else False


class Registry:
    """The known models (the packaged ones, and the runs under ``config.runs``), each loaded on first use."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._loaded: dict[str, Loaded] = {}

    def entries(self) -> list[ModelEntry]:
        """Every model the page may name, in the order shown: packaged models, then runs by name."""
        installed = {info.name: info.installed for info in available()}
        entries = [
            ModelEntry(name, entry.kind == "causal", installed.get(name, False), _detail(name))
            for name, entry in PACKAGED.items()
        ]
        for info in find_runs(self.config.runs).values():
            entries.append(ModelEntry(info.name, True, True, info.detail))
        return entries

    def entry(self, name: object) -> ModelEntry:
        """The listed model called ``name``; anything else is a 404 naming the known ones."""
        entries = self.entries()
        for entry in entries:
            if entry.name == name:
                return entry
        shown = repr(name)[:60] if isinstance(name, str) else type(name).__name__
        raise NotFound(f"unknown model {shown}; known models: {', '.join(e.name for e in entries)}")

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def load(self, name: str) -> Loaded:
        """The model called ``name``, loaded now if it was not yet (call this in the worker)."""
        if name not in self._loaded:
            self.entry(name)
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> Loaded:
        from qkv.pretrained.model import load

        if name in PACKAGED:
            dtype = self.config.smollm2_dtype if PACKAGED[name].kind == "causal" else "float32"
            model = load(name, dtype=dtype)
        else:
            model = load(find_runs(self.config.runs)[name].path)
        model.model.eval()
        return Loaded(name, model)


def _detail(name: str) -> str:
    """``all-MiniLM-L6-v2, 6 layers × 12 heads, …``: where the model comes from and what it is."""
    entry = PACKAGED[name]
    origin = entry.source.split(" ")[0].rsplit("/", 1)[-1]
    return f"{origin}: {entry.description}"


class Worker:
    """Runs model work in a thread, one call at a time, so that the event loop keeps serving meanwhile.

    ``threads`` is how many threads PyTorch itself uses, set before the first call (``None``: its default).
    One is the default: a request is one text at batch 1, and on a busy machine PyTorch's idle threads
    spin-wait for work (BENCHMARKS.md, inspection: one thread for a small pass).
    """

    def __init__(self, threads: int | None = 1) -> None:
        self._limiter = anyio.CapacityLimiter(1)
        self._lock = threading.Lock()
        self._threads = threads
        self._ready = False

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in the worker thread. A cancelled request still lets the call finish (a model
        step cannot be interrupted halfway), but nothing after it runs."""
        return await anyio.to_thread.run_sync(partial(self._locked, function, *args), limiter=self._limiter)

    def _locked(self, function: Callable[..., T], *args: object) -> T:
        with self._lock:
            if not self._ready:
                if self._threads is not None:
                    import torch

                    torch.set_num_threads(self._threads)
                self._ready = True
            return function(*args)
