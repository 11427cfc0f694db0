"""The task API's static types, as mypy (strict) sees them: what must pass, what must fail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent / "typing"


def _mypy(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--show-error-codes", str(path)],
        capture_output=True,
        text=True,
        cwd=HERE.parent.parent,
        timeout=300,
    )
    return done.stdout + done.stderr


def test_typed_uses_pass() -> None:
    out = _mypy(HERE / "tasks_ok.py")
    assert "Success" in out, out


def test_wrong_calls_fail_on_exactly_the_marked_lines() -> None:
    path = HERE / "tasks_bad.py"
    expected = {
        n for n, line in enumerate(path.read_text().splitlines(), 1) if "  # error:" in line
    }
    out = _mypy(path)
    got = {int(m) for m in re.findall(r"tasks_bad\.py:(\d+): error", out)}
    assert expected and got == expected, out
