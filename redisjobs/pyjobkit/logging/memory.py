"""A log sink that keeps the last lines of each job in memory (tests, demos)."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, deque

from ..contracts import LogRecord

__all__ = ["MemoryLogSink"]


class MemoryLogSink:
    """Keeps the last `max_items` log records of each of the last `max_jobs` jobs.

    Args:
        max_items: records kept per job (older ones go first).
        max_jobs: jobs kept (the job that logged least recently goes first), so that a
            long-running worker's sink does not grow without bound.
    """

    def __init__(self, *, max_items: int = 1000, max_jobs: int = 10_000) -> None:
        self._max_items, self._max_jobs = max_items, max_jobs
        self._logs: OrderedDict[uuid.UUID, deque[LogRecord]] = OrderedDict()
        # writes come from the event loop, reads may come from another thread
        self._lock = threading.Lock()

    async def write(self, record: LogRecord) -> None:
        """Keep `record`."""
        with self._lock:
            lines = self._logs.pop(record.job_id, None) or deque(maxlen=self._max_items)
            lines.append(record)
            self._logs[record.job_id] = lines
            if len(self._logs) > self._max_jobs:
                self._logs.popitem(last=False)

    async def get(self, job_id: uuid.UUID) -> list[LogRecord]:
        """The records kept for `job_id`, oldest first."""
        with self._lock:
            return list(self._logs.get(job_id, ()))
