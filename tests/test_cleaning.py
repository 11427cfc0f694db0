"""Client.remove / purge / drain / obliterate, and how long dead letters are kept: each verb
checked against the keyspace invariants, on both backends."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from redisjobs import Client, JobCancelled, JobStatus, QueueInUse, Worker
from redisjobs.sync import Client as SyncClient
from tests.conftest import WorkerFactory, log_events
from tests.faults.audit import audit
from tests.jobs import add, fail, sleep

DAY_MS = 86_400_000


async def _settled(client: Client, **counts: int) -> None:
    async with asyncio.timeout(10):
        while True:
            stats = await client.stats()
            if all(stats[k] >= n for k, n in counts.items()):
                return
            await asyncio.sleep(0.02)


async def _keys(client: Client) -> list[bytes]:
    return [k async for k in client.redis.scan_iter(match=client.keys().prefix + "*")]


async def _age(client: Client, job_ids: list[str], seconds: float) -> None:
    """Make jobs look finished `seconds` ago (their completed_at), as time would."""
    now_s, micros = await client.redis.time()
    ms = now_s * 1000 + micros // 1000 - int(seconds * 1000)
    for job_id in job_ids:
        await client.redis.hset(client.keys().job(job_id), "completed_at", ms)


async def test_purge_takes_one_final_status_by_age(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[add, fail])
    done = await client.enqueue_many([("call", {"fn": "add", "args": [1, 2]})] * 6)
    failed = await client.enqueue_many([("call", {"fn": "fail"})] * 4)
    cancelled = await client.enqueue("call", {"fn": "add", "args": [1, 2]}, delay=60)
    assert await client.cancel(cancelled.id)
    await _settled(client, completed=6, dead=4)
    old = [j.id for j in done[:4]]
    await _age(client, old, 3600)
    await _age(client, [failed[0].id], 7200)

    assert await client.purge(status="completed", older_than=1800) == 4
    assert [await client.get(i) for i in old] == [None] * 4
    assert (await client.stats())["completed"] == 6  # counters keep counting them
    assert len((await client.list_jobs("completed")).jobs) == 2
    assert await client.purge(status=JobStatus.FAILED, older_than=3600) == 1
    assert (await client.stats())["dead"] == 3
    assert await audit(client.redis, client.queue) == []
    # None: every job of the status finished before the call; failed is the default.
    assert await client.purge() == 3
    assert await client.purge(status="cancelled", older_than=0) == 1
    assert await client.purge(status="completed", older_than=0.0) == 2
    assert await client.purge() == 0
    for job in [*done, *failed, cancelled]:
        for key in (client.keys().job(job.id), client.keys().job_log(job.id)):
            assert not await client.redis.exists(key)
    assert await client.redis.zcard(client.keys().dead) == 0
    assert await audit(client.redis, client.queue) == []


async def test_purge_walks_an_index_longer_than_a_batch(client: Client) -> None:
    # Finished jobs written as the scripts leave them, 2,500 of them: young, old, young, ...
    keys = client.keys()
    now_s, _ = await client.redis.time()
    async with client.redis.pipeline(transaction=False) as pipe:
        for n in range(2500):
            finished = now_s * 1000 - (DAY_MS if n % 2 else 0)
            pipe.hset(keys.job(f"j{n}"), mapping={"status": "completed", "completed_at": finished})
            pipe.pexpire(keys.job(f"j{n}"), 2 * DAY_MS)
            pipe.zadd(keys.status("completed"), {f"j{n}": finished + 2 * DAY_MS})
        await pipe.execute()
    assert await client.purge(status="completed", older_than=3600) == 1250
    assert await client.redis.zcard(keys.status("completed")) == 1250
    assert await client.get("j1") is None and await client.get("j2") is not None


async def test_remove_deletes_a_job_in_any_final_status(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[add])
    job = await client.enqueue("call", {"fn": "add", "args": [1, 2]})
    assert await client.wait(job.id, timeout=10) == 3
    waiting = await client.enqueue("call", {}, delay=60)
    assert not await client.remove(waiting.id)  # not finished: left alone
    assert await client.remove(job.id)
    assert await client.get(job.id) is None
    assert not await client.remove(job.id)
    assert await client.cancel(waiting.id)
    assert await client.remove(waiting.id)
    assert await audit(client.redis, client.queue) == []


async def test_hostile_input_is_refused_before_anything_is_written(client: Client) -> None:
    job = await client.enqueue("call", {})
    bad: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"status": "pending"}, ValueError),
        ({"status": "running"}, ValueError),
        ({"status": "nope"}, ValueError),
        ({"older_than": -1}, ValueError),
        ({"older_than": math.nan}, ValueError),
        ({"older_than": math.inf}, ValueError),
        ({"older_than": "60"}, TypeError),
        ({"older_than": True}, TypeError),
    ]
    for kwargs, error in bad:
        with pytest.raises(error):
            await client.purge(**kwargs)
    for name in ("a b", "q}x", "q*", "x" * 129):
        for verb in (client.purge, client.drain, client.obliterate):
            with pytest.raises(ValueError, match="queue name"):
                await verb(name)
    with pytest.raises(ValueError):
        await client.remove("../x")
    assert (await client.get(job.id)) is not None


async def test_drain_drops_waiting_jobs_and_lets_running_ones_finish(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[sleep], concurrency=1)
    running = await client.enqueue("call", {"fn": "sleep", "args": [0.5]})
    await _settled(client, started=1)
    pending = await client.enqueue_many([("call", {"fn": "sleep", "args": [0]})] * 3)
    scheduled = await client.enqueue("call", {"fn": "sleep", "args": [0]}, delay=60)
    waiter = asyncio.create_task(client.wait(pending[0].id, timeout=10))
    await asyncio.sleep(0.05)  # its subscription is in place

    assert await client.drain() == 4
    with pytest.raises(JobCancelled) as cancelled:
        await waiter
    assert cancelled.value.error == "drained"
    for job in [*pending, scheduled]:
        assert await client.get(job.id) is None
    stats = await client.stats()
    assert (stats["pending"], stats["scheduled"], stats["cancelled"]) == (0, 0, 4)
    assert await client.redis.zcard(client.keys().delayed) == 0
    assert await audit(client.redis, client.queue) == []
    assert await client.wait(running.id, timeout=10) == "slept"
    assert (await client.get(running.id)).status == JobStatus.COMPLETED  # type: ignore[union-attr]
    types = [ev.type for ev in await log_events(client, pending[1].id)]
    assert types == ["enqueued", "cancelled"]
    assert await client.drain() == 0
    assert await audit(client.redis, client.queue) == []


async def test_drain_goes_through_a_backlog_in_batches(client: Client) -> None:
    await client.enqueue_many([("call", {})] * 1100)
    await client.enqueue_many([{"kind": "call", "payload": {}, "delay": 60}] * 700)
    assert await client.drain() == 1800
    assert await client.redis.xlen(client.keys().ready) == 0
    assert await audit(client.redis, client.queue) == []


async def test_obliterate_is_refused_while_a_worker_serves_the_queue(
    client: Client, worker: WorkerFactory
) -> None:
    w = await worker(functions=[sleep])
    await client.enqueue_many([("call", {"fn": "sleep", "args": [0]})] * 3)
    await client.enqueue("call", {}, delay=60)
    await _settled(client, completed=3)
    with pytest.raises(QueueInUse, match=w.id):
        await client.obliterate()
    stats = await client.stats()
    assert (stats["completed"], stats["scheduled"]) == (3, 1)
    assert client.queue in await client.queues()

    assert await client.obliterate(force=True) == 4
    assert client.queue not in await client.queues()
    # What the live worker writes again (its lease TTL, its consumer groups) is all that is left.
    left = {k.decode()[len(client.keys().prefix) :] for k in await _keys(client)}
    assert left <= {"ready", "carry", "leases"}


async def test_a_worker_serves_on_after_its_queue_was_obliterated_under_it(
    client: Client, worker: WorkerFactory
) -> None:
    """The stream and its group are gone: the worker makes them again and runs what comes."""
    await worker(functions=[add])
    first = await client.enqueue("call", {"fn": "add", "args": [1, 1]})
    assert await client.wait(first.id, timeout=10) == 2
    assert await client.obliterate(force=True) == 1
    await asyncio.sleep(1)  # the worker looks for work meanwhile: no stream, no group
    after = await client.enqueue("call", {"fn": "add", "args": [2, 2]})
    assert await client.wait(after.id, timeout=10) == 4


async def test_obliterate_deletes_every_key_of_a_quiet_queue(client: Client, url: str) -> None:
    async with Worker(url, queue=client.queue, functions=[add, fail], handle_signals=False):
        await client.enqueue_many([("call", {"fn": "add", "args": [1, 1]})] * 5)
        await client.enqueue_many([("call", {"fn": "fail"})] * 2)
        await _settled(client, completed=5, dead=2)
    await client.enqueue_many([("call", {})] * 3)
    await client.enqueue("call", {}, delay=60)
    orphan = client.keys().job("expired-from-its-index")
    await client.redis.hset(orphan, "status", "completed")
    assert await client.obliterate() == 12
    assert await _keys(client) == []
    assert client.queue not in await client.queues()
    await client.enqueue("call", {})  # the queue can be used again, and is listed again
    assert client.queue in await client.queues()
    assert await audit(client.redis, client.queue) == []


async def test_dead_letters_outlive_result_ttl(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[add, fail])
    ok = await client.enqueue("call", {"fn": "add", "args": [1, 2]}, result_ttl=60)
    bad = await client.enqueue("call", {"fn": "fail"}, result_ttl=60)
    longer = await client.enqueue("call", {"fn": "fail"}, result_ttl=40 * 86400)
    await _settled(client, completed=1, dead=2)
    keys = client.keys()
    assert 0 < await client.redis.pttl(keys.job(ok.id)) <= 60_000
    assert 29 * DAY_MS < await client.redis.pttl(keys.job(bad.id)) <= 30 * DAY_MS
    assert 39 * DAY_MS < await client.redis.pttl(keys.job(longer.id)) <= 40 * DAY_MS
    dead: Any = await client.redis.zrange(keys.dead, 0, 0, withscores=True)
    [(_, expires)] = dead
    now_s, micros = await client.redis.time()
    assert 29 * DAY_MS < expires - (now_s * 1000 + micros // 1000) <= 30 * DAY_MS


@pytest.mark.redis_only
async def test_the_sync_client_cleans_as_the_async_one(
    client: Client, worker: WorkerFactory, redis_url: str
) -> None:
    await worker(functions=[fail])
    failed = await client.enqueue_many([("call", {"fn": "fail"})] * 3)
    await _settled(client, dead=3)
    await client.enqueue("call", {}, delay=60)

    def clean() -> tuple[bool, int, int, int]:
        with SyncClient(redis_url, queue=client.queue) as sync:
            removed = sync.remove(failed[0].id)
            purged = sync.purge(status="failed")
            drained = sync.drain()
            with pytest.raises(QueueInUse):
                sync.obliterate()
            return removed, purged, drained, sync.obliterate(force=True)

    assert await asyncio.to_thread(clean) == (True, 2, 1, 0)
    assert client.queue not in await client.queues()
