"""The Build view's data: the article's vectors as ``qkv.article`` computes them for ``qkv tour``, numbers that
are consistent with each other (NumPy recomputes every reference from the vectors sent), and the nearest
words to a vector; limits are one-line 4xx."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors import safe_open
from starlette.testclient import TestClient

from qkv.article.tour import make_tour
from qkv.article.tour_base import num
from qkv.article.vectors import SENTENCE, VectorDatabase, split_words
from qkv.data.registry import find_packaged

from .test_api_basics import assert_refused


@pytest.fixture(scope="module")
def database() -> VectorDatabase:
    return VectorDatabase()


def close(sent: object, expected: np.ndarray, *, rtol: float = 1e-7, atol: float = 1e-12) -> bool:
    """Sent numbers (8 significant digits) against float64 ones; numbers recomputed from sent (rounded) ones
    need an absolute tolerance too: a rounding of 5e-9 in 384 terms moves a sum near 0 by more than rtol."""
    array = np.array(sent, dtype=np.float64)
    return array.shape == expected.shape and bool(np.allclose(array, expected, rtol=rtol, atol=atol))


def test_the_default_is_the_article_s_sentence_with_the_tour_s_vectors(
    client: TestClient, database: VectorDatabase
) -> None:
    data = client.get("/api/article").json()
    words = split_words(SENTENCE)
    assert data["sentence"] == SENTENCE and data["words"] == words and data["lang"] == "en"
    assert data["width"] == 384 and data["heads"] == 12
    assert close(data["values"], database.values(words).numpy())
    assert close(data["keys"], database.keys(words).numpy())
    assert close(data["queries"], database.queries(words).numpy())
    assert np.allclose(np.linalg.norm(np.array(data["keys"]), axis=1), 1.0, atol=1e-7)


def test_the_references_follow_from_the_vectors_sent(client: TestClient) -> None:
    data = client.get("/api/article?lang=es").json()
    values, keys, queries = (np.array(data[name]) for name in ("values", "keys", "queries"))
    reference = data["reference"]
    assert close(reference["part2_relevance"], keys @ keys.T, rtol=1e-6, atol=1e-7)
    scores = queries @ keys.T
    assert close(reference["part3_scores"], scores, rtol=1e-6, atol=1e-6)

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    assert close(reference["softmax_weights"], softmax(scores), rtol=1e-5, atol=1e-9)
    scaled = softmax(scores / np.sqrt(384))
    assert close(reference["scaled_softmax_weights"], scaled, rtol=1e-5, atol=1e-9)
    assert close(reference["output"], scaled @ values, rtol=1e-5, atol=1e-8)
    assert 0 <= reference["attend_difference"] < 1e-10


def test_positions_are_minilm_s_and_the_same_projections_apply_to_value_plus_position(client: TestClient) -> None:
    data = client.get("/api/article", params={"text": "the dog chased the cat"}).json()
    assert data["words"] == ["the", "dog", "chased", "the", "cat"] and data["sentence"] == "the dog chased the cat"
    with safe_open(str(find_packaged("minilm")[1] / "model.safetensors"), framework="np") as weights:
        positions = weights.get_tensor("embeddings.position_embeddings.weight").astype(np.float64)[1:6]
        prefix = "encoder.layer.0.attention.self"
        wq, bq = (weights.get_tensor(f"{prefix}.query.{p}").astype(np.float64) for p in ("weight", "bias"))
        wk, bk = (weights.get_tensor(f"{prefix}.key.{p}").astype(np.float64) for p in ("weight", "bias"))
    assert close(data["positions"], positions)
    placed = np.array(data["values"]) + positions
    keys = placed @ wk.T + bk
    unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    assert close(data["with_positions"]["keys"], unit, rtol=1e-6, atol=1e-7)
    assert close(data["with_positions"]["queries"], placed @ wq.T + bq, rtol=1e-6, atol=1e-6)


def numpy_first_layer(embeddings: np.ndarray, *, positions: bool) -> dict[str, np.ndarray]:
    """MiniLM's first layer read with NumPy: LayerNorm(embedding + token type [+ position]) projected."""
    _, model_dir = find_packaged("minilm")
    prefix = "encoder.layer.0.attention.self"
    with safe_open(str(model_dir / "model.safetensors"), framework="np") as weights:

        def get(name: str) -> np.ndarray:
            return weights.get_tensor(name).astype(np.float64)

        summed = embeddings + get("embeddings.token_type_embeddings.weight")[0]
        if positions:
            summed = summed + get("embeddings.position_embeddings.weight")[1 : len(embeddings) + 1]
        mean, var = summed.mean(axis=1, keepdims=True), summed.var(axis=1, keepdims=True)
        inputs = (summed - mean) / np.sqrt(var + 1e-12) * get("embeddings.LayerNorm.weight")
        inputs = inputs + get("embeddings.LayerNorm.bias")
        return {
            name: inputs @ get(f"{prefix}.{part}.weight").T + get(f"{prefix}.{part}.bias")
            for name, part in (("queries", "query"), ("keys", "key"), ("values", "value"))
        }


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_the_first_layer_is_minilm_s_read_with_numpy(client: TestClient) -> None:
    data = client.get("/api/article", params={"text": "the dog chased the cat"}).json()
    embeddings = np.array(data["values"])
    for sent, positions in ((data["first_layer"], False), (data["first_layer"]["with_positions"], True)):
        expected = numpy_first_layer(embeddings, positions=positions)
        for name in ("queries", "keys", "values"):
            assert close(sent[name], expected[name], rtol=1e-6, atol=1e-6), (name, positions)


