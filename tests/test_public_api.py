"""The public surface: a sorted, complete __all__; every script shipped and loadable; what
importing loads, what each extra brings, one version, the license."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

import redisjobs
from redisjobs.scripts import NAMES

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_importable() -> None:
    assert redisjobs.__all__ == sorted(redisjobs.__all__)
    for name in redisjobs.__all__:
        assert hasattr(redisjobs, name), name


def test_every_script_is_package_data() -> None:
    shipped = {p.name for p in files("redisjobs.scripts").iterdir() if p.name.endswith(".lua")}
    assert shipped == {f"{n}.lua" for n in NAMES} | {"_lib.lua"}


def test_py_typed_is_shipped() -> None:
    assert files("redisjobs").joinpath("py.typed").is_file()


OPTIONAL = {"fakeredis", "lupa", "httpx", "httpcore", "anyio", "asyncssh"}
"""Packages a producer of a real Redis never needs loaded."""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (so nothing this test session imported counts)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def loaded_after(code: str) -> set[str]:
    """The top-level packages of sys.modules once `code` ran in a fresh interpreter."""
    done = run_python(f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))")
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in done.stdout.split()}


@pytest.mark.parametrize(
    "module",
    ["redisjobs", "redisjobs.cli", "redisjobs.engine", "redisjobs.executors", "redisjobs.sync"],
)
def test_importing_loads_no_backend_or_executor_package(module: str) -> None:
    assert loaded_after(f"import {module}") & OPTIONAL == set()


def test_a_memory_url_loads_the_embedded_backend_on_first_use() -> None:
    loaded = loaded_after(
        "import asyncio, sys\n"
        "from redisjobs import Client\n"
        "client = Client('memory://lazy')\n"
        "assert 'fakeredis' not in sys.modules, 'loaded before first use'\n"
        "async def main():\n"
        "    async with client:\n"
        "        job = await client.enqueue('greet', {'name': 'x'})\n"
        "        assert (await client.get(job.id)).status == 'pending'\n"
        "asyncio.run(main())"
    )
    assert {"fakeredis", "lupa"} <= loaded
    assert loaded & {"httpx", "asyncssh"} == set()


@pytest.mark.parametrize(
    ("name", "package", "extra"),
    [("HTTPExecutor", "httpx", "http"), ("SSHExecutor", "asyncssh", "ssh")],
)
def test_an_executor_without_its_extra_names_the_pip_command(
    name: str, package: str, extra: str
) -> None:
    done = run_python(
        f"import sys\nsys.modules[{package!r}] = None  # as if it were not installed\n"
        "from redisjobs import MissingExtra\n"
        "try:\n"
        f"    from redisjobs.executors import {name}\n"
        "except MissingExtra as exc:\n"
        f"    assert isinstance(exc, ImportError) and exc.name == {package!r}, exc.name\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"the {extra} executor needs {package}, which is not installed: "
        f"pip install 'redisjobs[{extra}]'\n"
    )


def test_the_dependencies_and_the_extras_the_readme_lists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[<>=;\s]", dep)[0] for dep in project["dependencies"]}
    # a producer's needs, the embedded backend's, and the cron parser of schedules
    assert names == {"redis", "msgpack", "fakeredis", "cronsim"}
    install = (ROOT / "README.md").read_text().split("## Install\n")[1].split("\n## ")[0]
    for extra in set(project["optional-dependencies"]) - {"test"}:
        assert f"redisjobs[{extra}]" in install, extra


def test_the_version_is_written_once_and_the_license_is_shipped() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "redisjobs/__init__.py"
    assert pyproject["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) ")
