"""SAQ (https://github.com/tobymao/saq) on its documented API.

Producer: ``Queue.from_url`` + ``Queue.enqueue``. SAQ has no bulk enqueue: ``Queue.map`` is an
``asyncio.gather`` of ``enqueue`` followed by polling for every result, so the bulk column is
n/a and the 32-in-flight column is SAQ's fastest enqueue. Wait: ``Job.refresh(until_complete=)``,
which listens on SAQ's pub/sub channel. Worker: ``saq.Worker(concurrency=100)``, ``start()``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from harness import Adapter, Unsupported, main
from saq import Queue, Worker
from saq.job import Job


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def sleep10(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)


class SaqAdapter(Adapter):
    name = "saq"
    packages = ("saq", "redis", "hiredis", "uvloop")
    notes = (
        "`Worker(concurrency=100)`, `Queue.enqueue`, `Job.refresh(until_complete=...)` (pub/sub); "
        "completed = n - `Queue.count('incomplete')`.",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.queues: dict[str, Queue] = {}
        self.keepalive: dict[str, asyncio.Task[None]] = {}

    async def queue(self, name: str) -> Queue:
        if name not in self.queues:
            q = Queue.from_url(self.url, name=name)
            await q.connect()
            self.queues[name] = q
        return self.queues[name]

    async def close(self) -> None:
        for t in self.keepalive.values():
            t.cancel()
        for q in self.queues.values():
            await q.disconnect()

    async def enqueue(self, queue: str, fn: str) -> Job:
        job = await (await self.queue(queue)).enqueue(fn)
        assert job is not None  # None only for a duplicate key
        return job

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        raise Unsupported(
            "saq has no bulk enqueue API (`Queue.map` is `asyncio.gather` of `enqueue` plus "
            "waiting for the results; see the 32-in-flight row)"
        )

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        if queue not in self.keepalive:
            self.keepalive[queue] = asyncio.create_task(self.keep_subscribed(queue))
            await asyncio.sleep(0.1)  # PSUBSCRIBE done before the first timed wait
        await handle.refresh(until_complete=timeout)

    async def keep_subscribed(self, queue: str) -> None:
        """Hold one idle listener so SAQ's pub/sub multiplexer stays subscribed.

        The multiplexer subscribes lazily on the first listener and unsubscribes when the last
        one leaves, so back-to-back ``refresh(until_complete=)`` calls would each PSUBSCRIBE
        anew; a job finishing before that took effect is never noticed and the wait runs into
        its timeout (seen once, on the very first wait, while the worker was starting). A
        long-lived application with waiters keeps the subscription up; so does this adapter.
        """
        q = await self.queue(queue)
        await q.listen(["keepalive-never-published"], lambda *_: False, timeout=None)

    async def completed(self, queue: str, n: int) -> int:
        return n - int(await (await self.queue(queue)).count("incomplete"))

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        q = Queue.from_url(url, name=queue)
        await q.connect()  # as saq's own start_worker does
        worker = Worker(q, functions=[noop, sleep10], concurrency=concurrency)
        await worker.start()


if __name__ == "__main__":
    sys.exit(main(SaqAdapter(), "adapters.saq"))
