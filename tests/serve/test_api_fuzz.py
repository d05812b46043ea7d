"""Property-based fuzzing of every JSON endpoint: whatever a client sends — wrong types, huge or negative
numbers, NaN, unicode, unknown fields, odd path segments — the answer is a 2xx or a one-line 4xx, never a
5xx, and it comes back (the fuzz app's generation limit is small, so every accepted request is short)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from .conftest import BASE, new_app

FUZZ = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
MODELS = st.sampled_from(["minilm", "smollm2", "run:demo", "run:", "run:notes", "", "MINILM", "../demo"]) | st.text(
    max_size=30
)
NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 255, 256, 257, 1000, 1001, 5, 5.0000001])
)
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=40)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
TEXTS = st.text(max_size=120) | st.sampled_from(["the cat", "  ", "a" * 4001, "dog " * 520, "\x00", "🐕" * 30])


def body_of(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of ``fields`` (each valid-ish or anything), sometimes an unknown one."""
    chosen = {name: strategy | JSON for name, strategy in fields.items()}
    extra = st.dictionaries(st.sampled_from(["extra", "top_p", "Model"]), JSON, max_size=1)
    return st.fixed_dictionaries({}, optional=chosen).flatmap(lambda body: extra.map(lambda more: {**body, **more}))


@pytest.fixture(scope="module")
def fuzzed(runs: Path, static: Path) -> Iterator[tuple[TestClient, str]]:
    app = new_app(runs, static, generate_tokens=3)
    with TestClient(app, base_url=BASE) as client:
        trace_id = client.post("/api/trace", json={"model": "run:demo", "text": "the cat"}).json()["id"]
        yield client, trace_id
    assert app.state.qkv.unexpected_errors == 0


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        message = response.json()["error"]
        assert message and "\n" not in message
    elif response.headers["content-type"].startswith("application/x-ndjson"):
        events = [json.loads(line) for line in response.text.splitlines()]
        assert events[0]["type"] == "start" and events[-1]["type"] in ("done", "error")
        assert all(event["type"] == "token" for event in events[1:-1]) and len(events) <= 3 + 2


def send(client: TestClient, path: str, body: Any) -> Any:
    content = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity go out as the bare words
    return client.post(path, content=content, headers={"content-type": "application/json"})


@pytest.mark.slow
@FUZZ
@given(body=body_of({"model": MODELS, "text": TEXTS}) | JSON)
def test_trace_bodies(fuzzed: tuple[TestClient, str], body: Any) -> None:
    check(send(fuzzed[0], "/api/trace", body))


@pytest.mark.slow
@FUZZ
@given(
    body=body_of(
        {
            "model": MODELS,
            "prompt": TEXTS,
            "tokens": NUMBERS,
            "temperature": NUMBERS,
            "top_k": NUMBERS,
            "seed": NUMBERS,
            "layer": NUMBERS,
        }
    )
)
def test_generate_bodies(fuzzed: tuple[TestClient, str], body: Any) -> None:
    check(send(fuzzed[0], "/api/generate", body))


@pytest.mark.slow
@FUZZ
@given(
    body=body_of(
        {
            "vector": st.lists(NUMBERS, min_size=383, max_size=385)
            | st.lists(st.floats(-1, 1), min_size=384, max_size=384),
            "k": NUMBERS,
            "exclude": st.lists(st.text(max_size=110), max_size=70),
        }
    )
)
def test_nearest_bodies(fuzzed: tuple[TestClient, str], body: Any) -> None:
    check(send(fuzzed[0], "/api/nearest", body))


SEGMENTS = st.text(max_size=24) | st.sampled_from(["0", "1", "-1", "mean", "2", "99999999999", "1e3", "0x1", ".."])


@pytest.mark.slow
@FUZZ
@given(
    kind=st.sampled_from(["head", "qk"]),
    known=st.booleans(),
    other=SEGMENTS,
    layer=SEGMENTS,
    head=SEGMENTS,
)
def test_trace_paths(fuzzed: tuple[TestClient, str], kind: str, known: bool, other: str, layer: str, head: str) -> None:
    client, trace_id = fuzzed
    segments = [trace_id if known else other, kind, layer, head]
    check(client.get("/api/trace/" + "/".join(quote(segment, safe="") for segment in segments)))


@pytest.mark.slow
@FUZZ
@given(
    query=st.dictionaries(st.sampled_from(["lang", "text", "format", "x"]), TEXTS, max_size=3),
    name=SEGMENTS,
    known=st.booleans(),
)
def test_query_strings_and_names(fuzzed: tuple[TestClient, str], query: dict[str, str], name: str, known: bool) -> None:
    client, trace_id = fuzzed
    check(client.get("/api/article", params=query))
    check(client.get(f"/api/trace/{trace_id if known else quote(name, safe='')}/export", params=query))
    check(client.get(f"/api/runs/{quote(name, safe='')}/training"))
