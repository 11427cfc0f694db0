"""The benchmark's tasks, importable by the worker subprocesses: ``app`` and its two tasks.

A worker serves them with ``Worker(url, app=app, queue=...)`` and runs each by its registered
name (``jobs:noop`` and ``jobs:sleep10``, the default ``module:qualname``). The App names no URL:
the benchmark gives the Redis URL through ``$REDIS_URL``, read at the first enqueue.
"""

from __future__ import annotations

import asyncio

from redisjobs import App

app = App()


@app.task
async def noop() -> None:
    """Do nothing: measures the framework's own cost per job."""
    return None


@app.task
async def sleep10() -> None:
    """Wait 10 ms without using the CPU: measures how well concurrency overlaps waiting jobs."""
    await asyncio.sleep(0.01)
