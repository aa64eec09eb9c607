"""The import graph reads as the path: each package imports only the layers at or below its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vidconv_edge"

# Layer of each top-level module or package of vidconv_edge, bottom to top. A module may import its own layer and
# the ones below it, never one above. The base layer: the top-level utilities, the package root and its assets.
BASE = ("__init__", "assets", "checkpoint", "errors", "io", "naming", "pictures", "progress", "spec", "tables")
ORDER: tuple[tuple[str, ...], ...] = (
    BASE,
    ("data",),
    ("models",),
    ("train",),
    ("quant",),
    ("export",),
    ("hw",),
    ("stream",),
    ("apps", "demo"),
    ("commands",),
    ("cli",),
)
LAYER = {name: rank for rank, names in enumerate(ORDER) for name in names}


def _top(module: str) -> str:
    """``vidconv_edge.quant.model`` -> ``quant``; the package root -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: list[str]):
    """(line, imported module) for every vidconv_edge import, at any depth; ``if TYPE_CHECKING:`` blocks skipped."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base == "vidconv_edge" and not node.level:  # ``from vidconv_edge import x``: x may be a subpackage
                for alias in node.names:
                    yield node.lineno, f"vidconv_edge.{alias.name}" if alias.name in LAYER else base
            else:
                yield node.lineno, base
        stack.extend(ast.iter_child_nodes(node))


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _violations(path: Path, source: str | None = None) -> list[str]:
    """The imports of ``path`` (or of ``source`` as if it were at ``path``) from a layer above its own."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    own = _top(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    tree = ast.parse(source if source is not None else path.read_text(), str(path))
    out = []
    for line, target in sorted(_imports(tree, parts[:-1])):
        if target != "vidconv_edge" and not target.startswith("vidconv_edge."):
            continue
        other = _top(target)
        if LAYER[other] > LAYER[own]:
            out.append(f"{rel}.py:{line} ({own}) imports {target} ({other})")
    return out


def test_every_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _modules()}
    assert tops <= set(LAYER), f"modules without a layer in ORDER: {sorted(tops - set(LAYER))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_above_its_layer(path: Path):
    assert _violations(path) == []


def test_a_back_edge_is_caught():
    """The check itself: imports inside functions and relative ones are seen; type-only ones are not."""
    probe = PACKAGE / "train" / "probe.py"
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vidconv_edge.stream import engine\n"
        "from ..quant import model\n"
        "def f():\n    from vidconv_edge.hw import flow\n"
        "from vidconv_edge import errors, export\n"
    )
    assert _violations(probe, source) == [
        "vidconv_edge/train/probe.py:4 (train) imports vidconv_edge.quant (quant)",
        "vidconv_edge/train/probe.py:6 (train) imports vidconv_edge.hw (hw)",
        "vidconv_edge/train/probe.py:7 (train) imports vidconv_edge.export (export)",
    ]
