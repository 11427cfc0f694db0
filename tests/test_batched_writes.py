"""`start` and `complete` write a batch's status indexes and acknowledgements in one command
each (``gather_indexes`` and ``ack_all`` in ``_lib.lua``), and a job of the batch that raises
leaves the jobs before it whole: leased or recorded, indexed, acknowledged and counted."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from redis.exceptions import ResponseError

from redisjobs import Client
from redisjobs.events import Event
from redisjobs.keys import GROUP, QueueKeys
from redisjobs.scripts import Scripts
from redisjobs.serialization import packb
from tests.faults.audit import audit
from tests.test_scripts import deliver, read

N = 50


async def _calls(client: Client) -> dict[str, int]:
    stats: Any = await client.redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): s["calls"] for name, s in stats.items()}


async def _members(client: Client, key: str) -> set[str]:
    members: list[bytes] = await client.redis.zrange(key, 0, -1)  # type: ignore[assignment]
    return {m.decode() for m in members}


def _spent(before: dict[str, int], after: dict[str, int], *names: str) -> dict[str, int]:
    return {n: after.get(n, 0) - before.get(n, 0) for n in names}


@pytest.mark.redis_only
async def test_a_batch_costs_one_index_write_and_one_ack_per_call(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    await client.enqueue_many([("call", {"i": i}) for i in range(N)])
    entries = await read(client, "w1")
    before = await _calls(client)
    ds = await scripts.start(keys, "w1", entries)
    leased = await _calls(client)
    assert len(ds) == N
    assert _spent(before, leased, "zadd", "zrem", "xack") == {"zadd": 1, "zrem": 0, "xack": 0}
    assert await client.redis.zcard(keys.status("running")) == N
    codes = await scripts.complete(keys, "w1", [(d.job_id, d.lease, packb(1)) for d in ds])
    assert codes == [1] * N
    done = await _calls(client)
    # one ZREM out of running, one ZADD into completed, one XACK; per call, not per job
    assert _spent(leased, done, "zadd", "zrem", "xack") == {"zadd": 1, "zrem": 1, "xack": 1}
    assert await client.redis.zcard(keys.status("running")) == 0
    assert await client.redis.zcard(keys.status("completed")) == N
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0
    assert await audit(client.redis, client.queue) == []


async def test_a_job_that_raises_in_complete_leaves_the_ones_before_it_recorded(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    ds = await deliver(client, scripts, "w1", 6)
    victim = ds[3]
    msg: Any = await client.redis.hget(keys.job(victim.job_id), "msg")
    await client.redis.hset(keys.job(victim.job_id), "msg", "not-a-stream-id")
    with pytest.raises(ResponseError, match="Invalid stream ID"):
        await scripts.complete(keys, "w1", [(d.job_id, d.lease, packb(1)) for d in ds])
    assert await _members(client, keys.status("completed")) == {d.job_id for d in ds[:3]}
    assert await _members(client, keys.status("running")) == {d.job_id for d in ds[3:]}
    assert (await client.stats())["completed"] == 3
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 3
    await client.redis.hset(keys.job(victim.job_id), "msg", msg)  # repaired
    assert await audit(client.redis, client.queue) == []
    codes = await scripts.complete(keys, "w1", [(d.job_id, d.lease, packb(1)) for d in ds])
    assert codes == [2, 2, 2, 1, 1, 1]  # the first three were recorded before: re-sends
    assert await audit(client.redis, client.queue) == []


async def test_a_job_that_raises_in_start_leaves_the_ones_before_it_leased(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    jobs = await client.enqueue_many([("call", {"i": i}) for i in range(6)])
    victim = jobs[3].id
    # a lock released at its start (until_start) whose key someone made a hash: GET raises
    await client.redis.hset(keys.job(victim), mapping={"unique": "until_start", "unique_key": "u"})
    await client.redis.hset(keys.unique("u"), "not", "a string")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await scripts.start(keys, "w1", await read(client, "w1"))
    # the victim's own writes before the GET stay too, as any script's do when it raises
    assert await _members(client, keys.status("running")) == {j.id for j in jobs[:4]}
    assert (await client.stats())["started"] == 3


async def test_the_events_of_a_batch_are_each_encoded_whole(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    """`emit` builds what a call's events share once: each event still holds its own fields,
    in the documented order, whatever the length of its job id (msgpack's two string forms),
    and leaves out what its log entry says (the queue, the time, attempt 0)."""
    ids = ["s", "b" * 31, "c" * 32, "d" * 200]
    for job_id in ids:
        await client.enqueue("call", {"n": 1}, job_id=job_id)
    ds = await scripts.start(keys, "worker-1", await read(client, "worker-1"))
    await scripts.complete(keys, "worker-1", [(d.job_id, d.lease, packb([d.job_id])) for d in ds])
    entries: Any = await client.redis.xrange(keys.log)
    events = [msgpack.unpackb(fields[b"e"]) for _, fields in entries]
    expected = {
        "enqueued": ["type", "job_id", "kind"],
        "started": ["type", "job_id", "attempt", "worker"],
        "completed": ["type", "job_id", "attempt", "result"],
    }
    assert [(e["type"], e["job_id"]) for e in events] == [
        (kind, job_id) for kind in ("enqueued", "started", "completed") for job_id in ids
    ]
    for e in events:
        assert list(e) == expected[e["type"]]
    started = [e for e in events if e["type"] == "started"]
    assert {e["worker"] for e in started} == {"worker-1"} and {e["attempt"] for e in started} == {1}
    decoded = [Event.decode(f[b"e"], entry.decode(), client.queue) for entry, f in entries]
    assert {(e.queue, e.attempt) for e in decoded if e.type == "enqueued"} == {(client.queue, 0)}
    assert [e["result"] for e in events if e["type"] == "completed"] == [[i] for i in ids]
