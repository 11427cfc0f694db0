"""The fleet of docker-compose.yml: the file is valid, and its topology works as local processes.

There is no Docker engine in CI, so (a) checks the file with Debian's ``docker-compose config``
(when it is installed) and (b) runs the same topology as processes: one redis-server configured
like the compose Redis, three ``redisjobs worker`` processes with the compose command line, the
example subscriber and the example producer with 1,000 jobs.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redisjobs.keys import REGISTRY
from redisjobs.testing import RedisServer, log_followers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"

# What docker-compose.yml runs; (a) checks the file says exactly this, (b) runs it.
REDIS_ARGS = ["--appendonly", "yes", "--appendfsync", "everysec"]
REDIS_ARGS += ["--maxmemory-policy", "noeviction"]
QUEUE = "default"
GRACE = 30.0
WORKER_ARGS = ["--queue", QUEUE, "--concurrency", "50", "--grace", "30"]
WORKER_ARGS += ["--function", "examples.fleet.tasks:resize"]
WORKERS = 3
JOBS = 1000
LEDGER_KEY = "fleet:ledger"
SUBSCRIBER_ARGS = ["--queue", QUEUE, "--expect", str(JOBS), "--json-lines"]
PRODUCER_ARGS = ["--queue", QUEUE, "--jobs", str(JOBS), "--wait", "--timeout", "60"]


# -- (a) the compose file -------------------------------------------------------------------------


def compose_config() -> dict[str, Any]:
    """``docker-compose config``: the file resolved and validated, parsed."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (CI installs Debian's: .ci/run)")
    cmd = [exe, "-f", str(COMPOSE_FILE), "config"]
    quiet = subprocess.run([*cmd, "-q"], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0, quiet.stderr
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    config = parse_block_yaml(out)
    assert isinstance(config, dict)
    return config


def parse_block_yaml(text: str) -> Any:
    """Parse the block-style YAML ``docker-compose config`` prints (no PyYAML here).

    Enough for its output: nested mappings, lists of scalars (indented or not), quoted
    scalars and ``{}``; not a YAML parser.
    """
    lines = [
        (len(line) - len(line.lstrip(" ")), line.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    value, end = _parse_node(lines, 0, lines[0][0])
    assert end == len(lines), f"unparsed from line {end}: {lines[end]}"
    return value


def _parse_node(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1].startswith("- "):
        items: list[Any] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:]))
            i += 1
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, _, rest = lines[i][1].partition(":")
        i += 1
        if rest.strip():
            mapping[key] = _scalar(rest.strip())
        elif i < len(lines) and (
            lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))
        ):
            mapping[key], i = _parse_node(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def _scalar(text: str) -> Any:
    if text == "{}":
        return {}
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def seconds(duration: str) -> float:
    """A compose duration (``35s``, ``1m30s``, ``1.5s``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * unit[u] for n, u in parts)


def test_parse_block_yaml() -> None:
    text = "a:\n  b: '1'\n  c:\n  - x\n  - \"yes\"\n  d:\n    - y\nv: {}\nw:\n"
    assert parse_block_yaml(text) == {
        "a": {"b": "1", "c": ["x", "yes"], "d": ["y"]},
        "v": {},
        "w": None,
    }
    assert seconds("35s") == 35 and seconds("1m5s") == 65 and seconds("1.5s") == 1.5


def test_compose_file_is_valid_and_describes_the_fleet() -> None:
    services = compose_config()["services"]
    assert set(services) >= {"redis", "worker", "dashboard", "producer", "subscriber"}

    redis_ = services["redis"]
    assert redis_["command"] == ["redis-server", *REDIS_ARGS]
    assert redis_["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert any(v.endswith(":/data:rw") or v.endswith(":/data") for v in redis_["volumes"])

    worker = services["worker"]
    assert worker["command"] == ["redisjobs", "worker", *WORKER_ARGS]  # what (b) runs
    assert worker["deploy"]["replicas"] == str(WORKERS)
    # SIGKILL must never cut a graceful hand-back short: grace + 5 s at least
    assert seconds(worker["stop_grace_period"]) >= GRACE + 5
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"

    # the exec probe of each worker container (REDIS_URL from the environment)
    assert worker["healthcheck"]["test"] == ["CMD", "redisjobs", "health", "--queue", QUEUE]

    dashboard = services["dashboard"]
    assert dashboard["command"] == ["redisjobs", "dashboard", "--host", "0.0.0.0", "--port", "8080"]
    assert dashboard["ports"] == ["127.0.0.1:8080:8080/tcp"]  # this machine only
    assert dashboard["depends_on"]["redis"]["condition"] == "service_healthy"
    # the token comes from the environment, never from the file; unset, the dashboard refuses
    assert dashboard["environment"]["REDISJOBS_API_TOKEN"] == os.environ.get(
        "REDISJOBS_API_TOKEN", ""
    )
    assert dashboard["profiles"] == ["dashboard"]  # `docker compose up` needs no token

    for name in ("worker", "dashboard", "producer", "subscriber"):
        service = services[name]
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0", name
        assert service["build"]["context"] == str(ROOT), name
    # `docker compose up` starts Redis and the workers only
    assert "profiles" not in worker
    assert services["producer"]["profiles"] == services["subscriber"]["profiles"] == ["demo"]
    assert services["producer"]["command"][:3] == ["python", "-m", "examples.fleet.producer"]
    assert services["subscriber"]["command"][:3] == ["python", "-m", "examples.fleet.subscriber"]


def test_image_serves_the_dashboard_only_with_a_token() -> None:
    # the dashboard service runs the fleet image: it must hold the dashboard's extra
    assert re.search(r"pip install .*'\.\[[^\]]*\bdashboard\b", (ROOT / "Dockerfile").read_text())
    # as the compose file runs it with REDISJOBS_API_TOKEN unset ('' in the container)
    env = {**os.environ, "REDISJOBS_API_TOKEN": "", "PYTHONPATH": str(ROOT)}
    argv = ["dashboard", "--host", "0.0.0.0", "--port", "8080", "--redis", "redis://127.0.0.1:1"]
    done = subprocess.run(
        [sys.executable, "-m", "redisjobs", *argv], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "without --api-token" in done.stderr, done.stderr


# -- (b) the same topology as local processes ------------------------------------------------------


Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def fleet_redis() -> Iterator[RedisServer]:
    """A redis-server of its own, configured like the compose file's (AOF, noeviction)."""
    with RedisServer(args=REDIS_ARGS) as server:
        yield server


@pytest.fixture
def start(fleet_redis: RedisServer, tmp_path: Path) -> Iterator[Start]:
    """Start a process of the fleet, output to `tmp_path/<name>.out|.err`; kills leftovers."""
    procs: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "REDIS_URL": fleet_redis.url,
        "PYTHONPATH": str(ROOT),  # as ENV PYTHONPATH in the Dockerfile: examples importable
        "FLEET_LEDGER_URL": fleet_redis.url,
        "FLEET_LEDGER_KEY": LEDGER_KEY,
    }

    def run(name: str, *argv: str) -> subprocess.Popen[bytes]:
        with (
            open(tmp_path / f"{name}.out", "wb") as out,
            open(tmp_path / f"{name}.err", "wb") as err,
        ):
            proc = subprocess.Popen(
                [sys.executable, *argv], cwd=ROOT, env=env, stdout=out, stderr=err
            )
        procs.append(proc)
        return proc

    yield run
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def until(predicate: Callable[[], bool], timeout: float, what: str, tmp_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}\n{logs(tmp_path)}"
            )
        time.sleep(0.02)


