"""arq (https://github.com/python-arq/arq) on its documented API.

Producer: ``ArqRedis.enqueue_job`` (``create_pool``); arq has no bulk enqueue. Wait:
``Job.result(timeout=, poll_delay=)``, which polls. Worker: ``arq.Worker(max_jobs=100)`` run with
``async_run`` on uvloop. Both of arq's poll intervals (the worker's queue poll and
``Job.result``'s) default to 0.5 s; they are set to 1 ms here, so that no number below is a
default sleep the user could configure away.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from arq import Worker, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from harness import Adapter, Unsupported, main

POLL_DELAY = 0.001


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def sleep10(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)


class ArqAdapter(Adapter):
    name = "arq"
    packages = ("arq", "redis", "hiredis", "uvloop")
    notes = (
        "`Worker(max_jobs=100, poll_delay=0.001)` (default poll 0.5 s), `ArqRedis.enqueue_job`, "
        "`Job.result(poll_delay=0.001)` (it polls; default 0.5 s); completed = jobs no longer in "
        "the queue's sorted set (ZCARD).",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.pool: ArqRedis = await create_pool(RedisSettings.from_dsn(url))

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue(self, queue: str, fn: str) -> Job:
        job = await self.pool.enqueue_job(fn, _queue_name=queue)
        assert job is not None  # None only for a duplicate _job_id
        return job

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        raise Unsupported("arq has no bulk enqueue API (only `ArqRedis.enqueue_job`)")

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        await handle.result(timeout=timeout, poll_delay=POLL_DELAY)

    async def completed(self, queue: str, n: int) -> int:
        return n - int(await self.pool.zcard(queue))

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        worker = Worker(
            functions=[noop, sleep10],
            queue_name=queue,
            redis_settings=RedisSettings.from_dsn(url),
            max_jobs=concurrency,
            poll_delay=POLL_DELAY,
            handle_signals=True,
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()


if __name__ == "__main__":
    sys.exit(main(ArqAdapter(), "adapters.arq"))
