"""Scenarios 3 and 4: Redis killed and restarted (empty, and from AOF), and absent at start.

Pass bars (issue 6):

3. Restarted empty (no persistence): workers neither crash nor spin (< 5 % of a core while Redis
   is down), recreate the group and complete every job enqueued after the restart; producers
   fail fast while it is down. Killed with AOF everysec at 50 % of 5,000 jobs and restarted:
   0 acknowledged enqueues lost, 0 jobs lost.
4. Redis not there when a worker starts: the worker waits and serves when Redis appears.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from redisjobs import Client, ConnectionFailed
from redisjobs.options import new_job_id
from tests.faults.conftest import MakeClient, MakeRedis, MakeScenario, MakeTail
from tests.faults.harness import (
    FaultRedis,
    Ledger,
    Spawner,
    check,
    count_final,
    enqueue_ledger_jobs,
    outcomes_after,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(100)]

OUTAGE = 5.0
CPU_BAR = 0.05


async def test_redis_restarted_empty_workers_recover_and_never_spin(
    make_redis: MakeRedis,
    make_client: MakeClient,
    make_tail: MakeTail,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    server = make_redis("plain")
    client = await make_client(server.url)
    opts: dict[str, Any] = {"concurrency": 10, "lease_ttl": 2.0, "reclaim_interval": 0.5}
    pair = await workers.start(server.url, 2, client.redis, **opts)
    # Some work before the crash: a few jobs done, some still running when Redis dies (those
    # are lost with an empty Redis, by definition; the bar is about jobs enqueued after).
    before = await enqueue_ledger_jobs(client, 100, 0.5)
    await until(lambda: _final_at_least(client.redis, queue, 20), 30, "some jobs done")

    server.crash()
    cpu0 = [w.cpu_seconds() for w in pair]
    t0 = time.monotonic()
    # Producers fail fast while it is down: a client that was connected, and a new one.
    fail_s = []
    for producer in (client, Client(server.url, queue=queue)):
        t = time.monotonic()
        with pytest.raises(ConnectionFailed, match=server.url):
            await producer.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
        fail_s.append(time.monotonic() - t)
        if producer is not client:
            await producer.aclose()
    await asyncio.sleep(OUTAGE - (time.monotonic() - t0))  # the outage (pacing, not a check)
    down_s = time.monotonic() - t0
    cpu_share = [(w.cpu_seconds() - c) / down_s for w, c in zip(pair, cpu0, strict=True)]
    assert all(w.alive for w in pair), "a worker died while Redis was down"

    server.restart()
    restarted = time.monotonic()
    tail = await make_tail(server.url)
    deadline = time.monotonic() + 15
    while True:  # the first enqueue after the restart, retried as a caller would
        try:
            after = await enqueue_ledger_jobs(client, 200, 0.05)
            break
        except ConnectionFailed:
            assert time.monotonic() < deadline, "could not enqueue after the restart"
            await asyncio.sleep(0.1)

    async def measure() -> dict[str, Any]:
        # recovery: Redis back -> the first job recorded (the workers serve again)
        first, last = await outcomes_after(client.redis, tail, restarted)
        return {"recovery_s": first, "all_done_s": round(last, 2)}

    figures = await check(
        "3 Redis restarted empty",
        client.redis,
        queue,
        after,
        tail=tail,
        ledger=ledger,
        budget=30,
        measure=measure,
        extra={
            "cpu_while_down": [round(c, 4) for c in cpu_share],
            "outage_s": round(down_s, 1),
            "enqueue_fails_in_s": [round(f, 3) for f in fail_s],
            "jobs_lost_with_redis": len(before),
        },
    )
    assert figures.statuses == {"completed": 200}
    assert max(cpu_share) < CPU_BAR, f"workers used {cpu_share} of a core while Redis was down"
    assert max(fail_s) < 1.0, f"enqueue took {fail_s} s to fail while Redis was down"
    for w in pair:
        assert w.alive
        assert w.log().count("Traceback") == 0, w.log()[-3000:]
        w.terminate()
        assert w.wait(10) == 0


async def test_redis_killed_with_aof_loses_no_acknowledged_job(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    n, upfront, batch = 5000, 2000, 20
    server, client, tail = await scenario("aof")
    opts: dict[str, Any] = {"concurrency": 10, "lease_ttl": 2.0, "reclaim_interval": 0.5}
    pair = await workers.start(server.url, 2, client.redis, **opts)
    acknowledged = await enqueue_ledger_jobs(client, upfront, 0.01)
    # A producer trickles in the rest through the crash; a batch that failed is re-sent with
    # the same job ids (a dedup hit if it had been written) until it is acknowledged.
    retries = 0

    async def produce() -> None:
        nonlocal retries
        spec = {"kind": "call", "payload": {"fn": "tests.jobs:ledger", "args": {"seconds": 0.01}}}
        for _ in range((n - upfront) // batch):
            ids = [new_job_id() for _ in range(batch)]
            while True:
                try:
                    await client.enqueue_many([{**spec, "job_id": i} for i in ids])
                    break
                except ConnectionFailed:
                    retries += 1
                    await asyncio.sleep(0.05)
            acknowledged.extend(ids)
            await asyncio.sleep(0.03)  # a steady trickle that spans the crash

    producer = asyncio.create_task(produce())
    await until(lambda: _final_at_least(client.redis, queue, n // 2), 60, "50 % done")
    assert not producer.done(), "the producer must still be enqueueing when Redis dies"
    server.crash()
    crashed = time.monotonic()
    await asyncio.sleep(0.5)  # down long enough for the producer's calls to fail (pacing)
    server.restart()
    back = time.monotonic()
    back_s = back - crashed
    await asyncio.wait_for(producer, 60)

    async def measure() -> dict[str, Any]:
        # recovery: Redis back -> the first job recorded after it (the workers serve again)
        first, last = await outcomes_after(client.redis, tail, back)
        return {"recovery_s": first, "all_done_s": round(last, 2)}

    figures = await check(
        "3 Redis killed, AOF everysec, 5,000 jobs",
        client.redis,
        queue,
        acknowledged,
        tail=tail,
        ledger=ledger,
        budget=60,
        max_duplicate_executions=20,  # at most what was running on the two workers
        measure=measure,
        extra={"redis_back_in_s": round(back_s, 2), "enqueue_retries": retries},
    )
    assert len(acknowledged) == n and figures.statuses == {"completed": n}
    for w in pair:
        assert w.alive
        w.terminate()
        assert w.wait(10) == 0


# The library's Worker, in a process of its own, without the CLI in front of it.
BARE_WORKER = """
import asyncio, sys
from redisjobs import Worker
url, queue = sys.argv[1:3]
asyncio.run(Worker(url, queue=queue, modules=["tests.jobs"], lease_ttl=2.0).run())
"""


@pytest.mark.parametrize("how", ["cli", "library"])
async def test_worker_started_before_redis_waits_and_serves(
    make_client: MakeClient,
    make_tail: MakeTail,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
    how: str,
) -> None:
    server = FaultRedis("plain")  # a port, and nothing listening there yet
    try:
        if how == "cli":
            w = workers.spawn(server.url, lease_ttl=2.0)
        else:
            cmd = [sys.executable, "-c", BARE_WORKER, server.url, queue]
            w = workers.spawn_command(cmd, server.url)
        await until(lambda: "Redis unavailable" in w.log() or not w.alive, 20, "a first failed try")
        assert w.alive, f"the worker gave up without Redis:\n{w.log()}"
        server.start()
        appeared = time.monotonic()
        client = await make_client(server.url)
        tail = await make_tail(server.url)
        ids = await enqueue_ledger_jobs(client, 20, 0.01)

        async def measure() -> dict[str, Any]:
            # recovery: Redis up -> the last of the 20 jobs recorded
            _, last = await outcomes_after(client.redis, tail, appeared)
            return {"recovery_s": last}

        figures = await check(
            f"4 worker ({how}) started before Redis",
            client.redis,
            queue,
            ids,
            tail=tail,
            ledger=ledger,
            measure=measure,
        )
        assert figures.statuses == {"completed": 20}
        w.terminate()
        assert w.wait(10) == 0
    finally:
        server.close()


async def _final_at_least(redis: Redis, queue: str, n: int) -> bool:
    return await count_final(redis, queue) >= n
