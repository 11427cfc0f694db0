"""Small modules, short functions: each module of the package stays within 400 lines and each
function within 50, so that a reader sees one responsibility at a time.

Declarations are the exception: a table that only lists (the OpenAPI paths, an argparse
subcommand's options) reads top to bottom however long it is. Each is named here with why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted((ROOT / "redisjobs").rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
DECLARATIONS = {
    "redisjobs/dashboard/openapi.py:_paths": "the OpenAPI paths object, one literal",
    "redisjobs/dashboard/openapi.py:_cleaning": "the cleaning paths, one literal",
    "redisjobs/dashboard/openapi_schemas.py:schemas": "the OpenAPI component schemas, one literal",
    "redisjobs/app.py:task": "the task decorator: 20 keyword options, each typed and documented",
}


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    return [
        (node.name, node.end_lineno - node.lineno + 1)  # type: ignore[operator]
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_is_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_functions_are_short(path: Path) -> None:
    long = [
        f"{name} ({lines} lines)"
        for name, lines in _functions(path)
        if lines > MAX_FUNCTION_LINES and f"{_name(path)}:{name}" not in DECLARATIONS
    ]
    assert long == []


def test_every_declaration_named_is_still_there() -> None:
    for where in DECLARATIONS:
        module, name = where.split(":")
        assert name in dict(_functions(ROOT / module)), f"{where} is gone: drop it from the list"
