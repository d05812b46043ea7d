"""ES modules as one classic script: what a ``file://`` page or a notebook can run (neither loads modules).

:func:`inline_script` takes an entry module of ``qkv/web/static/``, orders it after the modules it imports
(depth first, each once; a cycle is an error) and wraps each module in a function of its own, so that their
top-level names never meet; what a module exports is the object that function returns, and what another
module imports from it is read from that object::

    (function () {
      "use strict";
      var qkv$viridis = (function () {
        "use strict";
        const VIRIDIS = new Uint8Array([...]);
        return { VIRIDIS: VIRIDIS };
      }());
      var qkv$heatmap = (function () {
        "use strict";
        const { VIRIDIS } = qkv$viridis;
        ...

The modules are written so that this stays a matter of lines, not of parsing JavaScript: imports are
``import { a, b as c } from "./x.js";`` or ``import * as x from "./x.js";`` from a module of the same folder
(one statement, which may span lines), exports are declarations ``export function|class|const NAME`` (no
``export let``, whose binding could change; no default export, no ``export { … }`` list, no dynamic
``import()``). Anything else that starts a line with ``import`` or ``export`` is an :class:`InlineError`
naming the file and the line, and so is a module whose text could close the ``<script>`` element it goes in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["InlineError", "Module", "inline_script", "module_order", "package_module", "parse_module"]

_NAME = re.compile(r"[a-z][a-z0-9_]*\.js")
_IMPORT = re.compile(r'^import[ \t]*\{([^}]*)\}[ \t]*from[ \t]*"([^"]+)";?[ \t]*$', re.MULTILINE)
_IMPORT_ALL = re.compile(r'^import[ \t]*\*[ \t]*as[ \t]+([A-Za-z_$][\w$]*)[ \t]+from[ \t]*"([^"]+)";?[ \t]*$', re.M)
_EXPORT = re.compile(
    r"^export[ \t]+((?:async[ \t]+)?function\b[ \t]*\*?[ \t]*|class[ \t]+|const[ \t]+)([A-Za-z_$][\w$]*)", re.MULTILINE
)
_LEFT_OVER = re.compile(r"^[ \t]*(import|export)\b.*$", re.MULTILINE)
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
_UNSAFE = re.compile(r"</script|<!--", re.IGNORECASE)


class InlineError(ValueError):
    """A module that the inliner cannot turn into part of a classic script (its file and line say where)."""


@dataclass(frozen=True)
class Module:
    """One module, ready to wrap: its name, the modules it imports (in order), its exported names and its body
    (the source with each import replaced by a line reading the names from the imported module's object, and
    ``export`` removed from each exported declaration; lines keep their numbers)."""

    name: str
    imports: tuple[str, ...]
    exports: tuple[str, ...]
    body: str


def _variable(name: str) -> str:
    """The variable holding module ``name``'s exports inside the script: ``qkv$heatmap`` for ``heatmap.js``."""
    return "qkv$" + name.removesuffix(".js")


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def parse_module(name: str, text: str) -> Module:
    """``text``, the source of module ``name``, parsed into a :class:`Module` (see the module's docstring)."""
    if not _NAME.fullmatch(name):
        raise InlineError(f"{name}: a module's name is lower-case letters, digits and _ ending in .js")
    unsafe = _UNSAFE.search(text)
    if unsafe:
        raise InlineError(f"{name}:{_line(text, unsafe.start())}: {unsafe.group()!r} would end the page's <script>")
    dynamic = re.search(r"\bimport\s*(\(|\.meta\b)", text)
    if dynamic:
        raise InlineError(f"{name}:{_line(text, dynamic.start())}: dynamic import() and import.meta cannot be inlined")
    imports: list[str] = []

    def named(match: re.Match[str]) -> str:
        pairs = []
        for item in (part.strip() for part in match.group(1).split(",")):
            if not item:
                continue
            original, _, alias = (piece.strip() for piece in item.partition(" as "))
            if not _IDENTIFIER.fullmatch(original) or not _IDENTIFIER.fullmatch(alias or original):
                raise InlineError(f"{name}:{_line(text, match.start())}: cannot read the import {item!r}")
            pairs.append(original if not alias or alias == original else f"{original}: {alias}")
        imports.append(_source(name, text, match))
        newlines = "\n" * match.group(0).count("\n")  # keep the lines' numbers
        return f"const {{ {', '.join(pairs)} }} = {_variable(imports[-1])};{newlines}"

    def whole(match: re.Match[str]) -> str:
        imports.append(_source(name, text, match, group=2))
        return f"const {match.group(1)} = {_variable(imports[-1])};"

    body = _IMPORT_ALL.sub(whole, _IMPORT.sub(named, text))
    exports = tuple(match.group(2) for match in _EXPORT.finditer(body))
    body = _EXPORT.sub(lambda match: match.group(1) + match.group(2), body)
    left = _LEFT_OVER.search(body)
    if left:
        raise InlineError(
            f"{name}:{_line(body, left.start())}: {left.group().strip()[:60]!r} cannot be inlined: import with "
            'import { a, b as c } from "./x.js" or import * as x from "./x.js"; export with '
            "export function|class|const NAME"
        )
    if len(set(exports)) != len(exports):
        raise InlineError(f"{name}: a name is exported twice")
    return Module(name, tuple(dict.fromkeys(imports)), exports, body)


