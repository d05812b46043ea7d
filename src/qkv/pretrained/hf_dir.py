"""Hugging Face model directories (``config.json`` + ``model.safetensors`` [+ ``tokenizer.json``]) → :class:`Parts`.

Three families, each a column of :data:`~qkv.model.config.FAMILIES` filled in from ``config.json``:

* ``bert`` (``BertModel``, e.g. MiniLM): post-norm, learned + token-type positions, WordPiece;
* ``gpt2`` (``GPT2LMHeadModel``): its ``Conv1D`` layers store ``(in, out)`` weights, transposed at load, and
  one fused ``c_attn`` projection, split into queries, keys and values;
* ``llama`` (``LlamaForCausalLM``): already in the half-split RoPE layout qkv uses.

Weights are read from safetensors only (sharded checkpoints through ``model.safetensors.index.json``
included); a pickle is refused, never opened.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from qkv.data.registry import PretrainedError, pickle_refusal, read_json
from qkv.data.tensors import read_tensors
from qkv.errors import ConfigError
from qkv.model.config import FAMILIES, Activation, TransformerConfig
from qkv.pretrained.assemble import Parts, check_fits, check_vocabulary
from qkv.pretrained.lowbit import WeightFormat
from qkv.pretrained.tokenizer import tokenizer_from_file
from qkv.shapes import Tensor

__all__ = ["SUPPORTED_MODEL_TYPES", "read_hf_dir"]

_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")


def read_hf_dir(directory: Path, precision: WeightFormat = "float32") -> Parts:
    """Read a Hugging Face directory written by ``save_pretrained`` (or shipped in that layout).

    A model that cannot fit in the free memory as ``precision`` is refused once ``config.json`` is read, before
    any weight is."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise PretrainedError(
            f"{directory} has no config.json; a model directory holds config.json and model.safetensors "
            "(as transformers' save_pretrained writes them)"
        )
    hf = read_json(config_path, "model config")
    model_type = hf.get("model_type")
    family = SUPPORTED_MODEL_TYPES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        architectures = hf.get("architectures")
        named = f" ({', '.join(map(str, architectures))})" if isinstance(architectures, list) else ""
        raise PretrainedError(
            f"{config_path}: model_type {model_type!r}{named} is not supported; qkv loads "
            f"{', '.join(sorted(SUPPORTED_MODEL_TYPES))} directories and Llama-family GGUF files"
        )
    to_config, rename = family
    try:
        config = to_config(hf, config_path)
    except PretrainedError:  # already names the file
        raise
    except (ConfigError, TypeError, ValueError) as error:  # a config value of the wrong kind or range
        raise PretrainedError(f"{config_path}: {error}") from None
    check_fits(config, precision, config_path)
    tokenizer = None  # read first: a mismatch is found before the weights are read
    pad_id = hf.get("pad_token_id")
    pad_id = pad_id if isinstance(pad_id, int) and not isinstance(pad_id, bool) else 0
    if (directory / "tokenizer.json").is_file():
        tokenizer = tokenizer_from_file(str(directory / "tokenizer.json"), pad_id=pad_id)
        check_vocabulary(tokenizer, config.vocab_size, directory / "tokenizer.json")
    chat_template, special_tokens = _chat_conventions(directory)
    tensors = rename(_read_safetensors(directory), config, directory)
    eos = _ints(hf.get("eos_token_id"))
    if (directory / "generation_config.json").is_file():  # newer models list every end-of-turn token here
        eos += _ints(read_json(directory / "generation_config.json", "generation config").get("eos_token_id"))
    stop_ids = tuple(i for i in dict.fromkeys(eos) if config.causal and 0 <= i < config.vocab_size)
    max_embed_tokens = None
    if (directory / "sentence_bert_config.json").is_file():
        length = read_json(directory / "sentence_bert_config.json", "sentence-transformers config").get(
            "max_seq_length"
        )
        max_embed_tokens = length if isinstance(length, int) and length > 0 else None
    architectures = hf.get("architectures")
    architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else str(model_type)
    return Parts(
        config=config,
        tensors=tensors,
        tokenizer=tokenizer,
        source=directory,
        architecture=architecture,
        chat_template=chat_template,
        special_tokens=special_tokens,
        stop_ids=stop_ids,
        pad_id=pad_id,
        max_embed_tokens=max_embed_tokens,
    )


