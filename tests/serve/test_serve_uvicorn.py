"""The app behind a real uvicorn (in a thread, on a free port): the stream is chunked NDJSON as a browser
reads it, and closing the socket mid-stream stops the model within one token."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from .conftest import counting_passes, new_app


@pytest.fixture(scope="module")
def served(runs: Path, static: Path) -> Iterator[tuple[Starlette, int]]:
    app = new_app(runs, static)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    for _ in range(200):  # until it serves (at most a few seconds)
        if server.started:
            break
        time.sleep(0.05)
    yield app, listener.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()
    assert app.state.qkv.unexpected_errors == 0


def wait_until(condition: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


@pytest.mark.slow
def test_the_stream_is_chunked_ndjson(served: tuple[Starlette, int]) -> None:
    _, port = served
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"model": "run:demo", "prompt": "the", "tokens": 5})
    connection.request("POST", "/api/generate", body, {"content-type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-length") is None
    assert response.getheader("transfer-encoding") == "chunked"
    assert response.getheader("content-security-policy") == "default-src 'self'"
    events = [json.loads(line) for line in response.read().decode().splitlines()]
    assert [event["type"] for event in events] == ["start", *["token"] * 5, "done"]
    connection.close()


@pytest.mark.slow
def test_closing_the_socket_stops_the_model_within_one_token(served: tuple[Starlette, int]) -> None:
    app, port = served
    # each pass takes 50 ms more, as a real model's would: the stop is not a race
    with counting_passes(app, "run:demo", seconds=0.05) as calls:
        body = json.dumps({"model": "run:demo", "prompt": "the", "tokens": 256}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as client:
            head = f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n\r\n"
            client.sendall(head.encode() + body)
            received = b""
            while received.count(b'"type":"token"') < 3:
                received += client.recv(65536)
        at_close = len(calls)  # the socket is closed: the step under way may finish, no other may start
        wait_until(lambda: not app.state.qkv.generating)
        assert not app.state.qkv.generating
        assert at_close >= 4 and len(calls) - at_close <= 1
