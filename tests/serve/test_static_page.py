"""The page's files, checked without a browser: the viridis table, the two languages, and the CSP rules.

The page is the explorer's own files (``qkv/serve/static/``) and the ones it shares with the self-contained pages
(``qkv/web/static/``), served together under ``/static/``. ``viridis.js`` is generated from matplotlib by
:func:`viridis_module`; rewrite it with ``QKV_WRITE_VIRIDIS=1 python -m pytest tests/serve/test_static_page.py -k
viridis``.
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "qkv" / "serve" / "static"
SHARED = ROOT / "src" / "qkv" / "web" / "static"
MODULES = sorted([*STATIC.glob("*.js"), *SHARED.glob("*.js")])  # every module the page may load
VIEWS = ("build", "inspect", "generate", "training")


def viridis_module() -> str:
    """The text of ``viridis.js``: matplotlib's viridis as 256 RGB triples of bytes."""
    table = matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3]  # (256, 3) in [0, 1]
    numbers = np.round(table * 255).astype(int).reshape(-1).tolist()
    rows = [", ".join(str(n) for n in numbers[i : i + 24]) for i in range(0, len(numbers), 24)]
    body = ",\n  ".join(rows)
    return (
        "// Generated from matplotlib's viridis by tests/serve/test_static_page.py (viridis_module); do not edit.\n"
        "// 256 entries of r, g, b (0-255): entry i is the colour of i / 255.\n"
        f"export const VIRIDIS = new Uint8Array([\n  {body},\n]);\n"
    )


def test_viridis_table_is_matplotlibs() -> None:
    path = SHARED / "viridis.js"
    if os.environ.get("QKV_WRITE_VIRIDIS") == "1":
        path.write_text(viridis_module(), encoding="utf-8")
    assert path.read_text(encoding="utf-8") == viridis_module(), "viridis.js differs from matplotlib's viridis"


def messages(language: str) -> dict[str, str]:
    return json.loads((SHARED / "i18n" / f"{language}.json").read_text(encoding="utf-8"))


def test_english_and_spanish_have_the_same_keys_and_placeholders() -> None:
    english, spanish = messages("en"), messages("es")
    assert sorted(english) == sorted(spanish)
    for key, text in english.items():
        placeholders = set(re.findall(r"\{(\w+)\}", text))
        assert placeholders == set(re.findall(r"\{(\w+)\}", spanish[key])), key
        assert text.strip() and spanish[key].strip(), key


STEPS = ("mix", "keys", "queries", "softmax", "scale", "heads", "positions")
KEY = re.compile(r"""["'`]((?:app|tab|metric|build|inspect|generate|training|view)\.[a-z0-9_.]+)["'`]""")


def used_keys() -> set[str]:
    """Every message key named in the HTML (data-i18n…) and the modules (string literals), templates expanded."""
    found = set(re.findall(r'data-i18n(?:-label|-placeholder)?="([^"]+)"', (STATIC / "index.html").read_text()))
    for module in [*MODULES, ROOT / "src" / "qkv" / "render" / "html.py"]:  # html.py writes the view's markup
        found |= set(KEY.findall(module.read_text(encoding="utf-8")))
    found |= {f"build.{step}.{part}" for step in STEPS for part in ("short", "title", "intro")}
    found |= {f"metric.{name}" for name in ("entropy", "distance", "asymmetry", "sink_share")}
    found |= {"build.softmax.sum", "build.softmax.softmax"}
    return found


def test_every_message_the_page_uses_exists_and_every_message_is_used() -> None:
    english = messages("en")
    assert sorted(used_keys() - set(english)) == []
    assert sorted(set(english) - used_keys()) == []


class _Inline(HTMLParser):
    """Collects what CSP ``default-src 'self'`` would refuse in the page's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if "style" in names or any(name.startswith("on") for name in names):
            self.refused.append(f"<{tag}> with an inline style or handler")
        if tag == "style":
            self.refused.append("<style>")
        if tag == "script" and not names.get("src"):
            self.refused.append("an inline <script>")
        for name in ("src", "href"):
            value = names.get(name) or ""
            if re.match(r"(https?:)?//", value):
                self.refused.append(f"<{tag} {name}={value}>: not from this server")


def test_the_html_has_nothing_the_csp_refuses() -> None:
    parser = _Inline()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert parser.refused == []


def test_the_modules_fetch_nothing_from_elsewhere() -> None:
    for path in [*MODULES, STATIC / "app.css", *SHARED.glob("*.css")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/)", text), f"{path.name} names another host"
        assert "import(" not in text and "eval(" not in text and "innerHTML" not in text, path.name


def test_the_modules_import_only_files_that_exist() -> None:
    for module in MODULES:
        for name in re.findall(r'from "\./([\w.]+)"', module.read_text(encoding="utf-8")):
            assert (STATIC / name).is_file() or (SHARED / name).is_file(), f"{module.name} imports {name}"


def test_no_file_is_both_the_pages_own_and_shared() -> None:
    """Served under one /static/, a name in both folders would hide the shared file from the page."""
    own = {path.relative_to(STATIC) for path in STATIC.rglob("*") if path.is_file()}
    shared = {path.relative_to(SHARED) for path in SHARED.rglob("*") if path.is_file()}
    assert own & shared == set()


def test_the_shared_modules_import_only_shared_modules() -> None:
    """The self-contained pages inline them without the explorer's files."""
    for module in SHARED.glob("*.js"):
        for name in re.findall(r'from "\./([\w.]+)"', module.read_text(encoding="utf-8")):
            assert (SHARED / name).is_file(), f"{module.name} imports the explorer's {name}"


def test_the_page_is_package_data() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'qkv = \[[^\]]*"serve/static/\*\*/\*"', pyproject), "pyproject must ship serve/static/**"
    shared = re.search(r'"qkv.web" = \[([^\]]*)\]', pyproject)
    assert shared and {'"static/*.js"', '"static/*.css"', '"static/i18n/*.json"'} <= {
        part.strip() for part in shared.group(1).split(",")
    }, "pyproject must ship qkv/web/static/"


def test_the_docs_show_a_screenshot_of_each_view() -> None:
    docs = (ROOT / "docs" / "explorer.md").read_text(encoding="utf-8")
    for name in ("build-keys", "inspect", "generate", "training"):
        assert f"explorer/{name}.png" in docs, name
        assert (ROOT / "docs" / "explorer" / f"{name}.png").is_file(), name
