"""Llama-family GGUF files (llama.cpp's format) → :class:`Parts`, read and dequantised with the ``gguf`` package.

A GGUF holds everything: the hyper-parameters and the tokenizer as metadata, the weights as (usually
quantised) tensors. Three things need care:

* **Shapes.** GGUF lists dimensions innermost first (``[in, out]``); the arrays ``gguf`` hands back are already
  ``(out, in)``, the layout of ``nn.Linear``.
* **RoPE layout.** llama.cpp rotates *adjacent* feature pairs ``(2i, 2i+1)``; Hugging Face Llama (and qkv)
  rotate ``(i, i + K/2)``. Its converter therefore permutes the rows of every query and key projection; we
  undo that permutation per head (as transformers' GGUF loader does), after which the two layouts compute
  the same attention.
* **Tokenizer.** A byte-level BPE (``tokenizer.ggml.model == "gpt2"``) is rebuilt from the token list and
  merges with Hugging Face ``tokenizers``; the pre-tokenizer follows ``tokenizer.ggml.pre`` as llama.cpp does,
  and control tokens (``<|im_start|>`` …) stay whole. The chat template is the file's Jinja text.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from qkv.model.config import FAMILIES, TransformerConfig
from qkv.pretrained.assemble import Parts
from qkv.pretrained.registry import PretrainedError
from qkv.pretrained.tokenizer import PretrainedTokenizer
from qkv.shapes import Tensor

if TYPE_CHECKING:
    from gguf import GGUFReader, ReaderField, ReaderTensor

__all__ = ["SUPPORTED_ARCHITECTURES", "read_gguf", "supported_tensor_types", "unpermute_rope_rows"]

SUPPORTED_ARCHITECTURES = ("llama",)

_TOKEN_TYPE_CONTROL, _TOKEN_TYPE_USER_DEFINED = 3, 4  # llama.cpp's token types


def supported_tensor_types() -> tuple[str, ...]:
    """The GGUF tensor types this installation can dequantise (float types and ``gguf``'s quantisations)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits

    floats = (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16)
    return tuple(t.name for t in GGMLQuantizationType if t in floats or t in _type_traits)


def read_gguf(path: Path) -> Parts:
    """Read a Llama-family GGUF: config, dequantised float32 tensors under qkv's names, tokenizer, chat template."""
    reader = _open(path)
    architecture = _string(reader, "general.architecture", path)
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise PretrainedError(
            f"{path}: GGUF architecture {architecture!r} is not supported; "
            f"qkv reads {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    _check_tensor_types(reader, path)
    tokens = _strings(reader, "tokenizer.ggml.tokens", path)
    embedding = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embedding is not None and int(embedding.shape[-1]) != len(tokens):
        raise PretrainedError(
            f"{path}: the tokenizer has {len(tokens)} tokens but the token embedding has {int(embedding.shape[-1])} "
            "rows: the tokenizer does not match the model's vocabulary"
        )
    config = _config(reader, architecture, len(tokens), path)
    tokenizer = _tokenizer(reader, tokens, path)
    tensors = _tensors(reader, config, path)

    special_tokens = {}
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unknown_token_id")):
        token_id = _optional(reader, f"tokenizer.ggml.{key}")
        if isinstance(token_id, int) and 0 <= token_id < len(tokens):
            special_tokens[name] = tokens[token_id]
    eos = _optional(reader, "tokenizer.ggml.eos_token_id")
    pad = _optional(reader, "tokenizer.ggml.padding_token_id")
    eot = _optional(reader, "tokenizer.ggml.eot_token_id")
    stop_ids = tuple(dict.fromkeys(i for i in (eos, eot) if isinstance(i, int)))
    template = _optional(reader, "tokenizer.chat_template")
    file_type = _optional(reader, "general.file_type")
    quantisation = _file_type_name(file_type) if isinstance(file_type, int) else "?"
    return Parts(
        config=config,
        tensors=tensors,
        tokenizer=tokenizer,
        source=path,
        architecture=f"{architecture} (GGUF {quantisation})",
        chat_template=template if isinstance(template, str) else None,
        special_tokens=special_tokens,
        stop_ids=stop_ids,
        pad_id=pad if isinstance(pad, int) else (eos if isinstance(eos, int) else 0),
    )


# --------------------------------------------------------------------------------------------------------------
# Reading the file and its metadata.


def _open(path: Path) -> GGUFReader:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
    except ValueError as error:
        unknown_type = _unknown_type(str(error))
        if unknown_type is not None:
            raise PretrainedError(
                f"{path} uses GGUF tensor type {unknown_type}, which this gguf package does not know; "
                f"qkv reads {', '.join(supported_tensor_types())}"
            ) from None
        raise PretrainedError(f"cannot read GGUF file {path}: {error} (a truncated or damaged file?)") from None
    except Exception as error:  # the reader indexes past the end of a short file, among other things
        raise PretrainedError(f"cannot read GGUF file {path}: {error!r} (a truncated or damaged file?)") from None
    size = path.stat().st_size
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size or tensor.data.nbytes != tensor.n_bytes:
            raise PretrainedError(
                f"GGUF file {path} is truncated: tensor {tensor.name} needs bytes up to "
                f"{tensor.data_offset + tensor.n_bytes:,}, the file has {size:,}"
            )
    return reader


def _unknown_type(message: str) -> str | None:
    """The number in gguf's "np.uint32(99) is not a valid GGMLQuantizationType", if that is the message."""
    found = re.search(r"(\d+)\)? is not a valid GGMLQuantizationType", message)
    return found.group(1) if found else None


def _optional(reader: GGUFReader, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def _field(reader: GGUFReader, key: str, path: Path) -> ReaderField:
    field = reader.fields.get(key)
    if field is None:
        raise PretrainedError(f"GGUF file {path} lacks the metadata {key!r}")
    return field


def _string(reader: GGUFReader, key: str, path: Path) -> str:
    value = _field(reader, key, path).contents()
    if not isinstance(value, str):
        raise PretrainedError(f"GGUF file {path}: {key} must be a string, got {value!r}")
    return value


def _int(reader: GGUFReader, key: str, path: Path, default: int | None = None) -> int:
    value = _optional(reader, key)
    if value is None and default is not None:
        return default
    if value is None:
        raise PretrainedError(f"GGUF file {path} lacks the metadata {key!r}")
    if not isinstance(value, int) or isinstance(value, bool):
        raise PretrainedError(f"GGUF file {path}: {key} must be one integer, got {value!r}")
    return value


def _float(reader: GGUFReader, key: str, path: Path, default: float) -> float:
    value = _optional(reader, key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise PretrainedError(f"GGUF file {path}: {key} must be a number, got {value!r}")
    return float(value)


def _strings(reader: GGUFReader, key: str, path: Path) -> list[str]:
    """A string array, read straight from the field's parts (``contents()`` is slower for 50k entries)."""
    field = _field(reader, key, path)
    try:
        return [bytes(field.parts[index]).decode("utf-8") for index in field.data]
    except UnicodeDecodeError as error:
        raise PretrainedError(f"GGUF file {path}: {key} holds text that is not UTF-8: {error}") from None


def _ints(reader: GGUFReader, key: str) -> list[int]:
    field = reader.fields.get(key)
    if field is None:
        return []
    return [int(field.parts[index][0]) for index in field.data]


def _file_type_name(file_type: int) -> str:
    from gguf import LlamaFileType

    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"file type {file_type}"


# --------------------------------------------------------------------------------------------------------------
# Metadata → TransformerConfig.


def _config(reader: GGUFReader, arch: str, vocab: int, path: Path) -> TransformerConfig:
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
    names = {tensor.name for tensor in reader.tensors}
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


def _check_tensor_types(reader: GGUFReader, path: Path) -> None:
    supported = supported_tensor_types()
    for tensor in reader.tensors:
        if tensor.tensor_type.name not in supported:
            raise PretrainedError(
                f"{path}: tensor {tensor.name} has type {tensor.tensor_type.name}, which qkv cannot dequantise; "
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


def _dequantise(tensor: ReaderTensor) -> Tensor:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    array = dequantize(tensor.data, tensor.tensor_type)
    if tensor.tensor_type == GGMLQuantizationType.F32:
        array = np.array(array)  # a view of the read-only file: copy into memory the model can own
    shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))  # GGUF lists dimensions innermost first
    return torch.from_numpy(array.reshape(shape))


def _tensors(reader: GGUFReader, config: TransformerConfig, path: Path) -> dict[str, Tensor]:
    tensors: dict[str, Tensor] = {}
    for tensor in reader.tensors:
        name = _our_name(tensor.name)
        value = _dequantise(tensor)
        if name.endswith("attention.to_q.weight"):
            value = unpermute_rope_rows(value, config.heads)
        elif name.endswith("attention.to_k.weight"):
            value = unpermute_rope_rows(value, config.attention.groups)
        tensors[name] = value
    return tensors


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
    "smollm": _DIGITS_THEN_GPT2,
    "starcoder": _DIGITS_THEN_GPT2,
    "refact": _DIGITS_THEN_GPT2,
    "llama-bpe": _LLAMA3_SPLIT,
    "llama3": _LLAMA3_SPLIT,
}


def _tokenizer(reader: GGUFReader, tokens: list[str], path: Path) -> PretrainedTokenizer:
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors
    from tokenizers import Tokenizer as HFTokenizer

    kind = _string(reader, "tokenizer.ggml.model", path)
    if kind != "gpt2":
        raise PretrainedError(f"{path}: tokenizer {kind!r} is not supported; qkv reads byte-level BPE ('gpt2')")
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
