"""The inliner: every shared module, inlined, is a classic script exporting what the module itself exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import qkv.web
from qkv.web import InlineError, inline_script, module_order
from qkv.web.inline import Module, parse_module

STATIC = Path(qkv.web.__file__).parent / "static"
MODULES = sorted(path.name for path in STATIC.glob("*.js"))


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the inlined modules are run with node (apt-get install nodejs)")
    return node


# What a module exports, as node sees it: the name, its type, and its value when that is plain data.
DESCRIBE = """
const describe = (ns) => Object.keys(ns).sort().map((name) => {
  const value = ns[name];
  const data = typeof value === "function" ? null : Array.from(value.length === undefined ? [value] : value);
  return [name, typeof value, data];
});
"""


def exports_as_a_module(node: str, name: str) -> list[list[object]]:
    """The module loaded by node as an ES module (import resolves the other files of the folder)."""
    url = json.dumps((STATIC / name).as_uri())
    code = f"{DESCRIBE}import({url}).then((ns) => console.log(JSON.stringify(describe(ns))));"
    result = subprocess.run([node, "-e", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def exports_inlined(node: str, script: str) -> list[list[object]]:
    """The inlined script run as a classic script (vm.Script: no import, no export allowed)."""
    code = (
        "const vm = require('vm'); const context = {}; vm.createContext(context);"
        f"new vm.Script(require('fs').readFileSync(0, 'utf8')).runInContext(context);{DESCRIBE}"
        "console.log(JSON.stringify(describe(context.exported)));"
    )
    result = subprocess.run([node, "-e", code], input=script, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_there_are_modules_to_inline() -> None:
    assert {"viridis.js", "heatmap.js", "grid.js", "lines.js", "dom.js", "words.js", "trace_view.js"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_inlined_exports_what_it_exports_as_a_module(name: str) -> None:
    node = node_or_skip()
    script = inline_script(name, then="globalThis.exported = main;")
    assert not any(line.lstrip().startswith(("import ", "export ")) for line in script.splitlines())
    assert exports_inlined(node, script) == exports_as_a_module(node, name)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_parses_as_a_classic_script_on_its_own(name: str, tmp_path: Path) -> None:
    node = node_or_skip()
    path = tmp_path / "inlined.js"
    path.write_text(inline_script(name), encoding="utf-8")
    result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_modules_come_after_what_they_import_and_each_once() -> None:
    order = module_order("grid.js")
    assert order[-1] == "grid.js" and len(order) == len(set(order))
    assert order.index("viridis.js") < order.index("heatmap.js") < order.index("grid.js")
    assert order.index("dom.js") < order.index("grid.js")


# -- the rules, on modules written for the test ----------------------------------------------------------------


def loader(sources: dict[str, str]) -> Callable[[str], Module]:
    """Modules read from ``sources`` instead of the package."""
    return lambda name: parse_module(name, sources[name])


def test_imports_become_reads_of_the_imported_modules_exports_on_the_same_lines() -> None:
    source = (
        'import {\n  a,\n  b as c,\n} from "./one.js";\nimport * as two from "./two.js";\nexport const d = a + c;\n'
    )
    module = parse_module("three.js", source)
    assert module.imports == ("one.js", "two.js") and module.exports == ("d",)
    assert module.body.splitlines()[0] == "const { a, b: c } = qkv$one;"
    assert module.body.splitlines()[4] == "const two = qkv$two;"
    assert module.body.splitlines()[5] == "const d = a + c;"  # line 6 is still line 6


def test_a_script_runs_the_modules_in_order(tmp_path: Path) -> None:
    node = node_or_skip()
    sources = {
        "one.js": "export const a = 2;\nexport function twice(x) {\n  return 2 * x;\n}\n",
        "two.js": (
            'import { a, twice as double } from "./one.js";\n'
            "export class Box {\n  get v() {\n    return double(a);\n  }\n}\n"
        ),
        "three.js": (
            'import * as one from "./one.js";\nimport { Box } from "./two.js";\nexport const v = new Box().v + one.a;\n'
        ),
    }
    script = inline_script("three.js", then="globalThis.v = main.v;", load=loader(sources))
    code = (
        "const vm = require('vm'); const c = {}; vm.createContext(c);"
        "vm.runInContext(require('fs').readFileSync(0, 'utf8'), c); console.log(c.v);"
    )
    result = subprocess.run([node, "-e", code], input=script, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6"


def test_top_level_names_of_two_modules_do_not_meet() -> None:
    sources = {
        "one.js": "const x = 1;\nexport const a = x;\n",
        "two.js": 'import { a } from "./one.js";\nconst x = 2;\nexport const b = a + x;\n',
    }
    script = inline_script("two.js", load=loader(sources))
    assert script.count("const x") == 2 and script.count("(function () {") == 3  # the script's, and one per module


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("export default function f() {}\n", r"m\.js:1: 'export default function f\(\) \{\}' cannot be inlined"),
        ("const a = 1;\nexport let b = 2;\n", r"m\.js:2: 'export let b = 2;' cannot be inlined"),
        ("const a = 1;\nexport { a };\n", r"m\.js:2: 'export \{ a \};' cannot be inlined"),
        ('import "./x.js";\n', r"m\.js:1: 'import \"\./x\.js\";' cannot be inlined"),
        ('const m = import("./x.js");\n', r"m\.js:1: dynamic import\(\)"),
        ('import { a } from "../serve/x.js";\n', r"m\.js:1: imports '\.\./serve/x\.js', not a module of this folder"),
        (
            'import { a } from "https://cdn.example/x.js";\n',
            r"m\.js:1: imports 'https://cdn\.example/x\.js', not a module of this folder",
        ),
        ('const tag = "</script>";\n', r"m\.js:1: '</script' would end the page's <script>"),
    ],
)
def test_what_cannot_be_inlined_is_refused_with_its_line(source: str, message: str) -> None:
    with pytest.raises(InlineError, match=message):
        parse_module("m.js", source)


def test_a_cycle_of_imports_is_refused() -> None:
    sources = {
        "a.js": 'import { b } from "./b.js";\nexport const a = 1;\n',
        "b.js": 'import { a } from "./a.js";\nexport const b = 2;\n',
    }
    with pytest.raises(InlineError, match=r"a\.js: imports form a cycle: a\.js → b\.js → a\.js"):
        module_order("a.js", loader(sources))


def test_an_unknown_module_is_refused() -> None:
    with pytest.raises(InlineError, match=r"nothing\.js: there is no such module in qkv/web/static/"):
        inline_script("nothing.js")
    assert isinstance(parse_module("x.js", ""), Module)