def test_the_article_head_and_its_references_follow_from_the_vectors_sent(client: TestClient) -> None:
    data = client.get("/api/article").json()
    words, heads = data["words"], data["heads"]
    layer = {name: np.array(data["first_layer"][name]) for name in ("queries", "keys", "values")}

    def split(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(words), heads, -1).transpose(1, 0, 2)  # (W, D) → (H, W, K)

    q, k, v = split(layer["queries"]), split(layer["keys"]), split(layer["values"])
    weights = softmax(q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1]))  # (H, W, W)
    riley, dog = words.index("riley"), words.index("dog")
    head = int(np.argmax(weights[:, riley, dog] - weights[:, dog, riley]))
    chosen = data["article_head"]
    assert (chosen["head"], chosen["width"], chosen["focus"], chosen["other"]) == (head, q.shape[-1], riley, dog)
    assert chosen["there"] == pytest.approx(weights[head, riley, dog], abs=1e-6)
    assert chosen["back"] == pytest.approx(weights[head, dog, riley], abs=1e-6)
    reference = data["reference"]
    unit = k[head] / np.linalg.norm(k[head], axis=1, keepdims=True)
    assert close(reference["head_relevance"], unit @ unit.T, rtol=1e-6, atol=1e-7)
    assert close(reference["head_scores"], q[head] @ k[head].T, rtol=1e-6, atol=1e-5)
    assert close(reference["head_weights"], weights[head], rtol=1e-5, atol=1e-8)
    assert close(reference["head_output"], weights[head] @ np.array(data["values"]), rtol=1e-5, atol=1e-8)
    assert close(reference["layer_weights"], weights, rtol=1e-5, atol=1e-8)
    merged = (weights @ v).transpose(1, 0, 2).reshape(len(words), -1)  # (H, W, K) → (W, D)
    assert close(reference["layer_output"], merged, rtol=1e-5, atol=1e-7)
    assert 0 <= reference["head_attend_difference"] < 1e-10 and 0 <= reference["layer_attend_difference"] < 1e-10


def test_the_tour_s_part_3_numbers_are_the_api_s(client: TestClient) -> None:
    data = client.get("/api/article").json()
    chosen, reference = data["article_head"], data["reference"]
    riley, dog = chosen["focus"], chosen["other"]
    tour = make_tour(quick=True, part=3)
    text = " ".join(line for section in tour.sections for line in section.lines)
    scores, weights = reference["head_scores"], reference["head_weights"]
    assert f"Queries come from head {chosen['head']}," in text
    assert (
        f"q_riley · k_dog = {num(scores[riley][dog])}   dog ⇒ riley: q_dog · k_riley = {num(scores[dog][riley])}"
        in text
    )
    assert f"riley ⇒ dog weighs {num(weights[riley][dog])}, dog ⇒ riley only {num(weights[dog][riley])}" in text
    assert f"riley now attends most to: dog {num(max(weights[riley]))}," in text


