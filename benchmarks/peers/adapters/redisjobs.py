"""redisjobs, in the project's own venv: the one adapter behind ``run.py --only redisjobs`` too.

Driven through its task API: the tasks of ``benchmarks/jobs.py`` are enqueued with
``task.options(queue=...)`` (one BoundTask per queue and task, built once), ``enqueue`` /
``enqueue_many`` / ``enqueue_sync``, and waited for with ``TaskJob.result(timeout)``; the worker
serves the App. ``run.py`` puts ``benchmarks/`` and the repository on ``PYTHONPATH`` for this
adapter only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from harness import Adapter, main
from jobs import app, noop, sleep10  # benchmarks/jobs.py

import redisjobs
from redisjobs import SyncTaskJob, TaskJob, Worker
from redisjobs.task import BoundTask

TASKS = {"noop": noop, "sleep10": sleep10}


class RedisjobsAdapter(Adapter):
    name = "redisjobs"
    packages = ("redisjobs", "redis", "hiredis", "msgpack", "uvloop")
    notes = (
        "Task API: `App` with `@app.task` `noop`/`sleep10` (`benchmarks/jobs.py`), "
        "`Worker(url, app=app, queue=..., concurrency=100)`; `task.options(queue=...)` built once "
        "per queue, then `.enqueue()`, `.enqueue_many()` (bulk), `.enqueue_sync()` (sync rows; "
        "32 threads share the App's one sync client); `TaskJob.result(timeout)` (event stream, "
        "no polling); completed count from `Client.stats`.",
    )

    def versions(self) -> dict[str, str]:
        """The installed versions, but redisjobs' own from the package that runs: the repo's
        (on ``PYTHONPATH``), whose installed metadata may be that of an older editable install."""
        return {**super().versions(), "redisjobs": redisjobs.__version__}

    async def open(self, url: str) -> None:
        await super().open(url)
        os.environ["REDIS_URL"] = url  # the App's URL, read at its first enqueue
        self.bound: dict[tuple[str, str], BoundTask[[], None]] = {}

    def task(self, queue: str, fn: str) -> BoundTask[[], None]:
        """`fn`'s task bound to `queue`, made on first use (a dict write is atomic: threads may
        at worst both make one)."""
        bound = self.bound.get((queue, fn))
        if bound is None:
            bound = self.bound[queue, fn] = TASKS[fn].options(queue=queue)
        return bound

    async def close(self) -> None:
        await app.aclose()
        await asyncio.to_thread(app.close)

    async def enqueue(self, queue: str, fn: str) -> TaskJob[None]:
        return await self.task(queue, fn).enqueue()

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        await self.task(queue, fn).enqueue_many([() for _ in range(n)])

    def enqueue_sync(self, queue: str, fn: str) -> SyncTaskJob[None]:
        return self.task(queue, fn).enqueue_sync()

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        await handle.result(timeout)

    async def completed(self, queue: str, n: int) -> int:
        return (await app.client().stats(queue))["completed"]

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        await Worker(url, app=app, queue=queue, concurrency=concurrency).run()


if __name__ == "__main__":
    sys.exit(main(RedisjobsAdapter(), "adapters.redisjobs"))
