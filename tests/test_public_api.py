"""The public surface: a sorted, complete __all__; every script shipped and loadable."""

from __future__ import annotations

import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import redisjobs
from redisjobs.scripts import NAMES, source

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_importable() -> None:
    assert redisjobs.__all__ == sorted(redisjobs.__all__)
    for name in redisjobs.__all__:
        assert hasattr(redisjobs, name), name


def test_every_script_is_package_data() -> None:
    shipped = {p.name for p in files("redisjobs.scripts").iterdir() if p.name.endswith(".lua")}
    assert shipped == {f"{n}.lua" for n in NAMES} | {"_lib.lua"}
    for name in NAMES:
        text = source(name)
        assert "local PREFIX = KEYS[1]" in text
        assert not source(name, embedded=True).startswith("#!")


def test_py_typed_is_shipped() -> None:
    assert files("redisjobs").joinpath("py.typed").is_file()


def test_benchmark_smoke_run() -> None:
    """The benchmark runs end to end at tiny sizes, so it cannot rot (no timing is asserted)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "| Metric |" in out.stdout and "jobs/s" in out.stdout
