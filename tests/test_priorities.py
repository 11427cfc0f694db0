"""Priorities (lower runs sooner, FIFO within one) and pausing a queue, with real workers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from redisjobs import Client, Job, JobStatus, Worker
from redisjobs.keys import GROUP
from redisjobs.scripts import Scripts

from .conftest import WorkerFactory, log_events

RAN: dict[str, list[str]] = {}


async def record(run: str, tag: str, seconds: float = 0.0) -> str:
    """Note that job `tag` of test run `run` started, then take `seconds`."""
    RAN.setdefault(run, []).append(tag)
    await asyncio.sleep(seconds)
    return tag


def _job(run: str, tag: str, priority: int | None = None, **more: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"kind": "call", "payload": {"fn": "record", "args": [run, tag]}}
    if priority is not None:
        job["priority"] = priority
    return {**job, **more}


async def _until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


# Several priorities, the default among them, in an order that is none of theirs.
MIXED = list(
    zip("abcdefghijkl", [None, 7, 300, 100, 7, 0, None, 300, 99, 101, None, 0], strict=True)
)


def _expected(jobs: list[tuple[str, int | None]]) -> list[str]:
    order = sorted(enumerate(jobs), key=lambda j: (100 if j[1][1] is None else j[1][1], j[0]))
    return [tag for _, (tag, _) in order]


async def _ran_in_order(client: Client, queue: str, done: list[Job]) -> None:
    """Once the jobs of MIXED are `done`, they ran by (priority, enqueue order)."""
    for job in done:
        await client.wait(job.id, timeout=10)
    assert RAN[queue] == _expected(MIXED)


async def test_strict_order_at_concurrency_1_before_the_worker_starts(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    done = await client.enqueue_many([_job(queue, t, p) for t, p in MIXED])
    await worker(functions=[record], concurrency=1)
    await _ran_in_order(client, queue, done)


async def test_strict_order_of_jobs_enqueued_while_paused(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await worker(functions=[record], concurrency=1)
    assert await client.pause() and not await client.pause()  # a second pause changes nothing
    assert await client.is_paused()
    done = []
    for tag, priority in MIXED:
        given = 100 if priority is None else priority
        done.append(await client.enqueue("call", _job(queue, tag)["payload"], priority=given))
    await asyncio.sleep(0.3)
    assert queue not in RAN  # nothing starts on a paused queue
    assert await client.resume() and not await client.is_paused()
    await _ran_in_order(client, queue, done)


async def test_a_delayed_job_keeps_its_priority_when_due(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    w = await worker(functions=[record], concurrency=1)
    await client.pause()
    plain = await client.enqueue_many([_job(queue, "plain")])
    urgent = await client.enqueue_many([_job(queue, "urgent", 3, delay=0.2)])
    keys = client.keys()

    async def promoted() -> bool:
        return await client.redis.zscore(keys.prio, urgent[0].id) is not None

    await _until(promoted)  # the worker's promote loop goes on while the queue is paused
    assert w.busy == 0
    await client.resume()
    await client.wait(plain[0].id, timeout=10)
    assert RAN[queue] == ["urgent", "plain"]


async def test_a_retried_job_keeps_its_priority(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await worker(functions=[record, flaky], concurrency=1)
    job = await client.enqueue(
        "call", {"fn": "flaky", "args": [queue]}, priority=5, max_retries=1, retry_delay=0.3
    )

    async def scheduled() -> bool:
        got = await client.get(job.id)
        return got is not None and got.status == JobStatus.SCHEDULED

    await _until(scheduled)
    await client.pause()
    later = await client.enqueue_many([_job(queue, "plain")])
    keys = client.keys()

    async def in_prio() -> bool:
        return await client.redis.zscore(keys.prio, job.id) is not None

    await _until(in_prio)
    await client.resume()
    await client.wait(later[0].id, timeout=10)
    assert await client.wait(job.id, timeout=10) == "second"
    assert RAN[queue] == ["flaky", "flaky", "plain"]


FLAKY: set[str] = set()


async def flaky(run: str) -> str:
    """Fails the first time it runs in test run `run`."""
    RAN.setdefault(run, []).append("flaky")
    if run not in FLAKY:
        FLAKY.add(run)
        raise RuntimeError("first try")
    return "second"


async def test_cancel_of_a_prioritized_pending_job(client: Client) -> None:
    job = await client.enqueue("call", {"fn": "record", "args": ["x", "y"]}, priority=1)
    keys = client.keys()
    assert await client.redis.zscore(keys.prio, job.id) is not None
    assert await client.cancel(job.id)
    got = await client.get(job.id)
    assert got is not None and got.status == JobStatus.CANCELLED
    assert await client.redis.zcard(keys.prio) == 0


async def test_a_dead_workers_carry_lease_is_reclaimed(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    """A job taken from `prio` is leased under a `carry` entry; its worker dies (it never
    heartbeats, as a killed process): another worker takes it over after the lease."""
    job = await client.enqueue("call", {"fn": "record", "args": [queue, "x"]}, priority=2)
    keys = client.keys()
    [taken] = await Scripts(client.redis, embedded=client.backend.embedded).start(
        keys, "doomed", read=1
    )
    held: Any = await client.redis.xpending_range(keys.carry, GROUP, "-", "+", 10, "doomed")
    assert taken.job_id == job.id and len(held) == 1
    assert held[0]["message_id"].startswith(b"0-")
    await worker(functions=[record], lease_ttl=0.5, reclaim_interval=0.1)
    await client.wait(job.id, timeout=10)
    got = await client.get(job.id)
    assert got is not None and got.lease == 2
    assert [e.type for e in await log_events(client, job.id)].count("reclaimed") == 1
    assert (await client.redis.xpending(keys.carry, GROUP))["pending"] == 0


async def test_a_stopping_worker_hands_a_prioritized_job_back(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    w = await worker(functions=[record], concurrency=1)
    job = await client.enqueue("call", {"fn": "record", "args": [queue, "slow", 30]}, priority=4)
    await _until(lambda: _status(client, job.id, JobStatus.RUNNING))
    w.stop(now=True)
    await w.__aexit__(None, None, None)
    keys = client.keys()
    got = await client.get(job.id)
    assert got is not None and got.status == JobStatus.PENDING and got.priority == 4
    assert await client.redis.zscore(keys.prio, job.id) is not None  # back in line, by priority
    assert (await client.redis.xpending(keys.carry, GROUP))["pending"] == 0
    assert "released" in [e.type for e in await log_events(client, job.id)]


async def _status(client: Client, job_id: str, status: JobStatus) -> bool:
    got = await client.get(job_id)
    return got is not None and got.status == status


async def test_a_low_priority_runs_as_soon_as_nothing_more_urgent_is_pending(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    """Strict priority: a low priority waits while more urgent jobs are pending, but a steady
    trickle of urgent jobs below the worker's capacity does not hold it up."""
    await worker(functions=[record], concurrency=2)
    stop = asyncio.Event()

    async def trickle() -> None:
        n = 0
        while not stop.is_set():
            payload = {"fn": "record", "args": [queue, f"u{n}", 0.02]}
            await client.enqueue("call", payload, priority=1)
            n += 1
            await asyncio.sleep(0.05)

    feeding = asyncio.create_task(trickle())
    await asyncio.sleep(0.3)
    sent = time.monotonic()
    low = await client.enqueue("call", {"fn": "record", "args": [queue, "low"]}, priority=500)
    await client.wait(low.id, timeout=5)
    waited = time.monotonic() - sent
    stop.set()
    await feeding
    assert waited < 1.0, waited  # the poll interval is 0.05 s: it ran at the next look


