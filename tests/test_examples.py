"""Every example in examples/ runs end to end, as a user would run it: a real process, against
a real redis-server, HTTP server or SSH server where the example needs one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from redisjobs.testing import RedisServer
from tests.executors.test_ssh import Server, sshd  # noqa: F401 (the SSH server fixture)

ROOT = Path(__file__).resolve().parents[1]
JOBMANAGER = sorted((ROOT / "examples" / "jobmanager").glob("[!_]*.py"))


def run(script: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environ["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, str(script)],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


EXPECTED = {
    "basic.py": ["Status: pending", "{'output': 'output.mp4'}", "Job timed out"],
    "batch.py": ["{'sku': 'sku-15', 'total': 150}", "{'error': 'job "],
    "callbacks.py": ["completed: {'width': 640}", "failed: ValueError: bad width -1"],
    "cancel.py": ["cancelled"],
    "progress.py": ["{'processed': 50}", "Progress: 100%"],
    "retry.py": ["succeeded on attempt 3"],
    "video_pipeline.py": ["Ваше видео готово: https://cdn.example.com/3-frames.mp4"],
}


def test_every_jobmanager_example_is_checked() -> None:
    assert sorted(EXPECTED) == [p.name for p in JOBMANAGER]


@pytest.mark.slow
@pytest.mark.parametrize("script", JOBMANAGER, ids=lambda p: p.stem)
@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_jobmanager_examples(script: Path, backend: str, redis_server: RedisServer) -> None:
    env = {"REDIS_URL": redis_server.url} if backend == "redis" else {}
    out = run(script, **env)
    for text in EXPECTED[script.name]:
        assert text in out


@pytest.mark.slow
def test_case_1_hello_in_memory() -> None:
    out = run(ROOT / "examples" / "pyjobkit" / "case1_hello_memory.py")
    assert "Статус: success {'greeting': 'Hello, Pyjobkit!'}" in out


@pytest.mark.slow
def test_case_2_subprocess_on_redis(redis_server: RedisServer) -> None:
    out = run(
        ROOT / "examples" / "pyjobkit" / "case2_subprocess_redis.py", REDIS_URL=redis_server.url
    )
    assert "Статус: success 'Hello from bash\\n'" in out


@pytest.mark.slow
def test_case_3_custom_ssh_executor(sshd: Server) -> None:  # noqa: F811
    out = run(
        ROOT / "examples" / "pyjobkit" / "case3_ssh_executor.py",
        SSH_HOST="127.0.0.1",
        SSH_PORT=str(sshd.port),
        SSH_USER="deploy",
        SSH_KEY=str(sshd.client_key),
        SSH_KNOWN_HOSTS=str(sshd.known_hosts),
    )
    assert "Статус: success {'output': 'remote script ran on " in out


@pytest.mark.slow
def test_the_video_pipeline_runs_as_a_flow_across_two_queues() -> None:
    """Every step ran, in its queue, and the last one's result is printed."""
    lines = run(ROOT / "examples" / "video_pipeline.py").splitlines()
    assert lines[0].endswith(" 9 jobs on ['default', 'gpu']"), lines
    assert lines[2] == "Ваше видео готово: https://cdn.example.com/3-frames.mp4"
    tree = [line.strip() for line in lines[3:]]
    assert tree[0] == "default/notify_user: completed" and len(tree) == 9, tree
    assert "gpu/generate_images: completed" in tree
    assert all(line.endswith(": completed") for line in tree), tree


class Hook(BaseHTTPRequestHandler):
    bodies: list[bytes] = []  # noqa: RUF012

    def do_POST(self) -> None:
        Hook.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhook"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_case_4_http(webhook: str) -> None:
    out = run(ROOT / "examples" / "pyjobkit" / "case4_http.py", WEBHOOK_URL=webhook)
    assert "Статус: success 204" in out
    assert Hook.bodies == [b'{"data":"test"}']
