"""Leases under faults: whose lease counts, lost replies, heartbeats beside heavy job traffic.

Each scenario runs real worker processes against a redis-server of its own (through a fault
proxy where the network misbehaves) and reads the outcome from Redis and its event log.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from redisjobs import Client
from tests.faults.conftest import MakeProxy, MakeScenario
from tests.faults.harness import FaultRedis, Spawner, redis_time_ms, statuses, until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


async def _enqueue(client: Client, fn: str, n: int, **kwargs: Any) -> list[str]:
    jobs = await client.enqueue_many([("call", {"fn": f"tests.jobs:{fn}", "kwargs": kwargs})] * n)
    return [j.id for j in jobs]


async def _all_final(client: Client, ids: list[str], timeout: float) -> dict[str, str | None]:
    async def final() -> bool:
        got = await statuses(client.redis, client.queue, ids)
        return all(s in ("completed", "failed", "cancelled") for s in got.values())

    await until(final, timeout, f"{len(ids)} jobs to finish")
    return await statuses(client.redis, client.queue, ids)


async def test_the_holders_lease_governs_its_jobs(scenario: MakeScenario, workers: Spawner) -> None:
    """A worker with a 1 s lease beside one with a 6 s lease takes none of the long-lease
    worker's healthy jobs, and takes its jobs over only after *its* 6 s once it dies."""
    server, client, tail = await scenario()
    holder = workers.spawn(server.url, name="holder", lease_ttl=6, concurrency=4)
    await holder.wait_registered(client.redis)
    ids = await _enqueue(client, "sleep", 4, seconds=8)
    await until(lambda: _count(client, ids, "running", 4), 15, "the holder to run all four jobs")
    short = workers.spawn(server.url, name="short", lease_ttl=1, reclaim_interval=0.25)
    await short.wait_registered(client.redis)
    await asyncio.sleep(3.0)  # three of the short worker's leases, one beat of the holder's
    holder.kill()
    killed_at = await redis_time_ms(client.redis)
    got = await _all_final(client, ids, 40)
    await tail.drain()
    assert set(got.values()) == {"completed"}, got
    reclaims = tail.of_type("reclaimed")
    assert {ev.job_id for ev in reclaims} == set(ids)
    # Nothing was taken while the holder lived; after its death it took the holder's lease
    # (6 s since its last beat, which was at most 2 s before the kill), not the short one's 1 s.
    waited = [(ev.ts - killed_at) / 1000 for ev in reclaims]
    print(f"taken over {min(waited):.2f}-{max(waited):.2f} s after the holder's kill")
    assert min(waited) >= 6 - 2 - 0.3, waited
    assert max(waited) <= 6 + 0.25 + 2.0, waited


async def _count(client: Client, ids: list[str], status: str, n: int) -> bool:
    got = await statuses(client.redis, client.queue, ids)
    return sum(s == status for s in got.values()) >= n


async def test_lost_replies_cost_no_attempt(
    redis_under_test: FaultRedis,
    make_proxy: MakeProxy,
    make_client: Any,
    workers: Spawner,
) -> None:
    """Replies lost on the way back (every connection reset every 1-3 s while replies are
    delayed) never turn into crashes: with max_deliveries=1, a job leased by a call whose reply
    was lost would fail as 'worker died' without having run."""
    client: Client = await make_client(redis_under_test.url)
    proxy = make_proxy(seed=7)
    proxy.set_latency(down=(0.05, 0.25))
    w = workers.spawn(
        proxy.url, name="w", lease_ttl=8, reclaim_interval=0.5, concurrency=8, max_deliveries=1
    )
    await w.wait_registered(client.redis, timeout=30)
    ids = await _enqueue(client, "sleep", 400, seconds=0.02)
    rng = random.Random(11)
    resets = 0
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and not await _count(client, ids, "completed", len(ids)):
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        resets += await asyncio.to_thread(proxy.reset_all)
    proxy.set_latency()
    got = await _all_final(client, ids, 60)
    stats = await client.stats()
    assert w.alive, w.log()[-3000:]
    assert resets >= 8, resets
    failed = [await client.get(i) for i, s in got.items() if s != "completed"]
    assert [j.error for j in failed if j is not None] == [], stats
    assert stats["reclaimed"] == 0, stats
    assert stats["started"] == len(ids), stats


async def test_heartbeats_do_not_wait_behind_job_traffic(
    redis_under_test: FaultRedis,
    make_proxy: MakeProxy,
    make_client: Any,
    workers: Spawner,
) -> None:
    """1,000 jobs writing progress through a 200 ms round trip keep every command connection
    of the worker busy (a queue of about 3 s); the heartbeat has a connection of its own, so
    no lease is lost and no job is taken over."""
    client: Client = await make_client(redis_under_test.url)
    proxy = make_proxy(seed=3)
    proxy.set_latency(up=0.1, down=0.1)
    ids = await _enqueue(client, "progress", 1000, steps=8, pause=0.2)
    w = workers.spawn(proxy.url, name="w", lease_ttl=2, reclaim_interval=0.5, concurrency=1000)
    got = await _all_final(client, ids, 120)
    stats = await client.stats()
    assert "leases as lost" not in w.log(), w.log()[-3000:]
    assert set(got.values()) == {"completed"}, stats
    assert stats["reclaimed"] == 0 and stats["started"] == len(ids), stats


async def test_a_resent_cancel_keeps_its_answer(
    redis_under_test: FaultRedis, make_proxy: MakeProxy, make_client: Any
) -> None:
    """The reply to a cancel is lost and redis-py sends it again: the job is cancelled, and
    the caller hears so (the second send finds it cancelled by the same request)."""
    direct: Client = await make_client(redis_under_test.url)
    proxy = make_proxy()
    client: Client = await make_client(proxy.url)
    job = await direct.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]}, delay=60)
    proxy.set_latency(down=1.0)
    cancelling = asyncio.create_task(client.cancel(job.id))
    await until(lambda: _has_status(direct, job.id, "cancelled"), 5, "the cancel to reach Redis")
    await asyncio.to_thread(proxy.reset_all)  # the reply is on its way back: lost
    proxy.set_latency()
    assert await asyncio.wait_for(cancelling, 10) is True
    assert await direct.cancel(job.id) is False  # a new request: the job had already ended


async def _has_status(client: Client, job_id: str, status: str) -> bool:
    job = await client.get(job_id)
    return job is not None and job.status == status
