"""Scenario 11: a 10,000-job backlog with two workers.

No script runs over 10 ms (SLOWLOG; more on a slow machine: tests/script_budget.py), the last
tenth goes at least 80 % as fast as the first (nothing in the keyspace grows with the backlog),
and once results expire the keyspace is back to its baseline: the stream empty, the status
indexes empty, no dead consumers left.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.faults.audit import audit
from tests.faults.conftest import MakeClient, MakeRedis
from tests.faults.harness import Figures, Spawner
from tests.script_budget import slow_scripts, watch_scripts

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(180)]

JOBS = 10_000
RESULT_TTL = 8.0


async def test_a_10k_backlog_drains_at_a_steady_pace_and_leaves_nothing(
    make_redis: MakeRedis, make_client: MakeClient, workers: Spawner, queue: str
) -> None:
    server = make_redis("plain")
    client = await make_client(server.url)
    redis: Any = client.redis
    budget = await watch_scripts(redis)
    specs = [
        {
            "kind": "call",
            "payload": {"fn": "tests.jobs:sleep", "args": [0.01]},
            "result_ttl": RESULT_TTL,
        }
        for n in range(JOBS)
    ]
    ids = [job.id for job in await client.enqueue_many(specs)]

    procs = [
        workers.spawn(server.url, concurrency=10, lease_ttl=2, reclaim_interval=0.5)
        for _ in range(2)
    ]
    async with asyncio.timeout(120):
        while (await client.stats()).get("completed", 0) < JOBS:
            await asyncio.sleep(0.1)

    # Completion times, read before the hashes expire.
    done: list[int] = []
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(client.keys().job(job_id), "completed_at")
        done = sorted(int(t) for t in await pipe.execute())
    # Jobs of 10 ms at 2 x 10 slots: each tenth lasts well over half a second, so a scheduling
    # hiccup cannot pass for a slowdown, and what is measured is the queue's machinery.
    tenth = JOBS // 10
    first = done[tenth - 1] - done[0]
    last = done[-1] - done[-tenth]
    pace = (first + 1) / (last + 1)
    scripts = await slow_scripts(redis)
    figures = Figures(
        "11 backlog",
        jobs=JOBS,
        lost=JOBS - len(done),
        duplicate_executions=0,
        duplicate_outcomes=0,
        extra={
            "seconds": (done[-1] - done[0]) / 1000,
            "first_tenth_ms": first,
            "last_tenth_ms": last,
            "pace": pace,
            "script_budget_ms": budget / 1000,
            "scripts_over_budget": len(scripts),
            "slowest_script_ms": max((d for d, _ in scripts), default=0),
        },
    )
    figures.emit()
    assert scripts == [], (figures.line(), scripts)
    assert pace >= 0.8, figures.line()

    # After the results expire, a reclaim tick or two clears what finished jobs left behind.
    async with asyncio.timeout(RESULT_TTL + 20):
        while True:
            left = {
                "stream": await redis.xlen(client.keys().ready),
                "completed": await redis.zcard(client.keys().status("completed")),
                "hashes": len([k async for k in redis.scan_iter(match=client.keys().job("*"))]),
            }
            if not any(left.values()):
                break
            await asyncio.sleep(0.25)
    for proc in procs:
        proc.kill()  # dead workers: their consumers must go too
        proc.wait(10)
    survivor = workers.spawn(server.url, lease_ttl=0.3, reclaim_interval=0.2)
    async with asyncio.timeout(30):
        while True:
            consumers: Any = await redis.xinfo_consumers(client.keys().ready, "workers")
            names = {c["name"].decode() for c in consumers}
            if not any(p.owns(n) for p in procs for n in names):
                break
            await asyncio.sleep(0.2)
    survivor.terminate()
    assert survivor.wait(30) == 0
    consumers = await redis.xinfo_consumers(client.keys().ready, "workers")
    assert consumers == []  # the clean stop deleted its own
    for status in ("pending", "scheduled", "running", "completed", "failed", "cancelled"):
        assert await redis.zcard(client.keys().status(status)) == 0
    assert await audit(redis, queue) == []
