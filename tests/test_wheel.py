"""Installing without the Makefile: the wheel ``pip`` builds from a clean copy of the sources carries every file
of the package (the front-end's static files, the OpenAPI document and ``py.typed`` beside the code), the
LICENSE and the ``qkv`` command, and runs from where it is unpacked."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import qkv

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(qkv.__file__).resolve().parent


def package_files() -> set[str]:
    """Every file of ``src/qkv`` as the wheel names it (``qkv/...``), bytecode and hidden files left out."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix != ".pyc"
        and not any(part.startswith(".") for part in path.relative_to(PACKAGE).parts)
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds (no dependencies, no network) from a copy of what a fresh clone holds."""
    tree = tmp_path_factory.mktemp("clone")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(PACKAGE, tree / "src" / "qkv", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    built = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("qkv-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_carries_every_file_of_the_package_and_the_license(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = package_files()
    assert {"qkv/py.typed", "qkv/serve/openapi.json", "qkv/serve/static/index.html"} <= expected  # the scan works
    assert {"qkv/web/static/trace_view.js", "qkv/article/static/tour.css", "qkv/web/static/i18n/es.json"} <= expected
    assert sorted(expected - names) == []
    (license_name,) = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
    archive = zipfile.ZipFile(wheel)
    assert archive.read(license_name) == (ROOT / "LICENSE").read_bytes()
    assert b"Copyright (c) 2026 the qkv authors" in archive.read(license_name)
    metadata = archive.read(license_name.replace("licenses/LICENSE", "METADATA")).decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    entry_points = archive.read(license_name.replace("licenses/LICENSE", "entry_points.txt")).decode()
    assert "qkv = qkv.cli.main:main" in entry_points


@pytest.mark.slow
def test_the_unpacked_wheel_runs_and_finds_its_static_files(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        "import sys, importlib.resources as r, qkv; from pathlib import Path;"
        f"assert Path(qkv.__file__).is_relative_to({str(tmp_path)!r}), qkv.__file__;"
        "assert (r.files('qkv.serve') / 'static' / 'index.html').is_file();"
        "from qkv.cli.main import main; sys.exit(main(['models']))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "minilm" in ran.stdout and "smollm2" in ran.stdout
