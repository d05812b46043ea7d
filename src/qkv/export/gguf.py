"""A Llama-style run → one GGUF file for llama.cpp's ``llama`` architecture, written with the ``gguf`` package.

    export_gguf("runs/llama", "exported/llama.gguf", dtype="float16")
    # llama-cli -m exported/llama.gguf …       qkv.pretrained.load("exported/llama.gguf")

The file holds what llama.cpp's converter writes for a Llama (and what :mod:`qkv.pretrained.gguf_llama` reads):

* **Metadata**: ``llama.*`` hyper-parameters (sizes, heads, RMSNorm epsilon, RoPE base and width), the file
  type, and the tokenizer as ``tokenizer.ggml.*`` (see :mod:`qkv.export.tokenizer`).
* **Tensors** under llama.cpp's names (``token_embd``, ``blk.N.attn_q`` …, ``output_norm``; no ``output`` when
  the output layer is the embedding). GGUF lists dimensions innermost first, so an ``nn.Linear`` weight
  ``(out, in)`` is written as it is. llama.cpp's RoPE rotates *adjacent* feature pairs ``(2i, 2i+1)`` where
  qkv rotates ``(i, i + K/2)``: the rows of every query and key projection are permuted per head, as
  llama.cpp's converter permutes a Hugging Face Llama's, so both compute the same attention.
* ``float16`` stores every matrix in half precision and keeps vectors (norm gains) in float32, as llama.cpp's
  converter does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from qkv.export.hf import DTYPES, ExportDtype
from qkv.export.run import Run, read_run
from qkv.export.support import ExportError, check_gguf
from qkv.export.target import check_target, staged_file
from qkv.export.tokenizer import GGUFVocabulary, gguf_vocabulary
from qkv.shapes import Tensor

if TYPE_CHECKING:
    from gguf import GGUFWriter

__all__ = ["export_gguf", "gguf_tensors", "interleave_rope_rows"]

_NAMES = {
    "embedding.tokens.weight": "token_embd.weight",
    "final_norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_BLOCK_NAMES = {
    "attention_norm.weight": "attn_norm.weight",
    "attention.to_q.weight": "attn_q.weight",
    "attention.to_k.weight": "attn_k.weight",
    "attention.to_v.weight": "attn_v.weight",
    "attention.to_out.weight": "attn_output.weight",
    "mlp_norm.weight": "ffn_norm.weight",
    "mlp.to_gate.weight": "ffn_gate.weight",
    "mlp.to_hidden.weight": "ffn_up.weight",
    "mlp.to_out.weight": "ffn_down.weight",
}


def interleave_rope_rows(weight: Tensor, heads: int) -> Tensor:
    """llama.cpp's row order for a query/key projection ``(heads·K, D)``: each head's rows ``0 … K/2-1`` and
    ``K/2 … K-1`` interleaved (``0, K/2, 1, K/2+1, …``), so its adjacent-pair RoPE rotates qkv's pairs."""
    rows, columns = weight.shape
    K = rows // heads
    return weight.reshape(heads, 2, K // 2, columns).transpose(1, 2).reshape(rows, columns)  # (H·K, D)


def _gguf_name(name: str) -> str:
    if name in _NAMES:
        return _NAMES[name]
    _, index, rest = name.split(".", 2)  # blocks.N.rest
    return f"blk.{index}.{_BLOCK_NAMES[rest]}"


def gguf_tensors(run: Run, dtype: ExportDtype = "float32") -> dict[str, np.ndarray]:
    """The run's weights under llama.cpp's names, queries and keys in its RoPE row order, matrices in ``dtype``."""
    config = run.config
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in run.tensors.items():
        if name == "lm_head.weight" and config.tie_embeddings:
            continue  # llama.cpp reuses token_embd when a file has no output.weight
        value = tensor
        if name.endswith("attention.to_q.weight"):
            value = interleave_rope_rows(value, config.heads)
        elif name.endswith("attention.to_k.weight"):
            value = interleave_rope_rows(value, config.attention.groups)
        matrix = value.dim() == 2
        value = value.to(torch.float16 if dtype == "float16" and matrix else torch.float32)
        arrays[_gguf_name(name)] = value.contiguous().numpy().copy()
    return arrays


def _write_vocabulary(writer: GGUFWriter, vocabulary: GGUFVocabulary) -> None:
    writer.add_tokenizer_model(vocabulary.model)
    if vocabulary.pre is not None:
        writer.add_tokenizer_pre(vocabulary.pre)
    writer.add_token_list(vocabulary.tokens)
    writer.add_token_types(vocabulary.types)
    if vocabulary.scores is not None:
        writer.add_token_scores(vocabulary.scores)
    if vocabulary.merges:
        writer.add_token_merges(vocabulary.merges)
    writer.add_add_bos_token(False)  # qkv's tokenizers have no special tokens to add
    writer.add_add_eos_token(False)
    if vocabulary.model == "llama":
        writer.add_add_space_prefix(False)  # SentencePiece's default would put a space before every text


def export_gguf(
    run: str | os.PathLike[str] | Run,
    path: str | os.PathLike[str],
    *,
    dtype: ExportDtype = "float32",
    force: bool = False,
) -> Path:
    """Write ``run`` (a run directory, or a :class:`Run` already read) as a GGUF file; return its path.

    Refused with one :class:`~qkv.export.support.ExportError` before anything is written: a config GGUF's
    ``llama`` architecture cannot hold, a tokenizer it cannot carry, an existing file (unless ``force``), an
    unwritable folder. The file appears only once it is complete.
    """
    from gguf import GGUFWriter, LlamaFileType

    if dtype not in DTYPES:
        raise ExportError(f"dtype {dtype!r} is not one qkv exports; choose {', '.join(DTYPES)}")
    target = Path(path).expanduser()
    check_target(target, directory=False, force=force)
    run = run if isinstance(run, Run) else read_run(run)
    config = run.config
    check_gguf(config)
    vocabulary = gguf_vocabulary(run.tokenizer)
    if len(vocabulary.tokens) != config.vocab_size:
        raise ExportError(
            f"the run's tokenizer has {len(vocabulary.tokens)} tokens but its model {config.vocab_size} rows; "
            "GGUF needs one token per row"
        )
    arrays = gguf_tensors(run, dtype)
    with staged_file(target) as temporary:
        writer = GGUFWriter(str(temporary), "llama")
        writer.add_name(run.name)
        writer.add_file_type(LlamaFileType.MOSTLY_F16 if dtype == "float16" else LlamaFileType.ALL_F32)
        writer.add_vocab_size(config.vocab_size)
        writer.add_context_length(config.context)
        writer.add_embedding_length(config.width)
        writer.add_block_count(config.layers)
        writer.add_feed_forward_length(config.hidden_width)
        writer.add_head_count(config.heads)
        writer.add_head_count_kv(config.attention.groups)
        writer.add_key_length(config.attention.key_width)
        writer.add_value_length(config.attention.key_width)
        writer.add_rope_dimension_count(config.attention.key_width)
        writer.add_rope_freq_base(config.rope_theta)
        writer.add_layer_norm_rms_eps(config.norm_eps)
        _write_vocabulary(writer, vocabulary)
        for name, array in arrays.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return target
