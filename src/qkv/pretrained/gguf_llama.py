"""Llama-family GGUF files (llama.cpp's format) → :class:`Parts`, read with :mod:`qkv.pretrained.gguf_file`.

A GGUF holds everything: the hyper-parameters and the tokenizer as metadata, the weights as (usually
quantised) tensors. Three things need care:

* **Shapes.** GGUF lists dimensions innermost first (``[in, out]``); :class:`~qkv.pretrained.gguf_file.TensorInfo`
  gives them outermost first, ``(out, in)``, the layout of ``nn.Linear``.
* **RoPE layout.** llama.cpp rotates *adjacent* feature pairs ``(2i, 2i+1)``; Hugging Face Llama (and qkv)
  rotate ``(i, i + K/2)``. Its converter therefore permutes the rows of every query and key projection; we
  undo that permutation per head (as transformers' GGUF loader does), after which the two layouts compute
  the same attention. Rows are whole blocks in every GGUF type, so this is done on the file's bytes, before
  dequantising (and before keeping 4-bit blocks, for ``int4``).
* **Tokenizer.** A byte-level BPE (``tokenizer.ggml.model == "gpt2"``) is rebuilt from the token list and
  merges with Hugging Face ``tokenizers``; the pre-tokenizer follows ``tokenizer.ggml.pre`` as llama.cpp does,
  and control tokens (``<|im_start|>`` …) stay whole. The chat template is the file's Jinja text.

``precision`` (see :mod:`qkv.pretrained.lowbit`) decides what the tensors become: float32; or bfloat16 for
every matrix (vectors such as norm gains stay float32), plus, for ``int4``, the 4-bit blocks of Q4_0/Q4_1
matrices and the 8-bit blocks of a Q8_0 token embedding or output layer (:mod:`qkv.pretrained.int8`). Nothing
is dequantised to float32 on the way to bfloat16 except one tensor at a time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from qkv.data.registry import PretrainedError
from qkv.model.config import FAMILIES, TransformerConfig
from qkv.pretrained.assemble import Parts, check_fits
from qkv.pretrained.gguf_file import BLOCK_TYPES, GGUFFile, dequantise
from qkv.pretrained.int8 import Int8Blocks, int8_blocks
from qkv.pretrained.lowbit import SIDE_BY_SIDE, Int4Blocks, SideBySide, WeightFormat, fits_int4, int4_blocks
from qkv.pretrained.tokenizer import PretrainedTokenizer
from qkv.shapes import Tensor

__all__ = ["SUPPORTED_ARCHITECTURES", "read_gguf", "supported_tensor_types", "unpermute_rope_rows"]

SUPPORTED_ARCHITECTURES = ("llama",)

_TOKEN_TYPE_NORMAL, _TOKEN_TYPE_CONTROL, _TOKEN_TYPE_USER_DEFINED = 1, 3, 4  # llama.cpp's token types


def supported_tensor_types() -> tuple[str, ...]:
    """The GGUF tensor types this installation can dequantise (qkv's own and ``gguf``'s quantisations)."""
    from gguf.quants import _type_traits

    own = tuple(name for name, _, _ in BLOCK_TYPES.values())
    return own + tuple(t.name for t in _type_traits if t.name not in own)


def read_gguf(path: Path, precision: WeightFormat = "float32") -> Parts:
    """Read a Llama-family GGUF: config, tensors under qkv's names (dequantised to float32, or bfloat16 and
    4-bit blocks: see ``precision``), tokenizer, chat template."""
    reader = GGUFFile(path)
    architecture = _string(reader, "general.architecture", path)
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise PretrainedError(
            f"{path}: GGUF architecture {architecture!r} is not supported; "
            f"qkv reads {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    _check_tensor_types(reader, path)
    tokens = _strings(reader, "tokenizer.ggml.tokens", path)
    embedding = reader.tensors.get("token_embd.weight")
    if embedding is not None and embedding.shape[0] != len(tokens):
        raise PretrainedError(
            f"{path}: the tokenizer has {len(tokens)} tokens but the token embedding has {embedding.shape[0]} "
            "rows: the tokenizer does not match the model's vocabulary"
        )
    config = _config(reader, architecture, len(tokens), path)
    check_fits(config, precision, path)
    tokenizer = _tokenizer(reader, tokens, path)
    tensors, blocks = _tensors(reader, config, precision)

    special_tokens = {}
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unknown_token_id")):
        token_id = _optional(reader, f"tokenizer.ggml.{key}")
        if _is_int(token_id) and 0 <= token_id < len(tokens):
            special_tokens[name] = tokens[token_id]
    eos = _optional(reader, "tokenizer.ggml.eos_token_id")
    pad = _optional(reader, "tokenizer.ggml.padding_token_id")
    eot = _optional(reader, "tokenizer.ggml.eot_token_id")
    stop_ids = tuple(dict.fromkeys(i for i in (eos, eot) if _is_int(i)))
    template = _optional(reader, "tokenizer.chat_template")
    file_type = _optional(reader, "general.file_type")
    quantisation = _file_type_name(file_type) if _is_int(file_type) else "?"
    return Parts(
        config=config,
        tensors=tensors,
        tokenizer=tokenizer,
        source=path,
        architecture=f"{architecture} (GGUF {quantisation})",
        chat_template=template if isinstance(template, str) else None,
        special_tokens=special_tokens,
        stop_ids=stop_ids,
        pad_id=pad if _is_int(pad) else (eos if _is_int(eos) else 0),
        blocks=blocks,
    )


# --------------------------------------------------------------------------------------------------------------
# Metadata.


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional(reader: GGUFFile, key: str) -> Any:
    return reader.metadata.get(key)


def _field(reader: GGUFFile, key: str, path: Path) -> Any:
    if key not in reader.metadata:
        raise PretrainedError(f"GGUF file {path} lacks the metadata {key!r}")
    return reader.metadata[key]


def _string(reader: GGUFFile, key: str, path: Path) -> str:
    value = _field(reader, key, path)
    if not isinstance(value, str):
        raise PretrainedError(f"GGUF file {path}: {key} must be a string, got {value!r}")
    return value


def _int(reader: GGUFFile, key: str, path: Path, default: int | None = None) -> int:
    value = _optional(reader, key)
    if value is None and default is not None:
        return default
    if value is None:
        raise PretrainedError(f"GGUF file {path} lacks the metadata {key!r}")
    if not _is_int(value):
        raise PretrainedError(f"GGUF file {path}: {key} must be one integer, got {value!r}")
    return int(value)


def _float(reader: GGUFFile, key: str, path: Path, default: float) -> float:
    value = _optional(reader, key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise PretrainedError(f"GGUF file {path}: {key} must be a number, got {value!r}")
    return float(value)


def _strings(reader: GGUFFile, key: str, path: Path) -> list[str]:
    value = _field(reader, key, path)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PretrainedError(f"GGUF file {path}: {key} must be a list of strings")
    return value


def _ints(reader: GGUFFile, key: str) -> list[int]:
    value = reader.metadata.get(key)
    return [] if value is None or isinstance(value, (str, list)) else [int(v) for v in value]


def _file_type_name(file_type: int) -> str:
    from gguf import LlamaFileType

    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"file type {file_type}"


# --------------------------------------------------------------------------------------------------------------
# Metadata → TransformerConfig.


def _config(reader: GGUFFile, arch: str, vocab: int, path: Path) -> TransformerConfig:
    width = _int(reader, f"{arch}.embedding_length", path)
    heads = _int(reader, f"{arch}.attention.head_count", path)
    kv_heads = _int(reader, f"{arch}.attention.head_count_kv", path, default=heads)
    head_width = _int(reader, f"{arch}.attention.key_length", path, default=width // heads)
    value_width = _int(reader, f"{arch}.attention.value_length", path, default=head_width)
    rope_width = _int(reader, f"{arch}.rope.dimension_count", path, default=head_width)
    if value_width != head_width:
        raise PretrainedError(f"{path}: value heads of width {value_width} ≠ key heads of width {head_width}")
    if rope_width != head_width:
        raise PretrainedError(
            f"{path}: RoPE rotates {rope_width} of each head's {head_width} features; qkv rotates all of them"
        )
    scaling = _optional(reader, f"{arch}.rope.scaling.type")
    if scaling not in (None, "none"):
        raise PretrainedError(f"{path}: RoPE scaling {scaling!r} is not supported (qkv has plain RoPE)")
    declared = _optional(reader, f"{arch}.vocab_size")
    if declared is not None and declared != vocab:
        raise PretrainedError(
            f"{path}: the tokenizer has {vocab} tokens but {arch}.vocab_size says {declared}: "
            "the tokenizer does not match the model"
        )
    names = set(reader.tensors)
    try:
        return replace(
            FAMILIES["llama"],
            vocab_size=vocab,
            context=_int(reader, f"{arch}.context_length", path),
            width=width,
            layers=_int(reader, f"{arch}.block_count", path),
            heads=heads,
            kv_heads=kv_heads,
            head_width=head_width if head_width * heads != width else None,
            mlp_width=_int(reader, f"{arch}.feed_forward_length", path),
            norm_eps=_float(reader, f"{arch}.attention.layer_norm_rms_epsilon", path, 1e-5),
            rope_theta=_float(reader, f"{arch}.rope.freq_base", path, 10000.0),
            tie_embeddings="output.weight" not in names,
        )
    except PretrainedError:
        raise
    except ValueError as error:  # ConfigError names the field
        raise PretrainedError(f"{path}: {error}") from None


# --------------------------------------------------------------------------------------------------------------
# Tensors.


def _check_tensor_types(reader: GGUFFile, path: Path) -> None:
    supported = supported_tensor_types()
    for tensor in reader.tensors.values():
        if tensor.type_name not in supported:
            raise PretrainedError(
                f"{path}: tensor {tensor.name} has type {tensor.type_name}, which qkv cannot dequantise; "
                f"supported: {', '.join(supported)}"
            )


_NAMES = {
    "token_embd.weight": "embedding.tokens.weight",
    "output_norm.weight": "final_norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm.weight": "attention_norm.weight",
    "attn_q.weight": "attention.to_q.weight",
    "attn_k.weight": "attention.to_k.weight",
    "attn_v.weight": "attention.to_v.weight",
    "attn_output.weight": "attention.to_out.weight",
    "ffn_norm.weight": "mlp_norm.weight",
    "ffn_gate.weight": "mlp.to_gate.weight",
    "ffn_up.weight": "mlp.to_hidden.weight",
    "ffn_down.weight": "mlp.to_out.weight",
}


def _our_name(name: str) -> str:
    if name in _NAMES:
        return _NAMES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in _BLOCK_NAMES:
        return f"blocks.{parts[1]}.{_BLOCK_NAMES[parts[2]]}"
    return f"(GGUF) {name}"  # no place for it: build() reports it by this name


def unpermute_rope_rows(weight: Tensor, heads: int) -> Tensor:
    """Undo llama.cpp's row permutation of a query/key projection ``(heads·K, D)``.

    llama.cpp writes each head's rows ``[0…K/2) ∪ [K/2…K)`` interleaved (``0, K/2, 1, K/2+1, …``) so that its
    adjacent-pair RoPE rotates the same pairs as the half-split RoPE; this puts them back.
    """
    rows, columns = weight.shape
    K = rows // heads
    return weight.reshape(heads, K // 2, 2, columns).transpose(1, 2).reshape(rows, columns)  # (H·K, D)


_EIGHT_BIT = ("embedding.tokens.weight", "lm_head.weight")  # the matrices int4 keeps as Q8_0 blocks


def _tensors(
    reader: GGUFFile, config: TransformerConfig, precision: WeightFormat
) -> tuple[dict[str, Tensor], dict[str, Int4Blocks | Int8Blocks]]:
    """Every tensor under qkv's name, and (``int4``) the blocks of the Q4 matrices and of a Q8_0 embedding or output
    layer, one tensor at a time; the 4-bit blocks of a block's layers that multiply the same input go side by side
    into one buffer as they are read (:func:`_side_by_side`)."""
    tensors: dict[str, Tensor] = {}
    blocks: dict[str, Int4Blocks | Int8Blocks] = {}
    places = _side_by_side(reader, config) if precision == "int4" else {}
    for info in reader.tensors.values():
        name = _our_name(info.name)
        raw = reader.read(info)  # (rows, bytes per row)
        heads = {"attention.to_q.weight": config.heads, "attention.to_k.weight": config.attention.groups}
        for suffix, count in heads.items():
            if name.endswith(suffix) and raw.shape[0] % (2 * count) == 0:
                raw = unpermute_rope_rows(torch.from_numpy(raw), count).contiguous().numpy()
        matrix = len(info.shape) == 2
        found: Int4Blocks | Int8Blocks | None = None
        if precision == "int4" and matrix:
            found = (int8_blocks if name in _EIGHT_BIT else int4_blocks)(raw, info.type_name, info.shape)
        if isinstance(found, Int4Blocks) and name in places:
            group, index = places[name]
            found = group.place(index, found)
        if found is not None:
            blocks[name] = found
            tensors[name] = torch.empty(info.shape, dtype=torch.bfloat16, device="meta")  # the blocks hold it
        else:
            tensors[name] = dequantise(
                raw, info, torch.bfloat16 if precision != "float32" and matrix else torch.float32
            )
    return tensors, blocks


def _side_by_side(reader: GGUFFile, config: TransformerConfig) -> dict[str, tuple[SideBySide, int]]:
    """Each 4-bit weight that goes side by side with others (:data:`SIDE_BY_SIDE`, where every one of a group
    becomes 4-bit blocks of one width ``K``): its group's buffer and its place in it."""
    infos = {_our_name(info.name): info for info in reader.tensors.values()}
    places = {}
    for layer in range(config.layers):
        for group in SIDE_BY_SIDE:
            names = [f"blocks.{layer}.{member}.weight" for member in group]
            members = [infos.get(name) for name in names]
            shapes = [info.shape for info in members if info is not None and fits_int4(info.type_name, info.shape)]
            if len(shapes) == len(names) and len({K for _, K in shapes}) == 1:
                buffer = SideBySide([(N, K) for N, K in shapes])
                places.update({name: (buffer, index) for index, name in enumerate(names)})
    return places


