"""What each open format can express, decided from :class:`~qkv.model.config.TransformerConfig`'s fields alone.

A stock ``transformers`` class computes one fixed recipe; a run whose config asks for anything else would be
loaded as a different model, so it is refused here, by the first field that does not fit, before a file is
written:

* ``GPT2LMHeadModel``: pre-norm LayerNorm with shifts, biases everywhere, a GELU or ReLU MLP, one key/value
  head per query head, positions added to the input embedding. ``learned`` positions are its own table;
  ``sinusoidal`` (fixed) and ``none`` positions are that same table holding the sinusoids or zeros.
* ``LlamaForCausalLM``: pre-norm RMSNorm, a SwiGLU MLP, RoPE; grouped-query attention, a head width of its
  own, biases and a tied output layer are all its options.
* GGUF's ``llama`` architecture: the Llama recipe without biases (llama.cpp's converter writes none, and
  qkv's GGUF reader reads none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from qkv.errors import InputError

if TYPE_CHECKING:
    from qkv.model.config import TransformerConfig

__all__ = ["ARCHITECTURES", "ExportError", "Family", "check_gguf", "hf_family"]

Family = Literal["gpt2", "llama"]

ARCHITECTURES: dict[Family, str] = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}

_COMMON = {  # every causal decoder a stock class runs: field → the value it needs
    "causal": True,
    "norm_placement": "pre",
    "lm_head": True,
    "final_norm": True,
    "embedding_norm": False,
    "token_types": 0,
}
_GPT2 = {"norm": "layernorm", "norm_bias": True, "attention_bias": True, "mlp_bias": True}
_LLAMA = {"norm": "rmsnorm", "activation": "swiglu"}
_GPT2_ACTIVATIONS = ("gelu_tanh", "gelu", "relu")


class ExportError(InputError):
    """A run that a format cannot hold, or a target that cannot be written; the message says which and why."""


def _first_misfit(config: TransformerConfig, needed: dict[str, object], target: str) -> None:
    for field, value in needed.items():
        found = getattr(config, field)
        if found != value:
            raise ExportError(
                f"TransformerConfig.{field}={found!r}: {target} needs {field}={value!r}; "
                "this run cannot be expressed in that format"
            )


def hf_family(config: TransformerConfig) -> Family:
    """The stock ``transformers`` family that computes exactly what ``config`` computes, or an
    :class:`ExportError` naming the first field none can express."""
    if config.positions == "rope":
        _first_misfit(config, {**_COMMON, **_LLAMA}, "LlamaForCausalLM")
        return "llama"
    if config.positions not in ("learned", "sinusoidal", "none"):
        raise ExportError(
            f"TransformerConfig.positions={config.positions!r}: no stock transformers class qkv exports to "
            "computes these positions (GPT2LMHeadModel adds a position table, LlamaForCausalLM rotates with "
            "'rope'); this run cannot be exported to Hugging Face"
        )
    _first_misfit(config, {**_COMMON, **_GPT2}, "GPT2LMHeadModel")
    if config.activation not in _GPT2_ACTIVATIONS:
        raise ExportError(
            f"TransformerConfig.activation={config.activation!r}: GPT2LMHeadModel's MLP has no gate; it runs "
            f"{', '.join(map(repr, _GPT2_ACTIVATIONS))} (a SwiGLU MLP needs positions='rope', as Llama)"
        )
    if config.attention.groups != config.heads:
        raise ExportError(
            f"TransformerConfig.kv_heads={config.kv_heads!r}: GPT2LMHeadModel has one key/value head per query "
            f"head ({config.heads}); grouped-query attention needs positions='rope', as Llama"
        )
    if config.attention.key_width * config.heads != config.width:
        raise ExportError(
            f"TransformerConfig.head_width={config.head_width!r}: GPT2LMHeadModel's heads are width / heads = "
            f"{config.width // config.heads} wide"
        )
    return "gpt2"


def check_gguf(config: TransformerConfig) -> None:
    """An :class:`ExportError` naming the first field GGUF's ``llama`` architecture cannot hold."""
    target = "GGUF's llama architecture"
    if config.positions != "rope":
        raise ExportError(
            f"TransformerConfig.positions={config.positions!r}: {target} rotates queries and keys ('rope'); "
            "export this run with --to hf instead"
        )
    _first_misfit(config, {**_COMMON, **_LLAMA, "attention_bias": False, "mlp_bias": False}, target)
