"""``create_app(config)``: the Starlette application behind ``qkv serve``.

Routes (the contract is ``openapi.json`` beside this file, served at ``/api/openapi.json``):

- ``/`` and ``/static/…``: the page (``static/``: HTML, CSS and ES modules, and the modules and words it shares
  with the self-contained pages, from ``qkv/web/static/``; nothing from elsewhere);
- ``/api/health``, ``/api/models``, ``/api/openapi.json``;
- ``/api/article``, ``/api/nearest``: the Build view (:mod:`qkv.serve.article`);
- ``/api/trace`` and ``/api/trace/{id}/head|qk|export``: the Inspect view (:mod:`qkv.serve.traces`);
- ``/api/generate``: the Generate view's NDJSON stream (:mod:`qkv.serve.generate`);
- ``/api/runs/{name}/training``: a run's loss curve (:mod:`qkv.serve.runs`).

Every refusal is ``{"error": "one line"}`` with a 4xx status; :class:`~qkv.serve.security.Guard` checks the
``Host`` header and adds the security headers to every response. Nothing loads a model at import or at start:
each model loads on the first request that needs it, in the one worker (:mod:`qkv.serve.models`).
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from qkv._version import __version__
from qkv.errors import InputError
from qkv.serve.cache import TraceCache
from qkv.serve.config import LANGUAGES, ServeConfig
from qkv.serve.inputs import (
    Busy,
    NotFound,
    RequestError,
    check_known,
    int_field,
    path_int,
    read_json,
    string_field,
    string_list_field,
    text_field,
)
from qkv.serve.models import Registry, Worker
from qkv.serve.runs import PREFIX, find_runs, training_data
from qkv.serve.security import Guard

if TYPE_CHECKING:
    from qkv.serve.article import Article
    from qkv.serve.traces import TraceEntry

__all__ = ["STATIC", "ServerState", "create_app"]

STATIC = Path(str(resources.files("qkv.serve").joinpath("static")))
_COMPRESS_ABOVE = 2048  # bytes of JSON worth gzipping, for a client that accepts it
_GZIP_LEVEL = 6


@dataclass
class ServerState:
    """What the handlers share: the models, the one worker, the trace cache, the article's vectors."""

    config: ServeConfig
    registry: Registry
    generating: bool = False  # one generation at a time
    unexpected_errors: int = 0  # 500s; the tests assert there are none

    def __post_init__(self) -> None:
        limits = self.config.limits
        self.worker = Worker(self.config.threads)
        self.traces: TraceCache[TraceEntry] = TraceCache(limits.cached_traces, limits.cached_bytes)
        self._article: Article | None = None

    @property
    def article(self) -> Article:
        """The Build view's vectors (PyTorch is imported on first use, not when the app is made)."""
        if self._article is None:
            from qkv.serve.article import Article

            self._article = Article()
        return self._article

    def count_unexpected(self) -> None:
        self.unexpected_errors += 1


def create_app(config: ServeConfig | None = None, *, static: Path | None = None) -> Starlette:
    """The application; ``static`` is the folder of the page (the package's ``static/`` by default)."""
    config = config or ServeConfig()
    state = ServerState(config, Registry(config))
    folder = STATIC if static is None else static
    handlers = _Handlers(state, folder)
    routes: list[BaseRoute] = [
        Route("/", handlers.index, methods=["GET"]),
        Route("/api/health", handlers.health, methods=["GET"]),
        Route("/api/models", handlers.models, methods=["GET"]),
        Route("/api/openapi.json", handlers.openapi, methods=["GET"]),
        Route("/api/article", handlers.article, methods=["GET"]),
        Route("/api/nearest", handlers.nearest, methods=["POST"]),
        Route("/api/trace", handlers.trace, methods=["POST"]),
        Route("/api/trace/{id}/head/{layer}/{head}", handlers.head, methods=["GET"]),
        Route("/api/trace/{id}/qk/{layer}/{head}", handlers.qk, methods=["GET"]),
        Route("/api/trace/{id}/export", handlers.export, methods=["GET"]),
        Route("/api/generate", handlers.generate, methods=["POST"]),
        Route("/api/runs/{name}/training", handlers.training, methods=["GET"]),
    ]
    if folder.is_dir():
        shared = StaticFiles(directory=folder, packages=[("qkv.web", "static")])  # the page's files, then qkv.web's
        routes.append(Mount("/static", shared, name="static"))
    else:  # the page is not installed: its files are 404s like any other missing file
        routes.append(Route("/static/{path:path}", handlers.index, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(Guard, allowed_hosts=config.allowed_hosts, unexpected=state.count_unexpected),
        ],
        exception_handlers={InputError: _refused, HTTPException: _http_error},
    )
    app.state.qkv = state
    return app


