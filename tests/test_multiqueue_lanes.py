"""A worker over several queues keeps each queue's own pause, burst, wake-up and hand-back."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from redisjobs import Client, ExecContext, JobStatus, Worker
from redisjobs.arbiter import Arbiter
from redisjobs.connection import ensure_group
from redisjobs.scripts import Scripts
from redisjobs.testing import RedisServer, unique_queue

Started = list[tuple[str, str]]  # (queue, job id) of each run, in the order they started


@pytest.fixture
async def pair(url: str, queue: str) -> AsyncIterator[tuple[Client, Client]]:
    """Clients of two queues: the test's, and another."""
    async with Client(url, queue=queue) as first, Client(url, queue=unique_queue()) as second:
        yield first, second


def serving(url: str, started: Started, queues: Any, **kwargs: Any) -> Worker:
    """A worker over `queues`, one slot unless told, whose `step` jobs note when they start."""

    async def step(ctx: ExecContext, seconds: float = 0.0) -> None:
        started.append((ctx.queue, ctx.job_id))
        await asyncio.sleep(seconds)

    kwargs.setdefault("concurrency", 1)
    return Worker(
        url,
        queues=queues,
        functions={"step": step},
        handle_signals=False,
        poll_interval=0.05,
        **kwargs,
    )


async def steps(client: Client, n: int, seconds: float = 0.0) -> list[str]:
    jobs = await client.enqueue_many([("call", {"fn": "step", "args": [seconds]})] * n)
    return [job.id for job in jobs]


def _more_than(started: list[Any], seen: int) -> bool:
    return len(started) > seen


async def until(what: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not what():
            await asyncio.sleep(0.01)


async def test_a_job_of_an_earlier_queue_takes_the_next_slot(
    url: str, pair: tuple[Client, Client]
) -> None:
    first, second = pair
    await steps(second, 10, 0.1)
    started: Started = []
    async with serving(url, started, [first.queue, second.queue]):
        await until(lambda: len(started) == 1)
        urgent = (await steps(first, 1))[0]
        await until(lambda: (first.queue, urgent) in started)
        # The later queue's job that ran when it came keeps its slot; the next slot is its.
        assert started.index((first.queue, urgent)) == 1


async def test_a_new_job_on_an_idle_queue_wakes_the_worker_at_once(
    url: str, pair: tuple[Client, Client]
) -> None:
    started: Started = []
    async with serving(url, started, {pair[0].queue: 1, pair[1].queue: 1}):
        await asyncio.sleep(0.3)  # both queues found empty: each waits for work
        for client in reversed(pair):
            t0, seen = time.monotonic(), len(started)
            await steps(client, 1)
            await until(functools.partial(_more_than, started, seen))
            # Well under the 2 s a blocking read lasts: the new entry itself ended the wait.
            assert time.monotonic() - t0 < 1.0


async def test_a_paused_queue_leaves_its_slots_to_the_others(
    url: str, pair: tuple[Client, Client]
) -> None:
    first, second = pair
    await first.pause()
    await steps(first, 3)
    await steps(second, 5)
    started: Started = []
    async with serving(url, started, [first.queue, second.queue]):
        await until(lambda: len(started) == 5)
        assert {q for q, _ in started} == {second.queue}
        await first.resume()
        await until(lambda: len(started) == 8)


async def test_a_burst_worker_stops_once_every_queue_is_drained(
    url: str, pair: tuple[Client, Client]
) -> None:
    for client in pair:
        await steps(client, 5, 0.01)
    started: Started = []
    w = serving(url, started, {pair[0].queue: 2, pair[1].queue: 1}, burst=True)
    await asyncio.wait_for(w.run(), 15)
    assert len(started) == 10
    assert (w.unhealthy() or "").endswith("stopped")


async def test_a_stop_now_hands_back_the_jobs_of_every_queue(
    url: str, pair: tuple[Client, Client]
) -> None:
    ids = [(await steps(client, 1, 30))[0] for client in pair]
    started: Started = []
    w = serving(url, started, [pair[0].queue, pair[1].queue], concurrency=2, grace_period=30)
    async with w:
        await until(lambda: len(started) == 2)
        assert w.busy == 2 and w.unhealthy() is None and w.ready
        w.stop(now=True)
    for client, job_id in zip(pair, ids, strict=True):
        job = await client.get(job_id)
        assert job is not None and job.status is JobStatus.PENDING


def test_strict_order_takes_back_what_a_later_queue_did_not_use() -> None:
    arbiter = Arbiter(2, 2, ["a", "b"])
    a, b = arbiter.lanes
    assert (a.granted, b.granted) == (2, 0)
    a.settle(False)  # `a` ran dry: its slots go to `b`
    assert (a.granted, b.granted) == (0, 2)
    assert b.reserve() == 2
    b.take()
    b.settle(True)  # one leased, one given back
    a.want()  # a new entry on `a`: the free slot is its, not `b`'s
    assert (a.granted, b.granted, arbiter.unallocated()) == (1, 0, 0)
    a.close()  # `a` stops: its slot is `b`'s
    assert (b.granted, b.running, arbiter.unallocated()) == (1, 1, 0)
    b.release()
    assert b.granted == 2 and b.free() == 2


@pytest.mark.redis_only
async def test_a_dead_workers_job_of_an_idle_queue_is_taken_over_beside_a_busy_one(
    url: str, pair: tuple[Client, Client]
) -> None:
    busy, idle = pair
    [orphan] = await steps(idle, 1)
    await ensure_group(idle.redis, idle.keys())
    [leased] = await Scripts(idle.redis).start(idle.keys(), "gone", read=1)  # then it died
    assert leased.job_id == orphan
    await steps(busy, 80, 0.05)  # 4 s of work for the one slot
    started: Started = []
    queues = {busy.queue: 1, idle.queue: 1}
    async with serving(url, started, queues, lease_ttl=0.5, reclaim_interval=0.2):
        await until(lambda: (idle.queue, orphan) in started)
        assert len(started) < 80  # its share of the slot came while the busy queue had work
    job = await idle.get(orphan)
    assert job is not None and job.status is JobStatus.COMPLETED and job.attempt == 2


async def _calls(client: Client, *names: str) -> int:
    """The server's count of calls of these commands (in scripts too)."""
    stats: Any = await client.redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in names)


async def test_idle_queues_cost_nothing_per_job_of_a_busy_one() -> None:
    server = RedisServer().start()  # of its own: its command counts are this test's
    try:
        busy, idle = unique_queue(), unique_queue()
        started: Started = []
        async with (
            Client(server.url, queue=busy) as client,
            serving(server.url, started, [busy, idle], concurrency=4),
        ):
            await asyncio.sleep(0.5)  # both queues found empty: each waits for work
            reads = ("xread", "xreadgroup", "xinfo|groups")  # `start` reads with XREADGROUP
            before = await _calls(client, *reads)
            await asyncio.sleep(4)
            # A blocking read and a `start` per queue per 2 s, as one worker per queue makes.
            assert await _calls(client, *reads) - before <= 2 * 2 * (4 / 2 + 1)
            waits = ("xread", "xinfo|groups")  # what only a queue waiting for work sends
            before, t0 = await _calls(client, *waits), time.monotonic()
            await steps(client, 2000)
            await until(lambda: len(started) == 2000, 60)
            # The idle queue's waits, and the busy queue's before and after its backlog.
            per_2s = 2 * 2 * ((time.monotonic() - t0) / 2 + 2)
            assert await _calls(client, *waits) - before <= per_2s
    finally:
        server.stop()
