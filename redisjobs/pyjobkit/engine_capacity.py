"""``Engine(max_queue_size=...)``: an enqueue into a full queue waits for room.

The bound is the queue's ``max_pending`` limit of redisjobs, so Redis checks it atomically with
each write, for every producer at once; a write it refuses (:class:`~redisjobs.QueueFull`)
wrote nothing and is tried again every ``check_interval_s`` until the timeout. Without a
timeout a full queue is refused at once, as in Pyjobkit (an enqueue never waits unbounded).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import QueueFull

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["Capacity"]

Write = Callable[[list[dict[str, Any]]], Awaitable[list[uuid.UUID]]]


class Capacity:
    """An engine's queue bound.

    Args:
        limit: the most jobs waiting (None: no bound, and nothing of this runs).
        timeout_s: how long an enqueue waits for room at most (None: it does not wait).
        check_interval_s: seconds between tries meanwhile.
    """

    def __init__(self, limit: int | None, timeout_s: float | None, check_interval_s: float) -> None:
        if limit is not None and limit < 1:
            raise ValueError("max_queue_size must be at least 1")
        if not check_interval_s > 0:
            raise ValueError("enqueue_check_interval_s must be > 0")
        self.limit, self.timeout_s, self.check_interval_s = limit, timeout_s, check_interval_s
        self._set: set[int] = set()  # clients that have set the bound

    async def write(
        self, client: Client, queue: str, write: Write, specs: list[dict[str, Any]]
    ) -> list[uuid.UUID]:
        """`write` the jobs, waiting while the queue is full.

        Raises:
            TimeoutError: still full after ``timeout_s``.
        """
        if id(client) not in self._set:
            await client.set_limit(queue, max_pending=self.limit)
            self._set.add(id(client))
        if self.timeout_s is None:
            try:
                return await write(specs)
            except QueueFull:
                raise TimeoutError(
                    f"queue {queue!r} is at max_queue_size={self.limit} and enqueue_timeout_s "
                    "is not set, so the enqueue does not wait"
                ) from None
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    try:
                        return await write(specs)
                    except QueueFull:
                        await asyncio.sleep(self.check_interval_s)
        except TimeoutError:
            raise TimeoutError(
                f"queue {queue!r} stayed at max_queue_size={self.limit} for {self.timeout_s} s"
            ) from None
