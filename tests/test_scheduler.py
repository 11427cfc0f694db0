"""The promote loop (redisjobs/scheduler.py): delayed jobs become runnable when due, no sooner,
without waiting out its longest sleep, and a backlog goes in batches back to back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from redisjobs import Client, JobStatus
from redisjobs.scheduler import Scheduler
from redisjobs.scripts import PROMOTE_BATCH

LONG_SLEEP = 30.0
"""The loop's longest sleep in these tests: far longer than any wait a test allows."""


@pytest.fixture
async def start(client: Client) -> AsyncIterator[Callable[..., Scheduler]]:
    """Starts a scheduler on the client's queue; stopped after the test."""
    _, scripts = await client._conn()
    tasks: list[asyncio.Task[None]] = []

    def make(**kwargs: object) -> Scheduler:
        scheduler = Scheduler(scripts, client.keys(), max_sleep=LONG_SLEEP, **kwargs)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(scheduler.run()))
        return scheduler

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _status(client: Client, job_id: str) -> JobStatus:
    job = await client.get(job_id)
    assert job is not None
    return job.status


async def _redis_ms(client: Client) -> int:
    seconds, micros = await client.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _until_pending(client: Client, job_id: str, within: float) -> int:
    """Redis's time when the job was first seen pending (polled every 10 ms)."""
    async with asyncio.timeout(within):
        while await _status(client, job_id) != JobStatus.PENDING:
            await asyncio.sleep(0.01)
    return await _redis_ms(client)


async def test_a_delayed_job_is_promoted_when_due_not_before(
    client: Client, start: Callable[..., Scheduler]
) -> None:
    job = await client.enqueue("call", {"fn": "x"}, delay=0.5)
    due_ms = await _redis_ms(client) + 500
    start()
    await asyncio.sleep(0.2)
    assert await _status(client, job.id) == JobStatus.SCHEDULED  # not early
    seen_ms = await _until_pending(client, job.id, within=5)
    # It slept until the due time Redis gave, not its longest sleep.
    assert seen_ms >= due_ms - 50  # (the enqueue's own clock read is a few ms before `due_ms`)
    assert seen_ms - due_ms < 1500


async def test_wake_promotes_a_job_due_sooner_than_the_planned_sleep(
    client: Client, start: Callable[..., Scheduler]
) -> None:
    scheduler = start()
    await asyncio.sleep(0.2)  # it found nothing due and sleeps its longest sleep
    job = await client.enqueue("call", {"fn": "x"}, delay=0.3)
    scheduler.wake()
    await _until_pending(client, job.id, within=5)


async def test_a_backlog_goes_in_batches_back_to_back(
    client: Client, start: Callable[..., Scheduler]
) -> None:
    n = PROMOTE_BATCH * 2 + PROMOTE_BATCH // 2
    jobs = await client.enqueue_many(
        [{"kind": "call", "payload": {"fn": "x"}, "delay": 0.2} for _ in range(n)]
    )
    await asyncio.sleep(0.3)  # all due now
    calls: list[int] = []
    start(on_promoted=lambda: calls.append(1))
    async with asyncio.timeout(5):  # far less than one LONG_SLEEP
        while (await client.stats()).get("pending", 0) < n:
            await asyncio.sleep(0.02)
    assert len(calls) == 3  # one call a batch, each told to the embedded backend's waker
    assert all([await _status(client, j.id) == JobStatus.PENDING for j in jobs])