# --------------------------------------------------------------------------------------------------------------
# Tokenizer.

_GPT2_SPLIT = "gpt2"
_DIGITS_THEN_GPT2 = "digits+gpt2"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer.ggml.pre → how llama.cpp splits text before BPE (llama-vocab.cpp).
_PRE_TOKENIZERS = {
    "default": _GPT2_SPLIT,
    "gpt2": _GPT2_SPLIT,
    "gpt-2": _GPT2_SPLIT,  # llama.cpp's name for GPT-2's own split
    "smollm": _DIGITS_THEN_GPT2,
    "starcoder": _DIGITS_THEN_GPT2,
    "refact": _DIGITS_THEN_GPT2,
    "llama-bpe": _LLAMA3_SPLIT,
    "llama3": _LLAMA3_SPLIT,
}


def _tokenizer(reader: GGUFFile, tokens: list[str], path: Path) -> PretrainedTokenizer:
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors
    from tokenizers import Tokenizer as HFTokenizer

    kind = _string(reader, "tokenizer.ggml.model", path)
    if kind == "llama":
        return _character_pieces(reader, tokens, path)
    if kind != "gpt2":
        raise PretrainedError(
            f"{path}: tokenizer {kind!r} is not supported; qkv reads byte-level BPE ('gpt2') and "
            "character-level SentencePiece ('llama' with one character per token)"
        )
    pre = _optional(reader, "tokenizer.ggml.pre") or "default"
    if pre not in _PRE_TOKENIZERS:
        raise PretrainedError(
            f"{path}: pre-tokenizer {pre!r} is not supported; qkv knows {', '.join(sorted(_PRE_TOKENIZERS))}"
        )
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise PretrainedError(f"{path}: the token list repeats tokens ({len(tokens) - len(vocab)} duplicates)")
    merges = [tuple(merge.split(" ", 1)) for merge in _strings(reader, "tokenizer.ggml.merges", path)]
    try:
        backend = HFTokenizer(models.BPE(vocab, merges))  # type: ignore[arg-type]
    except Exception as error:
        raise PretrainedError(f"{path}: the tokenizer's merges do not fit its tokens: {error}") from None
    split = _PRE_TOKENIZERS[pre]
    if split == _GPT2_SPLIT:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif split == _DIGITS_THEN_GPT2:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    else:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    backend.decoder = decoders.ByteLevel()
    types = _ints(reader, "tokenizer.ggml.token_type")
    backend.add_special_tokens(
        [
            AddedToken(token, special=True, normalized=False)
            for token, kind_ in zip(tokens, types, strict=False)
            if kind_ == _TOKEN_TYPE_CONTROL
        ]
    )
    backend.add_tokens(
        [
            AddedToken(token, special=False, normalized=False)
            for token, kind_ in zip(tokens, types, strict=False)
            if kind_ == _TOKEN_TYPE_USER_DEFINED
        ]
    )
    bos, eos = _optional(reader, "tokenizer.ggml.bos_token_id"), _optional(reader, "tokenizer.ggml.eos_token_id")
    single, specials = ["$A"], []
    if _optional(reader, "tokenizer.ggml.add_bos_token") and isinstance(bos, int):
        single, specials = [tokens[bos], *single], [(tokens[bos], bos)]
    if _optional(reader, "tokenizer.ggml.add_eos_token") and isinstance(eos, int):
        single, specials = [*single, tokens[eos]], [*specials, (tokens[eos], eos)]
    if specials:
        backend.post_processor = processors.TemplateProcessing(single=" ".join(single), special_tokens=specials)
    tokenizer = PretrainedTokenizer(backend)
    if tokenizer.vocab_size != len(tokens):
        raise PretrainedError(f"{path}: the tokenizer has {tokenizer.vocab_size} ids for {len(tokens)} tokens")
    return tokenizer