def test_a_sentence_without_riley_and_dog_gets_a_pair_of_its_own(client: TestClient) -> None:
    data = client.get("/api/article", params={"text": "the cat sat on the mat"}).json()
    chosen = data["article_head"]
    weights = np.array(data["reference"]["layer_weights"])  # (H, W, W)
    gaps = weights - weights.transpose(0, 2, 1)
    assert chosen["focus"] != chosen["other"]
    assert gaps[chosen["head"], chosen["focus"], chosen["other"]] == pytest.approx(gaps.max(), abs=1e-6)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"text": " ".join(["dog"] * 33)}, ["33 words", "32"]),
        ({"text": "dog"}, ["two words"]),
        ({"text": "   "}, ["empty"]),
        ({"text": "dog " + "x" * 4000}, ["4,000"]),
        ({"text": "the dog ﷽"}, ["[UNK]"]),
        ({"lang": "fr"}, ["lang", "en, es"]),
        ({"sentence": "a b"}, ["unknown parameter", "sentence"]),
    ],
)
def test_bad_sentences_are_refused(client: TestClient, query: dict[str, str], words: list[str]) -> None:
    assert_refused(client.get("/api/article", params=query), 400, *words)


def test_the_nearest_words_to_a_word_s_value_start_with_that_word(client: TestClient, database: VectorDatabase) -> None:
    dog = database.value("dog").tolist()
    found = client.post("/api/nearest", json={"vector": dog, "k": 4}).json()["words"]
    assert len(found) == 4 and found[0]["word"] == "dog" and found[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    similarities = [word["similarity"] for word in found]
    assert similarities == sorted(similarities, reverse=True)
    others = client.post("/api/nearest", json={"vector": dog, "k": 3, "exclude": ["DOG"]}).json()["words"]
    assert [word["word"] for word in others] == [word["word"] for word in found[1:]]
    assert not any(word["word"].startswith("##") or word["word"].startswith("[") for word in found + others)


def test_the_nearest_words_are_by_cosine_over_the_vocabulary(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    vector = rng.normal(size=384)
    found = client.post("/api/nearest", json={"vector": vector.tolist()}).json()["words"]
    assert len(found) == 5
    with safe_open(str(find_packaged("minilm")[1] / "model.safetensors"), framework="np") as weights:
        table = weights.get_tensor("embeddings.word_embeddings.weight").astype(np.float64)
    from tokenizers import Tokenizer

    vocabulary = Tokenizer.from_file(str(find_packaged("minilm")[1] / "tokenizer.json")).get_vocab()
    for word in found:
        row = table[vocabulary[word["word"]]]
        cosine = row @ vector / (np.linalg.norm(row) * np.linalg.norm(vector))
        assert word["similarity"] == pytest.approx(cosine, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"vector": [1.0] * 383}, ["384 numbers", "383"]),
        ({"vector": [0.0] * 384}, ["zeros"]),
        ({"vector": [1e308] * 384}, ["finite"]),
        ({"vector": ["a"] * 384}, ["list of numbers"]),
        ({"vector": [True] * 384}, ["list of numbers"]),
        ({"vector": "dog"}, ["list of numbers"]),
        ({}, ["list of numbers"]),
        ({"vector": [1.0] * 384, "k": 0}, ['"k"']),
        ({"vector": [1.0] * 384, "k": 51}, ['"k"', "50"]),
        ({"vector": [1.0] * 384, "exclude": "dog"}, ['"exclude"', "list of strings"]),
        ({"vector": [1.0] * 384, "exclude": ["a"] * 65}, ['"exclude"', "64"]),
        ({"vector": [1.0] * 384, "exclude": ["a" * 101]}, ['"exclude"', "100"]),
        ({"vector": [1.0] * 384, "words": []}, ["unknown field"]),
    ],
)
def test_bad_nearest_requests_are_refused(client: TestClient, body: dict[str, object], words: list[str]) -> None:
    assert_refused(client.post("/api/nearest", json=body), 400, *words)
