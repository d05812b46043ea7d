"""Real pretrained models in qkv's own Transformer: BERT (MiniLM), Llama from GGUF (SmolLM2), GPT-2 directories.

    import qkv.pretrained as pretrained
    pretrained.available()                 # the known names, installed or not, with size and source
    model = pretrained.load("smollm2")     # or "minilm", a run `qkv train` wrote, a Hugging Face directory, a .gguf
    model = pretrained.load("smollm2", dtype="int4")   # the GGUF's own 4-bit blocks: see docs/pretrained.md

Listing (:func:`available`) imports neither PyTorch nor the loaders; they load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv._lazy import lazy
from qkv.data.registry import PACKAGED, MissingModelError, ModelInfo, PretrainedError, available

__all__ = [
    "PACKAGED",
    "MissingModelError",
    "Model",
    "ModelInfo",
    "PretrainedError",
    "PretrainedTokenizer",
    "available",
    "load",
]

_LAZY = {
    "load": "qkv.pretrained.model",
    "Model": "qkv.pretrained.model",
    "PretrainedTokenizer": "qkv.pretrained.tokenizer",
}

if TYPE_CHECKING:
    from qkv.pretrained.model import Model, load
    from qkv.pretrained.tokenizer import PretrainedTokenizer


__getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