def exit_code(proc: subprocess.Popen[bytes], timeout: float, tmp_path: Path) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{proc.args!r} still running after {timeout} s\n{logs(tmp_path)}"
        ) from None


def registered(r: redis.Redis, pid: int) -> bool:
    """Whether the worker process `pid` is in the worker registry and has not said it stopped
    (worker ids: host-pid-rand)."""
    members: Any = r.zrange(REGISTRY.workers, 0, -1)
    entries: Any = [r.hgetall(REGISTRY.worker(m)) for m in members if f"-{pid}-" in m]
    return any(e and "stopped_at" not in e for e in entries)


def logs(tmp_path: Path) -> str:
    """The stderr tail of every process, for failure messages."""
    return "\n".join(
        f"--- {f.name}\n{f.read_text()[-2000:]}" for f in sorted(tmp_path.glob("*.err"))
    )


@pytest.fixture
def r(fleet_redis: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the fleet's Redis, to look at it from outside."""
    with redis.Redis.from_url(fleet_redis.url, decode_responses=True) as client:
        yield client


def test_fleet_runs_each_job_once_and_the_subscriber_sees_every_completion(
    r: redis.Redis, start: Start, tmp_path: Path
) -> None:
    workers = [
        start(f"worker-{i}", "-m", "redisjobs", "worker", *WORKER_ARGS) for i in range(WORKERS)
    ]
    subscriber = start("subscriber", "-m", "examples.fleet.subscriber", *SUBSCRIBER_ARGS)

    def ready() -> bool:
        for p in (*workers, subscriber):
            assert p.poll() is None, f"{p.args!r} exited with {p.returncode}\n{logs(tmp_path)}"
        return log_followers(r) > 0 and all(registered(r, p.pid) for p in workers)

    # Events are pub/sub: the subscriber must be subscribed before the first job finishes.
    until(ready, 20, "3 registered workers and a subscribed subscriber", tmp_path)

    t0 = time.monotonic()
    producer = start("producer", "-m", "examples.fleet.producer", *PRODUCER_ARGS)
    assert exit_code(producer, 60, tmp_path) == 0, logs(tmp_path)
    assert exit_code(subscriber, 10, tmp_path) == 0, logs(tmp_path)
    wall = time.monotonic() - t0

    ids = (tmp_path / "producer.out").read_text().split()
    assert len(ids) == len(set(ids)) == JOBS

    # The subscriber saw one completion per job, and nothing else ended a job.
    events = [json.loads(line) for line in (tmp_path / "subscriber.out").read_text().splitlines()]
    completions = collections.Counter(e["job_id"] for e in events if e["type"] == "completed")
    assert set(completions) == set(ids) and set(completions.values()) == {1}
    assert not [e for e in events if e["type"] in ("failed", "cancelled", "retrying")]

    # Each job ran exactly once, and more than one worker did the work.
    lines: Any = r.lrange(LEDGER_KEY, 0, -1)
    ledger = [line.split() for line in lines]
    runs = collections.Counter(job_id for job_id, _ in ledger)
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    per_worker = collections.Counter(int(pid) for _, pid in ledger)
    assert set(per_worker) <= {p.pid for p in workers}
    assert len(per_worker) > 1, per_worker

    # Throughput on Redis's clock: first enqueued to last completed, as the subscriber saw it.
    first = min(e["ts"] for e in events if e["type"] == "enqueued")
    last = max(e["ts"] for e in events if e["type"] == "completed")
    print(
        f"\nfleet: {JOBS} jobs by {WORKERS} workers in {(last - first) / 1000:.2f} s "
        f"({JOBS * 1000 / max(last - first, 1):.0f} jobs/s; {wall:.2f} s with the producer's "
        f"start-up), per worker {sorted(per_worker.values())}; producer: "
        + (tmp_path / "producer.err").read_text().strip().replace("\n", " | ")
    )

    for p in workers:
        p.send_signal(signal.SIGTERM)
    for p in workers:
        assert exit_code(p, GRACE + 5, tmp_path) == 0
    assert not [p.pid for p in workers if registered(r, p.pid)]  # they deregistered
