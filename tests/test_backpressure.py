"""Backpressure: a queue's max_pending bounds its backlog; an enqueue beyond it is refused with
QueueFull and writes nothing (client, sync client; the HTTP API's 429 is in tests/dashboard)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redisjobs import Client, QueueFull
from redisjobs.scripts import Scripts
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import RedisServer
from tests.test_scripts import read


async def snapshot(client: Client) -> dict[str, Any]:
    """Everything an enqueue writes: job keys, stream, indexes, stats, event log."""
    keys = client.keys()
    r = client.redis
    return {
        "jobs": sorted(await r.keys(keys.prefix + "job:*")),
        "ready": await r.xlen(keys.ready) if await r.exists(keys.ready) else 0,
        "pending": await r.zrange(keys.status("pending"), 0, -1),
        "scheduled": await r.zrange(keys.status("scheduled"), 0, -1),
        "delayed": await r.zcard(keys.delayed),
        "stats": await r.hgetall(keys.stats),
        "log": await r.xlen(keys.log) if await r.exists(keys.log) else 0,
    }


async def test_a_full_queue_refuses_single_and_bulk_enqueues_writing_nothing(
    client: Client,
) -> None:
    await client.set_limit(max_pending=3)
    await client.enqueue("call", 1)
    await client.enqueue("call", 2, delay=60)  # scheduled jobs are backlog too
    before = await snapshot(client)
    with pytest.raises(QueueFull) as full:
        await client.enqueue_many([("call", i) for i in range(2)])
    assert (full.value.queue, full.value.limit, full.value.backlog) == (client.queue, 3, 2)
    assert full.value.adding == 2 and full.value.enqueued == 0
    assert "is full: 2 jobs waiting, max_pending 3" in str(full.value)
    assert await snapshot(client) == before
    await client.enqueue("call", 3)  # one more fits exactly
    before = await snapshot(client)
    with pytest.raises(QueueFull):
        await client.enqueue("call", 4, job_id="refused")
    assert await snapshot(client) == before
    assert await client.get("refused") is None


async def test_enqueue_works_again_once_jobs_start(client: Client, scripts: Scripts) -> None:
    await client.set_limit(max_pending=2)
    await client.enqueue_many([("call", i) for i in range(2)])
    with pytest.raises(QueueFull):
        await client.enqueue("call", 3)
    [started] = await scripts.start(client.keys(), "w1", (await read(client, "w1"))[:1])
    assert started.attempt == 1
    job = await client.enqueue("call", 3)
    assert not job.duplicate and await client.get(job.id) is not None


async def test_a_re_send_on_a_full_queue_is_already_there_not_full(client: Client) -> None:
    await client.set_limit(max_pending=1)
    first = await client.enqueue("call", 1, job_id="order-1")
    again = await client.enqueue("call", 1, job_id="order-1")
    assert again.duplicate and again.id == first.id
    # a bulk re-send with only known ids too; one new id among them is refused, whole
    jobs = await client.enqueue_many([{"kind": "call", "payload": 1, "job_id": "order-1"}])
    assert jobs[0].duplicate
    with pytest.raises(QueueFull) as full:
        await client.enqueue_many(
            [{"kind": "call", "job_id": "order-1"}, {"kind": "call", "job_id": "order-2"}]
        )
    assert full.value.adding == 1
    assert await client.get("order-2") is None


@pytest.mark.parametrize("max_pending", [None, 5], ids=["no limits", "room left"])
async def test_a_re_send_writes_nothing_whatever_the_first_exists_tells(
    client: Client, max_pending: int | None
) -> None:
    # enqueue's first EXISTS names the first row's job twice: each case of its answer (the job
    # alone, or with the limits hash) must read as "already there", on either backend
    if max_pending is not None:
        await client.set_limit(max_pending=max_pending)
    await client.enqueue("call", 1, job_id="sent-once")
    key = client.keys().job("sent-once")
    before = await client.redis.hgetall(key)
    jobs = await client.enqueue_many(
        [{"kind": "call", "payload": 2, "job_id": "sent-once"}, {"kind": "call", "payload": 3}]
    )
    assert [j.duplicate for j in jobs] == [True, False]
    assert await client.redis.hgetall(key) == before  # not written over
    assert (await client.stats())["enqueued"] == 2


async def test_rows_repeating_an_id_or_a_unique_key_of_the_call_count_once(
    client: Client,
) -> None:
    await client.set_limit(max_pending=2)
    unique = {"kind": "call", "unique": "until_start", "unique_key": "k-1"}
    jobs = await client.enqueue_many(
        [{"kind": "call", "job_id": "twice"}, {"kind": "call", "job_id": "twice"}, unique, unique]
    )
    assert [j.duplicate for j in jobs] == [False, True, False, True]
    assert (await client.stats())["pending"] == 2


async def test_a_held_unique_lock_is_a_duplicate_not_a_new_job(client: Client) -> None:
    await client.set_limit(max_pending=1)
    first = await client.enqueue("call", 1, unique="until_start", unique_key="sync-7")
    dup = await client.enqueue("call", 2, unique="until_start", unique_key="sync-7")
    assert dup.duplicate and dup.id == first.id


async def test_a_multi_batch_enqueue_many_says_what_was_written(client: Client) -> None:
    await client.set_limit(max_pending=120)
    with pytest.raises(QueueFull) as full:
        await client.enqueue_many([("call", i) for i in range(150)])  # batches of 100, 50
    assert full.value.enqueued == 100 and full.value.backlog == 100
    assert "the first 100 jobs of the call were enqueued" in str(full.value)
    assert (await client.stats())["enqueued"] == 100


async def test_retries_are_never_refused(client: Client, scripts: Scripts) -> None:
    job = await client.enqueue("call", 1, max_retries=0)
    [d] = await scripts.start(client.keys(), "w1", await read(client, "w1"))
    assert await scripts.fail(client.keys(), "w1", d.job_id, d.lease, "boom") == ("failed", 0)
    await client.enqueue("call", 2)
    await client.set_limit(max_pending=1)  # full now: a dead letter run again is not new work
    assert await client.retry(job.id) is True
    assert (await client.get(job.id)).status.value == "pending"  # type: ignore[union-attr]


async def test_another_queue_s_limit_does_not_apply(client: Client, queue: str) -> None:
    await client.set_limit(queue + "-other", max_pending=1)
    for i in range(3):
        await client.enqueue("call", i)


def test_the_sync_client_raises_queue_full(url: str, queue: str) -> None:
    async def limit() -> None:
        async with Client(url, queue=queue) as c:
            await c.set_limit(max_pending=1)

    asyncio.run(limit())
    with SyncClient(url, queue=queue) as c:
        c.enqueue("call", 1, job_id="one")
        with pytest.raises(QueueFull) as full:
            c.enqueue("call", 2)
        assert (full.value.limit, full.value.backlog) == (1, 1)
        assert c.enqueue("call", 1, job_id="one").duplicate
        assert c.stats()["enqueued"] == 1


async def calls(c: Client) -> dict[str, int]:
    """The calls of each command the server has counted since its last CONFIG RESETSTAT."""
    stats: Any = await c.redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


async def test_a_queue_without_max_pending_pays_no_command_for_it() -> None:
    with RedisServer() as server:  # its own, so that no other client's commands count
        async with Client(server.url, queue="plain") as c:
            await c.enqueue("call", 0)  # the queue registered, the script loaded
            await c.redis.config_resetstat()
            for i in range(20):
                await c.enqueue("call", i)
            plain = await calls(c)
            assert (plain["fcall"], plain["exists"]) == (20, 20)
            # nor for the clock: a job runnable at once takes its time from its stream entry
            assert not {"hget", "hmget", "zcard", "time"} & set(plain)
            await c.set_limit(max_pending=1000)
            await c.redis.config_resetstat()
            for i in range(10):
                await c.enqueue("call", i)
            limited = await calls(c)
            # the limit, then the backlog: the pending count (stats) and the scheduled index
            counted = (limited["exists"], limited["hget"], limited["hmget"], limited["zcard"])
            assert counted == (10, 10, 10, 10)


async def test_a_re_send_pays_no_command_for_the_limit_check() -> None:
    with RedisServer() as server:  # its own, so that no other client's commands count
        async with Client(server.url, queue="plain") as c:
            await c.enqueue("call", 0, job_id="sent")
            await c.redis.config_resetstat()
            for _ in range(20):
                assert (await c.enqueue("call", 0, job_id="sent")).duplicate
            plain = await calls(c)
            assert (plain["fcall"], plain["exists"]) == (20, 20)  # one EXISTS answers both
            assert "hget" not in plain and "zcard" not in plain
            await c.set_limit(max_pending=1)  # full: a re-send still answers "already there"
            await c.redis.config_resetstat()
            for _ in range(10):
                assert (await c.enqueue("call", 0, job_id="sent")).duplicate
            limited = await calls(c)
            assert (limited["exists"], limited["hget"]) == (10, 10)
            assert "zcard" not in limited  # nothing new: the backlog is not even counted
