"""The house rule of the read model: code outside the core reads and writes Redis only through
Client methods, and never spells a key.

Outside the core are the command line, the dashboard, the metrics, the manager and the Pyjobkit
face.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "redisjobs"
OUTSIDE = [
    *sorted((PACKAGE / "cli").glob("*.py")),
    *sorted((PACKAGE / "dashboard").glob("*.py")),
    PACKAGE / "metrics.py",
    PACKAGE / "manager.py",
    PACKAGE / "engine.py",
    *sorted((PACKAGE / "pyjobkit").rglob("*.py")),
]
KEY_NAMES = {"QueueKeys", "Registry", "REGISTRY", "CLUSTER_REGISTRY", "PREFIX", "GROUP"}


def _imports_keys(node: ast.ImportFrom | ast.Import, package: str) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name == "redisjobs.keys" for alias in node.names)
    module = node.module or ""
    if node.level:  # relative: from the package, up level - 1 packages
        base = package.split(".")
        module = ".".join([*base[: len(base) - node.level + 1], module]).strip(".")
    named = {alias.name for alias in node.names}
    return module == "redisjobs.keys" or (module == "redisjobs" and "keys" in named)


def breaches(source: str, package: str) -> list[str]:
    """What in `source` (a module of `package`) reaches past the Client: a ``.redis`` of
    anything but the parsed arguments (whose ``redis`` is a URL), a ``client.keys(...)``, a
    key name, or an import from redisjobs.keys."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom) and _imports_keys(node, package):
            found.append(f"line {node.lineno}: imports redisjobs.keys")
        elif isinstance(node, ast.Attribute) and node.attr == "redis":
            if not (isinstance(node.value, ast.Name) and node.value.id == "args"):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and node.attr == "keys":
            if ast.unparse(node.value).endswith("client"):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Name) and node.id in KEY_NAMES:
            found.append(f"line {node.lineno}: {node.id}")
    return found


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_outside_the_core_reads_through_the_client(path: Path) -> None:
    package = ".".join(["redisjobs", *path.parent.relative_to(PACKAGE).parts])
    assert breaches(path.read_text(), package) == []


def test_the_check_sees_each_kind_of_breach() -> None:
    bad = """
from ..keys import QueueKeys
import redisjobs.keys
from redisjobs import keys
async def f(client, args):
    url = args.redis
    await client.redis.ping()
    await self.client.redis.time()
    name = client.keys("q").log
    log = QueueKeys("q").log
"""
    assert sorted(breaches(bad, "redisjobs.cli")) == [
        "line 10: QueueKeys",
        "line 2: imports redisjobs.keys",
        "line 3: imports redisjobs.keys",
        "line 4: imports redisjobs.keys",
        "line 7: client.redis",
        "line 8: self.client.redis",
        "line 9: client.keys",
    ]
    assert breaches("from ..names import check_job_id\nx = args.redis\n", "redisjobs.cli") == []