def _character_pieces(reader: GGUFFile, tokens: list[str], path: Path) -> PretrainedTokenizer:
    """A SentencePiece vocabulary of single characters (how qkv exports a char tokenizer): ``▁`` stands for the
    space, no space is put before the text, no BOS token is added. llama.cpp's SentencePiece tokenizer then gives
    every character its own token and finds none for a character outside the vocabulary; neither does this one
    (a word-level model whose unknown token is not in the vocabulary: encoding such a text fails)."""
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    longer = next((token for token in tokens if len(token) != 1), None)
    if longer is not None:
        raise PretrainedError(
            f"{path}: SentencePiece piece {longer!r} is longer than one character; qkv reads character-level "
            "SentencePiece vocabularies and byte-level BPE ('gpt2')"
        )
    types = _ints(reader, "tokenizer.ggml.token_type")
    if any(kind != _TOKEN_TYPE_NORMAL for kind in types):
        raise PretrainedError(
            f"{path}: a character-level SentencePiece vocabulary with special tokens is not supported"
        )
    for key in ("tokenizer.ggml.add_space_prefix", "tokenizer.ggml.add_bos_token"):
        if _optional(reader, key) is not False:  # llama.cpp's default for SentencePiece is true
            raise PretrainedError(f"{path}: {key} is not false; qkv reads character-level SentencePiece without it")
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise PretrainedError(f"{path}: the token list repeats tokens ({len(tokens) - len(vocab)} duplicates)")
    backend = HFTokenizer(models.WordLevel(vocab, unk_token="<unk>"))  # "<unk>" is no character: never found
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per character
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Fuse()])
    return PretrainedTokenizer(backend)
