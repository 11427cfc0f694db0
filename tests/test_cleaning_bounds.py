"""Cleaning 100,000 jobs blocks Redis for no more than a short script at a time.

drain, purge and obliterate are loops of Lua calls, each a bounded batch; a script doing the
whole backlog at once would hold Redis for 100s of ms. SLOWLOG (at 10 ms) must show none of
them. Runs in the normal suite: pipelined enqueues, about 10 s in all on a shared 2-core box.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from redisjobs import Client
from redisjobs.testing import RedisServer, unique_queue
from tests.faults.audit import audit

pytestmark = [pytest.mark.timeout(180)]

JOBS = 100_000
SLOW_US = 10_000
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    # A server of its own: SLOWLOG is server-wide, and other tests' scripts are not ours.
    with RedisServer(args=["--slowlog-log-slower-than", str(SLOW_US)]) as redis:
        yield redis


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[Client]:
    async with Client(server.url, queue=unique_queue()) as c:
        await c.redis.slowlog_reset()
        yield c


async def slow_scripts(client: Client) -> list[tuple[float, bytes]]:
    """The script calls SLOWLOG holds: (ms, the start of the command)."""
    slow: Any = await client.redis.slowlog_get(1024)
    return [
        (e["duration"] / 1000, e["command"][:60])
        for e in slow
        if e["command"].split()[0].upper() in (b"EVALSHA", b"EVAL", b"FCALL")
    ]


async def test_drain_of_100k_jobs_runs_in_short_scripts(client: Client) -> None:
    await client.enqueue_many({"kind": "call", "payload": {}} for _ in range(JOBS // 2))
    delayed = {"kind": "call", "payload": {}, "delay": 3600}
    await client.enqueue_many(delayed for _ in range(JOBS // 2))
    await client.redis.slowlog_reset()
    t0 = time.monotonic()
    assert await client.drain() == JOBS
    print(f"drained {JOBS} jobs in {time.monotonic() - t0:.2f} s")
    assert await slow_scripts(client) == []
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
    await client.redis.slowlog_reset()
    t0 = time.monotonic()
    assert await client.purge(status="failed", older_than=3600) == JOBS // 2
    assert await client.purge() == JOBS // 2
    print(f"purged {JOBS} jobs in {time.monotonic() - t0:.2f} s")
    assert await slow_scripts(client) == []
    assert await client.redis.zcard(keys.dead) == 0
    assert await audit(client.redis, client.queue) == []


async def test_obliterate_of_100k_jobs_runs_in_short_scripts(client: Client) -> None:
    await client.enqueue_many({"kind": "call", "payload": {}} for _ in range(JOBS))
    await client.redis.slowlog_reset()
    t0 = time.monotonic()
    assert await client.obliterate() == JOBS
    print(f"obliterated {JOBS} jobs in {time.monotonic() - t0:.2f} s")
    assert await slow_scripts(client) == []
    assert [k async for k in client.redis.scan_iter(match=client.keys().prefix + "*")] == []
