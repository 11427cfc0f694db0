"""Each Lua transition on its own: fencing, Redis-clock due times, idempotent re-sends."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.exceptions import ResponseError

from redisjobs import Client
from redisjobs.keys import GROUP, QueueKeys
from redisjobs.scripts import Delivery, Scripts
from redisjobs.serialization import packb
from tests.conftest import log_events


async def read(client: Client, consumer: str, count: int = 100) -> list[tuple[str, str]]:
    keys = client.keys()
    with contextlib.suppress(ResponseError):  # BUSYGROUP after the first call
        await client.redis.xgroup_create(keys.ready, GROUP, id="0", mkstream=True)
    reply: Any = await client.redis.xreadgroup(GROUP, consumer, {keys.ready: ">"}, count=count)
    if not reply:
        return []
    return [(mid.decode(), f.get(b"id", b"").decode()) for mid, f in reply[0][1]]


async def deliver(client: Client, scripts: Scripts, consumer: str, n: int = 1) -> list[Delivery]:
    await client.enqueue_many([("call", {"i": i}) for i in range(n)])
    return await scripts.start(client.keys(), consumer, await read(client, consumer, max(n, 100)))


async def events_of(client: Client, job_id: str) -> list[str]:
    return [ev.type for ev in await log_events(client, job_id)]


async def test_start_leases_with_fresh_token_and_resend_is_one_effect(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    await client.enqueue("call", {"x": 1}, timeout=2)
    entries = await read(client, "w1")
    [d] = await scripts.start(keys, "w1", entries)
    assert (d.lease, d.attempt, d.kind, d.timeout_ms) == (1, 1, "call", 2000)
    assert d.payload == packb({"x": 1})
    [again] = await scripts.start(keys, "w1", entries)  # reply lost, re-sent
    assert again == d
    assert (await client.stats())["started"] == 1
    assert await events_of(client, d.job_id) == ["enqueued", "started"]


async def test_fencing_rejects_a_stale_lease(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    # w1 stalls; w2 takes the job over (lease_ttl 0 = any idle entry counts as abandoned)
    await asyncio.sleep(0.01)
    [taken], _ = await scripts.reclaim(keys, "w2", lease_ttl_ms=0, count=10, max_deliveries=5)
    assert taken.job_id == d.job_id and taken.lease == d.lease + 1 and taken.attempt == 2
    assert await scripts.complete(keys, "w1", [(d.job_id, d.lease, packb("late"))]) == [0]
    assert await scripts.fail(keys, "w1", d.job_id, d.lease, "late") == ("stale", 0)
    assert await scripts.heartbeat(keys, "w1", 40, [(d.job_id, d.lease)]) == [(d.job_id, "lost")]
    assert await scripts.complete(keys, "w2", [(d.job_id, taken.lease, packb("ok"))]) == [1]
    assert await scripts.complete(keys, "w2", [(d.job_id, taken.lease, packb("ok"))]) == [2]
    assert await client.wait(d.job_id, timeout=1) == "ok"
    evs = await events_of(client, d.job_id)
    assert evs.count("completed") == 1 and "reclaimed" in evs
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0


async def test_concurrent_complete_and_reclaim_record_one_outcome(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    ds = await deliver(client, scripts, "w1", 50)
    results = [(d.job_id, d.lease, packb(1)) for d in ds]
    done, (taken, _) = await asyncio.gather(
        scripts.complete(keys, "w1", results),
        scripts.reclaim(keys, "w2", lease_ttl_ms=0, count=100, max_deliveries=5),
    )
    taken_ids = {t.job_id for t in taken}
    for d, code in zip(ds, done, strict=True):
        assert (code == 1) != (d.job_id in taken_ids)
    # whatever w2 took, it can complete; nothing is left in any PEL afterwards
    await scripts.complete(keys, "w2", [(t.job_id, t.lease, packb(2)) for t in taken])
    assert (await client.stats())["completed"] == 50
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0


async def test_heartbeat_keeps_lease_and_reports_cancel(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    await asyncio.sleep(0.05)
    assert await scripts.heartbeat(keys, "w1", 40, [(d.job_id, d.lease)]) == []
    # the heartbeat reset the idle time, so a reclaim with a 40 ms lease finds nothing
    assert await scripts.reclaim(keys, "w2", lease_ttl_ms=40, count=10, max_deliveries=5) == (
        [],
        False,
    )
    assert await scripts.cancel(keys, d.job_id) == "requested"
    assert await scripts.heartbeat(keys, "w1", 40, [(d.job_id, d.lease)]) == [(d.job_id, "cancel")]
    assert await scripts.fail(keys, "w1", d.job_id, d.lease, "cancelled", mode="cancel") == (
        "cancelled",
        0,
    )
    assert await scripts.cancel(keys, d.job_id) == "final"
    assert await scripts.cancel(keys, "nope") == "missing"


async def test_retry_due_time_is_on_redis_clock(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    job = await client.enqueue(
        "call", {}, max_retries=2, retry_delay=10, retry_backoff=3, retry_jitter=0
    )
    [d] = await scripts.start(keys, "w1", await read(client, "w1"))
    outcome, due = await scripts.fail(keys, "w1", job.id, d.lease, "oops")
    sec, usec = await client.redis.time()
    now_ms = sec * 1000 + usec // 1000
    assert outcome == "retry"
    assert 0 <= due - now_ms <= 10_000 and due - now_ms > 9_000
    moved, next_due, now = await scripts.promote(keys)
    assert moved == 0 and next_due == due and abs(now - now_ms) < 1000
    got = await client.get(job.id)
    assert got is not None and got.status == "scheduled" and got.error == "oops"
    assert await scripts.fail(keys, "w1", job.id, d.lease, "oops") == ("dup", 0)


async def test_enqueue_delay_uses_redis_clock(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    job = await client.enqueue("call", {}, delay=1.5)
    raw: Any = await client.redis.hmget(keys.job(job.id), "created_at", "scheduled_at")
    created, scheduled = (int(x) for x in raw)
    assert scheduled - created == 1500
    assert await client.redis.zscore(keys.delayed, job.id) == scheduled


async def test_promote_moves_due_jobs_and_drops_vanished(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    a = await client.enqueue("call", {}, delay=0.05)
    b = await client.enqueue("call", {}, delay=0.05)
    await client.redis.delete(keys.job(b.id))  # expired or deleted by hand
    await asyncio.sleep(0.1)
    moved, next_due, _ = await scripts.promote(keys)
    assert (moved, next_due) == (1, -1)
    assert await client.redis.zcard(keys.delayed) == 0
    got = await client.get(a.id)
    assert got is not None and got.status == "pending"
    assert [jid for _, jid in await read(client, "w1")] == [a.id]


async def test_poison_job_fails_after_max_deliveries(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w0")
    for n in range(1, 3):
        await asyncio.sleep(0.005)
        [d], _ = await scripts.reclaim(keys, f"w{n}", lease_ttl_ms=0, count=10, max_deliveries=3)
    await asyncio.sleep(0.005)
    assert await scripts.reclaim(keys, "w3", lease_ttl_ms=0, count=10, max_deliveries=3) == (
        [],
        False,
    )
    got = await client.get(d.job_id)
    assert got is not None and got.status == "failed"
    assert got.error is not None and "max_deliveries=3" in got.error and got.failure == "fatal"
    assert await client.redis.zscore(keys.dead, d.job_id) is not None
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0


async def test_release_hands_back_without_burning_an_attempt(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    await client.enqueue("call", {"unstarted": True})
    unstarted = await read(client, "w1")  # read by w1 but never started
    assert len(unstarted) == 1
    assert await scripts.release(keys, "w1", [(d.job_id, d.lease)]) == 2
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0
    assert await events_of(client, d.job_id) == ["enqueued", "started", "released"]
    assert await events_of(client, unstarted[0][1]) == ["enqueued"]  # it never left pending
    again = await scripts.start(keys, "w2", await read(client, "w2"))
    assert sorted(x.attempt for x in again) == [1, 1]
    assert {x.job_id for x in again} == {d.job_id, unstarted[0][1]}


async def test_release_hands_back_jobs_leased_by_a_lost_reply(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    """A start whose reply never arrived leased a job the stopping worker does not know of: the
    hand-back finds it in the worker's PEL and puts it back, as no crash and no attempt."""
    [held] = await deliver(client, scripts, "w1")
    [dark] = await deliver(client, scripts, "w1")  # its reply was lost: w1 does not hold it
    assert await scripts.release(keys, "w1", [(held.job_id, held.lease)]) == 2
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0
    assert await events_of(client, dark.job_id) == ["enqueued", "started", "released"]
    again = await scripts.start(keys, "w2", await read(client, "w2"))
    assert sorted(x.attempt for x in again) == [1, 1]
    assert {x.job_id for x in again} == {held.job_id, dark.job_id}
    assert (await client.stats())["reclaimed"] == 0


