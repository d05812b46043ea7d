"""The pages qkv writes, opened from ``file://`` in a browser: ``qkv attend --format html`` and ``qkv tour --html``.

Both run the explorer's modules inlined as one classic script (a ``file://`` page cannot load ES modules). Debian's
Chromium is driven by Playwright, as in tests/serve/test_browser.py. Every test fails on a console error, an
uncaught exception in the page, or a request for anything but the page itself and its ``data:`` pictures: the
pages load nothing. Screenshots go to ``build/pages/`` (light and dark); look at them.

Without Chromium or Playwright the tests skip with a one-line reason, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch

import qkv
from qkv.article.tour import make_tour
from qkv.article.vectors import SENTENCE
from qkv.cli.main import main
from qkv.data.scale import head_scales
from qkv.data.trace import AttentionTrace

pytestmark = pytest.mark.slow  # drives a real Chromium

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "pages"
VIRIDIS = np.round(matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(int)  # (256, 3)
GREY_LOW, GREY_HIGH = 40, 230  # a sink column's grey at 0 and at 1 (heatmap.js)


def run_cli(argv: list[str]) -> None:
    """``qkv ARGV`` in this process; it must succeed."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()


@pytest.fixture(scope="module")
def minilm() -> AttentionTrace:
    """The article's sentence through MiniLM, computed here: the reference the pages' pixels are held to."""
    return qkv.trace(qkv.load("minilm"), SENTENCE)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    run_cli(["attend", SENTENCE, "--model", "minilm", "--format", "html", "-o", str(folder / "attend.html")])
    run_cli(["tour", "--quick", "--html", str(folder / "tour.html")])
    return {"attend": folder / "attend.html", "tour": folder / "tour.html"}


class Opened:
    """A page opened from a file, and what it did wrong: console errors, exceptions, requests for anything else."""

    def __init__(self, browser: Any, path: Path, *, scheme: str = "light", scripts: bool = True) -> None:
        self.context = browser.new_context(
            viewport={"width": 1300, "height": 1000}, color_scheme=scheme, java_script_enabled=scripts
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.problems: list[str] = []
        own = path.resolve().as_uri()

        def route(route: Any) -> None:
            url = route.request.url
            if url == own or url.startswith("data:"):
                route.continue_()
            else:
                self.problems.append(f"request: {url[:120]}")
                route.abort()

        self.context.route("**/*", route)
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))
        self.page.goto(own)

    def close(self) -> None:
        self.context.close()
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def opened(browser: Any) -> Iterator[Any]:
    """Opens pages; each is checked for problems when the test ends."""
    made: list[Opened] = []

    def open_page(path: Path, **options: Any) -> Opened:
        made.append(Opened(browser, path, **options))
        return made[-1]

    yield open_page
    for page in made:
        page.close()


