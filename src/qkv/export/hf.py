"""A run → a Hugging Face directory that ``transformers`` loads with its stock classes, no qkv code needed.

    export_hf("runs/notes", "exported/notes")
    # transformers.AutoModelForCausalLM.from_pretrained("exported/notes")   → GPT2LMHeadModel or LlamaForCausalLM
    # transformers.AutoTokenizer.from_pretrained("exported/notes")

The directory holds what ``save_pretrained`` writes: ``config.json``, ``model.safetensors`` (the tensors under
the class's own names), and the tokenizer (``tokenizer.json``, ``tokenizer_config.json``). The two layouts
differ from qkv's in known ways, undone here the way :mod:`qkv.pretrained.hf_dir` does them on loading:

* GPT-2's ``Conv1D`` layers store weights ``(in, out)``, the transpose of ``nn.Linear``'s ``(out, in)``, and its
  attention has one fused projection ``c_attn``: queries, keys and values side by side along its output.
* Llama's names differ, its layout does not (qkv's RoPE pairs features ``i`` and ``i + K/2``, as it does).

``transformers`` is not needed to export: ``config.json`` is written from the config's fields alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import torch

from qkv.export.run import Run, read_run
from qkv.export.support import ARCHITECTURES, ExportError, Family, hf_family
from qkv.export.target import check_target, staged_directory
from qkv.export.tokenizer import hf_tokenizer_config, hf_tokenizer_json
from qkv.model.config import TransformerConfig
from qkv.shapes import Tensor

__all__ = ["DTYPES", "ExportDtype", "export_hf", "hf_config", "hf_tensors"]

ExportDtype = Literal["float32", "float16"]
DTYPES: tuple[ExportDtype, ...] = ("float32", "float16")

_GPT2_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


def hf_config(config: TransformerConfig, family: Family, dtype: ExportDtype = "float32") -> dict[str, Any]:
    """``config.json`` for ``family``'s stock class, every field that decides the computation written out."""
    common = {
        "architectures": [ARCHITECTURES[family]],
        "model_type": family,
        "vocab_size": config.vocab_size,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": None,  # qkv's tokenizers have no special tokens
        "eos_token_id": None,
        "pad_token_id": None,
        "initializer_range": 0.02,
        "use_cache": True,
        "dtype": dtype,
    }
    if family == "gpt2":
        return {
            **common,
            "n_positions": config.context,
            "n_ctx": config.context,
            "n_embd": config.width,
            "n_layer": config.layers,
            "n_head": config.heads,
            "n_inner": config.hidden_width,
            "activation_function": _GPT2_ACTIVATIONS[config.activation],
            "layer_norm_epsilon": config.norm_eps,
            "embd_pdrop": config.dropout,  # qkv drops out on the embeddings and each residual branch
            "resid_pdrop": config.dropout,
            "attn_pdrop": 0.0,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
        }
    return {
        **common,
        "hidden_size": config.width,
        "intermediate_size": config.hidden_width,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "num_key_value_heads": config.attention.groups,
        "head_dim": config.attention.key_width,
        "max_position_embeddings": config.context,
        "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,  # transformers before 5 reads this; 5 reads rope_parameters
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "attention_bias": config.attention_bias,
        "attention_dropout": 0.0,
        "mlp_bias": config.mlp_bias,
        "pretraining_tp": 1,
    }


