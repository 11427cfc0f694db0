"""The promote loop: delayed jobs and retries become runnable when due.

Every worker runs one. `promote` returns the next due time on Redis's clock, so the loop sleeps
exactly until then; a new earlier due time (a delayed enqueue announced on the control channel,
or a retry this worker just scheduled) wakes it early. The sleep is capped and jittered so a fleet
started together does not promote in lock-step, and a missed wake-up costs at most the cap.
A backlog (100,000 jobs due at one moment) goes :data:`~redisjobs.scripts.PROMOTE_BATCH` jobs a
call, back to back: every call is short, and other clients' commands run between two of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from redis.exceptions import RedisError

from .connection import Backoff
from .keys import QueueKeys
from .scripts import PROMOTE_BATCH, Scripts

log = logging.getLogger("redisjobs.scheduler")


class Scheduler:
    """Moves due jobs from `delayed` to `ready` for one queue.

    Args:
        scripts: the scripts to call.
        keys: the queue.
        max_sleep: the longest sleep between two promotes (seconds).
        on_promoted: called after jobs were made runnable (the embedded backend wakes its
            fetcher with it).
    """

    def __init__(
        self,
        scripts: Scripts,
        keys: QueueKeys,
        *,
        max_sleep: float = 5.0,
        on_promoted: Callable[[], None] | None = None,
    ) -> None:
        self._scripts = scripts
        self._keys = keys
        self._max_sleep = max_sleep
        self._on_promoted = on_promoted
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Promote now (a job may have become due earlier than planned)."""
        self._wake.set()

    async def run(self) -> None:
        """Promote forever (until cancelled)."""
        backoff = Backoff(f"promote {self._keys.queue}", log)
        while True:
            self._wake.clear()
            try:
                moved, next_due, now = await self._scripts.promote(self._keys, PROMOTE_BATCH)
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            backoff.ok()
            if moved and self._on_promoted is not None:
                self._on_promoted()
            if moved >= PROMOTE_BATCH:
                continue  # a backlog: keep going before sleeping
            sleep = self._max_sleep * random.uniform(0.8, 1.0)
            if next_due >= 0:
                sleep = min(sleep, max(0.0, (next_due - now) / 1000))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)
