"""Client.retry / remove / purge (one job or every failed one), queues() and workers(): the read and
repair API under the dashboard, each change checked against the keyspace invariants."""

from __future__ import annotations

import asyncio

from redisjobs import Client, Worker
from tests.conftest import WorkerFactory, log_events
from tests.faults.audit import audit
from tests.jobs import add, fail


async def _failed(client: Client, worker: WorkerFactory, n: int) -> list[str]:
    await worker(functions=[fail])
    jobs = await client.enqueue_many([("call", {"fn": "fail"}) for _ in range(n)])
    async with asyncio.timeout(10):
        while (await client.stats())["dead"] < n:
            await asyncio.sleep(0.02)
    return [j.id for j in jobs]


async def test_retry_runs_a_dead_job_again_under_its_id(
    client: Client, worker: WorkerFactory
) -> None:
    (job_id,) = await _failed(client, worker, 1)
    before = await client.get(job_id)
    assert before is not None and before.status == "failed" and before.lease == 1
    assert await client.retry(job_id)
    assert not await client.retry(job_id)  # not failed any more: nothing happens twice
    async with asyncio.timeout(10):  # the worker runs it again, and it fails again
        while (await client.stats())["dead"] < 1:
            await asyncio.sleep(0.02)
    after = await client.get(job_id)
    assert after is not None and after.status == "failed" and after.attempt == 1
    assert after.lease == 2  # fencing tokens keep growing across a retry
    types = [ev.type for ev in await log_events(client, job_id)]
    assert types == ["enqueued", "started", "failed", "enqueued", "started", "failed"]
    assert (await client.stats())["enqueued"] == 2
    assert await audit(client.redis, client.queue) == []


async def test_remove_one_and_purge_all(client: Client, worker: WorkerFactory) -> None:
    ids = await _failed(client, worker, 5)
    assert await client.remove(ids[0])
    assert not await client.remove(ids[0])
    assert await client.get(ids[0]) is None
    assert (await client.stats())["dead"] == 4
    assert await audit(client.redis, client.queue) == []
    assert await client.purge() == 4
    assert (await client.stats())["dead"] == 0
    assert (await client.list_jobs("failed")).jobs == []
    assert await audit(client.redis, client.queue) == []


async def test_retry_failed_puts_every_dead_job_back(url: str, queue: str) -> None:
    async with Client(url, queue=queue) as client:
        async with Worker(url, queue=queue, functions=[fail], handle_signals=False) as w:
            jobs = await client.enqueue_many([("call", {"fn": "fail"}) for _ in range(3)])
            async with asyncio.timeout(10):
                while (await client.stats())["dead"] < 3:
                    await asyncio.sleep(0.02)
            w.stop(now=True)
        assert await client.retry_failed() == 3
        assert await client.retry_failed() == 0
        for job in jobs:
            got = await client.get(job.id)
            assert got is not None and got.status == "pending" and got.error is None
            assert got.failure is None
        assert await audit(client.redis, client.queue) == []


async def test_a_dead_entry_whose_job_expired_is_dropped(client: Client) -> None:
    keys = client.keys()
    await client.redis.zadd(keys.dead, {"gone": 1})
    await client.redis.zadd(keys.status("failed"), {"gone": 1})
    assert await client.retry_failed() == 0
    assert await client.redis.zcard(keys.dead) == 0
    assert await client.redis.zcard(keys.status("failed")) == 0


async def test_queues_and_workers(client: Client, worker: WorkerFactory) -> None:
    await client.enqueue("call", None)
    await client.enqueue("call", None, queue=f"{client.queue}-2")
    assert {client.queue, f"{client.queue}-2"} <= set(await client.queues())
    w = await worker(concurrency=7)
    async with asyncio.timeout(10):
        while not [x for x in await client.workers() if x.id == w.id]:
            await asyncio.sleep(0.02)
    (mine,) = [x for x in await client.workers() if x.id == w.id]
    assert mine.queues == (client.queue,) and mine.concurrency == 7 and mine.pid > 0
    assert mine.started_at is not None and mine.heartbeat_at is not None


async def test_retry_runs_a_cancelled_job_again(client: Client, worker: WorkerFactory) -> None:
    job = await client.enqueue("call", {"fn": "add", "args": [2, 3]}, delay=3600)
    assert await client.cancel(job.id)
    assert await client.retry(job.id)
    assert not await client.retry(job.id)  # pending now: nothing happens twice
    again = await client.get(job.id)
    assert again is not None and again.status == "pending" and again.error is None
    await worker(functions=[add])
    assert await client.wait(job.id, timeout=10) == 5
    types = [ev.type for ev in await log_events(client, job.id)]
    assert types == ["enqueued", "cancelled", "enqueued", "started", "completed"]
    assert await audit(client.redis, client.queue) == []