def hf_tensors(run: Run, family: Family) -> dict[str, Tensor]:
    """The run's weights under ``family``'s names and in its layout (new, contiguous tensors)."""
    config, ours = run.config, run.tensors
    out: dict[str, Tensor] = {}
    if family == "gpt2":
        table = run.position_table
        out["transformer.wte.weight"] = ours["embedding.tokens.weight"]
        # sinusoidal positions are a fixed table, "none" a table of zeros: GPT-2 adds whichever it holds
        out["transformer.wpe.weight"] = table if table is not None else torch.zeros(config.context, config.width)
        for i in range(config.layers):
            block, hf = f"blocks.{i}", f"transformer.h.{i}"
            qkv = [f"{block}.attention.{name}" for name in ("to_q", "to_k", "to_v")]
            out[f"{hf}.attn.c_attn.weight"] = torch.cat([ours[f"{n}.weight"] for n in qkv]).T  # (3D, D) → (D, 3D)
            out[f"{hf}.attn.c_attn.bias"] = torch.cat([ours[f"{n}.bias"] for n in qkv])  # (3D,)
            linears = (("attn.c_proj", "attention.to_out"), ("mlp.c_fc", "mlp.to_hidden"), ("mlp.c_proj", "mlp.to_out"))
            for theirs, mine in linears:
                out[f"{hf}.{theirs}.weight"] = ours[f"{block}.{mine}.weight"].T  # (out, in) → Conv1D's (in, out)
                out[f"{hf}.{theirs}.bias"] = ours[f"{block}.{mine}.bias"]
            for theirs, mine in (("ln_1", "attention_norm"), ("ln_2", "mlp_norm")):
                out[f"{hf}.{theirs}.weight"] = ours[f"{block}.{mine}.weight"]
                out[f"{hf}.{theirs}.bias"] = ours[f"{block}.{mine}.bias"]
        out["transformer.ln_f.weight"] = ours["final_norm.weight"]
        out["transformer.ln_f.bias"] = ours["final_norm.bias"]
    else:
        out["model.embed_tokens.weight"] = ours["embedding.tokens.weight"]
        names = {
            "self_attn.q_proj": "attention.to_q",
            "self_attn.k_proj": "attention.to_k",
            "self_attn.v_proj": "attention.to_v",
            "self_attn.o_proj": "attention.to_out",
            "mlp.gate_proj": "mlp.to_gate",
            "mlp.up_proj": "mlp.to_hidden",
            "mlp.down_proj": "mlp.to_out",
        }
        for i in range(config.layers):
            block, hf = f"blocks.{i}", f"model.layers.{i}"
            for theirs, mine in names.items():
                out[f"{hf}.{theirs}.weight"] = ours[f"{block}.{mine}.weight"]
                if f"{block}.{mine}.bias" in ours:  # attention_bias, mlp_bias
                    out[f"{hf}.{theirs}.bias"] = ours[f"{block}.{mine}.bias"]
            out[f"{hf}.input_layernorm.weight"] = ours[f"{block}.attention_norm.weight"]
            out[f"{hf}.post_attention_layernorm.weight"] = ours[f"{block}.mlp_norm.weight"]
        out["model.norm.weight"] = ours["final_norm.weight"]
    if not config.tie_embeddings:
        out["lm_head.weight"] = ours["lm_head.weight"]
    return {name: tensor.contiguous().clone() for name, tensor in out.items()}


def export_hf(
    run: str | os.PathLike[str] | Run,
    directory: str | os.PathLike[str],
    *,
    dtype: ExportDtype = "float32",
    force: bool = False,
) -> Path:
    """Write ``run`` (a run directory, or a :class:`Run` already read) as a Hugging Face directory; return its path.

    Refused with one :class:`~qkv.export.support.ExportError` before anything is written: a config no stock
    class computes, a tokenizer that cannot be carried over, an existing target (unless ``force``: then it is
    replaced, only once the new directory is complete), an unwritable folder.
    """
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ExportError(f"dtype {dtype!r} is not one qkv exports; choose {', '.join(DTYPES)}")
    target = Path(directory).expanduser()
    check_target(target, directory=True, force=force)
    run = run if isinstance(run, Run) else read_run(run)
    family = hf_family(run.config)
    if run.tokenizer.vocab_size > run.config.vocab_size:
        raise ExportError(
            f"the run's tokenizer has {run.tokenizer.vocab_size} tokens but its model only {run.config.vocab_size}"
        )
    tokenizer_json = hf_tokenizer_json(run.tokenizer)
    tensors = {name: tensor.to(getattr(torch, dtype)) for name, tensor in hf_tensors(run, family).items()}
    with staged_directory(target) as staging:
        (staging / "config.json").write_text(_json(hf_config(run.config, family, dtype)), encoding="utf-8")
        save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        tokenizer_config = hf_tokenizer_config(run.config.context)
        (staging / "tokenizer_config.json").write_text(_json(tokenizer_config), encoding="utf-8")
    return target


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
