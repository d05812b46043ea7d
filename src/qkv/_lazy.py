"""One lazy façade for qkv's packages (PEP 562): a package lists which module holds each public name, and a
name is imported the first time it is used. ``import qkv`` (or ``import qkv.training``) therefore costs almost
nothing and imports no PyTorch until a name that needs it is touched.

    _LAZY = {"Transformer": "qkv.model.transformer", ...}
    __getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy"]


def lazy(
    package: str, names: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``names[name]`` is the module that defines ``name``;
    once loaded, a name is kept in the package, so the module is looked up only once."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
