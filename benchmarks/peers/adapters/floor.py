"""The floor: a bare Python loop over the same Redis, the least any stream-based queue can do.

Not a job queue: no job record, no retries, no leases beyond the consumer group's, no
schedule, no events log. A job is one stream entry (``XADD``); a worker reads entries with
``XREADGROUP`` (``COUNT`` its concurrency), runs them, and per job sends ``XACK`` and a
``PUBLISH`` of its completion in one pipeline. ``roundtrip`` holds one subscription to the
queue's completion channel (made once), adds a job carrying a token, and returns when the token
is published. Same client stack as redisjobs (redis-py with hiredis, uvloop), in the project's
venv. Each of redisjobs' figures is reported as a share of this row's.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from harness import Adapter, group_completed, main
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ResponseError

GROUP = "floor"
BLOCK_MS = 1000


def done_channel(queue: str) -> str:
    """The channel the completions of `queue`'s jobs are published on (their tokens)."""
    return f"{queue}:done"


async def ensure_group(redis: Redis, queue: str) -> None:
    """The consumer group, made with its stream (from the start: pre-filled jobs are read)."""
    try:
        await redis.xgroup_create(queue, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class FloorAdapter(Adapter):
    name = "floor"
    packages = ("redis", "hiredis", "uvloop")
    notes = (
        "Not a job queue: the floor under every row. A bare loop on redis-py: `XADD` per job; "
        "a worker `XREADGROUP`s up to its concurrency, runs the batch, then one pipeline of "
        "`XACK` + `PUBLISH` per job; the wait holds one subscription to the queue's "
        "completion channel and returns on its job's token; completed = the group's "
        "`entries-read` minus `pending`.",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.redis: Redis = Redis.from_url(url)
        self.sync = SyncRedis.from_url(url)
        self.subs: dict[str, PubSub] = {}

    async def close(self) -> None:
        for sub in self.subs.values():
            close: Callable[[], Awaitable[None]] = sub.aclose  # untyped in redis-py 8.0
            await close()
        await self.redis.aclose()
        self.sync.close()

    async def enqueue(self, queue: str, fn: str) -> Any:
        return await self.redis.xadd(queue, {"f": fn})

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for _ in range(n):
                pipe.xadd(queue, {"f": fn})
            await pipe.execute()

    def enqueue_sync(self, queue: str, fn: str) -> Any:
        return self.sync.xadd(queue, {"f": fn})

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        raise NotImplementedError("the floor waits only in roundtrip (subscribed first)")

    async def roundtrip(self, queue: str, fn: str, timeout: float) -> None:
        sub = self.subs.get(queue)
        if sub is None:
            sub = self.subs[queue] = self.redis.pubsub()
            await sub.subscribe(done_channel(queue))
            await sub.get_message(timeout=timeout)  # the subscribe confirmation
        token = uuid.uuid4().hex.encode()
        await self.redis.xadd(queue, {"f": fn, "t": token})
        async with asyncio.timeout(timeout):
            while True:
                message = await sub.get_message(ignore_subscribe_messages=True, timeout=timeout)
                if message is not None and message["data"] == token:
                    return

    async def completed(self, queue: str, n: int) -> int:
        await ensure_group(self.redis, queue)
        return group_completed(await self.redis.xinfo_groups(queue), GROUP)

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        redis = Redis.from_url(url)
        await ensure_group(redis, queue)
        consumer = uuid.uuid4().hex
        while True:
            # the RESP2 reply, [[stream, [(id, fields), ...]]] (typed as the RESP3 one too)
            reply: Any = await redis.xreadgroup(
                GROUP, consumer, {queue: ">"}, count=concurrency, block=BLOCK_MS
            )
            if not reply:
                continue
            entries: list[tuple[bytes, dict[bytes, bytes]]] = reply[0][1]
            await asyncio.gather(*(run_job(fields) for _, fields in entries))
            async with redis.pipeline(transaction=False) as pipe:
                for entry_id, fields in entries:
                    pipe.xack(queue, GROUP, entry_id)
                    pipe.publish(done_channel(queue), fields.get(b"t") or entry_id)
                await pipe.execute()


async def run_job(fields: dict[bytes, bytes]) -> None:
    """The job's function: nothing for ``noop``, 10 ms asleep for ``sleep10``."""
    if fields.get(b"f") == b"sleep10":
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main(FloorAdapter(), "adapters.floor"))
