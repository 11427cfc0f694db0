"""The job slots of one worker, shared by the loops that fill them.

The fetcher and the reclaim loop both lease jobs into the same `concurrency` slots; the jobs
free them when they end. One object holds the count and the wake-up event that tells the
fetcher to look again (a slot was freed, work arrived in this process, or the worker stops),
so that no loop has to poke another's events.
"""

from __future__ import annotations

import asyncio


class Slots:
    """How many jobs a worker runs, and how many more it may lease now.

    Args:
        concurrency: jobs run at once at most.
        batch_size: jobs leased per fetch at most.

    Attributes:
        running: jobs running now (leased and launched, outcome maybe not yet recorded).
        closed: the worker stops: no slot is free any more.
        wake: set when the fetcher should look again (cleared by the fetcher).
    """

    __slots__ = ("batch_size", "closed", "concurrency", "running", "wake")

    def __init__(self, concurrency: int, batch_size: int) -> None:
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.running = 0
        self.closed = False
        self.wake = asyncio.Event()

    def free(self) -> int:
        """Jobs to lease next: the free slots, up to `batch_size` (0 once closed)."""
        return 0 if self.closed else min(self.concurrency - self.running, self.batch_size)

    def take(self) -> None:
        """A job was launched into a slot."""
        self.running += 1

    def release(self) -> None:
        """A job left its slot: the fetcher may lease another."""
        self.running -= 1
        self.wake.set()

    def close(self) -> None:
        """Lease nothing more (the worker stops); wakes the fetcher so that it sees it."""
        self.closed = True
        self.wake.set()
