"""Cleaning 100,000 jobs blocks Redis for no more than a short script at a time.

drain, purge and obliterate are loops of Lua calls, each a bounded batch; a script doing the
whole backlog at once would hold Redis for 100s of ms. The work must come in as many calls as
the batches say (INFO commandstats), and SLOWLOG (at 10 ms, or more on a slow machine:
tests/script_budget.py) must show none of them but the odd call the kernel preempted. Runs in
the normal suite: pipelined enqueues, about 10 s in all on a shared 2-core machine. And a
Redis at maxmemory, which refuses enqueues, still takes cleaning.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from redisjobs import Client, RedisOutOfMemory
from redisjobs.cleaning import DRAIN_BATCH, OBLITERATE_BATCH, PURGE_BATCH
from redisjobs.testing import RedisServer, unique_queue
from tests.faults.audit import audit
from tests.script_budget import slow_scripts, watch_scripts

pytestmark = [pytest.mark.timeout(180)]

JOBS = 100_000
# SLOWLOG times a script by the wall clock: on a loaded 2-core machine the kernel may take the
# CPU from redis-server in the middle of a 1-2 ms script (seen: 7 of 200 calls at 12-88 ms, at
# a load of 4, in a run whose calls otherwise took 5 ms at most). A script whose own work is
# over 10 ms shows up in every call; preemption in a few of them.
PREEMPTED_SHARE = 0.05
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    # A server of its own: SLOWLOG is server-wide, and other tests' scripts are not ours.
    with RedisServer() as redis:
        yield redis


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[Client]:
    async with Client(server.url, queue=unique_queue()) as c:
        yield c


async def reset(client: Client) -> None:
    """Forget the slow calls and the command counts so far."""
    await watch_scripts(client.redis)
    await client.redis.config_resetstat()


async def assert_short_scripts(client: Client, batches: int) -> None:
    """The scripts since :func:`reset` came in `batches` calls at least, and SLOWLOG holds
    none of them but the few a loaded machine preempted."""
    stats: Any = await client.redis.info("commandstats")
    calls = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("fcall", "evalsha", "eval"))
    assert calls >= batches
    slow = await slow_scripts(client.redis)
    # A few may be slow, never half: a backlog done in a call or two is slow in each of them.
    assert len(slow) <= max(3, calls * PREEMPTED_SHARE) and 2 * len(slow) < calls, (calls, slow)


async def test_drain_of_100k_jobs_runs_in_short_scripts(client: Client) -> None:
    await client.enqueue_many({"kind": "call", "payload": {}} for _ in range(JOBS // 2))
    delayed = {"kind": "call", "payload": {}, "delay": 3600}
    await client.enqueue_many(delayed for _ in range(JOBS // 2))
    await reset(client)
    t0 = time.monotonic()
    assert await client.drain() == JOBS
    print(f"drained {JOBS} jobs in {time.monotonic() - t0:.2f} s")
    await assert_short_scripts(client, JOBS // DRAIN_BATCH)
    stats = await client.stats()
    assert (stats["pending"], stats["scheduled"], stats["cancelled"]) == (0, 0, JOBS)
    assert await client.redis.xlen(client.keys().ready) == 0
    assert await audit(client.redis, client.queue) == []


async def test_purge_of_100k_jobs_runs_in_short_scripts(client: Client) -> None:
    # 100,000 dead letters as fail.lua leaves them (written directly: running them would take
    # minutes), every other one finished a day ago.
    keys = client.keys()
    now_s, micros = await client.redis.time()
    now = now_s * 1000 + micros // 1000
    for start in range(0, JOBS, 10_000):
        async with client.redis.pipeline(transaction=False) as pipe:
            for n in range(start, start + 10_000):
                job, finished = f"j{n}", now - (DAY_MS if n % 2 else 0)
                pipe.hset(keys.job(job), mapping={"status": "failed", "completed_at": finished})
                pipe.pexpire(keys.job(job), 30 * DAY_MS)
                pipe.zadd(keys.status("failed"), {job: finished + 30 * DAY_MS})
                pipe.zadd(keys.dead, {job: finished + 30 * DAY_MS})
            await pipe.execute()
    await reset(client)
    t0 = time.monotonic()
    assert await client.purge(status="failed", older_than=3600) == JOBS // 2
    assert await client.purge() == JOBS // 2
    print(f"purged {JOBS} jobs in {time.monotonic() - t0:.2f} s")
    await assert_short_scripts(client, JOBS // PURGE_BATCH)
    assert await client.redis.zcard(keys.dead) == 0
    assert await audit(client.redis, client.queue) == []


async def test_obliterate_of_100k_jobs_runs_in_short_scripts(client: Client) -> None:
    await client.enqueue_many({"kind": "call", "payload": {}} for _ in range(JOBS))
    await reset(client)
    t0 = time.monotonic()
    assert await client.obliterate() == JOBS
    print(f"obliterated {JOBS} jobs in {time.monotonic() - t0:.2f} s")
    await assert_short_scripts(client, JOBS // OBLITERATE_BATCH)
    assert [k async for k in client.redis.scan_iter(match=client.keys().prefix + "*")] == []


async def test_a_full_redis_still_cleans(server: RedisServer) -> None:
    # At maxmemory (noeviction) an enqueue is refused; cleaning, which frees memory, is not.
    async with Client(server.url, queue=unique_queue()) as client:
        await client.enqueue_many({"kind": "call", "payload": "x" * 200} for _ in range(5000))
        later = await client.enqueue_many({"kind": "call", "delay": 3600} for _ in range(50))
        for job in later:
            assert await client.cancel(job.id)
        info: Any = await client.redis.info("memory")
        await client.redis.config_set("maxmemory", info["used_memory"] - 1_000_000)
        try:
            with pytest.raises(RedisOutOfMemory):
                await client.enqueue("call", {})
            assert await client.remove(later[0].id)
            assert await client.purge(status="cancelled") == 49
            assert await client.drain() == 5000
            assert await client.obliterate() == 0
            await client.enqueue("call", {})  # room again
        finally:
            await client.redis.config_set("maxmemory", 0)