def _source(name: str, text: str, match: re.Match[str], group: int = 2) -> str:
    """The module an import names, checked: one of this folder's, by file name."""
    source = match.group(group)
    if not (source.startswith("./") and _NAME.fullmatch(source[2:])):
        raise InlineError(f"{name}:{_line(text, match.start())}: imports {source!r}, not a module of this folder")
    return source[2:]


@cache
def package_module(name: str) -> Module:
    """Module ``name`` of ``qkv/web/static/``, parsed (once)."""
    if not _NAME.fullmatch(name):
        raise InlineError(f"{name}: a module's name is lower-case letters, digits and _ ending in .js")
    path = resources.files("qkv.web") / "static" / name
    if not path.is_file():
        raise InlineError(f"{name}: there is no such module in qkv/web/static/")
    return parse_module(name, path.read_text(encoding="utf-8"))


def module_order(entry: str, load: Callable[[str], Module] = package_module) -> tuple[str, ...]:
    """``entry`` and every module it imports, each after the modules it imports (``entry`` last); ``load``
    reads a module by name (the package's by default)."""
    order: list[str] = []
    path: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in path:
            raise InlineError(f"{name}: imports form a cycle: {' → '.join([*path, name])}")
        path.append(name)
        for dependency in load(name).imports:
            visit(dependency)
        path.pop()
        order.append(name)

    visit(entry)
    return tuple(order)


def inline_script(entry: str, *, then: str = "", load: Callable[[str], Module] = package_module) -> str:
    """The modules ``entry`` needs and ``entry`` itself (files of ``qkv/web/static/``; ``load`` reads another
    set) as one classic script.

    ``then`` is code run after them, inside the same function, where ``main`` is the entry's exports (the
    trace view passes ``main.setUpViews();``)."""
    parts = ["(function () {", '"use strict";']
    for name in module_order(entry, load):
        module = load(name)
        returned = ", ".join(f"{export}: {export}" for export in module.exports)
        parts.append(f'// -- {name}\nvar {_variable(name)} = (function () {{\n"use strict";\n{module.body.rstrip()}')
        parts.append(f"return {{ {returned} }};\n}}());")
    parts.append(f"var main = {_variable(entry)};")
    if then:
        parts.append(then)
    parts.append("}());\n")
    script = "\n".join(parts)
    unsafe = _UNSAFE.search(script)
    if unsafe:
        raise InlineError(f"{entry}: the script would hold {unsafe.group()!r}, which ends the page's <script>")
    return script