async def _refused(request: Request, error: Exception) -> Response:
    status = getattr(error, "status", 400)
    return JSONResponse({"error": _one_line(str(error))}, status_code=status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {404: f"nothing at {request.url.path[:100]}", 405: f"{request.method} is not allowed here"}
    message = messages.get(error.status_code, str(error.detail))
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


def _one_line(message: str) -> str:
    return " ".join(message.split())[:500] or "refused"


def _json(request: Request, data: Any, *, timing: float | None = None) -> Response:
    """``data`` as JSON, gzipped when it is large and the client accepts gzip; ``timing``: the model's
    seconds, sent with the encoding's as a ``Server-Timing`` header (``model;dur=…, encode;dur=…``, in ms)."""
    started = time.perf_counter()
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"cache-control": "no-store"}
    if len(body) > _COMPRESS_ABOVE and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
        headers.update({"content-encoding": "gzip", "vary": "accept-encoding"})
    if timing is not None:
        encoding = time.perf_counter() - started
        headers["server-timing"] = f"model;dur={timing * 1000:.1f}, encode;dur={encoding * 1000:.1f}"
    return Response(body, media_type="application/json", headers=headers)


class _Handlers:
    def __init__(self, state: ServerState, static: Path) -> None:
        self.state, self.static = state, static
        self.limits = state.config.limits

    # -- the page and the server ---------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        page = self.static / "index.html"
        if not page.is_file():
            raise NotFound("the page is not installed (no static/index.html); the API still answers under /api")
        return FileResponse(page, headers={"cache-control": "no-cache"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__})

    async def models(self, request: Request) -> Response:
        registry = self.state.registry
        listed = [entry.to_json(registry.is_loaded(entry.name)) for entry in registry.entries()]
        return JSONResponse({"models": listed, "limits": self.limits.public()})

    async def openapi(self, request: Request) -> Response:
        document = json.loads(resources.files("qkv.serve").joinpath("openapi.json").read_text(encoding="utf-8"))
        document["info"]["version"] = __version__
        return _json(request, document)

    # -- Build --------------------------------------------------------------------------------------------

    async def article(self, request: Request) -> Response:
        query = request.query_params
        unknown = sorted(set(query) - {"lang", "text"})
        if unknown:
            raise RequestError(f"unknown parameter {unknown[0][:40]!r}; /api/article takes lang and text")
        lang = query.get("lang", "en")
        if lang not in LANGUAGES:
            raise RequestError(f"lang must be one of {', '.join(LANGUAGES)}, got {lang[:20]!r}")
        text = query.get("text")
        if text is not None:
            text = text_field({"text": text}, "text", max_chars=self.limits.text_chars)
        data = await self.state.worker.run(self.state.article.build, text, self.limits.build_words)
        return _json(request, {"lang": lang, **data})

    async def nearest(self, request: Request) -> Response:
        body = await read_json(request, self.limits.body_bytes)
        check_known(body, ("vector", "k", "exclude"))
        vector = body.get("vector")
        if not isinstance(vector, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector
        ):
            raise RequestError('"vector" must be a list of numbers')
        k = int_field(body, "k", low=1, high=self.limits.nearest_k, default=5)
        exclude = string_list_field(body, "exclude", max_items=self.limits.exclude_words, max_chars=100)
        words = await self.state.worker.run(self.state.article.nearest, [float(x) for x in vector], k, exclude)
        return JSONResponse({"words": words})

    # -- Inspect ------------------------------------------------------------------------------------------

    async def trace(self, request: Request) -> Response:
        body = await read_json(request, self.limits.body_bytes)
        check_known(body, ("model", "text"))
        name = string_field(body, "model", max_chars=200)
        text = text_field(body, "text", max_chars=self.limits.text_chars)
        self.state.registry.entry(name)  # an unknown model is refused before anything runs
        started = time.perf_counter()
        entry, data = await self.state.worker.run(self._trace, name, text)
        self.state.traces.add(entry)
        return _json(request, data, timing=time.perf_counter() - started)

    def _trace(self, name: str, text: str) -> tuple[TraceEntry, dict[str, Any]]:
        from qkv.serve.traces import capture, overview

        entry = capture(self.state.registry.load(name), text, self.limits)
        return entry, overview(entry)

    def _layer_head(self, request: Request, *, mean: bool) -> tuple[TraceEntry, int, int | None]:
        entry = self.state.traces.get(request.path_params["id"])
        layer = path_int(request.path_params["layer"], "layer")
        given = request.path_params["head"]
        head = None if mean and given == "mean" else path_int(given, "head" if not mean else "head (or mean)")
        return entry, layer, head

    async def head(self, request: Request) -> Response:
        from qkv.serve.traces import head

        entry, layer, number = self._layer_head(request, mean=True)
        data = await anyio.to_thread.run_sync(head, entry, layer, number)
        return _json(request, data)

    async def qk(self, request: Request) -> Response:
        from qkv.serve.traces import qk_view

        entry, layer, number = self._layer_head(request, mean=False)
        assert number is not None
        data = await anyio.to_thread.run_sync(qk_view, entry, layer, number)
        return _json(request, data)

    async def export(self, request: Request) -> Response:
        entry = self.state.traces.get(request.path_params["id"])
        kind = request.query_params.get("format", "json")
        if kind == "json":
            text = await anyio.to_thread.run_sync(entry.trace.to_json)
            disposition = f'attachment; filename="{entry.id}.json"'
            return Response(text, media_type="application/json", headers={"content-disposition": disposition})
        if kind == "html":
            from qkv.render.html import trace_html

            page = await anyio.to_thread.run_sync(trace_html, entry.trace)
            disposition = f'attachment; filename="{entry.id}.html"'
            return Response(page, media_type="text/html", headers={"content-disposition": disposition})
        raise RequestError(f"format must be json or html, got {kind[:20]!r}")

    # -- Generate -----------------------------------------------------------------------------------------

    async def generate(self, request: Request) -> Response:
        from qkv.serve.generate import Generation, TokenStream, parse_generate

        body = await read_json(request, self.limits.body_bytes)
        wanted = parse_generate(body, self.limits)
        entry = self.state.registry.entry(wanted.model)
        if not entry.causal:
            raise RequestError(f"{entry.name} is an encoder and writes no text; generate with a language model")
        if self.state.generating:
            raise Busy("a generation is already running on this server; stop it or wait for it to finish")
        self.state.generating = True
        try:
            loaded = await self.state.worker.run(self.state.registry.load, wanted.model)
            generation = await self.state.worker.run(Generation, loaded, wanted, self.limits)
        except BaseException:
            self.state.generating = False
            raise

        def finished() -> None:
            self.state.generating = False

        return TokenStream(generation, self.state.worker, finished=finished, unexpected=self.state.count_unexpected)

    # -- runs ---------------------------------------------------------------------------------------------

    async def training(self, request: Request) -> Response:
        name = request.path_params["name"]
        runs = find_runs(self.state.config.runs)
        run = runs.get(name) or runs.get(PREFIX + name)
        if run is None:
            known = ", ".join(runs) or "none (start qkv serve with --runs DIR)"
            raise NotFound(f"no run {name[:60]!r}; runs: {known}")
        return _json(request, training_data(run.path))
