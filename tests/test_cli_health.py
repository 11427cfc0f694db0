"""Health probes: ``worker --health-port`` over real HTTP, ``redisjobs health``, JSON logs."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redisjobs.testing import RedisServer, closed_port, free_port, unique_queue

from .test_cli import ENV, ROOT, cli, command, one_line_error, until

pytestmark = pytest.mark.timeout(60)


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET `path` of the health server: (status, JSON body); (0, {}) when nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}
    except OSError:
        return 0, {}


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed afterwards if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def worker(
    procs: list[subprocess.Popen[str]], tmp_path: Path, url: str, *args: str
) -> subprocess.Popen[str]:
    """Start ``redisjobs worker`` on `url` with `args`, stderr to a file of `tmp_path`."""
    with open(tmp_path / f"worker-{len(procs)}.err", "w") as err:
        proc = subprocess.Popen(
            command("worker", "--redis", url, "--poll-interval", "0.1", *args),
            cwd=ROOT,
            env=ENV,
            stderr=err,
            text=True,
        )
    procs.append(proc)
    return proc


def test_probes_follow_the_worker_and_its_redis(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    port = free_port()
    a, b = unique_queue("health"), unique_queue("health")
    with RedisServer() as server:
        worker(procs, tmp_path, server.url, "-q", a, "-q", b, "--lease-ttl", "1",
               "--health-port", str(port))  # fmt: skip
        _, body = until(lambda: (r := get(port, "/readyz"))[0] == 200 and r, 20, "ready")
        assert body == {"status": "ok", "queues": [a, b]}
        assert get(port, "/healthz") == (200, {"status": "ok", "queues": [a, b]})
        assert get(port, "/nope")[0] == 404
        server.kill()
        # No heartbeat gets through for more than lease_ttl (1 s): liveness fails, with why.
        # Each queue's worker passes its own deadline; wait until both have.
        _, body = until(
            lambda: (r := get(port, "/healthz"))[0] == 503 and len(r[1]["reasons"]) == 2 and r,
            15,
            "503 for both queues",
        )
        assert body["status"] == "unavailable"
        assert set(body["reasons"]) == {a, b}
        assert "no heartbeat reached Redis" in body["reasons"][a]
    assert procs[0].poll() is None  # unhealthy, yet running: restarting it is the probe's call


def test_health_port_refuses_processes() -> None:
    done = cli("worker", "--processes", "2", "--health-port", str(free_port()))
    assert done.returncode == 2
    assert "--health-port" in one_line_error(done)


def test_health_command_exit_codes(
    redis_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    q = unique_queue("health")
    assert cli("health", "--redis", redis_url).returncode == 0  # Redis answers
    done = cli("health", "--redis", redis_url, "--queue", q)
    assert done.returncode == 1
    assert f"no live worker serves queue {q!r}" in one_line_error(done)

    worker(procs, tmp_path, redis_url, "-q", q)
    done = until(lambda: (d := cli("health", "--redis", redis_url, "-q", q)).returncode == 0 and d,
                 20, "a live worker")  # fmt: skip
    assert done.stdout == f"ok: 1 live workers on {q!r}\n"
    report = json.loads(cli("health", "--redis", redis_url, "-q", q, "--json").stdout)
    assert report == {"status": "ok", "queue": q, "workers": 1}

    with closed_port() as port:
        done = cli("health", "--redis", f"redis://127.0.0.1:{port}/0")
    assert done.returncode == 1
    assert "Redis unreachable" in one_line_error(done)


def test_log_format_json(
    redis_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    q = unique_queue("health")
    with open(tmp_path / "json.err", "w") as err:
        proc = subprocess.Popen(
            command("--log-format", "json", "worker", "--redis", redis_url, "-q", q),
            cwd=ROOT,
            env=ENV,
            stderr=err,
            text=True,
        )
    procs.append(proc)
    log = tmp_path / "json.err"
    until(lambda: "serving queue" in log.read_text(), 20, "the worker's start line")
    proc.terminate()
    assert proc.wait(15) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records, "no log lines"
    for r in records:
        assert {"time", "level", "logger", "message"} <= set(r)
    assert any(r["level"] == "INFO" and "serving queue" in r["message"] for r in records)


def test_json_formatter_keeps_tracebacks_on_one_line() -> None:
    import logging

    from redisjobs.cli.logformat import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("it",), None)
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "failed it" and out["level"] == "ERROR" and out["logger"] == "x"
    assert "ValueError: boom" in out["exc_info"]
