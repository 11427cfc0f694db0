"""BullMQ for Python (https://docs.bullmq.io/python/introduction) on its documented API.

Producer: ``Queue.add``; bulk: ``Queue.addBulk``. Wait: the Python port has no
``Job.waitUntilFinished``; its documented equivalent is a ``QueueEvents`` listener on the per-job
``completed:<jobId>`` event (blocking XREAD on the queue's event stream), registered before
``add`` with a ``jobId`` of our own so no completion can slip past. Worker:
``bullmq.Worker(concurrency=100)``, whose processor dispatches on the job name.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from typing import Any

from bullmq import Queue, QueueEvents, Worker
from harness import Adapter, main


async def process(job: Any, token: str) -> None:
    """The processor: ``sleep10`` jobs sleep 10 ms, ``noop`` jobs return at once."""
    if job.name == "sleep10":
        await asyncio.sleep(0.01)


class BullmqAdapter(Adapter):
    name = "bullmq"
    packages = ("bullmq", "redis", "hiredis", "uvloop")
    notes = (
        "`Worker(concurrency=100)`, `Queue.add`, `Queue.addBulk` (bulk), waits through a "
        "`QueueEvents` listener on `completed:<jobId>` (the port has no `waitUntilFinished`); "
        "completed = `Queue.getCompletedCount()` (completed jobs are kept, the default).",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.queues: dict[str, Queue] = {}
        self.events: dict[str, QueueEvents] = {}

    def queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue(name, {"connection": self.url})
        return self.queues[name]

    async def close(self) -> None:
        for e in self.events.values():
            await e.close()
        for q in self.queues.values():
            await q.close()

    async def enqueue(self, queue: str, fn: str) -> Any:
        return await self.queue(queue).add(fn, {})

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        await self.queue(queue).addBulk([{"name": fn, "data": {}} for _ in range(n)])

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        raise NotImplementedError("waits go through roundtrip (the listener comes first)")

    async def roundtrip(self, queue: str, fn: str, timeout: float) -> None:
        if queue not in self.events:
            # From the stream's start: the consumer may issue its first XREAD after the event.
            opts = {"connection": self.url, "lastEventId": "0-0"}
            self.events[queue] = QueueEvents(queue, opts)
        events = self.events[queue]
        job_id = uuid.uuid4().hex
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def completed(*_: Any) -> None:
            if not done.done():
                done.set_result("completed")

        def failed(*_: Any) -> None:
            if not done.done():
                done.set_result("failed")

        events.on(f"completed:{job_id}", completed)
        events.on(f"failed:{job_id}", failed)
        try:
            await self.queue(queue).add(fn, {}, {"jobId": job_id})
            if await asyncio.wait_for(done, timeout) != "completed":
                raise RuntimeError(f"job {job_id} failed")
        finally:
            events.off(f"completed:{job_id}", completed)
            events.off(f"failed:{job_id}", failed)

    async def completed(self, queue: str, n: int) -> int:
        return int(await self.queue(queue).getCompletedCount())

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(queue, process, {"connection": url, "concurrency": concurrency})
        await stop.wait()
        await worker.close(force=True)  # measurements are taken; do not wait on its connections


if __name__ == "__main__":
    sys.exit(main(BullmqAdapter(), "adapters.bullmq"))
