"""100,000 jobs due at one moment, and 100,000 results expiring at one moment.

Either used to be one script doing work in proportion to the backlog: promote moved 1,000 jobs
a call (10-20 ms each on a busy 2-core machine), and the first outcome script or reclaim tick
after a bulk expiry removed every expired index entry at once. No script may block Redis for
10 ms (SLOWLOG; more on a slow machine: tests/script_budget.py), and another queue served
meanwhile keeps its latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from redisjobs import Client
from tests.faults.conftest import MakeClient, MakeRedis
from tests.faults.harness import Figures, Spawner, redis_time_ms, until
from tests.script_budget import slow_scripts, watch_scripts

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240)]

JOBS = 100_000
# SLOWLOG times a script by the wall clock: on a loaded 2-core machine the kernel may take the
# CPU from redis-server in the middle of a 1-2 ms script. A script whose own work is over 10 ms
# shows up dozens of times per run (20-86 for 1,000-job promotes); preemption a handful at most.
PREEMPTED_AT_MOST = 3
DUE_IN = 30.0  # s: enqueueing 100,000 jobs took 2-3 s here, 11-15 s on a slow day; room for both
# The other queue's p99 may grow this much (ms) while the backlog is promoted. A probe is four
# Redis round trips, each of which may wait for one promote call; on a shared 2-core machine
# it grew -6 to +23 ms with calls of 100 jobs, +63 to +120 ms with calls of 1,000.
PROBE_SLACK_MS = 40.0
RESULT_TTL = 30.0  # s: more than running the jobs takes (5-14 s here), so all expire together
DRAIN_POLL = 0.02


async def probe(client: Client, stop: asyncio.Event) -> list[float]:
    """Enqueue -> result latencies (ms) of one tiny job after another until `stop`."""
    out: list[float] = []
    while not stop.is_set():
        t0 = time.perf_counter()
        job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
        assert await client.wait(job.id, timeout=30) == 3
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def probe_while(client: Client, busy: Awaitable[object]) -> tuple[list[float], float]:
    """Probe `client`'s queue while awaiting `busy`; returns the latencies and the seconds."""
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(client, stop))
    t0 = time.monotonic()
    try:
        await busy
    finally:
        stop.set()
    return await probing, time.monotonic() - t0


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_100k_jobs_due_at_once_are_promoted_in_short_scripts(
    make_redis: MakeRedis, make_client: MakeClient, workers: Spawner, queue: str
) -> None:
    server = make_redis("plain")
    client = await make_client(server.url)
    other = await make_client(server.url, f"{queue}-other")
    redis: Any = client.redis
    # The promoting worker takes 10 jobs that sleep through the test, so what it does to Redis
    # while the backlog is due is promoting it.
    promoter = workers.spawn(server.url, concurrency=10)
    serving = workers.spawn(server.url, queue=f"{queue}-other", concurrency=4)
    for w in (promoter, serving):
        await w.wait_registered(redis)

    base, _ = await probe_while(other, asyncio.sleep(2))
    at = datetime.now(UTC) + timedelta(seconds=DUE_IN)
    spec = {"kind": "call", "payload": {"fn": "tests.jobs:sleep", "args": [600]}, "at": at}
    await client.enqueue_many(spec for _ in range(JOBS))
    assert datetime.now(UTC) < at, "enqueueing took longer than DUE_IN"
    budget = await watch_scripts(redis)
    await asyncio.sleep((at - datetime.now(UTC)).total_seconds())

    async def promoted() -> bool:
        return int(await redis.zcard(client.keys().delayed)) == 0

    during, seconds = await probe_while(other, until(promoted, 60, "the backlog promoted"))
    stats = await client.stats()
    scripts = await slow_scripts(redis)
    figures = Figures(
        "bulk due",
        jobs=JOBS,
        lost=JOBS - stats["pending"] - stats["running"],
        duplicate_executions=0,
        duplicate_outcomes=0,
        extra={
            "promote_s": seconds,
            "probe_p99_before_ms": p99(base),
            "probe_p99_during_ms": p99(during),
            "probes_during": len(during),
            "script_budget_ms": budget / 1000,
            "scripts_over_budget": len(scripts),
            "slowest_script_ms": max((d for d, _ in scripts), default=0),
        },
    )
    figures.emit()
    assert figures.lost == 0, figures.line()
    assert len(scripts) <= PREEMPTED_AT_MOST, (figures.line(), scripts)
    assert p99(during) <= p99(base) + PROBE_SLACK_MS, figures.line()


async def test_100k_results_expiring_at_once_leave_their_index_in_short_scripts(
    make_redis: MakeRedis, make_client: MakeClient, workers: Spawner
) -> None:
    server = make_redis("plain")
    client = await make_client(server.url)
    redis: Any = client.redis
    index = client.keys().status("completed")
    spec = {"kind": "call", "payload": {"fn": "tests.jobs:add", "args": [1, 2]}}
    await client.enqueue_many({**spec, "result_ttl": RESULT_TTL} for _ in range(JOBS))
    t0 = time.monotonic()
    # Reclaim ticks that never come: only outcome scripts trim while the jobs run.
    first = await workers.start(server.url, 2, redis, concurrency=50, reclaim_interval=600)
    await until(_all_completed(client), 120, "every job completed")
    ran = time.monotonic() - t0
    for w in first:
        w.terminate()
        assert w.wait(30) == 0
    # Nothing trims until every result has expired; then one worker's reclaim ticks do.
    assert await redis.zcard(index) == JOBS, "results expired while the jobs ran"
    last_expiry = (await redis.zrange(index, -1, -1, withscores=True))[0][1]
    await until(lambda: _after(redis, last_expiry), RESULT_TTL + 10, "every result expired")
    budget = await watch_scripts(redis)
    workers.spawn(server.url, lease_ttl=1, reclaim_interval=0.1)
    t1 = time.monotonic()
    drops = await _watch_drain(redis, index, 60)
    trimmed = time.monotonic() - t1
    scripts = await slow_scripts(redis)
    figures = Figures(
        "bulk expiry",
        jobs=JOBS,
        lost=0,
        duplicate_executions=0,
        duplicate_outcomes=0,
        extra={
            "run_s": ran,
            "trim_s": trimmed,
            "largest_drop": max(drops),
            "script_budget_ms": budget / 1000,
            "scripts_over_budget": len(scripts),
            "slowest_script_ms": max((d for d, _ in scripts), default=0),
        },
    )
    figures.emit()
    assert len(scripts) <= PREEMPTED_AT_MOST, (figures.line(), scripts)
    # a poll can span a few reclaim ticks, never the hundred that all of it takes
    assert max(drops) <= JOBS // 10, figures.line()


def _all_completed(client: Client) -> Any:
    async def check() -> bool:
        return (await client.stats())["completed"] >= JOBS

    return check


async def _after(redis: Redis, ms: float) -> bool:
    return await redis_time_ms(redis) > ms


async def _watch_drain(redis: Redis, key: str, timeout: float) -> list[int]:
    """How much `key` shrank from one poll to the next, until it is empty."""
    drops: list[int] = []
    left = await redis.zcard(key)
    async with asyncio.timeout(timeout):
        while left:
            await asyncio.sleep(DRAIN_POLL)
            now = await redis.zcard(key)
            drops.append(left - now)
            left = now
    return drops
