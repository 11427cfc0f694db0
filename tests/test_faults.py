"""Real worker processes killed, stopped and paused: no job lost, each outcome recorded once."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redisjobs import Client, ConnectionFailed, JobStatus, Worker
from redisjobs.events import FINAL_EVENTS
from redisjobs.keys import GROUP
from redisjobs.testing import RedisServer, unique_queue
from tests.conftest import log_events

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def queue() -> str:
    return unique_queue("fault")


@pytest.fixture
async def client(redis_url: str, queue: str) -> AsyncIterator[Client]:
    async with Client(redis_url, queue=queue) as c:
        yield c


@pytest.fixture
def spawn(redis_url: str, queue: str, tmp_path: Path) -> Iterator[Spawn]:
    """Start `redisjobs worker` processes; kills whatever is left at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, name: str = "w") -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LEDGER_URL": redis_url,
            "LEDGER_KEY": f"ledger:{queue}",
        }
        cmd = [sys.executable, "-m", "redisjobs", "worker", "--url", redis_url, "--queue", queue]
        cmd += ["-m", "tests.jobs", *args]
        with open(tmp_path / f"{name}-{len(procs)}.log", "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def completed(client: Client) -> int:
    return (await client.stats()).get("completed", 0)


async def ledger(client: Client) -> list[list[str]]:
    lines: Any = await client.redis.lrange(f"ledger:{client.queue}", 0, -1)
    return [x.decode().split() for x in lines]


async def outcome_events(client: Client) -> collections.Counter[str]:
    return collections.Counter(
        ev.job_id for ev in await log_events(client) if ev.type in FINAL_EVENTS
    )


async def assert_clean(client: Client) -> None:
    keys = client.keys()
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0
    assert await client.redis.zcard(keys.status("running")) == 0
    assert await client.redis.zcard(keys.status("pending")) == 0


async def test_kill_9_loses_nothing_and_records_each_outcome_once(
    client: Client, spawn: Spawn
) -> None:
    n = 1000
    args = ("--concurrency", "10", "--lease-ttl", "2", "--reclaim-interval", "0.5")
    victim, survivor = spawn(*args), spawn(*args)
    jobs = await client.enqueue_many(
        [("call", {"fn": "tests.jobs:ledger", "args": {"seconds": 0.05}}) for _ in range(n)]
    )
    await until(lambda: _at_least(client, n * 3 // 10), 60, "30 % done")
    victim.kill()
    victim.wait()
    killed_at = time.monotonic()
    await until(lambda: _at_least(client, n), 60, "all jobs completed")
    recovery = time.monotonic() - killed_at

    for job in jobs:
        got = await client.get(job.id)
        assert got is not None and got.status is JobStatus.COMPLETED, job.id
    outcomes = await outcome_events(client)
    assert len(outcomes) == n and set(outcomes.values()) == {1}
    starts = collections.Counter(e[1] for e in await ledger(client) if e[0] == "start")
    duplicates = sum(c - 1 for c in starts.values())
    assert len(starts) == n
    await assert_clean(client)
    stats = await client.stats()
    # reclaimed = the jobs in flight (leased) on the victim when it died; only those can have
    # run twice (some had not reached their first line, so they ran once)
    assert stats["completed"] == n and duplicates <= stats["reclaimed"] <= 10
    print(
        f"\nkill -9: {n} jobs, {n} completed, 0 lost, {duplicates} re-executed "
        f"(in flight on the killed worker: {stats['reclaimed']}), "
        f"all done {recovery:.2f} s after the kill"
    )
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(10) == 0


async def _at_least(client: Client, n: int) -> bool:
    return await completed(client) >= n


async def test_sigterm_drains_running_jobs_and_exits_0(client: Client, spawn: Spawn) -> None:
    worker = spawn("--concurrency", "5", "--grace", "10")
    jobs = await client.enqueue_many(
        [("call", {"fn": "tests.jobs:sleep", "args": {"seconds": 0.5}}) for _ in range(5)]
    )
    await until(lambda: _count(client, "running", 5), 10, "5 running jobs")
    t0 = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - t0 < 1.5
    for job in jobs:
        assert await client.wait(job.id, timeout=1) == "slept"
    await assert_clean(client)
    registered: Any = await client.redis.zrange("rj:workers", 0, -1)
    assert not [w for w in registered if f"-{worker.pid}-".encode() in w]  # deregistered


async def _count(client: Client, status: str, n: int) -> bool:
    return int(await client.redis.zcard(client.keys().status(status))) >= n


async def test_jobs_outliving_grace_go_to_another_worker_at_once(
    client: Client, spawn: Spawn
) -> None:
    lease = ("--lease-ttl", "30")  # a reclaim by lease expiry would take 30 s
    first = spawn("--concurrency", "4", "--grace", "0.5", *lease)
    jobs = await client.enqueue_many(
        [("call", {"fn": "tests.jobs:ledger", "args": {"seconds": 3}}) for _ in range(4)]
    )
    await until(lambda: _count(client, "running", 4), 10, "4 running jobs")
    t0 = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert first.wait(10) == 0
    assert time.monotonic() - t0 < 2.5
    second = spawn("--concurrency", "4", *lease)
    await until(lambda: _count(client, "running", 4), 10, "jobs picked up again")
    assert time.monotonic() - t0 < 8  # well inside one lease_ttl
    for job in jobs:
        assert await client.wait(job.id, timeout=10) == second.pid
        got = await client.get(job.id)
        assert got is not None and got.attempt == 1  # the hand-back burned no attempt
    crashes: Any = await client.redis.hget(client.keys().job(jobs[0].id), "crashes")
    assert int(crashes) == 0
    second.send_signal(signal.SIGTERM)
    assert second.wait(10) == 0
    await assert_clean(client)


async def test_second_sigterm_hands_back_at_once(client: Client, spawn: Spawn) -> None:
    worker = spawn("--concurrency", "2", "--grace", "60")
    await client.enqueue("call", {"fn": "tests.jobs:sleep", "args": {"seconds": 60}})
    await until(lambda: _count(client, "running", 1), 10, "a running job")
    worker.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert worker.poll() is None  # still draining
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(5) == 0
    assert await _count(client, "pending", 1)


async def test_paused_worker_loses_its_lease_and_late_outcome_is_rejected(
    client: Client, spawn: Spawn
) -> None:
    args = ("--concurrency", "2", "--lease-ttl", "1", "--reclaim-interval", "0.3")
    paused = spawn(*args)
    job = await client.enqueue("call", {"fn": "tests.jobs:ledger", "args": {"seconds": 1.5}})
    await until(lambda: _count(client, "running", 1), 10, "the job to start")
    paused.send_signal(signal.SIGSTOP)
    other = spawn(*args)
    assert await client.wait(job.id, timeout=15) == other.pid
    paused.send_signal(signal.SIGCONT)
    # On waking, the paused worker either finishes its run (its outcome is rejected by the
    # fence) or its first heartbeat learns the lease is gone and stops the run: both are right.
    await asyncio.sleep(2.5)
    assert (await outcome_events(client))[job.id] == 1
    got = await client.get(job.id)
    assert got is not None and got.result == other.pid and got.status is JobStatus.COMPLETED
    # (the paused run may have been stopped before its first line, and then wrote it late)
    starts = [int(e[2]) for e in await ledger(client) if e[0] == "start"]
    assert other.pid in starts and set(starts) <= {paused.pid, other.pid}
    for p in (paused, other):
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    await assert_clean(client)


async def test_worker_survives_redis_restart_empty() -> None:
    """Redis killed and restarted empty: the worker reconnects, recreates its group, reloads the
    scripts by itself and serves jobs enqueued after the restart."""
    server = RedisServer().start()
    try:
        queue = unique_queue("restart")
        async with Client(server.url, queue=queue) as client:
            worker = Worker(
                server.url, queue=queue, modules=["tests.jobs"], handle_signals=False, lease_ttl=2
            )
            async with worker:
                job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
                assert await client.wait(job.id, timeout=5) == 3
                server.kill()
                await asyncio.sleep(0.5)
                server.start()
                deadline = time.monotonic() + 15
                while True:  # producers fail fast while Redis comes back; retry like a caller
                    try:
                        job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [2, 2]})
                        break
                    except ConnectionFailed:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.1)
                assert await client.wait(job.id, timeout=15) == 4
    finally:
        server.stop()
