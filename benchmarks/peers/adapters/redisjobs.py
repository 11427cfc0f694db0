"""redisjobs, in the project's own venv: the one adapter behind ``run.py --only redisjobs`` too.

The producer calls are ``enqueue``, ``enqueue_many``, ``wait`` and ``stats``; the worker serves
the job functions of ``benchmarks/jobs.py``. ``run.py`` puts ``benchmarks/`` and the repository
on ``PYTHONPATH`` for this adapter only.
"""

from __future__ import annotations

import sys
from typing import Any

from harness import Adapter, main
from jobs import noop, sleep10  # benchmarks/jobs.py

from redisjobs import Client, Job, Worker


class RedisjobsAdapter(Adapter):
    name = "redisjobs"
    packages = ("redisjobs", "redis", "hiredis", "msgpack", "uvloop")
    notes = (
        "`Worker(concurrency=100)` serving `benchmarks/jobs.py`; `Client.enqueue`, "
        "`Client.enqueue_many` (bulk), `Client.wait` (event stream, no polling), "
        "completed count from `Client.stats`.",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.client = await Client(url).connect()

    async def close(self) -> None:
        await self.client.aclose()

    async def enqueue(self, queue: str, fn: str) -> Job:
        return await self.client.enqueue("call", {"fn": fn}, queue=queue)

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        await self.client.enqueue_many([("call", {"fn": fn}) for _ in range(n)], queue=queue)

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        await self.client.wait(handle.id, timeout=timeout, queue=queue)

    async def completed(self, queue: str, n: int) -> int:
        return (await self.client.stats(queue))["completed"]

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        functions = [noop, sleep10]
        await Worker(url, queue=queue, functions=functions, concurrency=concurrency).run()


if __name__ == "__main__":
    sys.exit(main(RedisjobsAdapter(), "adapters.redisjobs"))
