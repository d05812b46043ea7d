"""The server itself: health, the model list, the OpenAPI document, the page's files, and every guard —
Host checking, security headers on every response, no CORS, bounded bodies, one-line JSON errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import qkv.web
from qkv._version import __version__
from qkv.serve.config import LOOPBACK_HOSTS, allowed_hosts_for, is_loopback
from qkv.serve.security import CSP, host_name

from .conftest import BASE, new_app


def assert_refused(response: object, status: int, *words: str) -> None:
    """A refusal: the status, a JSON ``{"error": one line}`` naming ``words``, and the security headers."""
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    message = response.json()["error"]  # type: ignore[attr-defined]
    assert "\n" not in message and message.strip() == message and message
    for word in words:
        assert word in message, message
    assert response.headers["content-security-policy"] == CSP  # type: ignore[attr-defined]


def test_health_says_ok_and_the_version(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"ok": True, "version": __version__}


def test_the_models_are_the_packaged_ones_then_the_runs_found(client: TestClient) -> None:
    listed = client.get("/api/models").json()
    names = [model["name"] for model in listed["models"]]
    assert names == ["minilm", "smollm2", "run:demo"]  # "notes" is a folder, not a run
    by_name = {model["name"]: model for model in listed["models"]}
    assert by_name["minilm"]["causal"] is False and by_name["smollm2"]["causal"] is True
    assert by_name["run:demo"] == {
        "name": "run:demo",
        "causal": True,
        "available": True,
        "loaded": by_name["run:demo"]["loaded"],
        "detail": "your run demo: 2 layers × 4 heads, step 4",
    }
    assert "6 layers × 12 heads" in by_name["minilm"]["detail"]
    assert listed["limits"] == {"text_chars": 4000, "tokens": 512, "build_words": 32, "generate_tokens": 256}


def test_a_model_is_loaded_only_once_it_is_used(runs: Path, static: Path) -> None:
    with TestClient(new_app(runs, static), base_url=BASE) as client:
        loaded = {model["name"]: model["loaded"] for model in client.get("/api/models").json()["models"]}
        assert not any(loaded.values())
        assert client.post("/api/trace", json={"model": "run:demo", "text": "the cat"}).status_code == 200
        loaded = {model["name"]: model["loaded"] for model in client.get("/api/models").json()["models"]}
        assert loaded == {"minilm": False, "smollm2": False, "run:demo": True}


def test_the_openapi_document_lists_every_api_route_and_nothing_else(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1") and document["info"]["version"] == __version__
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routes = {
        (route.path, method)
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in (route.methods or ()) - {"HEAD"}
    }
    assert documented == routes
    references = set()

    def collect(value: object) -> None:
        if isinstance(value, dict):
            references.update(v for k, v in value.items() if k == "$ref")
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(document)
    for reference in references:  # every $ref resolves
        node = document
        for part in reference.removeprefix("#/").split("/"):
            node = node[part]


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    assert page.headers["content-type"].startswith("text/html")
    script = client.get("/static/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert any(isinstance(route, Mount) and route.path == "/static" for route in client.app.routes)  # type: ignore[attr-defined]


def test_the_files_shared_with_the_self_contained_pages_are_served_beside_the_pages_own(client: TestClient) -> None:
    shared = Path(qkv.web.__file__).parent / "static"
    for name in ("heatmap.js", "lines.js", "i18n/es.json"):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and answer.content == (shared / name).read_bytes(), name
    assert "javascript" in client.get("/static/grid.js").headers["content-type"]


def test_no_file_outside_the_page_folder_is_served(client: TestClient) -> None:
    for path in ("/static/../conftest.py", "/static/%2e%2e/conftest.py", "/static//etc/passwd", "/static/missing.js"):
        assert_refused(client.get(path), 404)


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_without_a_page_the_index_says_so_and_the_api_still_answers(runs: Path, tmp_path: Path, folder: str) -> None:
    (tmp_path / "empty").mkdir()
    with TestClient(new_app(runs, tmp_path / folder), base_url=BASE) as client:
        assert_refused(client.get("/"), 404, "static/index.html")
        assert_refused(client.get("/static/main.js"), 404)
        assert client.get("/api/health").status_code == 200


@pytest.mark.parametrize("host", ["localhost", "localhost:8750", "127.0.0.1:8750", "[::1]:8750", "LOCALHOST"])
def test_loopback_host_headers_are_answered(client: TestClient, host: str) -> None:
    assert client.get("/api/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8750", "127.0.0.1.evil.example", "", "[::2]:8750"])
def test_other_host_headers_are_refused_against_dns_rebinding(client: TestClient, host: str) -> None:
    assert_refused(client.get("/api/health", headers={"host": host}), 400, "answers only to")
    assert_refused(client.get("/", headers={"host": host}), 400)


def test_a_server_started_for_every_interface_answers_any_host(runs: Path, static: Path) -> None:
    from qkv.serve.app import create_app
    from qkv.serve.config import ServeConfig

    app = create_app(ServeConfig(runs=runs, allowed_hosts=allowed_hosts_for("0.0.0.0")), static=static)
    with TestClient(app, base_url=BASE) as client:
        assert client.get("/api/health", headers={"host": "my-laptop.lan:8750"}).status_code == 200


def test_host_rules() -> None:
    assert host_name("LocalHost:80") == "localhost" and host_name("[::1]:8750") == "::1" and host_name("::1") == "::1"
    assert all(is_loopback(host) for host in (*LOOPBACK_HOSTS, "127.0.0.2", "[::1]"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "192.168.1.2", "example.com"))
    assert allowed_hosts_for("127.0.0.1") == LOOPBACK_HOSTS
    assert allowed_hosts_for("::") is None and allowed_hosts_for("0.0.0.0") is None
    assert allowed_hosts_for("192.168.1.2") == (*LOOPBACK_HOSTS, "192.168.1.2")


def test_every_response_carries_the_security_headers_and_no_cors(client: TestClient) -> None:
    origin = {"origin": "https://evil.example"}
    responses = [
        client.get("/", headers=origin),
        client.get("/static/main.js", headers=origin),
        client.get("/api/health", headers=origin),
        client.get("/api/models", headers=origin),
        client.get("/api/nothing", headers=origin),
        client.post("/api/trace", content=b"{", headers=origin),
        client.options("/api/trace", headers={**origin, "access-control-request-method": "POST"}),
        client.get("/api/health", headers={"host": "evil.example"}),
    ]
    for response in responses:
        assert response.headers["content-security-policy"] == "default-src 'self'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_unknown_paths_and_methods_are_one_line_json(client: TestClient) -> None:
    assert_refused(client.get("/api/nothing"), 404, "/api/nothing")
    assert_refused(client.get("/api/trace"), 405, "GET")
    assert_refused(client.delete("/api/models"), 405)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", ["no body"]),
        (b"{", ["not valid JSON"]),
        (b"\xff\xfe", ["not valid JSON"]),
        (b'{"model": "minilm", "text": NaN}', ["NaN"]),
        (b"[1, 2]", ["JSON object", "list"]),
        (b'"text"', ["JSON object"]),
        (b"[" * 100_000 + b"]" * 100_000, ["over 64 KB"]),
        (b"[" * 30_000 + b"]" * 30_000, ["not valid JSON"]),
    ],
)
def test_malformed_bodies_are_refused(client: TestClient, body: bytes, words: list[str]) -> None:
    status = 413 if b"[" * 40_000 in body else 400
    assert_refused(
        client.post("/api/trace", content=body, headers={"content-type": "application/json"}), status, *words
    )


def test_a_body_over_64_kb_is_refused_before_it_is_read(client: TestClient) -> None:
    text = "word " * 20_000  # 100 KB
    assert_refused(client.post("/api/trace", json={"model": "minilm", "text": text}), 413, "64 KB")

    def chunks() -> object:  # no content-length: the server counts as it reads
        for _ in range(100):
            yield b" " * 1024

    assert_refused(client.post("/api/trace", content=chunks()), 413, "64 KB")  # type: ignore[arg-type]


def test_a_declared_length_that_is_not_a_number_is_refused(client: TestClient) -> None:
    response = client.post("/api/nearest", content=b"{}", headers={"content-length": "-1"})
    assert response.status_code in (400, 413)


def test_errors_name_the_field_and_the_fix(client: TestClient) -> None:
    assert_refused(client.post("/api/trace", json={"model": 3, "text": "a"}), 400, '"model"', "string")
    assert_refused(client.post("/api/trace", json={"model": "minilm"}), 400, '"text" is missing')
    assert_refused(client.post("/api/trace", json={"model": "minilm", "text": "  "}), 400, "empty")
    assert_refused(client.post("/api/trace", json={"model": "minilm", "text": "a", "txet": 1}), 400, "txet", "text")
    refused = client.post("/api/trace", json={"model": "../../etc/passwd", "text": "a"})
    assert_refused(refused, 404, "unknown model", "minilm, smollm2, run:demo")


def test_the_openapi_document_is_valid_json_in_the_package() -> None:
    from importlib import resources

    document = json.loads(resources.files("qkv.serve").joinpath("openapi.json").read_text(encoding="utf-8"))
    assert set(document) >= {"openapi", "info", "paths", "components"}
