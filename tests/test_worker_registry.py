"""The worker registry as operators see it: states on Redis's clock (live, quiet, lost, offline),
the jobs each worker runs, its counts and what it may run, and quiet/stop sent through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from redisjobs import Client, JobFailed, Worker
from redisjobs.testing import unique_queue
from redisjobs.workerinfo import WorkerInfo
from tests import jobs
from tests.conftest import WorkerFactory


def fn(name: str) -> str:
    return f"tests.jobs:{name}"


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


async def _entry(client: Client, worker_id: str, *, gone: bool = True) -> WorkerInfo | None:
    return next((w for w in await client.workers(gone=gone) if w.id == worker_id), None)


class Mine:
    kind = "mine"

    async def run(self, *, job_id: str, payload: Any, ctx: Any) -> Any:
        return payload


async def test_an_entry_lists_running_jobs_counts_and_what_the_worker_may_run(
    client: Client, worker: WorkerFactory
) -> None:
    w = await worker(
        functions={"adder": jobs.add},
        modules=["tests.jobs"],
        executors=[Mine()],
        concurrency=4,
        lease_ttl=1.0,
    )
    done = [await client.enqueue("call", {"fn": "adder", "args": [i, 1]}) for i in range(3)]
    bad = await client.enqueue("call", {"fn": fn("fail")})
    for job in done:
        await client.wait(job.id, timeout=10)
    with pytest.raises(JobFailed):
        await client.wait(bad.id, timeout=10)
    sleeper = await client.enqueue("call", {"fn": fn("sleep"), "args": [30]})

    async def running() -> WorkerInfo | None:
        info = await _entry(client, w.id, gone=False)
        return info if info is not None and sleeper.id in info.running else None

    info = await _until(running)  # refreshed with the next heartbeat (lease_ttl / 3)
    assert info.state == "live" and info.alive
    assert info.held == 1 and info.running == (sleeper.id,)
    assert (info.processed, info.failed) == (4, 1)
    assert info.allowed == "call [adder, tests.jobs:*]; mine"
    assert info.queues == (client.queue,) and info.stopped_at is None
    await client.cancel(sleeper.id)


async def test_quiet_then_stop_through_redis(client: Client, worker: WorkerFactory) -> None:
    w = await worker(modules=["tests.jobs"], concurrency=2, lease_ttl=1.0)
    running = await client.enqueue("call", {"fn": fn("sleep"), "args": [1.0]})
    await _until(lambda: _job_status(client, running.id, "running"))

    assert await client.signal_worker(w.id, "quiet")
    quiet = await _until(lambda: _state(client, w.id, "quiet"))
    assert quiet.alive and not w.ready  # a readiness probe fails once quiet
    later = await client.enqueue("call", {"fn": fn("add"), "args": [1, 2]})
    assert await client.wait(running.id, timeout=10) == "slept"  # what it ran finishes
    await asyncio.sleep(1.0)  # three refreshes: a quiet worker leases nothing more
    assert await _job_status(client, later.id, "pending")
    assert await _serving(client) == [w.id]  # quiet is still alive

    assert await client.signal_worker(w.id, "stop")
    offline = await _until(lambda: _state(client, w.id, "offline"))
    assert offline.stopped_at is not None and offline.running == () and offline.held == 0
    assert await _serving(client) == []  # only the alive ones
    assert not await client.signal_worker(w.id, "quiet")  # no live worker has that id
    await client.obliterate()  # nothing serves it any more: not refused


async def _serving(client: Client) -> list[str]:
    """The live workers of the test's queue (the registry is the whole redis-server's)."""
    return [w.id for w in await client.workers() if client.queue in w.queues]


async def _job_status(client: Client, job_id: str, status: str) -> bool:
    job = await client.get(job_id)
    return job is not None and job.status.value == status


async def _state(client: Client, worker_id: str, state: str) -> WorkerInfo | None:
    info = await _entry(client, worker_id)
    return info if info is not None and info.state == state else None


async def test_a_signal_must_be_known(client: Client) -> None:
    with pytest.raises(ValueError, match="quiet, stop"):
        await client.signal_worker("w1", "restart")
    assert not await client.signal_worker("no-such-worker", "stop")


async def test_a_quiet_process_over_several_queues_is_quiet_on_every_queue(
    client: Client, url: str
) -> None:
    other = unique_queue("second")
    async with Worker(url, queues=[client.queue, other], lease_ttl=1.0, handle_signals=False) as w:
        ids = await _until(lambda: _ids_of(client, w))
        assert await client.signal_worker(ids[1], "quiet")  # the second queue's entry
        for worker_id in ids:
            await _until(functools.partial(_state, client, worker_id, "quiet"))
        assert w.unready() == [client.queue, other]


async def _ids_of(client: Client, w: Worker) -> list[str] | None:
    found = {x.queues[0]: x.id for x in await client.workers()}
    return [found[q] for q in w.queues] if set(w.queues) <= set(found) else None


@pytest.mark.redis_only
async def test_a_killed_worker_is_lost_on_redis_clock_and_serves_nothing(
    client: Client, redis_url: str
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redisjobs",
            "worker",
            "--url",
            redis_url,
            "--queue",
            client.queue,
            "--lease-ttl",
            "1",
        ],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        live = await _until(lambda: _first(client))
        assert live.pid == proc.pid and live.state == "live"
        os.kill(proc.pid, signal.SIGKILL)
        lost = await _until(lambda: _state(client, live.id, "lost"), timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)
    assert lost.heartbeat_at is not None and lost.stopped_at is None
    assert await _serving(client) == []  # lost within a lease TTL, not after three
    assert await client.obliterate() == 0  # a lost worker does not hold the queue


async def _first(client: Client) -> WorkerInfo | None:
    found = await client.workers()
    return found[0] if found else None


async def test_a_worker_of_the_same_id_starts_afresh(client: Client, url: str) -> None:
    """What a stopped worker left in its entry (stopped, and the stop it was sent) is not the
    next one's: it is live, and it serves."""
    first = Worker(url, queue=client.queue, worker_id="web-1", lease_ttl=1.0, handle_signals=False)
    async with first:
        assert await client.signal_worker("web-1", "stop")
        async with asyncio.timeout(10):
            while first.ready:  # stopping once it read the signal
                await asyncio.sleep(0.05)
    assert await _state(client, "web-1", "offline")
    again = Worker(url, queue=client.queue, worker_id="web-1", lease_ttl=1.0,
                   handle_signals=False, modules=["tests.jobs"])  # fmt: skip
    async with again:
        job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
        assert await client.wait(job.id, timeout=10) == 3
        await asyncio.sleep(0.5)  # refreshes that would have read the old stop
        assert await _state(client, "web-1", "live") and again.ready
