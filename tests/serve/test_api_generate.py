"""``POST /api/generate``: the stream gives the library's tokens for the same seed (greedy and sampled), each
token's row is its row in a full trace of the text so far, a client that goes away stops the model within one
token, one generation runs at a time, and every limit is a one-line 4xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
import torch
from starlette.applications import Starlette
from starlette.testclient import TestClient

from qkv.generation import SamplingConfig, generate
from qkv.inspection.trace import trace
from qkv.pretrained.model import Model, load
from qkv.serve.config import Limits
from qkv.serve.generate import GenerateRequest, Generation
from qkv.serve.models import Loaded

from .conftest import counting_passes
from .test_api_basics import assert_refused


def lines(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    response = client.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-security-policy"] == "default-src 'self'"
    return [json.loads(line) for line in response.text.splitlines()]


@pytest.mark.slow
def test_greedy_smollm2_streams_the_tokens_the_library_generates(client: TestClient) -> None:
    prompt = "The capital of France is"
    events = lines(client, model="smollm2", prompt=prompt, tokens=12)
    start, *tokens, done = events
    model = load("smollm2", dtype="int4")
    ids = model.encode(prompt)
    expected = list(model.stream(ids, 12))  # the fast decoder's path, not the captured one
    assert start == {
        "type": "start",
        "prompt_tokens": model.tokenizer.pieces(ids),
        "layers": 30,
        "heads": 9,
        "layer": 29,
    }
    assert [event["id"] for event in tokens] == expected
    assert done == {"type": "done", "reason": "tokens"}
    assert "".join(event["text"] for event in tokens) == model.decode(expected)
    for index, event in enumerate(tokens):
        assert event["i"] == index and len(event["weights"]) == 9
        assert all(len(row) == len(ids) + index + 1 for row in event["weights"])  # prompt + earlier tokens + itself
        assert all(abs(sum(row) - 1) < 1e-3 for row in event["weights"])
        assert event["sinks"][0] is True and not any(event["sinks"][1:])
        probabilities = [top["p"] for top in event["top"]]
        assert (
            len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1
        )
        assert event["top"][0]["text"] == model.decode([event["id"]])  # greedy: the likeliest token was chosen


def test_seeded_sampling_from_a_run_streams_the_library_s_tokens(client: TestClient, runs: Path) -> None:
    handle = load(runs / "demo")
    network, tokenizer = handle.model, handle.tokenizer
    prompt, n = "the dog", 20
    for temperature, top_k, seed in ((0.8, 0, 3), (1.5, 5, 11), (0.0, 0, 0)):
        events = lines(
            client, model="run:demo", prompt=prompt, tokens=n, temperature=temperature, top_k=top_k, seed=seed
        )
        sampling = SamplingConfig(temperature=temperature, top_k=top_k or None)
        generator = torch.Generator().manual_seed(seed)
        expected = [
            int(t[0])
            for t in generate(network, torch.tensor([tokenizer.encode(prompt)]), n, sampling, generator=generator)
        ]
        assert [event["id"] for event in events[1:-1]] == expected, (temperature, top_k, seed)
        assert events[-1] == {"type": "done", "reason": "tokens"}


def test_each_token_s_row_is_its_row_in_a_trace_of_the_text_so_far(client: TestClient, runs: Path) -> None:
    handle = load(runs / "demo")
    tokenizer = handle.tokenizer
    prompt = "a cat"
    for layer in (0, -1):
        events = lines(client, model="run:demo", prompt=prompt, tokens=8, temperature=1.0, seed=5, layer=layer)
        assert events[0]["layer"] == layer % 2
        ids = tokenizer.encode(prompt)
        for event in events[1:-1]:
            ids.append(event["id"])
            reference = trace(handle, tokenizer.decode(ids), layers=[layer % 2])
            row = reference.weights[0, :, -1, :]  # (H, S): the newest token's row, computed without a cache
            assert torch.allclose(torch.tensor(event["weights"]), row, atol=1e-4)


def test_a_client_that_closes_the_stream_stops_the_model_within_one_token(app: Starlette, client: TestClient) -> None:
    with counting_passes(app, "run:demo") as calls:
        with client.stream(
            "POST", "/api/generate", json={"model": "run:demo", "prompt": "the", "tokens": 200}
        ) as stream:
            for count, _ in enumerate(stream.iter_lines(), start=1):
                if count == 4:  # start and three tokens
                    break
            at_close = len(calls)
        assert at_close >= 4  # the prompt and three tokens read back in (the third's row is in its line)
        assert len(calls) - at_close <= 1
    assert len(calls) < 10 and app.state.qkv.generating is False
    assert lines(client, model="run:demo", prompt="the", tokens=2)[-1]["type"] == "done"  # the server goes on


def test_a_disconnect_message_stops_the_model_within_one_token(app: Starlette) -> None:
    """The ASGI server's own signal (``http.disconnect``), as uvicorn sends it when the socket closes."""
    body = json.dumps({"model": "run:demo", "prompt": "the", "tokens": 200}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/generate",
        "raw_path": b"/api/generate",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8750"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8750),
    }
    received: list[dict[str, Any]] = []
    at_disconnect: list[int] = []

    with counting_passes(app, "run:demo") as calls:

        async def run() -> None:
            gone = anyio.Event()
            asked = False

            async def receive() -> dict[str, Any]:
                nonlocal asked
                if not asked:
                    asked = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await gone.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                received.append(message)
                if b'"type":"token"' in message.get("body", b"") and not gone.is_set():
                    tokens = sum(b'"type":"token"' in m.get("body", b"") for m in received)
                    if tokens == 3:
                        at_disconnect.append(len(calls))
                        gone.set()

            with anyio.fail_after(60):
                await app(scope, receive, send)

        anyio.run(run)
    assert received[0]["status"] == 200 and at_disconnect and at_disconnect[0] >= 4
    assert len(calls) - at_disconnect[0] <= 1
    assert app.state.qkv.generating is False


