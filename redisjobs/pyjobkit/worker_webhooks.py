"""Firing a job's webhooks once its outcome is recorded.

The worker starts :func:`notify` when a run of a job with webhooks ends, whatever way it
ended; it reads the job until the run's outcome is recorded (on Redis, by whichever path
recorded it) and fires the webhook of that outcome: ``success``, ``failed`` or ``timeout``. A
run that will be retried fires nothing; the run that ends the job does.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..job import JobStatus
from . import webhooks

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["drain", "notify"]

log = logging.getLogger("pyjobkit.worker")

SETTLE_S = 30.0
"""How long a notifier waits at most for the run's outcome to be recorded."""

_TASKS: set[asyncio.Task[None]] = set()  # a running notifier is referenced until it ends


def notify(client: Client, job_id: str, attempt: int, hooks: Any, started: float) -> None:
    """Fire the job's webhook for the outcome of run `attempt`, in the background."""
    task = asyncio.create_task(_notify(client, job_id, attempt, hooks, started))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def drain(timeout: float) -> None:
    """Wait (up to `timeout` seconds) for the webhooks still being fired: a worker that stops
    gracefully delivers the webhooks of the jobs it ran."""
    if _TASKS:
        await asyncio.wait(set(_TASKS), timeout=timeout)


async def _notify(client: Client, job_id: str, attempt: int, hooks: Any, started: float) -> None:
    try:
        async with asyncio.timeout(SETTLE_S):
            while True:  # the outcome is written by the worker's batched writer, in ms
                job = await client.get(job_id)
                if job is None or job.status != JobStatus.RUNNING or job.attempt != attempt:
                    break
                await asyncio.sleep(0.05)
    except TimeoutError:
        log.warning("job %s: no outcome recorded in %g s, no webhook fired", job_id, SETTLE_S)
        return
    if job is None or job.attempt != attempt:
        return
    status = {JobStatus.COMPLETED: "success", JobStatus.FAILED: "failed"}.get(job.status)
    if status == "failed" and job.failure == "timeout":
        status = "timeout"
    if status is not None:
        await webhooks.fire(
            webhooks=hooks,
            status=status,
            job_id=uuid.UUID(job_id),
            kind=job.kind,
            attempts=job.attempt,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            result=job.result if status == "success" else {"error": job.error},
        )
