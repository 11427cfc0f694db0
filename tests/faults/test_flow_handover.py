"""Hand-overs across queues (docs/architecture.md, "Flows"): delivered at least once, with one
effect, and chains across two queues that outlive kill -9 of a worker process.

The writer that dies before delivering is played by the ``complete`` script run through a bare
:class:`~redisjobs.scripts.Scripts` (no Courier: ``handed`` is None), so the hand-over stays in
its queue's ``handover`` stream until a worker's periodic delivery takes it.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any, NamedTuple

import msgpack
import pytest

from redisjobs import Client, Event, chain, step
from redisjobs.keys import GROUP
from redisjobs.roundtrips import ScriptCall
from redisjobs.scripts import HANDED, Scripts
from redisjobs.serialization import packb
from redisjobs.testing import unique_queue
from tests.faults.audit import audit
from tests.faults.conftest import MakeClient, MakeRedis, MakeTail
from tests.faults.harness import (
    EventTail,
    FaultRedis,
    Ledger,
    Spawner,
    check,
    in_flight,
    jobs_call,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120)]


def across(other: str, seconds: float = 0.0) -> Any:
    """A chain of four steps (1 + 10 + 100 + 1000) that alternates between two queues."""
    steps = [jobs_call("ledger_add", x=10**i, seconds=seconds) for i in range(4)]
    return chain(*(step(*s, queue=other) if i % 2 else s for i, s in enumerate(steps)))


def _count(events: Iterable[Event], kind: str) -> collections.Counter[str]:
    return collections.Counter(e.job_id for e in events if e.type == kind)


class TwoQueues(NamedTuple):
    """A Redis under test, a client, a second queue, and an event tail of each queue."""

    server: FaultRedis
    client: Client
    other: str
    tails: dict[str, EventTail]


@pytest.fixture
async def two(
    make_redis: MakeRedis, make_client: MakeClient, make_tail: MakeTail, queue: str
) -> TwoQueues:
    server = make_redis("plain")
    other = unique_queue("across")  # (a name holding `queue` would fail the audit's tag check)
    tails = {queue: await make_tail(server.url), other: await make_tail(server.url, other)}
    return TwoQueues(server, await make_client(server.url), other, tails)


async def test_a_hand_over_left_by_a_dead_writer_is_delivered_once_in_effect(
    two: TwoQueues, workers: Spawner, queue: str
) -> None:
    server, client, other, tails = two
    run = await client.enqueue_flow(across(other))
    a1, b1, a2, b2 = (j.id for j in run.jobs)
    keys, okeys = client.keys(), client.keys(other)

    # The writer records a1's outcome and dies before delivering it.
    await client.redis.xgroup_create(keys.ready, GROUP, id="0", mkstream=True)
    scripts = Scripts(client.redis)
    (delivery,) = await scripts.start(keys, "writer", read=1)
    assert await scripts.complete(keys, "writer", [(a1, delivery.lease, packb(1))]) == [HANDED]
    entries: Any = await client.redis.xrange(keys.handover)
    ((_, fields),) = entries
    await client.redis.xadd(keys.handover, fields)  # the same hand-over, to be delivered twice
    assert (await client.get(b1, queue=other)).status.value == "waiting"  # type: ignore[union-attr]
    assert await audit(client.redis, other) == []  # its release is on its way, not lost

    # A worker of a1's queue delivers both copies on its reclaim tick; b1 is released once.
    courier = workers.spawn(server.url, reclaim_interval=0.3)
    await until(lambda: _handed_all(client, keys.handover), 20, "the hand-overs to be delivered")
    assert await client.redis.hget(okeys.job(b1), "deps") == b"0"
    assert await client.redis.hgetall(okeys.job_results(b1)) == {f"{queue}/{a1}".encode(): b"\x01"}
    payload = msgpack.unpackb(
        await client.redis.hget(okeys.job(b1), "payload"), object_pairs_hook=list
    )
    assert [k for k, _ in payload].count("previous_result") == 1
    # Once more while b1 is released and not run yet, with another value: nothing is written.
    written = await _written(client, okeys.job(b1), okeys.job_results(b1))
    resent = ScriptCall("resolve", okeys, [b1, f"{queue}/{a1}", "completed", packb(99)])
    assert await scripts.call(resent) == 0
    assert await _written(client, okeys.job(b1), okeys.job_results(b1)) == written
    assert (await client.get(b1, queue=other)).status.value == "pending"  # type: ignore[union-attr]

    # A worker of the other queue runs b1; the rest of the chain hands over from there.
    runner = workers.spawn(server.url, queue=other, reclaim_interval=0.3)
    assert await client.wait(b2, timeout=30, queue=other) == 1111
    assert await scripts.call(resent) == 0  # once more, long after: nothing
    for q, tail in tails.items():
        events = await tail.drain()
        assert set(_count(events, "ready").values()) == {1}, q
        assert set(_count(events, "completed").values()) == {1}, q
        assert await audit(client.redis, q) == []
    assert set(_count(tails[queue].events, "completed")) == {a1, a2}
    assert set(_count(tails[other].events, "completed")) == {b1, b2}
    for w in (courier, runner):
        w.terminate()
        assert w.wait(10) == 0


async def _written(client: Client, job: str, results: str) -> tuple[Any, Any, Any]:
    """What a delivery writes of a dependent: its payload, its open edge count, its results."""
    payload, count = await client.redis.hmget(job, ["payload", "deps"])
    return payload, count, await client.redis.hgetall(results)


async def _handed_all(client: Client, stream: str) -> bool:
    return int(await client.redis.xlen(stream)) == 0


async def test_kill_9_between_steps_of_chains_across_queues(
    two: TwoQueues, workers: Spawner, ledger: Ledger, queue: str
) -> None:
    server, client, other, tails = two
    opts: dict[str, Any] = {"concurrency": 4, "lease_ttl": 2.0, "reclaim_interval": 0.5}
    both = ("--queue", other)
    victim, survivor = [workers.spawn(server.url, *both, **opts) for _ in range(2)]
    for w in (victim, survivor):
        await w.wait_registered(client.redis)
    runs = [await client.enqueue_flow(across(other, seconds=0.3)) for _ in range(8)]

    async def victim_ran_a_step() -> bool:
        return any(e.pid == victim.pid and e.what == "end" for e in await ledger.entries())

    # Its first step ended (its outcome written and handed over): the kill lands between steps
    # of that chain, and mid-run for the steps it holds now.
    await until(victim_ran_a_step, 30, "the victim to finish a step")
    victim.kill()
    held = [j for q in (queue, other) for j in await in_flight(client.redis, q, victim)]
    replacement = workers.spawn(server.url, *both, **opts)
    for q in (queue, other):
        ids = [j.id for run in runs for j in run.jobs if j.queue == q]
        await check(
            f"flows across queues: kill -9 between steps, {'first' if q == queue else 'second'}",
            client.redis,
            q,
            ids,
            tail=tails[q],
            ledger=ledger,
            budget=60,
            max_duplicate_executions=len(held),
        )
    for run in runs:
        assert await client.wait(run.id, timeout=5, queue=other) == 1111
        assert {j.queue for j in run.jobs} == {queue, other}
    for w in (survivor, replacement):
        w.terminate()
        assert w.wait(10) == 0
