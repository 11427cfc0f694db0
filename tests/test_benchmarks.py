"""The side-by-side benchmark's runner, at smoke size, for redisjobs only, so it cannot rot.

Only redisjobs runs: no peer venv is built, nothing is downloaded, and the adapter uses this
interpreter. Nothing is asserted about the numbers (the machine may be busy), only that every
workload produced one and the report has its shape.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a real redis-server")
def test_peers_runner_smoke_redisjobs_only(tmp_path: Path) -> None:
    out, raw = tmp_path / "RESULTS.md", tmp_path / "raw.json"
    runner = ROOT / "benchmarks" / "peers" / "run.py"
    args = ["--smoke", "--libs", "redisjobs", "--out", str(out), "--json", str(raw)]
    proc = subprocess.run(
        [sys.executable, str(runner), *args],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(raw.read_text())["runs"]
    assert [r["lib"] for r in runs] == ["redisjobs"]
    assert runs[0]["error"] is None
    assert runs[0]["errors"] == {}, runs[0]["errors"]
    for key in ("enqueue_single", "enqueue_bulk", "process_1", "process_4", "latency_p99"):
        assert runs[0]["values"][key] > 0, key
    report = out.read_text()
    assert "Smoke run" in report
    assert "| Workload | Unit | redisjobs | redisjobs ÷ best peer |" in report
    assert "n/a[^" not in report  # no footnoted gap for redisjobs
    assert not (ROOT / "benchmarks" / ".venvs" / "redisjobs").exists()