def screenshot(target: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def canvas_rgb(view: Any) -> np.ndarray:
    """The heatmap canvas of ``view`` (a locator of one div.qkv-trace), as (T, S, 3) bytes."""
    drawn = view.locator("canvas[data-role=heatmap]").evaluate(
        """(canvas) => ({width: canvas.width, height: canvas.height,
            rgba: Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)})"""
    )
    return np.array(drawn["rgba"]).reshape(drawn["height"], drawn["width"], 4)[..., :3]


def expected_colours(trace: AttentionTrace, weights: torch.Tensor, t: int, s: int) -> list[list[int]]:
    """The colours cell ``(t, s)`` of ``weights (T, S)`` may have: viridis at the weight against the head's scale
    (Python's), sink columns grey against 1; either neighbour of a level half-way between two."""
    w = float(weights[t, s])
    if trace.sinks[s]:
        level = GREY_LOW + (GREY_HIGH - GREY_LOW) * min(1.0, w)
        return [[g, g, g] for g in {math.floor(level), math.ceil(level)}]
    level = 255 * min(1.0, w / float(head_scales(trace, weights)))
    return [VIRIDIS[i].tolist() for i in {math.floor(level), math.ceil(level)}]


def assert_heatmap_is(view: Any, trace: AttentionTrace, weights: torch.Tensor) -> None:
    rgb = canvas_rgb(view)
    assert rgb.shape[:2] == weights.shape  # one pixel per cell
    for (t, s), _ in np.ndenumerate(weights.numpy()):
        assert rgb[t, s].tolist() in expected_colours(trace, weights, t, s), f"cell {t}, {s}"


def hover_lines(view: Any, token: int) -> list[dict[str, float]]:
    """Hover token ``token`` in the left column of ``view``'s lines; the lines then drawn."""
    view.locator(f"svg[data-role=lines] text[data-side=left][data-index='{token}']").hover()
    return list(
        view.locator("svg[data-role=lines] line[visibility=visible]").evaluate_all(
            """(lines) => lines.map((line) => ({from: +line.getAttribute('data-from'),
                to: +line.getAttribute('data-to'), width: +line.getAttribute('stroke-width')}))"""
        )
    )


def assert_lines_are_the_row(lines: list[dict[str, float]], token: int, row: torch.Tensor) -> None:
    """A hovered token's lines: one to each of its strongest keys (32 at most), 10 px wide for a weight of 1."""
    assert {line["from"] for line in lines} == {token} and len(lines) == min(32, len(row))
    assert sorted(line["to"] for line in lines) == sorted(torch.argsort(row, descending=True)[:32].tolist())
    for line in lines:
        assert line["width"] == pytest.approx(10 * float(row[int(line["to"])]), abs=1e-4)


# -- qkv attend --format html -----------------------------------------------------------------------------------


def test_the_attend_page_draws_the_trace_through_viridis_and_a_hovered_tokens_lines(
    opened: Any, pages: dict[str, Path], minilm: AttentionTrace
) -> None:
    page = opened(pages["attend"]).page
    view = page.locator("div.qkv-trace.qkv-live")
    assert view.count() == 1
    riley, dog = minilm.labels.index("Riley"), minilm.labels.index("dog")
    # It starts on the last layer, the mean of its heads.
    start = minilm.weights[5].double().mean(dim=0).float()  # (T, S)
    assert canvas_rgb(view)[riley, dog].tolist() in expected_colours(minilm, start, riley, dog)  # a known cell
    assert_heatmap_is(view, minilm, start)
    # The grid holds every head; a click on layer 2, head 0 shows it: Riley ⇒ dog, the article's arrow.
    assert view.locator("[role=gridcell]").count() == 6 * 12
    view.locator("[role=gridcell][data-layer='2'][data-head='0']").click()
    assert page.input_value("select[data-role=layer]") == "2" and page.input_value("select[data-role=head]") == "0"
    head = minilm.weights[2, 0]
    assert_heatmap_is(view, minilm, head)
    assert_lines_are_the_row(hover_lines(view, riley), riley, head[riley])
    assert (page.text_content("[data-role=hover]") or "").startswith("Riley attends most to")
    screenshot(page, "attend")
    page.mouse.move(1, 1)  # no token hovered: the head's strongest lines, grey to the sinks
    assert view.locator("svg[data-role=lines] line.overview.sink[visibility=visible]").count() > 0


def test_the_attend_page_is_dark_in_a_dark_theme_and_a_summary_without_scripts(
    opened: Any, pages: dict[str, Path]
) -> None:
    dark = opened(pages["attend"], scheme="dark").page
    background = dark.evaluate("getComputedStyle(document.querySelector('.qkv-trace')).backgroundColor")
    assert background == "rgb(30, 30, 30)"
    screenshot(dark, "attend-dark")
    bare = opened(pages["attend"], scripts=False).page
    assert bare.locator(".qkv-static").is_visible() and not bare.locator(".qkv-controls").is_visible()
    assert "needs JavaScript" in (bare.text_content(".qkv-static") or "")


@pytest.mark.parametrize("name", ["attend", "tour"])
def test_axe_finds_no_serious_violation(opened: Any, pages: dict[str, Path], name: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    for scheme in ("light", "dark"):
        page = opened(pages[name], scheme=scheme).page
        page.wait_for_selector("div.qkv-trace.qkv-live")
        results = Axe().run(page)
        serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        report = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}" for v in serious]
        assert not serious, f"{scheme}: " + "; ".join(report)
        assert "page-has-heading-one" not in {v["id"] for v in results.response["violations"]}


# -- qkv tour --html -------------------------------------------------------------------------------------------


def test_the_tour_page_draws_each_figure_with_the_same_modules(
    opened: Any, pages: dict[str, Path], minilm: AttentionTrace
) -> None:
    page = opened(pages["tour"]).page
    views = page.locator("div.qkv-trace.qkv-live")
    assert views.count() == 4  # the final link, the heads (arcs and grid), the stack
    tour = make_tour(quick=True, lang="en", model_trace=minilm)  # what the page was written from
    figures = [figure for section in tour.sections for figure in section.figures]
    # The final link: one head over the sentence's words, as the tour computed it.
    link = figures[0].trace
    first = views.nth(0)
    assert_heatmap_is(first, link, link.weights[0, 0])
    words = list(link.tokens)
    riley = words.index("riley")
    assert_lines_are_the_row(hover_lines(first, riley), riley, link.weights[0, 0, riley])
    assert first.locator("details[data-role=fallback]").evaluate("(details) => details.open") is False
    assert first.locator("details[data-role=fallback] img").count() == 1  # the picture, a click away
    # The stack: MiniLM's whole trace, its grid of 6 × 12 heads, starting on the last layer's mean.
    stack = views.nth(3)
    assert stack.locator("[role=gridcell]").count() == 6 * 12
    assert_heatmap_is(stack, minilm, minilm.weights[5].double().mean(dim=0).float())
    screenshot(first, "tour-link")
    screenshot(stack, "tour-stack")


def test_the_tour_page_without_scripts_shows_its_pictures(opened: Any, pages: dict[str, Path]) -> None:
    page = opened(pages["tour"], scripts=False, scheme="dark").page
    pictures = page.locator("details[data-role=fallback][open] img")
    assert pictures.count() == 4 and pictures.first.is_visible()
    assert not page.locator(".qkv-controls").first.is_visible()
