"""Outcomes reach every waiter and handler while the event log readers' connections are killed
again and again.

A reader whose connection is killed mid-read must read on from its cursor, neither skipping the
entries added meanwhile nor handing any out twice. These tests kill every log reader connection
of the server every few tens of milliseconds while hundreds of jobs end, and require that no
`wait` hangs and no handler is skipped or called twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from redisjobs import Client, WaitTimeout
from redisjobs.eventlog import NAME
from redisjobs.manager import JobManager
from tests import jobs
from tests.conftest import WorkerFactory

pytestmark = [pytest.mark.redis_only, pytest.mark.timeout(180)]

SPREAD = 3.0
"""Seconds over which the jobs come due, so their ends overlap many kills."""


@contextlib.asynccontextmanager
async def reader_killer(url: str) -> AsyncIterator[list[int]]:
    """Kills every event log reader's connection (``CLIENT KILL ID``, found by name) at random
    short intervals until the block ends.

    Yields a one-item list that holds the number of connections killed so far. The loop ends
    on a flag rather than by cancellation: a cancel that lands inside a redis-py command can be
    lost, and the block would then never end.
    """
    killed = [0]
    stop = asyncio.Event()
    redis = aioredis.Redis.from_url(url)

    async def kill() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(0.02, 0.12))
            if not stop.is_set():
                clients: list[dict[str, str]] = await redis.client_list()
                for c in clients:
                    if c["name"] == NAME:
                        killed[0] += int(await redis.client_kill_filter(_id=c["id"]))

    task = asyncio.create_task(kill())
    try:
        yield killed
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await redis.aclose()


async def test_every_wait_returns_across_reader_kills(
    redis_url: str, queue: str, worker: WorkerFactory
) -> None:
    await worker(functions=[jobs.add], concurrency=50)
    async with Client(redis_url, queue=queue) as client:
        specs = [
            {"kind": "call", "payload": {"fn": "add", "args": {"a": i, "b": 1}}, "delay": d}
            for i, d in enumerate(random.uniform(0, SPREAD) for _ in range(500))
        ]
        enqueued = await client.enqueue_many(specs)
        async with reader_killer(redis_url) as killed:
            outcomes = await asyncio.gather(
                *(client.wait(job.id, timeout=SPREAD + 30) for job in enqueued),
                return_exceptions=True,
            )
    timeouts = sum(isinstance(o, WaitTimeout) for o in outcomes)
    assert timeouts == 0, f"{timeouts} of 500 waits never learnt the outcome ({killed[0]} kills)"
    assert outcomes == [i + 1 for i in range(500)]
    assert killed[0] >= 10  # the kills did overlap the waits


async def test_every_handler_fires_once_across_reader_kills(redis_url: str, queue: str) -> None:
    calls: collections.Counter[str] = collections.Counter()
    all_seen = asyncio.Event()

    async def job(n: int) -> int:
        await asyncio.sleep(random.uniform(0, 0.1))
        return n

    def on_complete(job_id: str, result: int) -> None:
        calls[job_id] += 1
        if len(calls) == 600:
            all_seen.set()

    async with JobManager(max_workers=20, url=redis_url, queue=queue) as manager:
        manager.on_complete(on_complete)
        async with reader_killer(redis_url) as killed:
            ids = [(await manager.submit(job, args={"n": n})).id for n in range(600)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_seen.wait(), 30)
            await asyncio.sleep(0.5)  # a second call would come now
        assert killed[0] >= 10
        missing = [i for i in ids if i not in calls]
        assert not missing, f"{len(missing)} of 600 handlers never fired ({killed[0]} kills)"
        assert set(calls.values()) == {1}