async def test_orphan_sweep_requeues_running_job_without_pel_entry(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    msg: Any = await client.redis.hget(keys.job(d.job_id), "msg")
    await client.redis.xack(keys.ready, GROUP, msg)  # the entry left the PEL behind our back
    assert await scripts.reclaim(keys, "w2", lease_ttl_ms=60_000, count=0, max_deliveries=5) == (
        [],
        False,
    )
    got = await client.get(d.job_id)
    assert got is not None and got.status == "pending"
    [again] = await scripts.start(keys, "w2", await read(client, "w2"))
    assert again.job_id == d.job_id and again.attempt == 1 and again.lease == 2


async def test_garbage_entries_are_dropped(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    await client.enqueue("call", {})
    await client.redis.xadd(keys.ready, {"junk": "1"})
    await client.redis.xadd(keys.ready, {"id": "no-such-job"})
    entries = await read(client, "w1")
    assert [bool(jid) for _, jid in entries] == [True, False, True]
    started = await scripts.start(keys, "w1", entries)
    assert len(started) == 1
    assert await client.redis.xlen(keys.ready) == 1
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 1


async def test_reclaim_trims_acknowledged_entries(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    ds = await deliver(client, scripts, "w1", 300)
    await client.enqueue("call", {"left": "for later"})
    done = [(d.job_id, d.lease, packb(None)) for d in ds[:250]]
    assert await scripts.complete(keys, "w1", done) == [1] * 250
    assert await client.redis.xlen(keys.ready) == 301  # outcomes only acknowledge
    await scripts.reclaim(keys, "w2", lease_ttl_ms=60_000, count=10, max_deliveries=5)
    assert await client.redis.xlen(keys.ready) == 51  # all below the oldest pending entry
    entries: Any = await client.redis.xrange(keys.ready)
    ids = {f[b"id"].decode() for _, f in entries}
    assert {d.job_id for d in ds[250:]} <= ids  # nothing pending or undelivered was trimmed
    assert len(await read(client, "w3")) == 1


async def test_reclaim_leaves_a_drained_queue_at_its_baseline(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    await client.enqueue_many([{"kind": "call", "payload": i, "result_ttl": 0.2} for i in range(5)])
    ds = await scripts.start(keys, "gone", await read(client, "gone"))
    assert await scripts.complete(keys, "gone", [(d.job_id, d.lease, b"\xc0") for d in ds[:4]])
    await scripts.fail(keys, "gone", ds[4].job_id, ds[4].lease, "boom", mode="fatal")
    await asyncio.sleep(0.3)  # results expire; the worker "gone" went silent
    await scripts.reclaim(keys, "w2", lease_ttl_ms=10, count=10, max_deliveries=5)
    assert await client.redis.xlen(keys.ready) == 0
    assert await client.redis.zcard(keys.status("completed")) == 0
    # The dead letter is kept 30 days, whatever its result_ttl.
    assert await client.redis.zrange(keys.status("failed"), 0, -1) == [ds[4].job_id.encode()]
    assert await client.redis.zrange(keys.dead, 0, -1) == [ds[4].job_id.encode()]
    consumers: Any = await client.redis.xinfo_consumers(keys.ready, GROUP)
    assert b"gone" not in [c["name"] for c in consumers]  # idle 10 lease_ttl, none pending


async def test_start_reads_and_leases_in_one_call(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    await client.redis.xgroup_create(keys.ready, GROUP, id="0", mkstream=True)
    made = await client.enqueue_many([("call", {"i": i}) for i in range(3)])
    await client.redis.xadd(keys.ready, {"junk": "no id"})
    started = await scripts.start(keys, "w1", read=10)
    assert [d.job_id for d in started] == [j.id for j in made]
    assert all(d.lease == 1 and d.attempt == 1 for d in started)
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 3
    assert await scripts.start(keys, "w1", read=10) == []
