"""Failovers under Sentinel in the middle of 2,000 jobs: ``SENTINEL FAILOVER``, and the master
killed (SIGKILL, its replica promoted, then started again as its supervisor would: the
sentinels make it the new master's replica), each with and without durable enqueues and
durable workers.

Producers and workers are given the ``redis+sentinel://`` URL only. The bars: workers follow the
master and serve again within a few seconds; no job a worker held is lost (its lease comes back
through reclaim); no job has two outcomes; with ``durable``, no acknowledged enqueue is lost.
Without it, the enqueues the old master acknowledged after the promotion are lost by design
(counted, not asserted: docs/guarantees.md, "Failover").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from redisjobs.topologies import SentinelSetup
from tests.faults.conftest import MakeClient, MakeTail
from tests.faults.harness import (
    Ledger,
    Spawner,
    check,
    outcomes_after,
    produce_resending,
    redis_args,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240)]

JOBS, BATCH = 2000, 20


@pytest.fixture
def sentinel() -> Iterator[SentinelSetup]:
    """A master, a replica and 3 sentinels of this test's own; the nodes keep an AOF.

    A node killed and started again must come back with its data, as a supervised Redis does:
    without persistence it comes back empty, and a second failover that promotes it before its
    first sync completes (a loaded machine's fork stall) wipes every job the first master held,
    acknowledged or not, whatever the clients do (docs/guarantees.md, "Failover")."""
    with SentinelSetup(node_args=redis_args("aof")) as setup:
        yield setup


@pytest.mark.parametrize("durable", [False, True], ids=["plain", "durable"])
@pytest.mark.parametrize("fault", ["failover", "kill"])
async def test_a_failover_in_the_middle_of_2000_jobs(
    sentinel: SentinelSetup,
    make_client: MakeClient,
    make_tail: MakeTail,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
    fault: str,
    durable: bool,
) -> None:
    url = sentinel.url
    client = await make_client(url, **({"durable": True} if durable else {}))
    pair = [workers.spawn(url, *(["--durable"] if durable else [])) for _ in range(2)]
    for w in pair:
        await w.wait_registered(client.redis)
    acknowledged: list[str] = []
    producer = asyncio.create_task(produce_resending(client, acknowledged, JOBS, BATCH))
    await until(lambda: len(acknowledged) >= JOBS // 2, 60, "half the jobs enqueued")
    old = sentinel.current_master()
    if fault == "failover":
        sentinel.failover()
    else:
        old.kill()
    faulted = time.monotonic()
    await until(lambda: sentinel.master_port() != old.port, 30, "a replica to be promoted")
    promoted = time.monotonic()
    promoted_s = promoted - faulted
    if fault == "kill":  # back, as its supervisor would bring it: the sentinels make it a replica
        old.start()
    resent = await asyncio.wait_for(producer, 90)
    # The old master, if up, resynced from the new. Whichever node is the master then: on a
    # loaded machine the sentinels may fail over once more (a full sync's fork stalls the new
    # master past down-after-milliseconds), which the checker must see through as well.
    await asyncio.to_thread(sentinel.wait_settled)
    tail = await make_tail(url)  # the whole log of the master, read from its start

    async def measure() -> dict[str, Any]:
        # recovery: the fault -> the first outcome the new master recorded as master (the
        # ones before were replicated from the old one)
        return {"recovery_s": promoted_s + (await outcomes_after(client.redis, tail, promoted))[0]}

    name = f"sentinel {fault}{' durable' if durable else ''}, {JOBS} jobs"
    figures = await check(
        name,
        client.redis,
        queue,
        acknowledged,
        max_lost=0 if durable else None,
        budget=60,
        tail=tail,
        ledger=ledger,
        max_duplicate_executions=JOBS,  # lost outcomes are run again: counted, not a bar
        measure=measure,
        extra={"promoted_s": round(promoted_s, 2), "enqueue_resends": resent},
    )
    assert figures.recovery_s is not None and figures.recovery_s < 15
    for w in pair:
        assert w.alive, w.log()[-3000:]
        w.terminate()
        assert w.wait(10) == 0
