"""The benchmark's runner, at smoke size, for redisjobs only, so it cannot rot.

Only redisjobs runs: no peer venv is built (a peer whose venv cannot be made takes the real path
of a failed peer), nothing is downloaded, and the adapter uses this interpreter. Nothing is
asserted about the numbers (the machine may be busy), only that every workload produced one and
the report has its shape: the side-by-side form (``--libs``) and the redisjobs-alone form
(``--only``), which are the same driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "benchmarks" / "peers" / "run.py"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PEERS = ROOT / "benchmarks" / "peers"
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    """``benchmarks/peers/run.py`` with `args`, in this interpreter, from the repository root."""
    return run_script(RUNNER, *args)


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`script` with `args`, in this interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_redis
def test_peers_runner_smoke_with_a_peer_that_cannot_run(tmp_path: Path) -> None:
    """Side by side: redisjobs and the floor measured, arq's venv fails to build (``--python
    /bin/false``)."""
    out, raw = tmp_path / "RESULTS.md", tmp_path / "raw.json"
    args = ["--smoke", "--libs", "redisjobs,floor,arq", "--out", str(out), "--json", str(raw)]
    proc = run_benchmark(*args, "--venvs", str(tmp_path / "venvs"), "--python", "/bin/false")
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(raw.read_text())["runs"]
    assert [r["lib"] for r in runs] == ["redisjobs", "floor"]  # arq never got to run
    keys = ("enqueue_single", "enqueue_bulk", "enqueue_sync", "enqueue_sync_threads")
    for run in runs:
        assert run["error"] is None
        assert run["errors"] == {}, run["errors"]
        for key in (*keys, "process_1", "process_4", "latency_p99", "cmds_total"):
            assert run["values"][key] > 0, key
    report = out.read_text()
    assert "Smoke run" in report
    assert "# redisjobs and its Python peers, side by side" in report
    head = "| Workload | Unit | redisjobs | floor | arq | redisjobs ÷ best peer | "
    assert head + "redisjobs ÷ floor |" in report
    rows = [line.split(" | ") for line in report.splitlines() if "jobs/s ↑" in line]
    assert rows and all(not row[2].startswith("n/a") for row in rows)  # redisjobs: no gap
    assert all(row[4].startswith("n/a[^") for row in rows)  # arq: footnoted
    assert all(row[5] == "n/a" and row[6].endswith("\u00d7 |") for row in rows)  # a floor only
    assert "| Enqueue one by one, sync API (200) | jobs/s ↑ |" in report
    assert "| Enqueue, 32 threads, sync API (200) | jobs/s ↑ |" in report
    assert "arq: venv setup failed" in report
    assert not (ROOT / "benchmarks" / ".venvs" / "redisjobs").exists()


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_redis
def test_redisjobs_alone_is_the_same_driver_with_its_own_sizes(tmp_path: Path) -> None:
    """``--only redisjobs`` prints its table, commands by name, and leaves RESULTS.md alone."""
    raw = tmp_path / "raw.json"
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    proc = run_benchmark("--only", "redisjobs", "--smoke", "--jobs", "150", "--json", str(raw))
    assert proc.returncode == 0, proc.stderr
    assert (RESULTS.read_bytes() if RESULTS.exists() else None) == before
    data = json.loads(raw.read_text())
    assert json.loads(data["sizes"])["jobs"] == 150
    values = data["runs"][0]["values"]
    for key in ("enqueue_single", "enqueue_bulk", "process_1", "cmds_total", "memory"):
        assert values[key] > 0, key
    assert data["runs"][0]["commands"]["process"]["fcall"] > 0
    text = proc.stdout
    assert text.startswith("# redisjobs\n")
    assert "| Workload | Unit | redisjobs |\n" in text  # no ratio column without peers
    assert "Processing 150 pre-filled no-op jobs, 1 worker process" in text
    assert "## Redis commands per job" in text and "| process | " in text


def test_only_and_libs_exclude_each_other() -> None:
    proc = run_benchmark("--only", "redisjobs", "--libs", "arq")
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr


SYNC_ROWS = """
import json, sys
from harness import Adapter
from harness.probes import run
from harness.sizes import SMOKE
from harness.workloads import drive
from adapters.redisjobs import RedisjobsAdapter

