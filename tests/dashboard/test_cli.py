"""``redisjobs dashboard`` as a real process: it serves, it refuses unsafe binds, it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from redisjobs.cli.dashboard import ALLOWED_HOSTS_ENV, allowed_hosts, is_loopback
from redisjobs.cli.parser import build
from redisjobs.testing import RedisServer, free_port, unique_queue

ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "REDISJOBS_"))}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redisjobs", "dashboard", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_loopback_names() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))


def test_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    def names(*argv: str) -> list[str]:
        return allowed_hosts(build().parse_args(["dashboard", *argv]))

    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "a.example, *.b.example,")
    assert names() == ["a.example", "*.b.example", "127.0.0.1"]  # and the bound host
    assert names("--allowed-host", "c.example", "--allowed-host", "d.example") == [
        "c.example", "d.example", "127.0.0.1"
    ]  # fmt: skip
    assert names("--host", "dash.lan") == ["a.example", "*.b.example", "dash.lan"]
    assert names("--host", "[::1]") == ["a.example", "*.b.example", "::1"]
    monkeypatch.delenv(ALLOWED_HOSTS_ENV)
    assert names("--host", "0.0.0.0") == [] and names("--host", "::") == []


def test_a_bad_allowed_host_is_a_usage_error(redis_server: RedisServer) -> None:
    done = _run("--redis", redis_server.url, "--allowed-host", "x:1", "--port", str(free_port()))
    assert done.returncode == 2 and "allowed host 'x:1'" in done.stderr


def test_refuses_to_bind_beyond_loopback_without_a_token(redis_server: RedisServer) -> None:
    done = _run("--redis", redis_server.url, "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without --api-token" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_needs_a_redis_server() -> None:
    done = _run("--redis", "memory://")
    assert done.returncode == 2 and "dashboard needs a Redis server" in done.stderr


def test_bad_basic_auth_is_a_usage_error(redis_server: RedisServer) -> None:
    done = _run("--redis", redis_server.url, "--basic-auth", "nocolon", "--port", str(free_port()))
    assert done.returncode == 2 and "user:password" in done.stderr


def test_serves_until_sigterm(redis_server: RedisServer) -> None:
    port = free_port()
    queue = unique_queue()
    proc = subprocess.Popen(
        [sys.executable, "-m", "redisjobs", "dashboard", "--redis", redis_server.url,
         "--port", str(port), "--api-token", "cli-test-token", "--allowed-host", "dash.example"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"authorization": "Bearer cli-test-token"}
        deadline = time.monotonic() + 20
        while True:
            try:
                page = httpx.get(base + "/", headers=headers, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        assert page.status_code == 200 and "Queues" in page.text
        assert httpx.get(base + "/", timeout=2).status_code == 401
        for host, status in [("evil.example", 400), ("dash.example", 200), ("localhost", 200)]:
            named = {**headers, "host": f"{host}:{port}"}
            assert httpx.get(base + "/api/queues", headers=named, timeout=5).status_code == status
        created = httpx.post(
            f"{base}/api/queues/{queue}/jobs", json={"kind": "call"}, headers=headers, timeout=5
        )
        assert created.status_code == 202
        # A live stream is open when it stops: it must not hold the shutdown up.
        with httpx.stream("GET", base + "/events", headers=headers, timeout=5) as stream:
            next(stream.iter_lines())
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert f"redisjobs dashboard on http://127.0.0.1:{port}/" in err
        assert "Traceback" not in err and "ERROR" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
