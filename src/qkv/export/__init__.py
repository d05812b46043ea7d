"""Leaving qkv: a model you trained, written in open formats that other tools load without qkv.

    from qkv.export import export_hf, export_gguf
    export_hf("runs/notes", "exported/notes")              # transformers: GPT2LMHeadModel or LlamaForCausalLM
    export_gguf("runs/llama", "exported/llama.gguf")       # llama.cpp: the llama architecture (Llama-style runs)

Each reads the run's latest checkpoint, refuses with one :class:`ExportError` what the format cannot express
(the message names the config field), and writes aside before renaming into place. The command line is
``qkv export RUN --to hf DIR`` and ``qkv export RUN --to gguf FILE``; see docs/training.md, "Leaving qkv".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv._lazy import lazy
from qkv.export.support import ExportError

__all__ = ["ExportError", "Run", "export_gguf", "export_hf", "read_run"]

_LAZY = {
    "export_hf": "qkv.export.hf",
    "export_gguf": "qkv.export.gguf",
    "Run": "qkv.export.run",
    "read_run": "qkv.export.run",
}

if TYPE_CHECKING:
    from qkv.export.gguf import export_gguf
    from qkv.export.hf import export_hf
    from qkv.export.run import Run, read_run


__getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
