"""The Inspect view's API: every head it returns is ``qkv.trace``'s, rows sum to 1, the overview's metrics
and thumbnails are the trace's, the Q/K view matches an independent NumPy computation, and every limit is a
one-line 4xx."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

from qkv.attention import implementation
from qkv.inspection import AttentionTrace, head_metrics
from qkv.inspection.trace import trace
from qkv.pretrained.model import load

from .conftest import BASE, new_app
from .test_api_basics import assert_refused

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"


def weights_of(head: dict[str, object]) -> np.ndarray:
    shape = tuple(head["shape"])  # type: ignore[arg-type]
    return np.frombuffer(base64.b64decode(head["weights"]), dtype="<f4").reshape(shape)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def minilm_overview(client_module: TestClient) -> dict[str, object]:
    response = client_module.post("/api/trace", json={"model": "minilm", "text": SENTENCE})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client_module(app: object) -> object:
    with TestClient(app, base_url=BASE) as client:  # type: ignore[arg-type]
        yield client
    assert app.state.qkv.unexpected_errors == 0  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def minilm_reference() -> AttentionTrace:
    return trace(load("minilm"), SENTENCE)


def test_every_head_is_the_library_trace_and_rows_sum_to_one(
    client_module: TestClient, minilm_overview: dict[str, object], minilm_reference: AttentionTrace
) -> None:
    overview = minilm_overview
    assert overview["tokens"] == list(minilm_reference.tokens) and overview["labels"] == minilm_reference.labels
    assert overview["layers"] == [0, 1, 2, 3, 4, 5] and overview["heads"] == 12 and overview["causal"] is False
    assert overview["special"] == list(minilm_reference.special) and overview["sinks"] == list(minilm_reference.sinks)
    for layer in (0, 3, 5):
        for head in (0, 7, 11):
            data = client_module.get(f"/api/trace/{overview['id']}/head/{layer}/{head}").json()
            assert data["layer"] == layer and data["head"] == head
            weights = weights_of(data)
            expected = minilm_reference.weights[layer, head].numpy()
            assert np.array_equal(weights, expected)
            assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    mean = weights_of(client_module.get(f"/api/trace/{overview['id']}/head/2/mean").json())
    assert np.allclose(mean, minilm_reference.weights[2].mean(dim=0).numpy(), atol=1e-7)


def percentile_scale(head: np.ndarray, sinks: np.ndarray) -> float:
    """A bidirectional head's 255 (the heatmaps' scale): the nearest-rank 99th percentile of its weights ``(T, S)``
    outside the sink columns."""
    cells = np.sort(head[:, ~sinks].ravel())
    return float(cells[math.ceil(0.99 * cells.size) - 1])


def test_the_overview_metrics_and_thumbnails_are_the_trace_s(
    minilm_overview: dict[str, object], minilm_reference: AttentionTrace
) -> None:
    metrics = head_metrics(minilm_reference)
    sent = minilm_overview["metrics"]
    for name in ("entropy", "distance", "asymmetry", "relative_asymmetry", "sink_share"):
        assert np.allclose(np.array(sent[name]), getattr(metrics, name).numpy(), rtol=1e-5, atol=1e-7), name  # type: ignore[index]
    thumbs = minilm_overview["thumbs"]
    T = len(minilm_reference.tokens)
    assert thumbs["size"] == T  # type: ignore[index]
    cells = np.frombuffer(base64.b64decode(thumbs["data"]), dtype=np.uint8).reshape(6, 12, T, T)  # type: ignore[index]
    weights = minilm_reference.weights.numpy()  # T ≤ 64: one cell per weight
    sinks = np.array(minilm_reference.sinks)
    scales = np.array([[percentile_scale(head, sinks) for head in layer] for layer in weights])[..., None, None]
    assert np.abs(cells.astype(int) - np.minimum(np.round(weights / scales * 255), 255)).max() <= 1
    assert (cells == 255).any(axis=(2, 3)).all()  # every head reaches full colour
    assert 0 <= minilm_overview["exactness"] < 1e-5  # type: ignore[operator]


def test_a_long_text_is_pooled_by_max_to_32_by_32_thumbnails_for_a_model_of_many_heads(client: TestClient) -> None:
    text = " ".join(["word", "dog", "cat"] * 40)  # 122 tokens
    overview = client.post("/api/trace", json={"model": "run:demo", "text": text[:32]}).json()
    assert overview["thumbs"]["size"] == len(overview["tokens"])
    overview = client.post("/api/trace", json={"model": "minilm", "text": text}).json()
    T, n = len(overview["tokens"]), 32  # MiniLM: 6 × 12 = 72 heads, more than MANY_HEADS
    assert T == 122 and overview["thumbs"]["size"] == n
    cells = np.frombuffer(base64.b64decode(overview["thumbs"]["data"]), dtype=np.uint8).reshape(6, 12, n, n)
    head = weights_of(client.get(f"/api/trace/{overview['id']}/head/1/4").json())
    # adaptive max pooling: cell (i, j) covers rows floor(i·T/n) … ceil((i+1)·T/n) − 1 (and so columns)
    bounds = [(math.floor(i * T / n), math.ceil((i + 1) * T / n)) for i in range(n)]
    pooled = np.array([[head[r0:r1, c0:c1].max() for c0, c1 in bounds] for r0, r1 in bounds])
    scale = percentile_scale(head, np.array(overview["sinks"]))  # of the weights, not of the pooled cells
    assert np.abs(cells[1, 4].astype(int) - np.minimum(np.round(pooled / scale * 255), 255)).max() <= 1


def test_thumbnails_are_64_cells_a_side_up_to_64_heads_and_32_beyond() -> None:
    from qkv.serve.traces import MANY_HEADS, thumb_size

    assert MANY_HEADS == 64
    assert [thumb_size(heads) for heads in (1, 8, 64, 65, 72, 270)] == [64, 64, 64, 32, 32, 32]


def qk_reference(queries: np.ndarray, keys: np.ndarray, weights: np.ndarray, causal: bool) -> dict[str, object]:
    """AttentionViz's normalisation and a joint PCA, in NumPy."""
    keys = keys - keys.mean(axis=0) + queries.mean(axis=0)
    scale = math.sqrt(np.linalg.norm(keys, axis=1).mean() / np.linalg.norm(queries, axis=1).mean())
    queries, keys = queries * scale, keys / scale
    points = np.concatenate([queries, keys])
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T
    distance = np.linalg.norm(queries[:, None] - keys[None], axis=-1)
    allowed = np.tril(np.ones_like(weights, dtype=bool)) if causal else np.ones_like(weights, dtype=bool)
    correlation = np.corrcoef(-distance[allowed], weights[allowed])[0, 1]
    return {"projected": projected, "scale": scale, "correlation": correlation, "T": len(queries)}


