"""The face worker's settings in Pyjobkit's terms: their checks, and the callbacks it runs."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["HeartbeatCallback", "LeaseLostCallback", "LeaseLostError", "beat", "check_settings"]

log = logging.getLogger("redisjobs.pyjobkit.worker")

LeaseLostCallback = Callable[[uuid.UUID, dict[str, Any]], Awaitable[None]]
"""``on_lease_lost(job_id, row)``: a job's lease went to another worker (or to nobody)."""

HeartbeatCallback = Callable[[uuid.UUID], Awaitable[None]]
"""``on_heartbeat(worker_id)``, every ``heartbeat_interval_s`` while the worker serves."""


class LeaseLostError(RuntimeError):
    """A worker lost its lease on a job: its outcome is not this worker's to record."""


def check_settings(
    *,
    max_concurrency: int,
    batch: int,
    poll_interval: float,
    lease_ttl: float,
    queue_capacity: int | None,
    stop_timeout: float | None,
    watchdog_interval_s: float | None,
    heartbeat_interval_s: float | None,
) -> None:
    """Raise ValueError for a setting Pyjobkit refuses (each with Pyjobkit's message)."""
    rules = [
        (max_concurrency <= 0, "max_concurrency must be greater than 0"),
        (batch <= 0, "batch must be greater than 0"),
        (poll_interval <= 0, "poll_interval must be greater than 0"),
        (lease_ttl <= 0, "lease_ttl must be greater than 0"),
        (
            queue_capacity is not None and queue_capacity <= 0,
            "queue_capacity must be greater than 0 when provided",
        ),
        (
            stop_timeout is not None and stop_timeout <= 0,
            "stop_timeout must be greater than 0 when provided",
        ),
        (
            watchdog_interval_s is not None and watchdog_interval_s <= 0,
            "watchdog_interval_s must be > 0",
        ),
        (
            heartbeat_interval_s is not None and heartbeat_interval_s <= 0,
            "heartbeat_interval_s must be > 0",
        ),
    ]
    for broken, message in rules:
        if broken:
            raise ValueError(message)


async def beat(worker_id: uuid.UUID, interval: float, callback: HeartbeatCallback | None) -> None:
    """Log a heartbeat (and call `callback`) every `interval` seconds until cancelled; a failing
    callback is logged, never stops the worker."""
    while True:
        await asyncio.sleep(interval)
        log.debug(
            "worker heartbeat", extra={"event": "worker.heartbeat", "worker_id": str(worker_id)}
        )
        if callback is not None:
            try:
                await callback(worker_id)
            except Exception:
                log.exception("on_heartbeat failed")