class AsyncOnly(RedisjobsAdapter):
    enqueue_sync = Adapter.enqueue_sync  # as a library whose producer is async only

adapter = AsyncOnly() if sys.argv[2] == "async-only" else RedisjobsAdapter()
only = {"enqueue sync", "enqueue sync threads"}
ctx = run(drive(adapter, "adapters.redisjobs", sys.argv[1], SMOKE, only))
print(json.dumps({"values": ctx.values, "errors": ctx.errors}))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("producer", ["sync", "async-only"])
def test_sync_api_rows_measure_a_sync_producer_and_footnote_a_library_without_one(
    redis_url: str, producer: str
) -> None:
    """The sync rows call the adapter's ``enqueue_sync`` (redisjobs: ``task.enqueue_sync()``,
    one thread and 32); an adapter without one is Unsupported there, with the reason."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (PEERS, PEERS.parent, ROOT)))}
    proc = subprocess.run(
        [sys.executable, "-c", SYNC_ROWS, redis_url, producer],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=PEERS,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    keys = ["enqueue_sync", "enqueue_sync_threads"]
    if producer == "sync":
        assert all(out["values"][k] > 0 and k not in out["errors"] for k in keys)
    else:
        assert all(k not in out["values"] for k in keys)
        reason = "redisjobs has no synchronous enqueue API (its enqueue is async)"
        assert all(out["errors"][k] == reason for k in keys)


@needs_redis
@pytest.mark.timeout(180)
def test_enqueue_one_benchmark_smoke() -> None:
    """``benchmarks/enqueue_one.py`` at smoke size: every case measured, jobs/s and CPU µs each."""
    script = ROOT / "benchmarks" / "enqueue_one.py"
    proc = run_script(script, "--jobs", "64", "--runs", "1", "--lanes", "4")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    names = ["async uvloop 1", "async asyncio 1", "async uvloop 4", "async asyncio 4"]
    assert [line[:20].strip() for line in lines] == [*names, "sync 1", "sync 4 threads"]
    assert all("jobs/s" in line and "CPU µs/job" in line for line in lines)


@needs_redis
@pytest.mark.timeout(180)
def test_flow_steps_benchmark_smoke() -> None:
    """``benchmarks/flow_steps.py`` at smoke size: each case's commands per job, split by
    script, and both hand-over rows, with a number in every cell."""
    script = ROOT / "benchmarks" / "flow_steps.py"
    proc = run_script(script, "--jobs", "40", "--chains", "5")
    assert proc.returncode == 0, proc.stderr
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:]
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| case") and "hand-overs" not in line
    }
    cases = ["plain", "chain of 4", "chord", "chain of 4, 2 queues"]
    assert list(rows) == [*cases, "one queue", "steps alternating between 2 queues"]
    for case in cases:
        enqueue, run, total, script_calls, scripts = rows[case]
        assert float(enqueue) > 0 and float(run) > 0 and float(script_calls) > 0
        assert float(total) == pytest.approx(float(enqueue) + float(run), abs=0.02)
        assert scripts.startswith("enqueue ") and " complete " in f" {scripts}", scripts
    assert (
        "link " in rows["chain of 4, 2 queues"][4] and "resolve " in rows["chain of 4, 2 queues"][4]
    )
    assert rows["one queue"][0] == "15"  # 5 chains of 4: 3 hand-overs each


@needs_redis
@pytest.mark.timeout(180)
def test_partitions_benchmark_smoke() -> None:
    """``benchmarks/partitions.py`` at smoke size: one slot's Redis work on one master, a
    partitioned queue's shared by several."""
    script = ROOT / "benchmarks" / "partitions.py"
    proc = run_script(script, "--jobs", "300", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    one, spread = proc.stdout.splitlines()
    assert one.startswith("one slot") and "on 1 master(s)" in one, one
    assert spread.startswith("6 partitions") and "on 1 master(s)" not in spread, spread
    assert all("jobs/s" in line and "the busiest master" in line for line in (one, spread))