def projections(model: torch.nn.Module, layer: int, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A layer's queries ``(H, T, K)`` and keys ``(G, S, K)``, RoPE applied: recomputed from the layer's own
    input (captured by a pre-hook) with its weights, independently of the server's hooks."""
    attention = model.blocks[layer].attention
    seen: list[torch.Tensor] = []
    handle = attention.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    with torch.no_grad(), implementation("exact"):  # as in a trace, where every captured layer runs exact
        model.hidden_states(torch.tensor([ids]))
        handle.remove()
        (x,) = seen  # (1, T, D)
        config = attention.config
        T = x.shape[1]
        queries = attention.to_q(x)[0].view(T, config.heads, config.key_width).transpose(0, 1).float()
        keys = attention.to_k(x)[0].view(T, config.groups, config.key_width).transpose(0, 1).float()
        if attention.rope is not None:
            queries, keys = attention.rope(queries[None])[0], attention.rope(keys[None])[0]
    return queries.double().numpy(), keys.double().numpy()


def check_qk(client: TestClient, overview: dict[str, object], model: torch.nn.Module, ids: list[int]) -> None:
    layers, heads = len(overview["layers"]), overview["heads"]  # type: ignore[arg-type]
    for layer, head in ((0, 0), (layers - 1, heads - 1)):  # type: ignore[operator]
        sent = client.get(f"/api/trace/{overview['id']}/qk/{layer}/{head}").json()
        queries, keys = projections(model, layer, ids)
        weights = weights_of(client.get(f"/api/trace/{overview['id']}/head/{layer}/{head}").json()).astype(np.float64)
        group = head // (queries.shape[0] // keys.shape[0])
        expected = qk_reference(queries[head], keys[group], weights, bool(overview["causal"]))
        got = np.concatenate([np.array(sent["queries"]), np.array(sent["keys"])])
        signs = np.sign((got * expected["projected"]).sum(axis=0))  # PCA axes are defined up to their sign
        assert np.allclose(got, expected["projected"] * signs, atol=2e-3 * np.abs(got).max())
        assert sent["scale"] == pytest.approx(expected["scale"], rel=1e-4)
        assert sent["correlation"] == pytest.approx(expected["correlation"], abs=1e-4)


def test_the_qk_view_matches_numpy_for_an_encoder(
    client_module: TestClient, minilm_overview: dict[str, object]
) -> None:
    model = load("minilm")
    check_qk(client_module, minilm_overview, model.model, model.encode(SENTENCE))


def test_the_qk_view_matches_numpy_for_a_causal_run(client: TestClient, runs: Path) -> None:
    text = "the lazy dog sits on a mat"
    overview = client.post("/api/trace", json={"model": "run:demo", "text": text}).json()
    assert overview["causal"] is True
    handle = load(runs / "demo")
    network, tokenizer = handle.model, handle.tokenizer
    check_qk(client, overview, network, tokenizer.encode(text))
    reference = trace(handle, text)
    head = weights_of(client.get(f"/api/trace/{overview['id']}/head/1/3").json())
    assert np.array_equal(head, reference.weights[1, 3].numpy())
    assert np.all(np.triu(head, k=1) == 0)  # the future is masked


@pytest.mark.slow
def test_smollm2_int4_heads_queries_and_keys_are_the_library_s(client: TestClient) -> None:
    """RoPE, grouped-query heads and 4-bit weights: every head equals ``qkv.trace`` of the same model."""
    text = "The capital of France is Paris. It is known for the Eiffel Tower."
    response = client.post("/api/trace", json={"model": "smollm2", "text": text})
    assert response.status_code == 200, response.text
    overview = response.json()
    model = load("smollm2", dtype="int4")
    reference = trace(model, text)
    assert overview["tokens"] == list(reference.tokens) and overview["layers"] == list(range(30))
    for layer, head in ((0, 0), (17, 4), (29, 8)):
        weights = weights_of(client.get(f"/api/trace/{overview['id']}/head/{layer}/{head}").json())
        assert np.array_equal(weights, reference.weights[layer, head].numpy())
        assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    assert 0 <= overview["exactness"] < 0.05  # bfloat16 activations: fused and exact differ in rounding only
    check_qk(client, overview, model.model, model.encode(text))


def test_the_export_is_the_trace(
    client_module: TestClient, minilm_overview: dict[str, object], minilm_reference: AttentionTrace
) -> None:
    exported = client_module.get(f"/api/trace/{minilm_overview['id']}/export?format=json")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    again = AttentionTrace.from_json(exported.text)
    assert torch.equal(again.weights, minilm_reference.weights) and again.tokens == minilm_reference.tokens
    page = client_module.get(f"/api/trace/{minilm_overview['id']}/export?format=html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>") and "attachment" in page.headers["content-disposition"]
    assert_refused(client_module.get(f"/api/trace/{minilm_overview['id']}/export?format=pdf"), 400, "json or html")


def test_bad_layers_heads_and_ids_are_refused(client_module: TestClient, minilm_overview: dict[str, object]) -> None:
    tid = minilm_overview["id"]
    assert_refused(client_module.get(f"/api/trace/{tid}/head/6/0"), 400, "layer 6", "0…5")
    assert_refused(client_module.get(f"/api/trace/{tid}/head/-1/0"), 400, "layer -1")
    assert_refused(client_module.get(f"/api/trace/{tid}/head/0/12"), 400, "head 12", "0…11")
    assert_refused(client_module.get(f"/api/trace/{tid}/head/0/x"), 400, "head", "integer")
    assert_refused(client_module.get(f"/api/trace/{tid}/head/1.5/0"), 400, "layer", "integer")
    assert_refused(client_module.get(f"/api/trace/{tid}/head/99999999999/0"), 400, "layer")
    assert_refused(client_module.get(f"/api/trace/{tid}/qk/0/mean"), 400, "head")
    assert_refused(client_module.get(f"/api/trace/{tid}/qk/0/12"), 400, "head 12")
    for path in ("head/0/0", "qk/0/0", "export"):
        assert_refused(client_module.get(f"/api/trace/t000/{path}"), 404, "no trace", "trace again")


def test_old_traces_are_dropped_least_recently_used_first(runs: Path, static: Path) -> None:
    app = new_app(runs, static, cached_traces=2)
    with TestClient(app, base_url=BASE) as client:
        ids = [client.post("/api/trace", json={"model": "run:demo", "text": f"the {w}"}).json()["id"] for w in "abc"]
        assert_refused(client.get(f"/api/trace/{ids[0]}/head/0/0"), 404)
        assert client.get(f"/api/trace/{ids[1]}/head/0/0").status_code == 200  # now the most recently used
        client.post("/api/trace", json={"model": "run:demo", "text": "the d"})
        assert client.get(f"/api/trace/{ids[1]}/head/0/0").status_code == 200
        assert_refused(client.get(f"/api/trace/{ids[2]}/head/0/0"), 404)


def test_the_cache_is_bounded_in_bytes(runs: Path, static: Path) -> None:
    app = new_app(runs, static, cached_bytes=1)  # every trace is over: only the newest stays
    with TestClient(app, base_url=BASE) as client:
        first = client.post("/api/trace", json={"model": "run:demo", "text": "the a"}).json()["id"]
        second = client.post("/api/trace", json={"model": "run:demo", "text": "the b"}).json()["id"]
        assert_refused(client.get(f"/api/trace/{first}/head/0/0"), 404)
        assert client.get(f"/api/trace/{second}/head/0/0").status_code == 200
        assert len(app.state.qkv.traces) == 1


def test_texts_over_the_limits_are_refused(client: TestClient) -> None:
    assert_refused(client.post("/api/trace", json={"model": "minilm", "text": "a" * 4001}), 400, "4,001", "4,000")
    long = "dog " * 600  # 600 words, 2,400 characters: 602 tokens
    assert_refused(client.post("/api/trace", json={"model": "minilm", "text": long}), 400, "602 tokens", "512")
    assert_refused(
        client.post("/api/trace", json={"model": "run:demo", "text": "the cat " * 5}), 400, "40 tokens", "32"
    )
    assert_refused(client.post("/api/trace", json={"model": "run:demo", "text": "QQQ"}), 400, "Q")
    exactly = client.post("/api/trace", json={"model": "minilm", "text": "dog " * 510})
    assert exactly.status_code == 200 and len(exactly.json()["tokens"]) == 512


def test_unicode_and_control_characters_are_texts_like_any_other(client: TestClient) -> None:
    for text in ("naïve café 🐕", "tab\tnew\nline", "\x00\x01 zero", "\u202e reversed", "🐕" * 50):
        response = client.post("/api/trace", json={"model": "minilm", "text": text})
        assert response.status_code == 200, (text, response.text)
        assert "".join(response.json()["tokens"]).replace("[CLS]", "").replace("[SEP]", "") != ""


def test_large_overviews_are_gzipped_for_clients_that_accept_it(client: TestClient) -> None:
    response = client.post("/api/trace", json={"model": "minilm", "text": SENTENCE})
    assert response.headers["content-encoding"] == "gzip"
    timing = dict(part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
    assert set(timing) == {"model", "encode"} and all(float(ms) >= 0 for ms in timing.values())
    plain = client.post(
        "/api/trace", json={"model": "minilm", "text": SENTENCE}, headers={"accept-encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers and json.loads(plain.content)["tokens"] == response.json()["tokens"]


@pytest.mark.parametrize(
    ("family", "overrides"),
    [("llama", {"heads": 4, "kv_heads": 2}), ("bert", {"heads": 4, "causal": False, "lm_head": False})],
)
def test_the_exactness_badge_reads_grouped_and_bidirectional_heads_right(
    family: str, overrides: dict[str, object]
) -> None:
    """The exact outputs come from the trace's weights: each query head times its key/value head's values."""
    from qkv.model import Transformer, preset
    from qkv.pretrained.model import Model
    from qkv.serve.projections import capture_projections, fused_exact_gap
    from qkv.text.tokenizers import CharTokenizer

    from .conftest import CORPUS

    tokenizer = CharTokenizer.train(CORPUS)
    config = preset(family, vocab_size=tokenizer.vocab_size, context=32, width=32, layers=2, tie_embeddings=False)
    config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    torch.manual_seed(3)
    handle = Model(Transformer(config).eval(), tokenizer, name="toy")
    with capture_projections(handle.model) as layers:
        weights = trace(handle, "the lazy dog sat").weights  # (L, H, T, S)
    expected = 0.0
    for layer in layers:  # softmax(QKᵀ/√K)V written out, each key/value head shared by H / G query heads
        q = layer.queries[None]  # (1, H, T, K)
        k, v = (x[None].repeat_interleave(2 if family == "llama" else 1, dim=1) for x in (layer.keys, layer.values))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if config.causal:
            scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
        fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=config.causal)
        expected = max(expected, float((torch.softmax(scores, dim=-1) @ v - fused).abs().max()))
    assert fused_exact_gap(handle.model, layers, weights) == pytest.approx(expected, abs=1e-6)
    flipped = weights.flip(1)  # each head's weights given to another head: the gap shows it
    assert fused_exact_gap(handle.model, layers, flipped) > 1e-3


def test_the_exactness_badge_is_the_largest_gap_between_the_two_kernels(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.serve import projections as projections_module
    from qkv.serve.projections import capture_projections, fused_exact_gap

    handle = load(runs / "demo")
    network = handle.model
    with capture_projections(network) as layers:
        weights = trace(handle, "the lazy dog").weights
    assert len(layers) == 2
    expected = 0.0
    for layer in layers:  # torch's own kernel against softmax(QKᵀ/√K)V written out, causal
        q, k, v = layer.queries[None], layer.keys[None], layer.values[None]
        fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        T = q.shape[2]
        scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        expected = max(expected, float((torch.softmax(scores, dim=-1) @ v - fused).abs().max()))
    assert fused_exact_gap(network, layers, weights) == pytest.approx(expected, abs=1e-6)

    real = projections_module.fused_attention
    monkeypatch.setattr(projections_module, "fused_attention", lambda *a, **k: real(*a, **k) + 1e-3)
    assert fused_exact_gap(network, layers, weights) == pytest.approx(1e-3, rel=1e-2)  # a kernel that is off shows
