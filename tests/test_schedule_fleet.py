"""Three real worker processes on one 1-second schedule: exactly one job per tick, none missing,
none twice, each made close to its tick's time."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from redisjobs.events import Event
from redisjobs.keys import QueueKeys
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import unique_queue
from tests.test_fleet import registered

pytestmark = [pytest.mark.slow, pytest.mark.redis_only, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3
SECONDS = 60  # a minute of one-second ticks


def _workers(url: str, queue: str, tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["-m", "redisjobs", "worker", "--redis", url, "--queue", queue]
    argv += ["--function", "tests.jobs:echo", "--concurrency", "4", "--no-uvloop"]
    procs = []
    for i in range(WORKERS):
        with open(tmp_path / f"w{i}.err", "wb") as err:
            procs.append(subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stderr=err))
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_three_workers_make_one_job_per_tick(redis_url: str, tmp_path: Path) -> None:
    queue = unique_queue()
    keys = QueueKeys(queue)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    raw = redis.Redis.from_url(redis_url)
    procs = _workers(redis_url, queue, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not all(registered(r, p.pid) for p in procs):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), "a worker exited"
            time.sleep(0.05)
        with SyncClient(redis_url, queue=queue) as client:
            client.schedule("beat", "call", {"fn": "tests.jobs:echo", "args": [1]}, every=1)
            time.sleep(SECONDS)
            assert client.unschedule("beat")
        time.sleep(0.5)  # a fire already under way lands before the count
    finally:
        _stop(procs)
    stderr = "".join((tmp_path / f"w{i}.err").read_text() for i in range(WORKERS))
    assert "Traceback" not in stderr, stderr[-3000:]

    entries: Any = raw.xrange(keys.log)
    events = [Event.decode(fields[b"e"], eid.decode(), queue) for eid, fields in entries]
    enqueued = [ev for ev in events if ev.type == "enqueued"]
    counts = collections.Counter(ev.job_id for ev in enqueued)
    assert set(counts.values()) == {1}, "a tick made two jobs"
    ticks = sorted(int(job_id.split("@")[1]) for job_id in counts)
    assert len(ticks) >= SECONDS - 2
    assert ticks == list(range(ticks[0], ticks[-1] + 1000, 1000)), "a tick is missing"
    assert all(t % 1000 == 0 for t in ticks)  # every=1 ticks on whole seconds (epoch anchor)
    # Each job is made right after its tick, on Redis's clock.
    late = sorted(ev.ts - int(ev.job_id.split("@")[1]) for ev in enqueued)
    assert late[0] >= 0 and late[len(late) // 2] < 500, late
    stats: Any = r.hget(keys.stats, "enqueued")
    assert int(stats) == len(ticks)
