"""RQ (https://python-rq.org) on its documented API. RQ is synchronous.

Producer: ``Queue.enqueue``; bulk: ``Queue.enqueue_many`` of ``Queue.prepare_data`` (one
pipeline); 32 in flight uses 32 threads sharing the client's connection pool. RQ's producer is
synchronous, so the sync rows call ``Queue.enqueue`` directly (the async ``enqueue`` only wraps
it for the shared driver). Wait:
``Job.latest_result(timeout=)``, a blocking XREAD on the job's result stream. Worker:
``SimpleWorker``, which runs jobs in the worker process instead of forking one process per job;
RQ's own notes on performance (docs/benchmark.md) measure it about 6x faster for short jobs.
An RQ worker runs one job at a time (RQ has no in-process concurrency; its docs say to run more
workers), so "concurrency 100" does not apply: the 10 ms jobs run one after another.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from harness import Adapter, ceil_seconds, main
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.results import Result


def noop() -> None:
    return None


def sleep10() -> None:
    time.sleep(0.01)


class RqAdapter(Adapter):
    name = "rq"
    packages = ("rq", "redis", "hiredis")
    notes = (
        "`SimpleWorker` (no fork per job, per RQ's performance notes), one job at a time "
        "(no in-process concurrency in RQ); `Queue.enqueue`, `Queue.enqueue_many` (bulk), 32 "
        "threads for 32 in flight (sharing one `Redis` connection pool); the sync rows call "
        "`Queue.enqueue` directly, from one thread or 32; `Job.latest_result(timeout=)` "
        "(blocking XREAD); completed = "
        "`FinishedJobRegistry.get_job_count(cleanup=False)`. Synchronous: no event loop, so "
        "uvloop does not apply.",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.redis = Redis.from_url(url)
        self.queues: dict[str, Queue] = {}

    def queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue(name, connection=self.redis)
        return self.queues[name]

    async def close(self) -> None:
        self.redis.close()

    @staticmethod
    def path(fn: str) -> str:
        """RQ stores the function's import path; the worker process imports it."""
        return f"adapters.rq.{fn}"

    def enqueue_sync(self, queue: str, fn: str) -> Job:
        return self.queue(queue).enqueue(self.path(fn))

    async def enqueue(self, queue: str, fn: str) -> Job:
        return self.enqueue_sync(queue, fn)

    async def enqueue_inflight(self, queue: str, fn: str, n: int, inflight: int) -> None:
        self.enqueue_threads(queue, fn, n, inflight)

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        q, path = self.queue(queue), self.path(fn)
        q.enqueue_many([Queue.prepare_data(path) for _ in range(n)])

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        result = handle.latest_result(timeout=ceil_seconds(timeout))
        if result is None or result.type != Result.Type.SUCCESSFUL:
            raise RuntimeError(f"job {handle.id}: {result!r}")

    async def completed(self, queue: str, n: int) -> int:
        return int(self.queue(queue).finished_job_registry.get_job_count(cleanup=False))

    def serve_blocking(self, url: str, queue: str, concurrency: int) -> None:
        redis = Redis.from_url(url)
        worker = SimpleWorker([Queue(queue, connection=redis)], connection=redis)
        worker.work(logging_level="WARNING")


if __name__ == "__main__":
    sys.exit(main(RqAdapter(), "adapters.rq"))
