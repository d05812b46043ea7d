"""The package: a cheap import, a public API that resolves, and layers that only import downwards."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import qkv

SOURCE = Path(qkv.__file__).parent


@pytest.mark.parametrize("module", ["qkv", "qkv.errors", "qkv.data", "qkv.data.registry"])
def test_importing_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("name", qkv.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(qkv, name) is not None


def test_dir_lists_the_public_api() -> None:
    assert set(qkv.__all__) <= set(dir(qkv))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'attention_is_all_you_need'"):
        qkv.attention_is_all_you_need  # noqa: B018


def test_the_lazy_names_are_the_objects_of_their_modules() -> None:
    from qkv.attention import attend
    from qkv.model import Transformer

    assert qkv.attend is attend and qkv.Transformer is Transformer


def test_shape_and_config_errors_are_value_errors() -> None:
    assert issubclass(qkv.ShapeError, ValueError) and issubclass(qkv.ConfigError, ValueError)


def module_exists(name: str) -> bool:
    path = SOURCE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def qkv_imports(source: str, package: str) -> set[str]:
    """The qkv modules some source in ``package`` imports, anywhere in it, with relative imports resolved.

    ``from qkv.x import y`` names ``qkv.x.y`` when that is a module, else ``qkv.x`` (y is a name in it).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if module_exists(f"{base}.{alias.name}") else base)
    return {name for name in found if name == "qkv" or name.startswith("qkv.")}


def test_the_import_scanner_resolves_relative_and_from_imports() -> None:
    source = "from . import masks\nfrom ..model import config\nimport qkv.cli.main\nfrom qkv import __version__\n"
    expected = {"qkv.attention.masks", "qkv.model.config", "qkv.cli.main", "qkv"}
    assert qkv_imports(source, "qkv.attention") == expected


# Each layer and the qkv modules it may import: the attention core sits below the model, the CLI above both.
# Importing the top-level façade ``qkv`` is not allowed either: it lazily reaches every layer.
ALLOWED = {
    "_lazy": (),  # the lazy façade every package's __init__ uses (EVERYWHERE): it imports no other qkv module
    "errors": ("qkv.errors",),
    "files": ("qkv.files",),
    "shapes": ("qkv.shapes", "qkv.errors"),
    # Plain data several layers share (the trace, its metrics, the model registry): below all of them.
    "data": ("qkv.data", "qkv.errors", "qkv.shapes", "qkv.files"),
    "attention": ("qkv.attention", "qkv.shapes", "qkv.errors"),
    "model": ("qkv.model", "qkv.attention", "qkv.shapes", "qkv.errors"),
    "text": ("qkv.text", "qkv.data", "qkv.errors", "qkv.files"),  # data: the pinned corpus package
    "generation": ("qkv.generation", "qkv.model", "qkv.attention", "qkv.shapes", "qkv.errors"),
    "inspection": (
        "qkv.inspection",
        "qkv.generation",  # generate_attending wraps generation's decode step
        "qkv.model",
        "qkv.attention",
        "qkv.text",
        "qkv.data",
        "qkv.shapes",
        "qkv.errors",
        "qkv.files",
    ),
    # The front end's shared files and their inliner: data, importing nothing of qkv; pages are written above it.
    "web": ("qkv.web",),
    "render": ("qkv.render", "qkv.web", "qkv.data", "qkv.shapes", "qkv.errors", "qkv.files"),
    "training": (
        "qkv.training",
        "qkv.inspection",  # qkv train --watch traces a text at each validation (training/watch.py)
        "qkv.model",
        "qkv.attention",
        "qkv.text",
        "qkv.data",
        "qkv.shapes",
        "qkv.errors",
        "qkv.files",
        "qkv._version",
    ),
    "pretrained": (
        "qkv.pretrained",
        "qkv.training.checkpoint",  # a run directory is read by the module that writes it (read_model)
        "qkv.model",
        "qkv.attention",
        "qkv.generation",
        "qkv.text",
        "qkv.data",
        "qkv.shapes",
        "qkv.errors",
    ),
    "article": ("qkv.article", "qkv.attention", "qkv.data", "qkv.shapes", "qkv.errors"),
    # Export reads a run (training's checkpoints) and writes it in open formats that the pretrained loaders read.
    "export": (
        "qkv.export",
        "qkv.model",
        "qkv.text",
        "qkv.training",
        "qkv.pretrained",
        "qkv.shapes",
        "qkv.errors",
        "qkv.files",
        "qkv.data",
    ),
    # The explorer's server sits just below the CLI: it serves every layer's work to the page.
    "serve": (
        "qkv.serve",
        "qkv.inspection",
        "qkv.render",
        "qkv.article",
        "qkv.training",
        "qkv.generation",
        "qkv.pretrained",
        "qkv.model",
        "qkv.attention",
        "qkv.text",
        "qkv.shapes",
        "qkv.errors",
        "qkv.files",
        "qkv.data",
        "qkv._version",
        "qkv.web",
    ),
}


EVERYWHERE = ("qkv._lazy",)


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_lower_layers_never_import_higher_ones(layer: str) -> None:
    folder = SOURCE / layer
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [SOURCE / f"{layer}.py"]
    assert files
    for path in files:
        module = ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts)
        package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for name in qkv_imports(path.read_text(encoding="utf-8"), package):
            allowed = name in EVERYWHERE or any(name == a or name.startswith(a + ".") for a in ALLOWED[layer])
            assert allowed, f"{path.relative_to(SOURCE)} imports {name}"