async def test_strict_priority_holds_a_low_one_back_while_urgent_ones_wait(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await worker(functions=[record], concurrency=1)
    await client.pause()
    low = await client.enqueue("call", _job(queue, "low")["payload"], priority=500)
    urgent = [
        await client.enqueue("call", _job(queue, f"u{n}")["payload"], priority=1) for n in range(5)
    ]
    await client.resume()
    await client.wait(low.id, timeout=10)
    assert RAN[queue] == [*(f"u{n}" for n in range(5)), "low"]
    assert all([await _status(client, u.id, JobStatus.COMPLETED) for u in urgent])


@pytest.mark.redis_only
async def test_the_wake_up_entry_starts_a_blocked_worker_at_once(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    """A job in `prio` has no stream entry of its own; its wake-up entry ends a worker's
    blocking read (2 s) at once."""
    w = await worker(functions=[record], concurrency=1)
    await asyncio.sleep(0.3)  # the fetcher is blocked in XREADGROUP by now
    assert w._session is not None and w._session.fetcher.blocked
    sent = time.monotonic()
    job = await client.enqueue("call", _job(queue, "now")["payload"], priority=3)
    await client.wait(job.id, timeout=5)
    assert time.monotonic() - sent < 0.5


async def test_pause_while_busy(client: Client, worker: WorkerFactory, queue: str) -> None:
    """Running jobs finish, nothing new starts, enqueue works; a resume starts work at once."""
    w = await worker(functions=[record], concurrency=2, poll_interval=2.0)
    slow = [
        {"kind": "call", "payload": {"fn": "record", "args": [queue, f"r{n}", 0.4]}}
        for n in range(2)
    ]
    running = await client.enqueue_many(slow)
    await _until(lambda: _status(client, running[1].id, JobStatus.RUNNING))
    await client.pause()
    waiting = await client.enqueue_many([_job(queue, "w0"), _job(queue, "w1", 5)])
    assert [await client.wait(job.id, timeout=5) for job in running] == ["r0", "r1"]
    await asyncio.sleep(0.5)
    assert w.busy == 0
    assert all([await _status(client, j.id, JobStatus.PENDING) for j in waiting])
    resumed = time.monotonic()
    await client.resume()
    for job in waiting:
        await client.wait(job.id, timeout=5)
    # well under the poll interval (2 s) and the paused fetcher's recheck (5 s)
    assert time.monotonic() - resumed < 0.5
    assert RAN[queue] == ["r0", "r1", "w1", "w0"]


def test_the_sync_client_pauses_and_resumes(url: str, queue: str) -> None:
    from redisjobs.sync import Client as SyncClient

    with SyncClient(url, queue=queue) as client:
        assert not client.is_paused()
        assert client.pause() and client.is_paused()
        assert client.resume() and not client.is_paused()
        assert not client.resume()


async def test_a_burst_worker_stops_on_a_paused_queue(client: Client, url: str, queue: str) -> None:
    """Nothing on a paused queue is ready to run: a burst worker stops, the job stays."""
    await client.pause()
    job = await client.enqueue("call", _job(queue, "held")["payload"], priority=3)
    w = Worker(url, queue=queue, burst=True, handle_signals=False, poll_interval=0.05)
    await asyncio.wait_for(w.run(), 5)
    got = await client.get(job.id)
    assert got is not None and got.status == JobStatus.PENDING and queue not in RAN
