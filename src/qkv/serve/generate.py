"""``POST /api/generate``: tokens stream out as NDJSON, each with its attention row in one layer.

A :class:`Generation` wraps :func:`qkv.inspection.generate_attending` (the library's generation, with the
chosen layer's row captured for every new token) and adds the probabilities the token was drawn from (the
logits generation hands to ``on_logits``). Each :meth:`Generation.step` runs in the worker and yields
one token; :class:`TokenStream` asks for the next step only while the client is still there, so a client that
goes away stops the model within one token.

Lines, one JSON object each: ``start``, then ``token`` per new token, then ``done`` (or ``error``).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import torch
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from qkv.errors import InputError
from qkv.generation.sampling import SamplingConfig
from qkv.inspection.attending import AttendedToken, generate_attending
from qkv.serve.config import Limits
from qkv.serve.inputs import RequestError, check_known, float_field, int_field, string_field, text_field
from qkv.serve.models import Loaded, Worker
from qkv.serve.traces import significant
from qkv.shapes import Tensor

__all__ = ["FIELDS", "TOP", "GenerateRequest", "Generation", "TokenStream", "parse_generate"]

FIELDS = ("model", "prompt", "tokens", "temperature", "top_k", "seed", "layer")
TOP = 5  # the likeliest next tokens listed with each token
_log = logging.getLogger("qkv.serve")


@dataclass(frozen=True)
class GenerateRequest:
    model: str
    prompt: str
    tokens: int
    temperature: float
    top_k: int  # 0: no cut
    seed: int
    layer: int  # counts from the end when negative

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_k=self.top_k or None)


def parse_generate(body: dict[str, Any], limits: Limits) -> GenerateRequest:
    check_known(body, FIELDS)
    return GenerateRequest(
        model=string_field(body, "model", max_chars=200),
        prompt=text_field(body, "prompt", max_chars=limits.text_chars),
        tokens=int_field(body, "tokens", low=1, high=limits.generate_tokens, default=40),
        temperature=float_field(body, "temperature", low=0.0, high=limits.max_temperature, default=0.0),
        top_k=int_field(body, "top_k", low=0, high=limits.max_top_k, default=0),
        seed=int_field(body, "seed", low=0, high=2**63 - 1, default=0),
        layer=int_field(body, "layer", low=-1024, high=1023, default=-1),
    )


class Generation:
    """One generation over ``loaded``: :meth:`start` describes it, each :meth:`step` makes one token.

    Everything that can be refused (an encoder, a long prompt, a layer out of range) is refused when it is
    made, before any line is sent.
    """

    def __init__(self, loaded: Loaded, request: GenerateRequest, limits: Limits) -> None:
        network = loaded.network
        if not loaded.causal:
            raise RequestError(f"{loaded.name} is an encoder and writes no text; generate with a language model")
        count = len(network.blocks)
        if not -count <= request.layer < count:
            raise RequestError(f"layer {request.layer} is out of range; this model has layers 0…{count - 1}")
        self.loaded, self.request = loaded, request
        self.layer = request.layer % count
        self.prompt = loaded.tokenizer.encode(request.prompt)
        limit = min(limits.tokens, network.config.context)
        if not self.prompt:
            raise RequestError("the prompt has no tokens; give at least one character")
        if len(self.prompt) > limit:
            raise RequestError(f"the prompt is {len(self.prompt)} tokens; {loaded.name} reads at most {limit} here")
        self._logits: list[Tensor] = []  # the logits each token was drawn from: token i comes from [i]
        generator = torch.Generator().manual_seed(request.seed)
        self._steps: Iterator[AttendedToken] = generate_attending(
            network,
            self.prompt,
            request.tokens,
            request.sampling,
            generator=generator,
            layer=self.layer,
            stop_ids=loaded.stop_ids,
            on_logits=self._record,
        )
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.made = 0

    @property
    def reason(self) -> str:
        """Why it ended: ``"tokens"`` (as many as asked) or ``"stop"`` (the model ended its turn)."""
        return "tokens" if self.made == self.request.tokens else "stop"

    def start(self) -> dict[str, Any]:
        config = self.loaded.network.config
        return {
            "type": "start",
            "prompt_tokens": self.loaded.tokenizer.pieces(self.prompt),
            "layers": config.layers,
            "heads": config.heads,
            "layer": self.layer,
        }

    def step(self) -> dict[str, Any] | None:
        """The next token's line, or ``None`` when generation has ended (call in the worker)."""
        attended = next(self._steps, None)
        if attended is None:
            return None
        index = self.made
        self.made += 1
        probabilities = torch.softmax(self._logits[index].float(), dim=-1)  # (V,)
        self._logits[index] = torch.empty(0)  # read once: let it go
        top = probabilities.topk(TOP)
        tokenizer = self.loaded.tokenizer
        return {
            "type": "token",
            "i": index,
            "id": attended.token,
            "text": self._decoder.decode(tokenizer.decode_bytes([attended.token])),
            "weights": significant(attended.weights, 5),  # (H, S)
            "sinks": [self.loaded.is_special(key) or attended.start + j == 0 for j, key in enumerate(attended.keys)],
            "top": [
                {"text": tokenizer.decode_bytes([token]).decode("utf-8", errors="replace"), "p": float(f"{p:.5g}")}
                for token, p in zip(top.indices.tolist(), top.values.tolist(), strict=True)
            ],
        }

    def _record(self, logits: Tensor) -> None:
        self._logits.append(logits[0])  # (V,): what the next token is drawn from

    def close(self) -> None:
        close = getattr(self._steps, "close", None)
        if callable(close):
            close()


class TokenStream(Response):
    """The NDJSON response of one :class:`Generation`: each line is sent as soon as it is made, and the next
    token is only asked for while the client is connected (a disconnect cancels the loop between tokens)."""

    media_type = "application/x-ndjson"

    def __init__(
        self, generation: Generation, worker: Worker, *, finished: Callable[[], None], unexpected: Callable[[], None]
    ) -> None:
        # No body is set (unlike Response.__init__), so no content-length is declared: the length is unknown.
        self.status_code, self.background = 200, None
        self.init_headers({"cache-control": "no-store", "x-accel-buffering": "no"})
        self.generation, self.worker = generation, worker
        self._finished, self._unexpected = finished, unexpected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch, receive, group.cancel_scope.cancel)
                with contextlib.suppress(OSError):  # the connection broke while sending: the client is gone
                    await self._lines(send)
                group.cancel_scope.cancel()
        finally:
            self.generation.close()
            self._finished()

    @staticmethod
    async def _watch(receive: Receive, stop: Callable[[], None]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stop()

    async def _lines(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

        async def line(event: dict[str, Any]) -> None:
            body = (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
            await send({"type": "http.response.body", "body": body, "more_body": True})

        await line(self.generation.start())
        try:
            while (event := await self.worker.run(self.generation.step)) is not None:
                await line(event)
            await line({"type": "done", "reason": self.generation.reason})
        except InputError as error:
            await line({"type": "error", "error": _one_line(str(error))})
        except Exception as error:
            _log.exception("generation failed")
            self._unexpected()
            await line({"type": "error", "error": _one_line(f"internal error: {type(error).__name__}: {error}")})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _one_line(message: str) -> str:
    return " ".join(message.split())[:500]
