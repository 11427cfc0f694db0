"""The transitions as one function library (redisjobs/scripts/library.py), on both backends.

The library is loaded once and its functions serve every queue, so what a call sets up (the
queue's keys, gathered index writes) must never leak into the next call; a Redis that lost the
library (restarted, flushed) gets it again from the next call of any client.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ResponseError

from redisjobs import Client
from redisjobs.keys import QueueKeys
from redisjobs.scripts import NAMES, Scripts
from redisjobs.scripts.library import library
from redisjobs.serialization import packb
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import unique_queue
from tests.conftest import log_events
from tests.faults.audit import audit
from tests.test_scripts import deliver

LIB = library(NAMES)


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _flags(listing: Any) -> dict[str, set[str]]:
    """FUNCTION LIST's reply (RESP2: flat name, value lists) for one library: function name
    -> its flags."""
    (lib,) = listing
    functions = [_pairs(f) for f in _pairs(lib)[b"functions"]]
    return {f[b"name"].decode(): {x.decode() for x in f[b"flags"]} for f in functions}


async def test_every_transition_is_a_function_with_its_script_flags(client: Client) -> None:
    await client.enqueue("call", {"x": 1})  # loads the library if the server lacks it
    flags = _flags(await client.redis.function_list(library=LIB.name))
    assert set(flags) == {LIB.function(n) for n in NAMES}
    assert flags[LIB.function("complete")] == {"allow-oom"}
    assert flags[LIB.function("enqueue")] == set()  # refused whole by a Redis past maxmemory


async def test_calls_on_two_queues_in_turn_each_use_their_own_keys(client: Client) -> None:
    async with Client(client.backend.url, queue=unique_queue()) as other:
        ids = []
        for i in range(3):  # in turn: each call enters a queue other than the last call's
            ids.append(((await client.enqueue("call", {"i": i})).id, client))
            ids.append(((await other.enqueue("call", {"i": i})).id, other))
        for job_id, owner in ids:
            assert await owner.redis.exists(owner.keys().job(job_id))
            (event,) = await log_events(owner, job_id)  # in its own queue's log, not the other's
            assert event.type == "enqueued"
            assert await log_events(other if owner is client else client, job_id) == []
        assert (await client.stats())["pending"] == (await other.stats())["pending"] == 3


async def test_a_prefix_that_cannot_be_entered_never_runs_on_the_last_queue(
    client: Client,
) -> None:
    promote = LIB.function("promote")
    await client.enqueue("call", {"x": 1})  # the library is there, and this queue entered
    await client.redis.fcall(promote, 1, client.keys().prefix, 10)
    for _ in range(2):  # the second time too: the failed entry left no queue behind
        with pytest.raises(ResponseError):
            await client.redis.fcall(promote, 1, "rj:no-braces:", 10)
    moved, _, _ = await client.redis.fcall(promote, 1, client.keys().prefix, 10)
    assert moved == 0


async def test_a_call_after_one_that_raised_mid_batch_writes_its_indexes_at_once(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    ds = await deliver(client, scripts, "w1", 3)
    msg: Any = await client.redis.hget(keys.job(ds[1].job_id), "msg")
    await client.redis.hset(keys.job(ds[1].job_id), "msg", "not-a-stream-id")
    with pytest.raises(ResponseError, match="Invalid stream ID"):  # raised while gathering
        await scripts.complete(keys, "w1", [(d.job_id, d.lease, packb(1)) for d in ds])
    await client.redis.hset(keys.job(ds[1].job_id), "msg", msg)
    # defer does not gather: its index writes must go at once, not into the last call's batch
    outcome, _ = await scripts.defer(keys, "w1", ds[2].job_id, ds[2].lease, 60_000)
    assert outcome == "deferred"
    scheduled: Any = await client.redis.zrange(keys.status("scheduled"), 0, -1)
    assert scheduled == [ds[2].job_id.encode()]
    assert await audit(client.redis, client.queue) == []


async def test_a_flushed_library_is_loaded_again_by_the_next_call(client: Client, url: str) -> None:
    await client.enqueue("call", {"x": 1})
    await client.redis.function_flush()
    assert await client.redis.function_list(library=LIB.name) == []
    await client.enqueue("call", {"x": 2})  # the asyncio client's call loads it again
    assert await client.redis.function_list(library=LIB.name) != []
    await client.redis.function_flush()
    with SyncClient(url, queue=client.queue) as sync:
        sync.enqueue("call", {"x": 3})  # and the sync client's
    assert (await client.stats())["pending"] == 3
