"""The flow checks of the audit see each broken invariant: a keyspace of waiting jobs, clean,
then broken one way at a time (and mended)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from redisjobs import Event
from redisjobs.keys import GROUP
from redisjobs.scripts import HANDED, Scripts
from redisjobs.serialization import packb
from redisjobs.testing import unique_queue
from tests.faults.audit import audit
from tests.faults.audit_flows import released_twice
from tests.faults.conftest import MakeClient
from tests.faults.harness import FaultRedis

pytestmark = [pytest.mark.faults]


async def _one(redis: Redis, queue: str, words: str) -> None:
    """The audit reports exactly one violation, which contains `words`."""
    problems = await audit(redis, queue)
    assert len(problems) == 1 and words in problems[0], problems


async def test_the_audit_sees_a_broken_waiting_job(
    redis_under_test: FaultRedis, make_client: MakeClient, queue: str
) -> None:
    client = await make_client(redis_under_test.url)
    redis: Any = client.redis
    keys = client.keys()
    parent = await client.enqueue("call", {"fn": "tests.jobs:add"})
    child = await client.enqueue("call", {"fn": "tests.jobs:add"}, depends_on=[parent])
    assert await audit(redis, queue) == []

    await redis.hincrby(keys.job(child.id), "deps", 1)
    await _one(redis, queue, "deps 2, open edges")
    await redis.hincrby(keys.job(child.id), "deps", -1)

    await redis.srem(keys.job_dependents(parent.id), child.id)
    await _one(redis, queue, "not among the dependents of its parent")
    await redis.sadd(keys.job_dependents(parent.id), child.id)

    entry = await redis.xadd(keys.ready, {"id": child.id})
    await _one(redis, queue, "has a stream entry")
    await redis.xdel(keys.ready, entry)

    # its last edge closed, its count down to 0, and still waiting: a script that lost a release
    await redis.hset(keys.job_deps(child.id), parent.id, "fail=completed")
    await redis.hset(keys.job(child.id), "deps", 0)
    await _one(redis, queue, f"waiting job {child.id} has no open edge: its release was lost")
    await redis.hset(keys.job_deps(child.id), parent.id, "fail")
    await redis.hset(keys.job(child.id), "deps", 1)
    assert await audit(redis, queue) == []

    # the parent ended, its edge still open: the end of a script that did not tell the child
    await redis.hset(keys.job(parent.id), "status", "cancelled")
    problems = await audit(redis, queue)
    assert any(f"edge to {parent.id} (cancelled) open" in p for p in problems), problems


async def test_the_audit_sees_a_lost_hand_over(
    redis_under_test: FaultRedis, make_client: MakeClient, queue: str
) -> None:
    client = await make_client(redis_under_test.url)
    other = unique_queue("parent")  # (a name holding `queue` would fail its tag check)
    pkeys = client.keys(other)
    parent = await client.enqueue("call", {"fn": "tests.jobs:add"}, queue=other)
    child = await client.enqueue("call", {"fn": "tests.jobs:add"}, depends_on=[parent])
    await client.redis.xgroup_create(pkeys.ready, GROUP, id="0", mkstream=True)
    scripts = Scripts(client.redis)  # no courier: the hand-over stays in the stream
    (delivery,) = await scripts.start(pkeys, "writer", read=1)
    assert await scripts.complete(pkeys, "writer", [(parent.id, delivery.lease, packb(1))]) == [
        HANDED
    ]
    assert await audit(client.redis, queue) == []  # the end is on its way
    await client.redis.delete(pkeys.handover)
    await _one(client.redis, queue, f"edge to {other}/{parent.id} (completed) open, not handed")
    await client.redis.delete(pkeys.job(parent.id))  # and the parent expired since
    await _one(client.redis, queue, f"edge to {other}/{parent.id} (gone) open, not handed")
    assert (await client.get(child.id)).status.value == "waiting"  # type: ignore[union-attr]


def test_two_releases_in_one_waiting_period_are_seen() -> None:
    def ev(kind: str, job_id: str) -> Event:
        return Event(kind, "q", job_id, 0, 0)

    once = [ev("enqueued", "a"), ev("ready", "a"), ev("waiting", "a"), ev("ready", "a")]
    assert released_twice(once) == []
    assert released_twice([*once, ev("ready", "b"), ev("ready", "a")]) == [
        "job a released twice in one waiting period"
    ]
