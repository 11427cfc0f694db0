"""streaq (https://github.com/tastyware/streaq) on its documented API.

The ``streaq.Worker`` object is also the producer (``async with worker:``). Producer:
``task.enqueue()`` awaited; bulk: ``Worker.enqueue_many`` (one pipeline). Wait:
``Task.result(timeout=)`` (pub/sub, falls back to the stored result). Worker:
``Worker(concurrency=100)`` run with ``run_async`` on uvloop (prefetch is streaq's default, the
concurrency). streaq talks to Redis through coredis, which has its own compiled parser and does
not use hiredis.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from harness import Adapter, ceil_seconds, main
from streaq import Worker


async def noop() -> None:
    return None


async def sleep10() -> None:
    await asyncio.sleep(0.01)


def make_worker(url: str, queue: str, concurrency: int = 100) -> Worker[Any]:
    """A streaq worker object on `queue` with both tasks registered under their own names."""
    worker: Worker[Any] = Worker(redis_url=url, queue_name=queue, concurrency=concurrency)
    worker.task(name="noop")(noop)
    worker.task(name="sleep10")(sleep10)
    return worker


class StreaqAdapter(Adapter):
    name = "streaq"
    packages = ("streaq", "coredis", "anyio", "uvloop")
    notes = (
        "`Worker(concurrency=100)` (`run_async`), `task.enqueue()`, `Worker.enqueue_many` (bulk), "
        "`Task.result(timeout=)` (pub/sub); completed = n - `Worker.queue_size()`; coredis "
        "client (own parser, hiredis not used).",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.stack = contextlib.AsyncExitStack()
        self.workers: dict[str, Worker[Any]] = {}

    async def worker(self, queue: str) -> Worker[Any]:
        if queue not in self.workers:
            self.workers[queue] = await self.stack.enter_async_context(make_worker(self.url, queue))
        return self.workers[queue]

    async def close(self) -> None:
        await self.stack.aclose()

    async def enqueue(self, queue: str, fn: str) -> Any:
        return await (await self.worker(queue)).registry[fn].enqueue()

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        worker = await self.worker(queue)
        task = worker.registry[fn]
        await worker.enqueue_many([task.enqueue() for _ in range(n)])

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        result = await handle.result(timeout=ceil_seconds(timeout))
        if not result.success:
            raise RuntimeError(f"task failed: {result.exception!r}")

    async def completed(self, queue: str, n: int) -> int:
        return n - int(await (await self.worker(queue)).queue_size())

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        await make_worker(url, queue, concurrency).run_async()


if __name__ == "__main__":
    sys.exit(main(StreaqAdapter(), "adapters.streaq"))