def test_one_generation_at_a_time(client: TestClient) -> None:
    with client.stream("POST", "/api/generate", json={"model": "run:demo", "prompt": "the", "tokens": 200}) as stream:
        reading = stream.iter_lines()  # kept: dropping the iterator closes the stream
        assert json.loads(next(reading))["type"] == "start"
        refused = client.post("/api/generate", json={"model": "run:demo", "prompt": "the", "tokens": 2})
        assert_refused(refused, 429, "already running")
        assert client.post("/api/trace", json={"model": "run:demo", "text": "the cat"}).status_code == 200
    assert lines(client, model="run:demo", prompt="the", tokens=2)[-1] == {"type": "done", "reason": "tokens"}


def test_a_stop_token_ends_the_stream_with_reason_stop(app: Starlette) -> None:
    loaded = app.state.qkv.registry.load("run:demo")
    wanted = GenerateRequest("run:demo", "the", tokens=10, temperature=1.0, top_k=0, seed=1, layer=-1)
    free = Generation(loaded, wanted, Limits())
    made = [event["id"] for event in iter(free.step, None)]  # type: ignore[index]
    assert len(made) == 10 and free.reason == "tokens"
    first_new = next(k for k in range(1, 10) if made[k] not in made[:k])
    stopping = Loaded(loaded.name, Model(loaded.network, loaded.tokenizer, stop_ids=(made[first_new],)))
    generation = Generation(stopping, wanted, Limits())
    assert [event["id"] for event in iter(generation.step, None)] == made[:first_new]  # type: ignore[index]
    assert generation.reason == "stop"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "minilm", "prompt": "a"}, 400, ["encoder"]),
        ({"model": "gpt-5", "prompt": "a"}, 404, ["unknown model", "smollm2"]),
        ({"model": "run:demo", "prompt": ""}, 400, ["empty"]),
        ({"model": "run:demo", "prompt": "the", "tokens": 0}, 400, ['"tokens"', "1 to 256"]),
        ({"model": "run:demo", "prompt": "the", "tokens": 257}, 400, ['"tokens"', "257"]),
        ({"model": "run:demo", "prompt": "the", "tokens": 2.0}, 400, ['"tokens"', "integer"]),
        ({"model": "run:demo", "prompt": "the", "temperature": -0.1}, 400, ['"temperature"']),
        ({"model": "run:demo", "prompt": "the", "temperature": 5.5}, 400, ['"temperature"', "5"]),
        ({"model": "run:demo", "prompt": "the", "temperature": "hot"}, 400, ['"temperature"', "string"]),
        ({"model": "run:demo", "prompt": "the", "top_k": 1001}, 400, ['"top_k"', "1000"]),
        ({"model": "run:demo", "prompt": "the", "top_k": -1}, 400, ['"top_k"']),
        ({"model": "run:demo", "prompt": "the", "seed": -1}, 400, ['"seed"']),
        ({"model": "run:demo", "prompt": "the", "seed": True}, 400, ['"seed"', "boolean"]),
        ({"model": "run:demo", "prompt": "the", "layer": 2}, 400, ["layer 2", "0…1"]),
        ({"model": "run:demo", "prompt": "the", "layer": -3}, 400, ["layer -3"]),
        ({"model": "run:demo", "prompt": "the " * 9}, 400, ["36 tokens", "32"]),
        ({"model": "run:demo", "prompt": "ZZZ"}, 400, ["Z"]),
        ({"model": "run:demo", "prompt": "the", "top_p": 0.5}, 400, ["top_p"]),
        ({"model": "smollm2", "prompt": "x" * 4001}, 400, ["4,000"]),
    ],
)
def test_bad_requests_are_refused_before_anything_streams(
    client: TestClient, body: dict[str, Any], status: int, words: list[str]
) -> None:
    assert_refused(client.post("/api/generate", json=body), status, *words)
    assert client.app.state.qkv.generating is False  # type: ignore[attr-defined]
