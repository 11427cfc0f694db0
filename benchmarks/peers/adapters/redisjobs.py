"""redisjobs, in the project's own venv, configured exactly as ``benchmarks/throughput.py``.

The worker comes from :func:`throughput.make_worker` and the producer calls are the ones
``throughput.py`` times (``enqueue``, ``enqueue_many``, ``wait``, ``stats``), so the two
benchmarks measure the same code paths. ``run.py`` puts ``benchmarks/`` and the repository on
``PYTHONPATH`` for this adapter only.
"""

from __future__ import annotations

import sys
from typing import Any

import throughput  # benchmarks/throughput.py
from harness import Adapter, main

from redisjobs import Client, Job


class RedisjobsAdapter(Adapter):
    name = "redisjobs"
    packages = ("redisjobs", "redis", "hiredis", "msgpack", "uvloop")
    notes = (
        "`Worker(concurrency=100)` built by `benchmarks/throughput.py`; `Client.enqueue`, "
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
        await throughput.make_worker(url, queue, concurrency).run()


if __name__ == "__main__":
    sys.exit(main(RedisjobsAdapter(), "adapters.redisjobs"))
