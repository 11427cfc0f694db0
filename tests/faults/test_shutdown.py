"""Scenario 2: SIGTERM (a deploy) with short and with long jobs, and a second signal.

Pass bar (issue 6): short jobs finish and the worker exits 0 within grace + 1 s with 0 re-runs;
long jobs are handed back, picked up by another worker within one reclaim tick and not counted
as a crash delivery; a second signal hands back at once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from redisjobs.keys import QueueKeys
from tests.faults.conftest import MakeScenario
from tests.faults.harness import (
    Ledger,
    Spawner,
    WorkerProcess,
    check,
    enqueue_ledger_jobs,
    redis_time_ms,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(90)]

RECLAIM = 0.5


async def test_sigterm_lets_short_jobs_finish_and_exits_0(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    grace = 3.0
    server, client, tail = await scenario("plain")
    opts: dict[str, Any] = {"concurrency": 5, "lease_ttl": 2.0, "reclaim_interval": RECLAIM}
    leaving = workers.spawn(server.url, grace=grace, **opts)
    staying = workers.spawn(server.url, **opts)
    for w in (leaving, staying):
        await w.wait_registered(client.redis)
    ids = await enqueue_ledger_jobs(client, 100, 0.3)
    await until(lambda: _held(client.redis, queue, leaving, 5), 15, "5 jobs on the leaving one")
    t0 = time.monotonic()
    leaving.terminate()
    assert leaving.wait(grace + 1) == 0
    exit_s = time.monotonic() - t0
    entry = await leaving.registry(client.redis)
    assert entry.get("stopped_at"), f"its registry entry does not say it stopped: {entry}"
    figures = await check(
        "2 SIGTERM, short jobs",
        client.redis,
        queue,
        ids,
        tail=tail,
        ledger=ledger,
        extra={"exit_s": round(exit_s, 2), "grace_s": grace},
    )
    assert figures.statuses == {"completed": 100}
    ran_on_leaving = [e for e in await ledger.entries() if e.pid == leaving.pid]
    assert ran_on_leaving and all(e.attempt == 1 for e in ran_on_leaving)
    staying.terminate()
    assert staying.wait(10) == 0


async def test_sigterm_hands_long_jobs_to_another_worker_at_once(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    grace = 0.5
    lease = 30.0  # a takeover by lease expiry would take 30 s: a hand-back must be at once
    server, client, tail = await scenario("plain")
    opts: dict[str, Any] = {"concurrency": 4, "lease_ttl": lease, "reclaim_interval": RECLAIM}
    first = workers.spawn(server.url, grace=grace, **opts)
    ids = await enqueue_ledger_jobs(client, 4, 3.0)
    await until(lambda: _held(client.redis, queue, first, 4), 15, "4 jobs running on the first")
    [second] = await workers.start(server.url, 1, client.redis, **opts)
    signalled_ms = await redis_time_ms(client.redis)
    first.terminate()
    assert first.wait(grace + 1) == 0
    await until(lambda: _held(client.redis, queue, second, 4), 10, "the second to take them")
    await tail.drain()
    started = [e for e in tail.of_type("started") if second.owns(e.data["worker"])]
    pickup_s = (max(e.ts for e in started) - signalled_ms) / 1000 - grace
    figures = await check(
        "2 SIGTERM, long jobs handed back",
        client.redis,
        queue,
        ids,
        tail=tail,
        ledger=ledger,
        recovery_s=pickup_s,
        max_duplicate_executions=4,  # each ran on the first until the hand-back
        extra={"pickup_after_grace_s": round(pickup_s, 3), "reclaim_tick_s": RECLAIM},
    )
    assert pickup_s <= RECLAIM, f"picked up {pickup_s:.2f} s after the grace ran out"
    for job_id in ids:
        got = await client.get(job_id)
        assert got is not None and got.result == second.pid
        assert got.attempt == 1, "the hand-back burned an attempt"
        crashes: Any = await client.redis.hget(QueueKeys(queue).job(job_id), "crashes")
        assert int(crashes or 0) == 0, "a hand-back counted as a crash delivery"
    assert figures.duplicate_executions == 4
    second.terminate()
    assert second.wait(10) == 0


async def test_a_second_sigterm_hands_back_at_once(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    server, client, tail = await scenario("plain")
    opts: dict[str, Any] = {"concurrency": 2, "lease_ttl": 30.0, "reclaim_interval": RECLAIM}
    first = workers.spawn(server.url, grace=60, **opts)
    ids = await enqueue_ledger_jobs(client, 1, 60)
    await until(lambda: _held(client.redis, queue, first, 1), 15, "the job to start")
    first.terminate()
    await until(lambda: "waiting up to" in first.log(), 10, "the first to start draining")
    assert first.alive, "a first SIGTERM must let the 60 s job run on (grace 60 s)"
    t0 = time.monotonic()
    first.terminate()
    assert first.wait(2) == 0
    exit_s = time.monotonic() - t0
    status: Any = await client.redis.hget(QueueKeys(queue).job(ids[0]), "status")
    assert status == b"pending", "handed back, ready for any worker"
    # The job is not left to run for a minute: it is cancelled for the checker.
    assert await client.cancel(ids[0])
    figures = await check(
        "2 second SIGTERM",
        client.redis,
        queue,
        ids,
        tail=tail,
        ledger=ledger,
        extra={"exit_after_second_signal_s": round(exit_s, 2)},
    )
    assert figures.statuses == {"cancelled": 1}


async def _held(redis: Redis, queue: str, worker: WorkerProcess, n: int) -> bool:
    """True when `worker` runs at least `n` jobs of the queue."""
    keys = QueueKeys(queue)
    members: Any = await redis.zrange(keys.status("running"), 0, -1)
    if len(members) < n:
        return False
    async with redis.pipeline(transaction=False) as pipe:
        for m in members:
            pipe.hget(keys.job(m.decode()), "worker")
        owners = await pipe.execute()
    return sum(1 for o in owners if o is not None and worker.owns(o)) >= n
