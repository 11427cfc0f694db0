"""A Redis Cluster master killed in the middle of 2,000 jobs (SIGKILL; the cluster promotes its
replica once the other masters agree it failed; the killed node is then started again, as its
supervisor would, and rejoins as the new master's replica), with and without durable enqueues
and durable workers.

Producers and workers are given the ``redis+cluster://`` URL only, naming other nodes than the
killed one as well as it. The bars are those of the Sentinel scenarios
(tests/faults/test_sentinel.py): the workers follow the queue's slot to its new master and serve
again within seconds; no job a worker held is lost (its lease comes back through reclaim); no
job has two outcomes; with ``durable``, no acknowledged enqueue is lost. Without it, the
enqueues the killed master acknowledged but had not yet sent to its replica are lost by design
(counted, not asserted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from redisjobs.connection import Backend
from redisjobs.keys import CLUSTER_REGISTRY, QueueKeys
from redisjobs.topologies import ClusterSetup
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
def cluster() -> Iterator[ClusterSetup]:
    """3 masters and 3 replicas of this test's own; the nodes keep an AOF, so that the killed
    node comes back with its data (see tests/faults/test_sentinel.py's fixture)."""
    with ClusterSetup(node_args=redis_args("aof")) as setup:
        yield setup


@pytest.mark.parametrize("durable", [False, True], ids=["plain", "durable"])
async def test_a_cluster_master_killed_in_the_middle_of_2000_jobs(
    cluster: ClusterSetup,
    make_client: MakeClient,
    make_tail: MakeTail,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
    durable: bool,
) -> None:
    url = cluster.url
    keys = QueueKeys(queue)
    client = await make_client(url, **({"durable": True} if durable else {}))
    registry = Backend(url).client()
    pair = [workers.spawn(url, *(["--durable"] if durable else [])) for _ in range(2)]
    for w in pair:
        await w.wait_registered(registry, registry=CLUSTER_REGISTRY)
    acknowledged: list[str] = []
    producer = asyncio.create_task(produce_resending(client, acknowledged, JOBS, BATCH))
    await until(lambda: len(acknowledged) >= JOBS // 2, 60, "half the jobs enqueued")
    old = cluster.node_of(keys.prefix)
    old.kill()
    faulted = time.monotonic()
    await until(lambda: _moved_from(cluster, keys.prefix, old.port), 60, "a replica to be promoted")
    promoted = time.monotonic()
    promoted_s = promoted - faulted
    old.start()  # back, as its supervisor would bring it: it rejoins as a replica
    resent = await asyncio.wait_for(producer, 90)
    home = Backend(url).client(home=keys.prefix)  # the queue's master, wherever it is
    tail = await make_tail(url)  # the whole log of the new master, read from its start

    async def measure() -> dict[str, Any]:
        # recovery: the fault -> the first outcome the new master recorded as master
        return {"recovery_s": promoted_s + (await outcomes_after(home, tail, promoted))[0]}

    try:
        figures = await check(
            f"cluster master killed{' durable' if durable else ''}, {JOBS} jobs",
            home,
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
    finally:
        await home.aclose()
        await registry.aclose()
    assert figures.recovery_s is not None and figures.recovery_s < 20
    for w in pair:
        assert w.alive, w.log()[-3000:]
        w.terminate()
        assert w.wait(10) == 0


def _moved_from(cluster: ClusterSetup, key: str, port: int) -> bool:
    """Whether the live nodes agree that `key`'s slot is served by another node than `port`."""
    try:
        return cluster.node_of(key).port != port
    except LookupError:
        return False