def _chat_conventions(directory: Path) -> tuple[str | None, dict[str, str]]:
    """The chat template (``chat_template.jinja`` or ``tokenizer_config.json``) and the special tokens' text."""
    settings: dict[str, Any] = {}
    if (directory / "tokenizer_config.json").is_file():
        settings = read_json(directory / "tokenizer_config.json", "tokenizer config")
    special_tokens = {}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"):
        value = settings.get(name)
        value = value.get("content") if isinstance(value, dict) else value  # older files store an AddedToken
        if isinstance(value, str):
            special_tokens[name] = value
    template = settings.get("chat_template")
    if (directory / "chat_template.jinja").is_file():
        template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    return (template if isinstance(template, str) else None), special_tokens


def _ints(value: object) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


# --------------------------------------------------------------------------------------------------------------
# Weights: safetensors only.


def _read_safetensors(directory: Path) -> dict[str, Tensor]:
    single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        weight_map = read_json(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise PretrainedError(f"{index} has no weight_map")
        files = [directory / str(name) for name in dict.fromkeys(weight_map.values())]
    else:
        for name in _PICKLE_NAMES:
            if (directory / name).is_file():
                raise pickle_refusal(directory / name)
        raise PretrainedError(
            f"{directory} has no weights: expected model.safetensors (or model.safetensors.index.json and its shards)"
        )
    tensors: dict[str, Tensor] = {}
    for path in files:
        tensors.update(_read_safetensors_file(path))
    return tensors


def _read_safetensors_file(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise PretrainedError(f"{path} is missing (named by model.safetensors.index.json)")
    return read_tensors(path)


# --------------------------------------------------------------------------------------------------------------
# config.json → TransformerConfig, one function per family.

_ACTIVATIONS: dict[str, Activation] = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}


def _get(hf: dict[str, Any], key: str, default: Any = None, *, where: Path) -> Any:
    if key not in hf and default is None:
        raise PretrainedError(f"{where} lacks {key!r}")
    return hf.get(key, default)


def _activation(name: object, where: Path, key: str) -> Activation:
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise PretrainedError(f"{where}: {key}={name!r} is not supported; qkv has {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def _require(hf: dict[str, Any], key: str, allowed: tuple[object, ...], where: Path) -> None:
    value = hf.get(key, allowed[0])
    if value not in allowed:
        raise PretrainedError(f"{where}: {key}={value!r} is not supported (qkv handles {allowed[0]!r})")


def bert_config(hf: dict[str, Any], where: Path) -> TransformerConfig:
    _require(hf, "position_embedding_type", ("absolute",), where)
    _require(hf, "is_decoder", (False,), where)
    return replace(
        FAMILIES["bert"],
        vocab_size=_get(hf, "vocab_size", where=where),
        context=_get(hf, "max_position_embeddings", 512, where=where),
        width=_get(hf, "hidden_size", where=where),
        layers=_get(hf, "num_hidden_layers", where=where),
        heads=_get(hf, "num_attention_heads", where=where),
        mlp_width=_get(hf, "intermediate_size", where=where),
        activation=_activation(hf.get("hidden_act", "gelu"), where, "hidden_act"),
        norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        token_types=_get(hf, "type_vocab_size", 2, where=where),
    )


def gpt2_config(hf: dict[str, Any], where: Path) -> TransformerConfig:
    _require(hf, "scale_attn_weights", (True,), where)
    _require(hf, "scale_attn_by_inverse_layer_idx", (False,), where)
    _require(hf, "add_cross_attention", (False,), where)
    return replace(
        FAMILIES["gpt2"],
        vocab_size=_get(hf, "vocab_size", 50257, where=where),
        context=_get(hf, "n_positions", 1024, where=where),
        width=_get(hf, "n_embd", 768, where=where),
        layers=_get(hf, "n_layer", 12, where=where),
        heads=_get(hf, "n_head", 12, where=where),
        mlp_width=hf.get("n_inner"),
        activation=_activation(hf.get("activation_function", "gelu_new"), where, "activation_function"),
        norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
    )


def llama_config(hf: dict[str, Any], where: Path) -> TransformerConfig:
    _require(hf, "hidden_act", ("silu",), where)
    _require(hf, "pretraining_tp", (1,), where)
    rope = hf.get("rope_parameters") or {}  # transformers 5; older files have rope_theta and rope_scaling
    scaling = hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type != "default":
        raise PretrainedError(f"{where}: RoPE scaling {rope_type!r} is not supported (qkv has plain RoPE)")
    width, heads = _get(hf, "hidden_size", where=where), _get(hf, "num_attention_heads", where=where)
    return replace(
        FAMILIES["llama"],
        vocab_size=_get(hf, "vocab_size", where=where),
        context=_get(hf, "max_position_embeddings", 2048, where=where),
        width=width,
        layers=_get(hf, "num_hidden_layers", where=where),
        heads=heads,
        kv_heads=hf.get("num_key_value_heads") or heads,
        head_width=hf.get("head_dim") or None,
        mlp_width=_get(hf, "intermediate_size", where=where),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        attention_bias=bool(hf.get("attention_bias", False)),
        mlp_bias=bool(hf.get("mlp_bias", False)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
    )


# --------------------------------------------------------------------------------------------------------------
# Tensor names → qkv's module names, one function per family.

_Rules = list[tuple[str, str]]


def _rename(
    weights: dict[str, Tensor], rules: _Rules, ignored: tuple[str, ...], prefixes: tuple[str, ...]
) -> dict[str, Tensor]:
    """Rename by the first matching ``(pattern, replacement)``; drop ``ignored``; keep the rest as found (so
    :func:`~qkv.pretrained.assemble.build` names them as unexpected)."""
    compiled = [(re.compile(pattern + r"$"), replacement) for pattern, replacement in rules]
    dropped = [re.compile(pattern + r"$") for pattern in ignored]
    renamed: dict[str, Tensor] = {}
    for original, tensor in weights.items():
        name = original
        for prefix in prefixes:  # BertForMaskedLM stores "bert.…", GPT2LMHeadModel "transformer.…"
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if any(pattern.match(name) for pattern in dropped):
            continue
        for pattern, replacement in compiled:
            if pattern.match(name):
                name = pattern.sub(replacement, name)
                break
        renamed[name] = tensor
    return renamed


def bert_tensors(weights: dict[str, Tensor], config: TransformerConfig, where: Path) -> dict[str, Tensor]:
    rules = [
        (r"embeddings\.word_embeddings\.weight", "embedding.tokens.weight"),
        (r"embeddings\.position_embeddings\.weight", "embedding.positions.table.weight"),
        (r"embeddings\.token_type_embeddings\.weight", "embedding.token_types.weight"),
        (r"embeddings\.LayerNorm\.(weight|gamma)", "embedding.norm.weight"),
        (r"embeddings\.LayerNorm\.(bias|beta)", "embedding.norm.bias"),
        (r"encoder\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)", r"blocks.\1.attention.to_q.\2"),
        (r"encoder\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)", r"blocks.\1.attention.to_k.\2"),
        (r"encoder\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)", r"blocks.\1.attention.to_v.\2"),
        (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attention.to_out.\2"),
        (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|gamma)", r"blocks.\1.attention_norm.weight"),
        (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(bias|beta)", r"blocks.\1.attention_norm.bias"),
        (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.mlp.to_hidden.\2"),
        (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.mlp.to_out.\2"),
        (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|gamma)", r"blocks.\1.mlp_norm.weight"),
        (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(bias|beta)", r"blocks.\1.mlp_norm.bias"),
    ]
    # The pooler (a tanh layer over [CLS]) and task heads are not part of the encoder qkv runs.
    ignored = (r"embeddings\.position_ids", r"pooler\..*", r"cls\..*")
    return _rename(weights, rules, ignored, ("bert.",))


def gpt2_tensors(weights: dict[str, Tensor], config: TransformerConfig, where: Path) -> dict[str, Tensor]:
    rules = [
        (r"wte\.weight", "embedding.tokens.weight"),
        (r"wpe\.weight", "embedding.positions.table.weight"),
        (r"h\.(\d+)\.ln_1\.(weight|bias)", r"blocks.\1.attention_norm.\2"),
        (r"h\.(\d+)\.ln_2\.(weight|bias)", r"blocks.\1.mlp_norm.\2"),
        (r"h\.(\d+)\.attn\.c_proj\.(weight|bias)", r"blocks.\1.attention.to_out.\2"),
        (r"h\.(\d+)\.mlp\.c_fc\.(weight|bias)", r"blocks.\1.mlp.to_hidden.\2"),
        (r"h\.(\d+)\.mlp\.c_proj\.(weight|bias)", r"blocks.\1.mlp.to_out.\2"),
        (r"ln_f\.(weight|bias)", r"final_norm.\1"),
        (r"lm_head\.weight", "lm_head.weight"),
    ]
    ignored: tuple[str, ...] = (r"h\.\d+\.attn\.(bias|masked_bias)",)  # causal-mask buffers of older saves
    if config.tie_embeddings:
        ignored += (r"lm_head\.weight",)  # a tied copy, where a save kept one
    renamed = _rename(weights, rules, ignored, ("transformer.",))
    tensors: dict[str, Tensor] = {}
    for name, tensor in renamed.items():
        fused = re.fullmatch(r"h\.(\d+)\.attn\.c_attn\.(weight|bias)", name)
        if fused:  # Conv1D (D, 3D): queries, keys and values side by side along the output
            index, kind = fused.groups()
            if tensor.shape[-1] != 3 * config.width:
                raise PretrainedError(
                    f"{where}: {name} has shape {tuple(tensor.shape)}; expected 3 × n_embd = {3 * config.width} outputs"
                )
            for part, projection in zip(tensor.split(config.width, dim=-1), ("to_q", "to_k", "to_v"), strict=True):
                tensors[f"blocks.{index}.attention.{projection}.{kind}"] = part.T if kind == "weight" else part
        elif name.endswith(".weight") and re.search(r"\.(to_out|to_hidden)\.weight$", name):
            tensors[name] = tensor.T  # Conv1D stores (in, out); nn.Linear wants (out, in)
        else:
            tensors[name] = tensor
    return tensors


def llama_tensors(weights: dict[str, Tensor], config: TransformerConfig, where: Path) -> dict[str, Tensor]:
    rules = [
        (r"embed_tokens\.weight", "embedding.tokens.weight"),
        (r"layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", r"blocks.\1.attention.to_q.\2"),
        (r"layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)", r"blocks.\1.attention.to_k.\2"),
        (r"layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", r"blocks.\1.attention.to_v.\2"),
        (r"layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", r"blocks.\1.attention.to_out.\2"),
        (r"layers\.(\d+)\.mlp\.gate_proj\.(weight|bias)", r"blocks.\1.mlp.to_gate.\2"),
        (r"layers\.(\d+)\.mlp\.up_proj\.(weight|bias)", r"blocks.\1.mlp.to_hidden.\2"),
        (r"layers\.(\d+)\.mlp\.down_proj\.(weight|bias)", r"blocks.\1.mlp.to_out.\2"),
        (r"layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.attention_norm.weight"),
        (r"layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.mlp_norm.weight"),
        (r"norm\.weight", "final_norm.weight"),
        (r"lm_head\.weight", "lm_head.weight"),
    ]
    ignored: tuple[str, ...] = (r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq",)
    if config.tie_embeddings:
        ignored += (r"lm_head\.weight",)
    return _rename(weights, rules, ignored, ("model.",))


_Family = tuple[
    Callable[[dict[str, Any], Path], TransformerConfig],
    Callable[[dict[str, Tensor], TransformerConfig, Path], dict[str, Tensor]],
]

SUPPORTED_MODEL_TYPES: dict[str, _Family] = {
    "bert": (bert_config, bert_tensors),
    "gpt2": (gpt2_config, gpt2_tensors),
    "llama": (llama_config, llama_tensors),
}
