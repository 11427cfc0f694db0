"""Scripts whose work could grow with a backlog do a bounded share of it per call."""

from __future__ import annotations

import asyncio
from typing import Any

from redisjobs import Client
from redisjobs.keys import GROUP
from redisjobs.roundtrips import run
from redisjobs.schedule_flows import DUE_BATCH, due_flow, fire_flow
from redisjobs.schedule_loop import plan_due
from redisjobs.schedule_spec import ScheduleSpec
from redisjobs.scripts import PROMOTE_BATCH, Scripts
from redisjobs.ticks import FIRE_BATCH

TRIM_BATCH = 1000  # _lib.lua


async def test_promote_moves_a_backlog_a_batch_per_call(client: Client) -> None:
    scripts = Scripts(client.redis, embedded=client.backend.embedded)
    keys = client.keys()
    jobs = 2 * PROMOTE_BATCH + 7
    await client.enqueue_many({"kind": "call", "payload": {}, "delay": 0.05} for _ in range(jobs))
    await asyncio.sleep(0.1)
    calls = [await scripts.promote(keys) for _ in range(3)]
    assert [moved for moved, _, _ in calls] == [PROMOTE_BATCH, PROMOTE_BATCH, 7]
    assert calls[0][1] <= calls[0][2]  # more is due already: the caller goes on at once
    assert calls[2][1] == -1
    assert await client.redis.xlen(keys.ready) == jobs


async def test_expired_entries_leave_their_indexes_a_batch_per_call(client: Client) -> None:
    scripts = Scripts(client.redis, embedded=client.backend.embedded)
    keys = client.keys()
    redis: Any = client.redis
    # What a bulk expiry leaves: index entries scored by an expiry long past, their hashes gone.
    expired = {f"gone-{n}": 1 for n in range(TRIM_BATCH + 500)}
    live = {f"kept-{n}": 2**50 for n in range(5)}
    for index in (keys.status("failed"), keys.dead):
        await redis.zadd(index, {**expired, **live})

    await redis.xgroup_create(keys.ready, GROUP, id="0", mkstream=True)
    # Each job failing for good trims both indexes: 1,000 expired entries go, then the rest.
    for failed, expired_left in ((1, 500), (2, 0)):
        job = await client.enqueue("call", {})
        [d] = await scripts.start(keys, "w1", read=1)
        assert await scripts.fail(keys, "w1", job.id, d.lease, "boom") == ("failed", 0)
        for index in (keys.status("failed"), keys.dead):
            assert await redis.zcard(index) == expired_left + len(live) + failed


async def test_due_schedules_and_fire_do_a_batch_per_call(client: Client) -> None:
    redis, scripts = await client._conn()
    keys = client.keys()
    call = {"fn": "tests.jobs:echo"}
    for n in range(DUE_BATCH + 5):
        await client.schedule(f"s{n}", "call", call, every=1, misfire="run_all")
    now = int(await client.server_time() * 1000)
    await redis.zadd(keys.schedule_due, {f"s{n}": now - 500_000 for n in range(DUE_BATCH + 5)})
    read = await run(redis, due_flow(keys), scripts)
    assert len(read.due) == DUE_BATCH and read.next_due_ms == now - 500_000
    first = read.due[0]
    _, todo = plan_due(first, read.now_ms)
    assert len(todo.ticks) == FIRE_BATCH  # 500 ticks missed: the first 100 of them
    spec = ScheduleSpec.decode(first.schedule_id, first.spec)
    fired = await run(
        redis, fire_flow(keys, first, todo.next_due, [spec.row(t) for t in todo.ticks]), scripts
    )
    assert fired == (True, FIRE_BATCH)
