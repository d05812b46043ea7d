"""Tiny models for fast tests: random transformers models saved as directories, and a GGUF written the way
llama.cpp's converter writes one (query/key rows permuted for its interleaved RoPE)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he"]
TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_level_tokens() -> list[str]:
    """Three control tokens, GPT-2's 256 byte symbols, and the three merges' results: 262 tokens."""
    from qkv.text.tokenizers import _gpt2_byte_symbols

    return [*SPECIALS, *_gpt2_byte_symbols(), "Ġt", "he", "Ġthe"]


VOCAB = len(byte_level_tokens())


def tiny_llama(**overrides: Any) -> Any:
    """A random LlamaForCausalLM: 2 layers, 4 query heads sharing 2 key/value heads, width 32."""
    import transformers

    fields: dict[str, Any] = {
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
    }
    fields.update(overrides)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**fields, attn_implementation="eager"))
    with torch.no_grad():  # random norm gains, so that a misplaced norm weight shows
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    return model.eval()


def llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter (``LlamaModel.permute``): half-split rows → interleaved pairs, per head."""
    rows, columns = weight.shape
    return weight.reshape(heads, 2, rows // heads // 2, columns).swapaxes(1, 2).reshape(rows, columns)


GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_tensors(model: Any) -> dict[str, np.ndarray]:
    """The model's weights under GGUF names, queries and keys permuted as llama.cpp permutes them."""
    config = model.config
    tensors = {}
    for name, value in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        if name.startswith("model.layers."):
            index, rest = name.removeprefix("model.layers.").split(".", 1)
            gguf_name = f"blk.{index}.{GGUF_NAMES[rest]}"
        else:
            gguf_name = GGUF_NAMES[name]
        array = value.detach().float().numpy().copy()
        if gguf_name.endswith("attn_q.weight"):
            array = llama_cpp_permute(array, config.num_attention_heads)
        elif gguf_name.endswith("attn_k.weight"):
            array = llama_cpp_permute(array, config.num_key_value_heads)
        tensors[gguf_name] = array
    return tensors


def write_gguf(
    path: Path,
    tensors: dict[str, np.ndarray],
    *,
    architecture: str = "llama",
    layers: int = 2,
    width: int = 32,
    heads: int = 4,
    kv_heads: int = 2,
    mlp_width: int = 48,
    context: int = 64,
    tokens: Sequence[str] | None = None,
    tokenizer_model: str = "gpt2",
    pre: str = "smollm",
    add_bos: bool = False,
    extra: Callable[[Any], None] | None = None,
    types: dict[str, str] | None = None,
) -> Path:
    """A GGUF of ``tensors`` with the metadata llama.cpp writes for a Llama and a byte-level BPE tokenizer.

    ``types`` stores some tensors quantised (name → ``"Q4_1"``, ``"Q4_0"``, ``"Q8_0"`` …, with gguf's quantiser)."""
    import gguf
    from gguf.quants import quantize

    tokens = list(byte_level_tokens() if tokens is None else tokens)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(layers)
    writer.add_context_length(context)
    writer.add_embedding_length(width)
    writer.add_feed_forward_length(mlp_width)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(width // heads)
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in SPECIALS else 1 for token in tokens])
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(add_bos)
    writer.add_chat_template(TEMPLATE)
    if extra is not None:
        extra(writer)
    for name, array in tensors.items():
        kind = (types or {}).get(name)
        if kind is None:
            writer.add_tensor(name, array)
        else:
            quant = gguf.GGMLQuantizationType[kind]
            writer.add_tensor(name, quantize(array, quant), raw_dtype=quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def set_tensor_type(path: Path, tensor: str, type_number: int) -> None:
    """Overwrite the type recorded for ``tensor`` in a GGUF's tensor table (to make an unknown type)."""
    data = bytearray(path.read_bytes())
    name = tensor.encode()
    start = data.index(len(name).to_bytes(8, "little") + name) + 8 + len(name)
    dims = int.from_bytes(data[start : start + 4], "little")
    at = start + 4 + 8 * dims
    data[at : at + 4] = type_number.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def assert_decodes_like_the_transformer(model: Any, ids: torch.Tensor, prompt: int, capacity: int, atol: float) -> None:
    """``FastDecoder`` over ``model`` prefills ``ids[:prompt]`` and decodes the rest one token at a time; each of
    its logits equals the Transformer's own cached pass within ``atol`` of the logits' largest magnitude."""
    from qkv.generation.fast_decoder import FastDecoder

    decoder = FastDecoder(model, capacity)
    cache = model.new_cache(1, capacity)
    with torch.inference_mode():
        steps = [(decoder.prefill(ids[:prompt]), model(ids[None, :prompt], cache=cache)[0, -1])]
        for token in ids[prompt:]:
            steps.append((decoder.decode(int(token)), model(token.view(1, 1), cache=cache)[0, -1]))
    for got, expected in steps:
        torch.testing.assert_close(got, expected, rtol=0, atol=atol * expected.abs().max().item())
