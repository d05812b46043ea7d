"""Flags derived from a config dataclass: each field's type, default and docstring become its argument.

The config is the one place a setting is described (litgpt's lesson: the typed signature is the CLI). A field
annotated ``int``/``float``/``str`` (or ``X | None``) parses as that type, a ``Literal`` becomes ``choices``,
a ``bool`` becomes ``--flag``/``--no-flag``, and the string literal under the field (its attribute docstring)
becomes the help, followed by the default::

    steps: int = 2000
    \"\"\"total optimizer steps, counting those before a resume\"\"\"

Flags default to ``None``, so a command can tell a flag given from one left out (``--resume`` keeps the run's
values for those). :func:`flag_names` maps ``Config.field`` to the flag, and :func:`speak_in_flags` rewrites a
config's error message (``TrainConfig.learning_rate must be positive``) into the user's words (``--lr must be
positive``). Reading the fields imports only the config modules, which import no PyTorch.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Flag", "add_config_flags", "config_values", "field_docs", "flag_names", "speak_in_flags"]


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line; everything left ``None`` comes from the field."""

    field: str
    flag: str | None = None  # default: --field-name
    type: Callable[[str], Any] | None = None  # default: from the annotation
    metavar: str | None = None
    help: str | None = None  # default: the field's docstring
    default: str | None = None  # how the default reads in the help; default: the field's default

    @property
    def name(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls``, in field order, whitespace folded to single spaces."""
    module = sys.modules[cls.__module__]
    tree = ast.parse(inspect.getsource(module))
    body = next(node.body for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == cls.__name__)
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return {f.name: docs[f.name] for f in dataclasses.fields(cls) if f.name in docs}


def _parser_for(annotation: Any) -> tuple[Callable[[str], Any] | None, tuple[Any, ...] | None, bool]:
    """``(type, choices, is_bool)`` for a field's annotation; ``X | None`` parses as ``X``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return _parser_for(options[0])
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices, False
    if annotation is bool:
        return None, None, True
    if annotation in (int, float, str):
        return annotation, None, False
    raise TypeError(f"no command-line form for a field annotated {annotation!r}")


def _describe(value: object) -> str:
    return "on" if value is True else "off" if value is False else str(value)


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, flags: Sequence[Flag | str]
) -> dict[str, str]:
    """Add one argument per field of ``cls`` named in ``flags``; return :func:`flag_names` for them."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    docs = field_docs(cls)
    for spec in flags:
        flag = Flag(spec) if isinstance(spec, str) else spec
        field = fields[flag.field]
        parse, choices, is_bool = _parser_for(hints[flag.field])
        text = flag.help if flag.help is not None else docs.get(flag.field)
        if text is None:
            raise TypeError(f"{cls.__name__}.{flag.field} has no docstring to serve as its help")
        default = flag.default
        if default is None and field.default is not dataclasses.MISSING and field.default is not None:
            default = _describe(field.default)
        if default:
            text += f" (default: {default})"
        options: dict[str, Any] = {"dest": flag.dest, "default": None, "help": text.replace("%", "%%")}
        if is_bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = flag.type or parse
            if choices is not None and flag.type is None:
                options["choices"] = choices
            if flag.metavar is not None:
                options["metavar"] = flag.metavar
        parser.add_argument(flag.name, **options)
    return flag_names(cls, flags)


def flag_names(cls: type, flags: Sequence[Flag | str]) -> dict[str, str]:
    """``{"TrainConfig.learning_rate": "--lr", …}``: the flag that sets each field, for :func:`speak_in_flags`."""
    return {f"{cls.__name__}.{(Flag(s) if isinstance(s, str) else s).field}": _name(s) for s in flags}


def _name(spec: Flag | str) -> str:
    return (Flag(spec) if isinstance(spec, str) else spec).name


def config_values(args: argparse.Namespace, flags: Sequence[Flag | str]) -> dict[str, Any]:
    """The fields whose flags were given, by field name (a flag left out is absent)."""
    found = {}
    for spec in flags:
        flag = Flag(spec) if isinstance(spec, str) else spec
        value = getattr(args, flag.dest)
        if value is not None:
            found[flag.field] = value
    return found


_FIELD = re.compile(r"\b([A-Z]\w*Config\.\w+)(=?)")


def speak_in_flags(message: str, names: Mapping[str, str]) -> str:
    """``message`` with each ``Config.field`` that a flag sets named by that flag: ``TrainConfig.steps=0 …`` →
    ``--steps 0 …``. Fields no flag sets are left as they are."""

    def replace(match: re.Match[str]) -> str:
        flag = names.get(match[1])
        if flag is None:
            return match[0]
        return flag + (" " if match[2] else "")

    return _FIELD.sub(replace, message)
