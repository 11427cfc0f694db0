"""Pyjobkit's command lines on the face, run as real processes: the worker
(``redisjobs pyjobkit`` and ``python -m redisjobs.pyjobkit``), prune and simulate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from redisjobs.pyjobkit import Engine
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.testing import RedisServer, unique_queue

pytestmark = pytest.mark.timeout(60)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=45, cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip


async def test_the_worker_command_drains_a_queue(redis_server: RedisServer, tmp_path: Path) -> None:
    queue = unique_queue()
    backend = RedisBackend(redis_server.url, queue=queue)
    async with Engine(backend=backend) as engine:
        job = await engine.enqueue(kind="subprocess", payload={"cmd": ["echo", "from the cli"]})
        other = await engine.enqueue(kind="http", payload={"url": "http://127.0.0.1:9/"})
        (tmp_path / ".pyjobkit.toml").write_text(f'[pyjobkit]\ndsn = "{redis_server.url}"\n')
        flags = (
            "--once",
            "--log-format",
            "json",
            "--retry-policy",
            "fixed:1",
            "--rate-limit",
            "a:5",
            "--kind",
            "subprocess",
        )
        done = run("redisjobs", "pyjobkit", "--queue", queue, *flags, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        record = await engine.get(job)
        assert record["status"] == "success" and record["result"]["returncode"] == 0
        assert "from the cli" in record["result"]["stdout"]
        assert (await engine.get(other))["status"] == "queued"  # --kind kept it out
        lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
        assert lines and all("level" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--dsn", "postgresql+asyncpg://u@db/jobs"), "use a redis://"),
        (("--dsn", "memory://x", "--retry-policy", "bogus"), "unknown retry policy"),
        ((), "a backend URL is required"),
    ],
)
def test_the_worker_command_refuses_what_it_cannot_run(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    done = run("redisjobs.pyjobkit", *args, "--once", cwd=tmp_path)
    assert done.returncode == 1 and message in done.stderr


def test_simulate_runs_a_jobs_file(tmp_path: Path) -> None:
    shadow = {"kind": "subprocess", "payload": {"cmd": ["false"]}, "shadow": True}
    jobs = {"jobs": [{"kind": "subprocess", "payload": {"cmd": "echo hi"}}, shadow]}
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    done = run("redisjobs", "pyjobkit", "simulate", str(path), "--timeout", "20")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["summary"]
    assert len(summary["success"]) == 2 and summary["success"][0]["result"]["stdout"] == "hi\n"
    path.write_text(json.dumps({"jobs": [{"payload": {}}]}))
    assert run("redisjobs", "pyjobkit", "simulate", str(path)).returncode == 2
    assert run("redisjobs", "pyjobkit", "simulate", str(tmp_path / "none.json")).returncode == 2


async def test_prune_deletes_finished_jobs(redis_server: RedisServer, tmp_path: Path) -> None:
    queue = unique_queue()
    backend = RedisBackend(redis_server.url, queue=queue)
    async with Engine(backend=backend) as engine:
        await engine.enqueue(kind="noop", payload={})
        job = await engine.enqueue(kind="noop", payload={})
        [row] = await backend.claim_batch("w", limit=1)  # the first one
        await backend.succeed(row["id"], {"ok": True})
        done = run("redisjobs", "pyjobkit", "prune", "--dsn", redis_server.url, "--queue", queue,
                   "--statuses", "success,failed")  # fmt: skip
        assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
        assert await backend.count() == 1 and (await backend.get(job))["status"] == "queued"
    refused = run("redisjobs", "pyjobkit", "prune", "--statuses", "done", cwd=tmp_path)
    assert refused.returncode == 2 and "unknown status" in refused.stderr
    assert "DSN required" in run("redisjobs", "pyjobkit", "prune", cwd=tmp_path).stderr


def test_simulate_reads_yaml_and_names_a_bad_executor(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs:\n  - kind: subprocess\n    payload: {cmd: echo yaml}\n")
    done = run("redisjobs", "pyjobkit", "simulate", str(path), "--timeout", "20")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["success"][0]["result"]["stdout"] == "yaml\n"
    path.write_text("jobs: {kind: subprocess}\n")
    bad = run("redisjobs", "pyjobkit", "simulate", str(path))
    assert bad.returncode == 2 and "'jobs' must be a list" in bad.stderr
    path.write_text("jobs: []\n")
    wrong = run("redisjobs", "pyjobkit", "simulate", str(path), "--executor", "os:getcwd")
    assert wrong.returncode == 2 and "not an executor" in wrong.stderr
