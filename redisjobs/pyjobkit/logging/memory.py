"""A log sink that keeps the last lines of each job in memory (tests, demos)."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict, deque

from ..contracts import LogRecord

__all__ = ["MemoryLogSink"]


class MemoryLogSink:
    """Keeps the last `max_items` log records of each job.

    Args:
        max_items: records kept per job (older ones go first).
    """

    def __init__(self, *, max_items: int = 1000) -> None:
        self._max_items = max_items
        self._logs: defaultdict[uuid.UUID, deque[LogRecord]] = defaultdict(
            lambda: deque(maxlen=max_items)
        )
        # writes come from the event loop, reads may come from another thread
        self._lock = threading.Lock()

    async def write(self, record: LogRecord) -> None:
        """Keep `record`."""
        with self._lock:
            self._logs[record.job_id].append(record)

    async def get(self, job_id: uuid.UUID) -> list[LogRecord]:
        """The records kept for `job_id`, oldest first."""
        with self._lock:
            return list(self._logs.get(job_id, ()))
