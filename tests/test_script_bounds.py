"""Scripts whose work could grow with a backlog do a bounded share of it per call."""

from __future__ import annotations

import asyncio
from typing import Any

from redisjobs import Client
from redisjobs.keys import GROUP
from redisjobs.scripts import PROMOTE_BATCH, Scripts

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
