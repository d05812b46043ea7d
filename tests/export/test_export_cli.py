"""`qkv export`: a run leaves as a directory or a file; every bad input is one line and exit status 2, and nothing
is left half-written — not at the target, not beside it."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_cli

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def assert_refused(result: Any, *fragments: str) -> None:
    assert result.code == 2, result
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qkv export: error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_run_leaves_as_a_hugging_face_directory(runs: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(tmp_path / "out")])
    assert result.code == 0, result.err
    assert result.out.startswith(f"wrote {tmp_path / 'out'} (GPT2LMHeadModel, ")
    assert "float32, char tokenizer of " in result.out
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging directory left beside it
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_a_llama_run_leaves_as_a_gguf_file_named_after_the_run(runs: dict[str, Path], tmp_path: Path) -> None:
    from gguf import GGUFReader

    target = tmp_path / "model.gguf"
    result = run_cli(
        ["export", str(runs["llama-char"] / "checkpoint"), "--to", "gguf", str(target), "--dtype", "float16"]
    )
    assert result.code == 0, result.err
    assert "GGUF, llama architecture" in result.out and "float16" in result.out
    assert GGUFReader(target).fields["general.name"].contents() == "llama-char"
    assert sorted(os.listdir(tmp_path)) == ["model.gguf"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_exports_get_the_modes_a_plain_open_would_give(runs: dict[str, Path], tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)  # safetensors writes 0600 and mkdtemp/mkstemp make theirs private
    try:
        (tmp_path / "plain").mkdir()  # the references: mkdir and open under the same umask
        (tmp_path / "plain.txt").write_text("x")
        assert run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(tmp_path / "out")]).code == 0
        assert run_cli(["export", str(runs["llama-char"]), "--to", "gguf", str(tmp_path / "x.gguf")]).code == 0
    finally:
        os.umask(previous)
    file_mode, folder_mode = 0o666 & ~umask, 0o777 & ~umask
    assert mode(tmp_path / "plain.txt") == file_mode and mode(tmp_path / "plain") == folder_mode
    written = sorted((tmp_path / "out").iterdir())
    assert "model.safetensors" in [path.name for path in written]
    assert {path.name: mode(path) for path in written} == {path.name: file_mode for path in written}
    assert mode(tmp_path / "out") == folder_mode and mode(tmp_path / "x.gguf") == file_mode


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_not_a_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    assert_refused(
        run_cli(["export", str(tmp_path / "notes"), "--to", "hf", str(tmp_path / "out")]), "not a qkv checkpoint"
    )
    assert_refused(run_cli(["export", str(tmp_path / "missing"), "--to", "gguf", str(tmp_path / "x.gguf")]), "no such")
    assert sorted(os.listdir(tmp_path)) == ["notes"]


def test_an_existing_file_is_no_directory(runs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "out").write_text("keep me")
    assert_refused(run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(tmp_path / "out")]), "it is a file")
    assert (tmp_path / "out").read_text() == "keep me"
    (tmp_path / "dir.gguf").mkdir()
    assert_refused(
        run_cli(["export", str(runs["llama-char"]), "--to", "gguf", str(tmp_path / "dir.gguf")]), "directory"
    )


@pytest.mark.parametrize(("to", "name"), [("hf", "out"), ("gguf", "out.gguf")])
def test_an_existing_target_is_replaced_only_with_force(
    to: str, name: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / name
    if to == "hf":
        target.mkdir()
        (target / "old.txt").write_text("old")
    else:
        target.write_text("old")
    argv = ["export", str(runs["llama-char"]), "--to", to, str(target)]
    assert_refused(run_cli(argv), "already exists", "--force")
    assert (target / "old.txt" if to == "hf" else target).read_text() == "old"
    assert run_cli([*argv, "--force"]).code == 0
    assert (not (target / "old.txt").exists()) if to == "hf" else target.read_bytes().startswith(b"GGUF")
    assert sorted(os.listdir(tmp_path)) == [name]


def test_an_empty_directory_is_filled_without_force(runs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(tmp_path / "out")]).code == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "gpt2"


def test_missing_folders_are_made_and_a_file_on_the_way_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    assert run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(tmp_path / "a" / "b" / "out")]).code == 0
    assert (tmp_path / "a" / "b" / "out" / "config.json").is_file()
    (tmp_path / "file").write_text("")
    result = run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(tmp_path / "file" / "out")])
    assert_refused(result, "is a file, not a folder")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, a folder nobody can write into")
def test_an_unwritable_folder_is_refused(runs: dict[str, Path]) -> None:
    result = run_cli(["export", str(runs["llama-char"]), "--to", "gguf", "/proc/qkv-export.gguf"])
    assert_refused(result, "cannot write /proc/qkv-export.gguf")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    try:
        assert_refused(run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(folder / "out")]), "not writable")
    finally:
        folder.chmod(0o700)


def test_a_config_the_format_cannot_hold_names_the_field(runs: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli(["export", str(runs["gpt2-char"]), "--to", "gguf", str(tmp_path / "x.gguf")])
    assert_refused(result, "TransformerConfig.positions='learned'", "--to hf")
    assert os.listdir(tmp_path) == []


def test_a_full_disk_leaves_nothing_behind(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf
    import safetensors.torch

    def full(*args: Any, **kwargs: Any) -> None:
        raise ENOSPC

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full)
    hf = run_cli(["export", str(runs["gpt2-char"]), "--to", "hf", str(tmp_path / "new" / "folders" / "out")])
    assert_refused(hf, "No space left on device", "nothing was written")  # and the folders made for it are gone
    (tmp_path / "old.gguf").write_text("old")
    gguf_file = run_cli(["export", str(runs["llama-char"]), "--to", "gguf", str(tmp_path / "old.gguf"), "--force"])
    assert_refused(gguf_file, "No space left on device")
    assert sorted(os.listdir(tmp_path)) == ["old.gguf"] and (tmp_path / "old.gguf").read_text() == "old"
