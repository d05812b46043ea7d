"""qkv: self-attention made real — the article's three parts, your own small LLM, real models opened up.

    import qkv
    output, weights = qkv.attend(queries, keys, values, causal=True, need_weights=True)
    model = qkv.Transformer(qkv.preset("tiny", vocab_size=65))
    smol = qkv.load("smollm2")          # or a run `qkv train` wrote: one handle, qkv.Model, for every source
    trace = qkv.trace(smol, "The capital of France is")   # who attends to whom, as plain data

The package, lowest layer first (each imports only the ones above it in this list):

    errors, shapes, files   the InputError family, the shape alphabet (B T S H G D K V), atomic writes
    data                    plain data shared by the layers: AttentionTrace, head metrics, the model registry
    attention               the core: attend (exact and fused, proven equal), SelfAttention, masks,
                            positions, the KV cache
    model                   TransformerConfig (BERT, GPT-2 and Llama as data; presets) and the Transformer
    text                    corpora and tokenizers (characters, byte-level BPE)
    generation              sampling, prefill and decode steps, the fast decoder
    training                TrainConfig, the schedule, the loop, checkpoints, mixed precision, torchrun
    inspection              capture and trace: the weights a model computes, per layer and head
    render                  terminal, PNG/SVG and HTML views of a trace
    pretrained              qkv.load: known names, Hugging Face directories, GGUF files, runs
    export                  a run as a Hugging Face directory or a GGUF file
    article                 the article's constructions and the tour, on its sentence
    cli                     the qkv command: tour, train, generate, attend, models, export

Start at the command line with ``qkv tour``. ``import qkv`` is cheap and has no side effects: submodules (and
PyTorch) load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv._lazy import lazy
from qkv._version import __version__

_LAZY = {
    "attend": "qkv.attention",
    "exact_attention": "qkv.attention",
    "fused_attention": "qkv.attention",
    "SelfAttention": "qkv.attention",
    "AttentionConfig": "qkv.attention",
    "KVCache": "qkv.attention",
    "Transformer": "qkv.model",
    "TransformerConfig": "qkv.model",
    "preset": "qkv.model",
    "PRESETS": "qkv.model",
    "FAMILIES": "qkv.model",
    "load": "qkv.pretrained.model",
    "Model": "qkv.pretrained.model",
    "trace": "qkv.inspection.trace",
    "AttentionTrace": "qkv.data.trace",
    "ShapeError": "qkv.errors",
    "ConfigError": "qkv.errors",
}

__all__ = [
    "FAMILIES",
    "PRESETS",
    "AttentionConfig",
    "AttentionTrace",
    "ConfigError",
    "KVCache",
    "Model",
    "SelfAttention",
    "ShapeError",
    "Transformer",
    "TransformerConfig",
    "__version__",
    "attend",
    "exact_attention",
    "fused_attention",
    "load",
    "preset",
    "trace",
]

if TYPE_CHECKING:
    from qkv.attention import (
        AttentionConfig,
        KVCache,
        SelfAttention,
        attend,
        exact_attention,
        fused_attention,
    )
    from qkv.data.trace import AttentionTrace
    from qkv.errors import ConfigError, ShapeError
    from qkv.inspection.trace import trace
    from qkv.model import FAMILIES, PRESETS, Transformer, TransformerConfig, preset
    from qkv.pretrained.model import Model, load


__getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
